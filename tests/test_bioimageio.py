"""bioimage.io export: bioimageio.core's validation and model test, round trip, sizes, preprocessing, bad inputs."""

import hashlib
import os
import zipfile

import numpy as np
import pytest
import yaml
from conftest import smooth_image, tiny_segmenter

from napari_segnet import bioimageio
from napari_segnet.io.checkpoint import CheckpointError
from napari_segnet.models import build_model
from napari_segnet.numerics.normalization import Normalization
from napari_segnet.segmenter import Segmenter

TINY = {"unet": {"base_filters": 4, "depth": 2}, "fcn8s": {"width": 1 / 16},
        "fc_densenet56": {"growth_rate": 2, "first_filters": 4}}


@pytest.fixture(scope="module")
def unet_package(tmp_path_factory):
    seg = tiny_segmenter("unet", 1, 3, class_names=["background", "cell", "rod body"], **TINY["unet"])
    path = seg.export_bioimageio(tmp_path_factory.mktemp("pkg") / "model", smooth_image((40, 44)),
                                 authors=["Ada Lovelace"], max_context=32)
    return seg, path


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(TINY))
def test_bioimageio_core_validates_and_reproduces_the_test_output(arch, tmp_path):
    core = pytest.importorskip("bioimageio.core")
    seg = tiny_segmenter(arch, 1, 3, **TINY[arch])
    path = seg.export_bioimageio(tmp_path / f"{arch}.zip", smooth_image((40, 40)), max_context=32)
    summary = core.test_model(str(path))  # format validation, both weight formats, sizes min + n·step
    failed = [d.name for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed
    assert summary.format_version.startswith("0.5")


def test_package_contents(unet_package):
    seg, path = unet_package
    assert path.suffix == ".zip"
    with zipfile.ZipFile(path) as z:
        rdf = yaml.safe_load(z.read("rdf.yaml"))
        files = {n: z.read(n) for n in z.namelist()}
        test_in, test_out = (np.load(z.open(n)) for n in ("test_input.npy", "test_output.npy"))
    weights = rdf["weights"]["pytorch_state_dict"]
    assert weights["sha256"] == hashlib.sha256(files["weights.pt"]).hexdigest()
    assert weights["architecture"]["kwargs"]["options"] == {"base_filters": 4, "depth": 2}
    assert rdf["weights"]["torchscript"]["parent"] == "pytorch_state_dict"
    assert rdf["authors"] == [{"name": "Ada Lovelace"}]
    assert rdf["cite"][0]["doi"] == "10.1007/978-3-319-24574-4_28"
    assert rdf["outputs"][0]["axes"][1]["channel_names"] == ["background", "cell", "rod_body"]
    assert rdf["config"]["napari-segnet"]["class_names"] == ["background", "cell", "rod body"]
    # unet depth 2: stride 4, any multiple of 4; the 40×44 image is kept whole
    assert rdf["inputs"][0]["axes"][2]["size"] == {"min": 4, "step": 4}
    assert test_in.shape == (1, 1, 40, 44) and test_out.shape == (1, 3, 40, 44)
    np.testing.assert_allclose(test_out.sum(axis=1), 1, atol=1e-5)
    expected = seg.predict_proba(smooth_image((40, 44)), tile_shape=(40, 44))
    np.testing.assert_allclose(test_out[0], expected, atol=5e-3)  # max_context 32 vs 256: a hair apart


def test_load_reads_back_an_exported_package_with_identical_predictions(unet_package):
    seg, path = unet_package
    loaded = Segmenter.load(path)
    image = smooth_image((48, 40), seed=3)
    np.testing.assert_array_equal(loaded.predict(image), seg.predict(image))
    assert loaded.class_names == ["background", "cell", "rod body"]
    assert loaded.metadata.options == {"base_filters": 4, "depth": 2}


@pytest.mark.parametrize(("arch", "options", "expected"), [
    ("unet", {"base_filters": 4, "depth": 2}, (4, 4)),
    ("unet", {"base_filters": 4, "depth": 3}, (8, 8)),
    ("fcn8s", {"width": 1 / 16}, (32, 32)),
    ("fc_densenet56", {"growth_rate": 2, "first_filters": 4}, (32, 32)),
])
def test_axis_sizes_follow_the_total_stride(arch, options, expected):
    assert bioimageio.axis_size(build_model(arch, 1, 2, **options)) == expected


def test_valid_convolution_unet_sizes_all_go_through_the_net():
    net = build_model("unet", 1, 2, base_filters=4, depth=2, padding="valid")
    low, step = bioimageio.axis_size(net)
    pad, crop = bioimageio.context(net)
    assert step == 4 and pad == net.shrink + crop
    assert all(net.is_valid_size(low + k * step + 2 * pad) for k in range(50))
    assert not net.is_valid_size(low - 1 + 2 * pad)


def test_preprocessing_equals_our_normalisation():
    assert bioimageio.preprocessing(Normalization(low=2.0, high=99.0), 1)[1] == {
        "id": "scale_range", "kwargs": {"axes": ["y", "x"], "min_percentile": 2.0, "max_percentile": 99.0}}
    fixed = bioimageio.preprocessing(Normalization("fixed", offset=(10.0, 4.0), scale=(2.0, 0.5)), 2)[1]
    assert fixed["kwargs"] == {"axis": "channel", "gain": [0.5, 2.0], "offset": [-5.0, -8.0]}
    assert [s["id"] for s in bioimageio.preprocessing(Normalization("none"), 1)] == ["ensure_dtype"]


def test_class_names_become_unique_identifiers():
    assert bioimageio.channel_names(["background", "class 1", "class 1", "ä!"]) == [
        "background", "class_1", "class_1_2", "class_3"]


def test_family_citations():
    assert bioimageio.family("unet_paper") == "unet" and bioimageio.family("fcn16s") == "fcn"
    assert bioimageio.CITATIONS[bioimageio.family("fc_densenet103")]["doi"] == "10.1109/CVPRW.2017.156"


# ---- bad inputs ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_export_to_an_unwritable_folder_says_where(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    with pytest.raises(OSError, match="could not write the bioimage.io package to .*locked"):
        tiny_segmenter("unet", **TINY["unet"]).export_bioimageio(folder / "m.zip", max_context=32)


def test_export_into_a_missing_folder_says_where(tmp_path):
    with pytest.raises(OSError, match="could not write the bioimage.io package to .*nowhere"):
        tiny_segmenter("unet", **TINY["unet"]).export_bioimageio(tmp_path / "nowhere" / "m.zip", max_context=32)
    assert not (tmp_path / "nowhere").exists()


def test_an_image_smaller_than_the_net_needs_is_refused(tmp_path):
    seg = tiny_segmenter("fcn8s", 1, 2, **TINY["fcn8s"])
    with pytest.raises(ValueError, match="needs at least 32×32"):
        seg.export_bioimageio(tmp_path / "m.zip", np.zeros((20, 64), np.uint8))
    assert not (tmp_path / "m.zip").exists()


def _zip(path, files):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def test_a_foreign_bioimageio_package_gets_a_clear_message(tmp_path):
    rdf = {"format_version": "0.5.4", "type": "model", "name": "StarDist nuclei", "weights": {}}
    path = _zip(tmp_path / "foreign.zip", {"rdf.yaml": yaml.safe_dump(rdf), "weights.pt": b"\x80\x04junk"})
    with pytest.raises(CheckpointError, match=r"\('StarDist nuclei'\) that napari-segnet did not export.*bioimage.io "
                                              "packages it exported"):
        Segmenter.load(path)


def test_a_zip_that_is_no_package_and_a_damaged_package_are_refused(tmp_path, unet_package):
    with pytest.raises(CheckpointError, match="not a bioimage.io model package"):
        Segmenter.load(_zip(tmp_path / "other.zip", {"notes.txt": "hello"}))
    with zipfile.ZipFile(unet_package[1]) as z:
        files = {n: z.read(n) for n in z.namelist()}
    files[bioimageio.CHECKPOINT] = files[bioimageio.CHECKPOINT][:-8] + b"\0" * 8
    with pytest.raises(CheckpointError, match="does not match its sha256"):
        Segmenter.load(_zip(tmp_path / "damaged.zip", files))


BILLION_LAUGHS = "name: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)) + "x: {name: *a9}\n"


def test_yaml_aliases_in_rdf_yaml_are_refused_before_anything_expands_them(tmp_path):
    """A 600-byte rdf.yaml of nested aliases is 10⁹ strings once formatted (the message quoted its name)."""
    rdf = BILLION_LAUGHS.replace("x: {name: *a9}\n", "config: {}\nfoo: *a9\n").replace("name: &a0", "lol: &a0")
    for text in (BILLION_LAUGHS.replace("x: {name: *a9}", "dummy: 1").replace("a9: &a9", "name: &a9"), rdf):
        assert len(text) < 1000
        with pytest.raises(CheckpointError, match="not a bioimage.io model package .*aliases"):
            Segmenter.load(_zip(tmp_path / "laughs.zip", {"rdf.yaml": text}))


@pytest.mark.parametrize("rdf, message", [
    ("[1, 2]", "its rdf.yaml is a list, not a mapping"),
    ("config: [1, 2]\nname: x", r"\('x'\) that napari-segnet did not export"),
    ("config: {napari-segnet: 7}", "did not export"),
    ("config: {napari-segnet: {checkpoint: [a]}}", "did not export"),
    ("name: {a: 1}\nconfig: {napari-segnet: {checkpoint: napari_segnet.safetensors}}\nattachments: 3",
     "attachments must be a list, not int"),
    ("key: [unclosed", "no readable rdf.yaml"),
    ("", "its rdf.yaml is a NoneType, not a mapping"),
])
def test_an_rdf_yaml_of_odd_shapes_is_a_checkpoint_error(tmp_path, rdf, message):
    files = {"rdf.yaml": rdf.encode("latin-1"), bioimageio.CHECKPOINT: b"x"}
    with pytest.raises(CheckpointError, match=message):
        Segmenter.load(_zip(tmp_path / "odd.zip", files))
