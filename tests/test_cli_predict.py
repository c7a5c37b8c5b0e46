"""``napari-segnet predict``: inputs of every kind, outputs named after them and written atomically, resume,
failures reported while the rest go on; bad inputs; Ctrl-C; the launcher is still the default."""

import sys
import time

import numpy as np
import pytest
import tifffile
import torch
from cli_helpers import interrupt, main
from conftest import smooth_image, tiny_segmenter
from skimage.io import imsave

from napari_segnet.io.imagefiles import read_image, write_array
from napari_segnet.numerics.instances import label_instances

zarr = pytest.importorskip("zarr")


@pytest.fixture
def model(tmp_path):
    """A tiny valid U-Net whose labels vary across a smooth image, saved; (segmenter, path)."""
    seg = tiny_segmenter(padding="valid", batch_norm=False)
    with torch.no_grad():
        seg.net.head.bias.zero_()
        seg.net.head.weight.mul_(50)
    return seg, seg.save(tmp_path / "m.safetensors")


def test_files_folders_globs_in_every_format(model, tmp_path, capsys):
    seg, path = model
    images = {"a": smooth_image((40, 50), 1), "b": smooth_image((30, 30), 2).astype(np.uint8),
              "c": smooth_image((33, 41), 3), "d": smooth_image((2, 20, 24), 4)}
    (tmp_path / "folder").mkdir()
    (tmp_path / "more").mkdir()
    tifffile.imwrite(tmp_path / "folder" / "a.tif", images["a"])
    imsave(tmp_path / "folder" / "b.png", images["b"], check_contrast=False)
    write_array(tmp_path / "more" / "c.zarr", images["c"], "zarr", "yx")
    write_array(tmp_path / "more" / "d.ome.zarr", images["d"], "ome-zarr", "zyx")
    status, out, err = main(capsys, "predict", tmp_path / "folder", tmp_path / "more" / "*zarr", "--model", path,
                            "--out", tmp_path / "out")
    assert status == 0 and out == ""
    assert "4 predicted, 0 skipped (outputs exist; --overwrite to redo), 0 failed" in err
    for name, image in images.items():
        labels = tifffile.imread(tmp_path / "out" / f"{name}_labels.tif")
        np.testing.assert_array_equal(labels, seg.predict(image))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{n}_labels.tif" for n in "abcd"]


def test_proba_and_instances_as_ome_zarr(model, tmp_path, capsys):
    seg, path = model
    image = smooth_image((48, 52))
    tifffile.imwrite(tmp_path / "x.tif", image)
    status, _, _ = main(capsys, "predict", tmp_path / "x.tif", "--model", path, "--out", tmp_path / "o",
                        "--format", "ome-zarr", "--proba", "--instances")
    assert status == 0
    labels = np.asarray(read_image(tmp_path / "o" / "x_labels.ome.zarr")[0])
    proba, channel_axis = read_image(tmp_path / "o" / "x_proba.ome.zarr")
    instances = np.asarray(read_image(tmp_path / "o" / "x_instances.ome.zarr")[0])
    np.testing.assert_array_equal(labels, seg.predict(image))
    assert channel_axis == 0 and proba.shape == (3, 48, 52) and proba.dtype == np.float32
    np.testing.assert_array_equal(instances, label_instances(labels))
    assert instances.max() >= 3


def test_tta_averages_the_8_flips_and_rotations(model, tmp_path, capsys):
    seg, path = model
    image = smooth_image((48, 52))
    tifffile.imwrite(tmp_path / "x.tif", image)
    status, _, _ = main(capsys, "predict", tmp_path / "x.tif", "--model", path, "--out", tmp_path / "o",
                        "--proba", "--tta")
    assert status == 0
    proba = tifffile.imread(tmp_path / "o" / "x_proba.tif")
    with tifffile.TiffFile(tmp_path / "o" / "x_proba.tif") as tif:  # 3 classes, not an RGB picture
        assert tif.series[0].axes == "CYX" and tif.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK
    np.testing.assert_allclose(proba, seg.predict_proba(image, tta=True), atol=1e-6)
    assert np.abs(proba - seg.predict_proba(image)).max() > 1e-3
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "o" / "x_labels.tif"), seg.predict(image, tta=True))


