"""Packaging contracts: light import, a valid npe2 manifest, the launcher's version flag."""

import subprocess
import sys
from pathlib import Path

import napari_segnet
from napari_segnet import cli


def test_import_pulls_in_neither_torch_nor_napari_nor_qt():
    code = (
        "import sys, napari_segnet, napari_segnet.metrics, napari_segnet.weightmap; "
        "heavy = {'torch', 'napari', 'qtpy', 'PyQt5', 'magicgui'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_manifest_is_valid_npe2():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(Path(napari_segnet.__file__).parent / "napari.yaml")
    assert manifest.name == "napari-segnet"


def test_version_flag(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == napari_segnet.__version__
