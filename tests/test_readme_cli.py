"""The command-line examples of docs/cli.md (linked from the README) run as they are written (split as a shell
would), in a folder with the files they name."""

import re
import shlex

import numpy as np
import pytest
import tifffile
from cli_helpers import ROOT, one_thread, write_pairs  # noqa: F401
from conftest import two_class_image
from skimage.io import imsave

from napari_segnet import cli
from napari_segnet.io.imagefiles import read_image, write_array
from napari_segnet.project import Project

pytest.importorskip("distributed")


def readme_commands() -> list[str]:
    """The command lines of the first bash block of docs/cli.md's "Command line" section."""
    section = ROOT.joinpath("docs", "cli.md").read_text().split("# Command line\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_readme_command_line_examples(tmp_path, monkeypatch, capsys):
    images, labels = write_pairs(tmp_path, size=128)
    (tmp_path / "scans").mkdir()
    imsave(tmp_path / "scans" / "scan.png", (two_class_image(seed=3)[0].clip(0, 255)).astype(np.uint8),
           check_contrast=False)
    project = Project(tmp_path / "my_project")
    image, label = two_class_image(seed=4, size=128)
    project.add_image("one", image)
    project.save_correction("one", label)
    write_array(tmp_path / "big.ome.zarr", np.tile(two_class_image(seed=5, size=128)[0], (2, 2)), "ome-zarr", "yx")
    commands = readme_commands()
    assert len(commands) == 8 and all(c.startswith("napari-segnet ") for c in commands)
    monkeypatch.chdir(tmp_path)
    for command in commands:  # in this process (as the shell would split them): no interpreter start per line
        status = cli.main(shlex.split(command)[1:])
        err = capsys.readouterr().err
        # train: 3 when the guard keeps the old version active (20 steps on these discs may score lower)
        assert status in ((0, 3) if " train " in command else (0,)), f"{command}\n{err[-3000:]}"
        if status == 3:
            assert "stays active" in err
    out = tmp_path / "predictions"
    assert sorted(p.name for p in out.iterdir()) == ["big_labels.zarr", "cell0_labels.tif", "cell1_labels.tif"]
    assert sorted(p.name for p in (tmp_path / "more_predictions").iterdir()) == ["cell0_labels.tif",
                                                                                  "scan_labels.tif"]
    assert sorted(p.name for p in (tmp_path / "zarr_predictions").iterdir()) == [
        f"cell{i}_{k}.ome.zarr" for i in range(2) for k in ("instances", "labels", "proba")]
    rows = (tmp_path / "scores.csv").read_text().splitlines()
    assert rows[0].startswith("file,pixel_accuracy,mean_accuracy,mean_iu,") and rows[-1].startswith("total,")
    from napari_segnet.segmenter import Segmenter

    exported, trained = (Segmenter.load(tmp_path / n) for n in ("mine.zip", "mine.safetensors"))
    assert exported.class_names == trained.class_names
    assert exported.weights().keys() == trained.weights().keys()
    accuracy = float(rows[-1].split(",")[1])
    assert accuracy > 0.9  # the default nuclei model on bright discs
    assert read_image(out / "big_labels.zarr")[0].shape == (256, 256)
    assert Project(tmp_path / "my_project").load_model().available_versions == [0, 1]
    assert tifffile.imread(out / "cell0_labels.tif").shape == (128, 128)
