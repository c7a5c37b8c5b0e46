"""``napari-segnet export``: writes a package Segmenter.load reads back; usage errors exit with status 2."""

import zipfile

import numpy as np
import tifffile
from conftest import smooth_image, tiny_segmenter

from napari_segnet.cli import main
from napari_segnet.segmenter import Segmenter


def test_export_command_writes_a_package_that_loads_back(tmp_path, capsys):
    seg = tiny_segmenter("unet", base_filters=4, depth=2)
    model = seg.save(tmp_path / "m.safetensors")
    tifffile.imwrite(tmp_path / "img.tif", smooth_image((36, 40)))
    status = main(["export", str(model), str(tmp_path / "out"), "--image", str(tmp_path / "img.tif"),
                   "--author", "A. Author", "--author", "B. Author"])
    assert status == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out.zip")
    with zipfile.ZipFile(tmp_path / "out.zip") as z:
        assert np.load(z.open("test_input.npy")).shape == (1, 1, 36, 40)
        assert b"B. Author" in z.read("rdf.yaml")
    image = smooth_image((32, 32), seed=2)
    np.testing.assert_array_equal(Segmenter.load(tmp_path / "out.zip").predict(image), seg.predict(image))


def test_export_command_usage_errors(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.safetensors"), str(tmp_path / "o.zip")]) == 2
    assert "no model file" in capsys.readouterr().err
    model = tiny_segmenter("unet", base_filters=4, depth=2).save(tmp_path / "m.safetensors")
    assert main(["export", str(model), str(tmp_path / "no" / "dir" / "o.zip")]) == 2
    assert "could not write the bioimage.io package" in capsys.readouterr().err
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    assert main(["export", str(model), str(tmp_path / "o.zip"), "--image", str(tmp_path / "bad.tif")]) == 2
    assert "cannot read the image" in capsys.readouterr().err