def test_existing_outputs_are_skipped_unless_overwrite(model, tmp_path, capsys):
    seg, path = model
    tifffile.imwrite(tmp_path / "x.tif", smooth_image((30, 30)))
    args = ("predict", tmp_path / "x.tif", "--model", path, "--out", tmp_path / "o")
    assert main(capsys, *args)[0] == 0
    target = tmp_path / "o" / "x_labels.tif"
    tifffile.imwrite(target, np.full((30, 30), 7, np.uint8))  # not what the model says: shows it was kept
    status, _, err = main(capsys, *args)
    assert status == 0 and "0 predicted, 1 skipped" in err and (tifffile.imread(target) == 7).all()
    assert main(capsys, *args, "--overwrite")[0] == 0
    np.testing.assert_array_equal(tifffile.imread(target), seg.predict(smooth_image((30, 30))))


@pytest.mark.parametrize("fmt, suffix", [("tif", ".tif"), ("zarr", ".zarr")])
def test_an_empty_output_is_not_trusted_by_its_name(model, tmp_path, capsys, fmt, suffix):
    """Outputs are written atomically: a 0-byte file (or an empty folder) of an output's name is not one."""
    seg, path = model
    tifffile.imwrite(tmp_path / "x.tif", smooth_image((30, 30)))
    (tmp_path / "o").mkdir()
    target = tmp_path / "o" / f"x_labels{suffix}"
    target.mkdir() if fmt == "zarr" else target.write_bytes(b"")
    status, _, err = main(capsys, "predict", tmp_path / "x.tif", "--model", path, "--out", tmp_path / "o",
                          "--format", fmt)
    assert status == 0 and "1 predicted, 0 skipped" in err, err
    np.testing.assert_array_equal(np.asarray(read_image(target)[0]), seg.predict(smooth_image((30, 30))))


def test_outputs_in_the_input_folder_are_not_predicted_again(model, tmp_path, capsys):
    """--out the input folder: the rerun predicted x_labels.tif into x_labels_labels.tif."""
    _, path = model
    tifffile.imwrite(tmp_path / "x.tif", smooth_image((30, 30)))
    args = ("predict", tmp_path, "--model", path, "--out", tmp_path, "--proba")
    assert main(capsys, *args)[0] == 0
    status, _, err = main(capsys, *args)
    assert status == 0 and "0 predicted, 1 skipped" in err, err
    assert "2 input(s) in the output folder are outputs of predict and are not predicted: x_labels.tif" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors", "x.tif", "x_labels.tif", "x_proba.tif"]
    status, _, err = main(capsys, "predict", tmp_path / "x_labels.tif", "--model", path, "--out", tmp_path)
    assert status == 2 and "every input is an output of predict" in err


def test_a_failing_file_is_reported_and_the_rest_go_on(model, tmp_path, capsys):
    _, path = model
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "good.tif", smooth_image((30, 30)))
    (tmp_path / "in" / "broken.tif").write_bytes(b"II*\x00 not a tiff at all")
    status, _, err = main(capsys, "predict", tmp_path / "in", "--model", path, "--out", tmp_path / "o")
    assert status == 1
    assert "FAILED" in err and "cannot read broken.tif as an image (no pixels: damaged or empty)" in err
    assert "1 predicted, 0 skipped (outputs exist; --overwrite to redo), 1 failed" in err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["good_labels.tif"]


