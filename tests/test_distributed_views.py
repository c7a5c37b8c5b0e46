"""A volume predicted from three views on a dask LocalCluster equals Segmenter.predict(volume, views=3)."""

import numpy as np
import pytest
import tifffile
from cli_helpers import one_thread  # noqa: F401
from conftest import smooth_image, tiny_segmenter

from napari_segnet.distributed import close, connect
from napari_segnet.distributed_views import predict_views_distributed, slab_planes
from napari_segnet.io.imagefiles import read_image

distributed = pytest.importorskip("distributed")


def test_slabs_hold_at_most_the_voxel_budget_and_at_least_one_plane(monkeypatch):
    from napari_segnet import distributed_views

    monkeypatch.setattr(distributed_views, "SLAB_VOXELS", 1000)
    assert slab_planes((10, 20, 30), 10) == (1, 3, 5)  # 600, 300, 200 voxels a plane
    assert slab_planes((10, 20, 30), 40) == (1, 1, 1)  # side planes of 40 rows: 1200 and 800 voxels


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_three_views_on_a_cluster_equal_three_views_in_one_process(tmp_path, monkeypatch):
    from napari_segnet import distributed_views

    monkeypatch.setattr(distributed_views, "SLAB_VOXELS", 2000)  # several slabs of each view, cut mid-volume
    seg = tiny_segmenter(num_classes=2)
    volume = smooth_image((7, 30, 40))
    tifffile.imwrite(tmp_path / "vol.tif", volume)
    client = connect("local:2")
    try:
        done = []
        reports = predict_views_distributed(seg, tmp_path / "vol.tif", tmp_path / "l.zarr", client=client,
                                            proba_output=tmp_path / "p.ome.zarr", fmt="ome-zarr", tile_shape=32,
                                            spacing=(2.0, 1.0, 1.0), progress=lambda d, t: done.append((d, t)))
    finally:
        close(client)
    whole = seg.predict_proba(volume, 32, views=3, spacing=(2.0, 1.0, 1.0))
    proba = np.asarray(read_image(tmp_path / "p.ome.zarr")[0])
    np.testing.assert_allclose(proba, whole, atol=1e-6)
    assert np.ptp(whole[1]) > 1e-3  # varies
    labels = np.asarray(read_image(tmp_path / "l.zarr")[0])
    np.testing.assert_array_equal(labels, seg.predict(volume, 32, views=3, spacing=(2.0, 1.0, 1.0)))
    # slabs of 2000 voxels: 1 (Y, X) plane of 30 × 40, 3 (Z, X) planes of 14 × 40, 4 (Z, Y) planes of 14 × 30
    assert [sum(r["view"] == v for r in reports) for v in range(3)] == [7, 10, 10]
    assert done[-1] == (27 + 7, 27 + 7)  # and 7 slabs of slices averaged
    assert not list(tmp_path.glob(".napari-segnet-views-*"))  # the temporary stores are gone


def test_bad_inputs_are_refused(tmp_path):
    seg = tiny_segmenter(num_classes=2)
    tifffile.imwrite(tmp_path / "plane.tif", smooth_image((30, 40)))
    with pytest.raises(ValueError, match=r"single-channel \(Z, Y, X\) volume"):
        predict_views_distributed(seg, tmp_path / "plane.tif", tmp_path / "l.zarr", cluster="local:1")
    with pytest.raises(ValueError, match="three positive voxel sizes"):
        predict_views_distributed(seg, tmp_path / "plane.tif", tmp_path / "l.zarr", cluster="local:1",
                                  spacing=(1, 1))
    with pytest.raises(ValueError, match="give a client or a cluster"):
        predict_views_distributed(seg, tmp_path / "plane.tif", tmp_path / "l.zarr")


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_the_command_line_predicts_three_views_on_a_cluster(tmp_path, capsys):
    from cli_helpers import main

    seg = tiny_segmenter(num_classes=2)
    model = seg.save(tmp_path / "m.safetensors")
    volume = smooth_image((6, 24, 32))
    tifffile.imwrite(tmp_path / "vol.tif", volume)
    common = ("predict", tmp_path / "vol.tif", "--model", model, "--out", tmp_path / "o", "--views", "3",
              "--cluster", "local:1", "--format", "zarr", "--tile", "32")
    status, _, err = main(capsys, *common, "--spacing", "2", "1", "1")
    assert status == 0, err
    np.testing.assert_array_equal(np.asarray(read_image(tmp_path / "o" / "vol_labels.zarr")[0]),
                                  seg.predict(volume, 32, views=3, spacing=(2.0, 1.0, 1.0)))
    status, _, err = main(capsys, *common, "--instances")
    assert status == 2 and "not instances" in err