def bad_input(tmp_path, case):
    """(arguments after the inputs' folder, expected message) of each bad command line."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("x")
    tifffile.imwrite(tmp_path / "x.tif", np.zeros((8, 8), np.uint8))
    (tmp_path / "twin").mkdir()
    tifffile.imwrite(tmp_path / "twin" / "x.tif", np.zeros((8, 8), np.uint8))
    return {
        "missing": ([tmp_path / "nope.tif", "--out", tmp_path / "o"], "no such image file or folder: "),
        "empty folder": ([tmp_path / "empty", "--out", tmp_path / "o"], "no images (.zarr, .tiff, .tif, .png) in"),
        "unwritable output": ([tmp_path / "x.tif", "--out", tmp_path / "a_file" / "o"],
                              "cannot write to the output folder"),
        "no model": ([tmp_path / "x.tif", "--out", tmp_path / "o", "--model", tmp_path / "m.pt"], "no model file"),
        "same names": ([tmp_path / "x.tif", tmp_path / "twin", "--out", tmp_path / "o"], "several inputs are named"),
        "cluster to tif": ([tmp_path / "x.tif", "--out", tmp_path / "o", "--cluster", "local:1"],
                           "add --format zarr"),
    }[case]


@pytest.mark.parametrize("case", ["missing", "empty folder", "unwritable output", "no model", "same names",
                                  "cluster to tif"])
def test_bad_command_lines_exit_2_with_one_message(tmp_path, capsys, case):
    args, message = bad_input(tmp_path, case)
    status, out, err = main(capsys, "predict", *args)
    assert status == 2 and out == ""
    assert err.startswith("napari-segnet predict: error: ") and message in err


def test_unanswering_cluster_address_fails_within_the_timeout(model, tmp_path, capsys):
    tifffile.imwrite(tmp_path / "x.tif", np.zeros((8, 8), np.uint8))
    start = time.perf_counter()
    status, _, err = main(capsys, "predict", tmp_path / "x.tif", "--model", model[1], "--out", tmp_path / "o",
                          "--format", "zarr", "--cluster", "tcp://127.0.0.1:9", "--timeout", "2")
    assert status == 2 and "no dask scheduler answered at tcp://127.0.0.1:9 within 2 s" in err
    assert time.perf_counter() - start < 20
    assert not (tmp_path / "o" / "x_labels.zarr").exists()


@pytest.mark.parametrize("fmt, suffix", [("tif", ".tif"), ("zarr", ".zarr")])
def test_ctrl_c_leaves_no_broken_output(model, tmp_path, fmt, suffix):
    _, path = model
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "a_small.tif", smooth_image((20, 20)))
    tifffile.imwrite(tmp_path / "in" / "b_big.tif", smooth_image((1200, 1200)))  # ~5000 tiles of 16 px
    status, err = interrupt(["predict", tmp_path / "in", "--model", path, "--out", tmp_path / "o", "--tile", "16",
                             "--format", fmt], "b_big.tif: ", tmp_path)
    assert status == 130, err
    assert "interrupted while predicting" in err and "1 predicted, 0 skipped" in err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [f"a_small_labels{suffix}"]  # no temporaries


def test_a_misspelt_command_is_named_with_the_closest_one(capsys, tmp_path, monkeypatch):
    """`napari-segnet prdict …` opened the launcher, which answered about a display."""
    monkeypatch.chdir(tmp_path)
    status, _, err = main(capsys, "prdict", "images/", "--out", "o")
    assert status == 2 and err.startswith("napari-segnet: unknown command 'prdict' (did you mean 'predict'?); "
                                          "the commands are predict, train, evaluate, export"), err
    assert main(capsys, "xyzzy")[2].startswith("napari-segnet: unknown command 'xyzzy'; the commands")


def test_without_a_command_it_is_still_the_launcher(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setitem(sys.modules, "napari", None)
    status, _, err = main(capsys, tmp_path / "image.tif", "--model", tmp_path / "m.safetensors")
    assert status == 1 and err.startswith("napari-segnet needs a display")
    with pytest.raises(SystemExit) as stop:
        main(capsys, "--help")
    assert stop.value.code == 0
    assert "predict   predict images" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["predict", "train", "evaluate"])
def test_every_command_has_help(capsys, command):
    with pytest.raises(SystemExit) as stop:
        main(capsys, command, "--help")
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: napari-segnet {command} ")


@pytest.mark.slow
def test_ctrl_c_during_a_cluster_run_is_one_message_and_closes_the_cluster(model, tmp_path):
    """Ctrl-C in a terminal reaches every process of the group: the local workers printed KeyboardInterrupt
    tracebacks. They ignore it now; the command says what happened, exits 130 and closes its cluster."""
    seg, path = model
    write_array(tmp_path / "big.zarr", smooth_image((1536, 1536)), "zarr", "yx")
    status, err = interrupt(["predict", tmp_path / "big.zarr", "--model", path, "--out", tmp_path / "o", "--format",
                             "zarr", "--cluster", "local:1", "--block", "96", "--tile", "48"], "| 1/", tmp_path,
                            group=True)
    assert status == 130 and "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert "interrupted while predicting" in err and "0 predicted" in err
    assert not (tmp_path / "o" / "big_labels.zarr").exists()
