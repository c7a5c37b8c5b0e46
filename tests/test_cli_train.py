"""``napari-segnet train``: from folders (paired by name) or a project; the loss falls; bad inputs; Ctrl-C;
two DDP processes under torchrun (gloo) end on the same weights and rank 0 saves a model that loads."""

import re
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from cli_helpers import child_env, interrupt, main, one_thread, write_pairs  # noqa: F401
from conftest import two_class_image

from napari_segnet.project import Project
from napari_segnet.segmenter import Segmenter

TINY = ["--model", "unet", "--option", "base_filters=4", "--option", "depth=2", "--patch-size", "32",
        "--batch-size", "2", "--lr", "3e-3", "--seed", "0", "--accept-worse"]


pytestmark = pytest.mark.usefixtures("one_thread")


def running_means(err: str) -> list[float]:
    """The running mean losses the progress bar showed, in order."""
    return [float(v) for v in re.findall(r"mean=([0-9.]+)", err)]


def test_train_from_folders_saves_a_new_version(tmp_path, capsys):
    images, labels = write_pairs(tmp_path)
    status, _, err = main(capsys, "train", "--images", images, "--labels", labels, *TINY, "--steps", "40",
                          "--validation", images, labels, "--out", tmp_path / "m.safetensors")
    assert status == 0, err
    assert re.search(r"version 1 is active \(trained from version 0\)[^\n]*; saved to", err), err
    means = running_means(err)  # the bar refreshes on a clock, so its first mean covers one or more steps
    assert means[-1] < means[0]  # the loss falls
    seg = Segmenter.load(tmp_path / "m.safetensors")
    version = seg.metadata.versions[-1]
    assert version.scores["mean_iu"] > 0.8  # a new model's measured settings learn the two classes in 40 steps
    assert version.settings["loss"] == "balanced_ce" and version.settings["distill"] == 0.25  # NEW_MODEL
    assert version.settings["patch_size"] == 32  # a flag given overrides its part
    assert version.settings["forest_blend"] is True and seg.forest is None  # no held-out squares to choose on
    assert seg.active_version == 1 and version.settings["steps"] == 40 and version.images == 2
    assert version.details["guard"] == "validation" and "world_size" not in version.details  # one process
    assert seg.net.depth == 2 and seg.num_classes == 2  # the architecture options and classes from the labels


def test_train_a_project_saves_back_into_it(tmp_path, capsys):
    project = Project(tmp_path / "p")
    for i in range(2):
        image, labels = two_class_image(seed=i)
        project.add_image(f"img{i}", image)
        project.save_correction(f"img{i}", labels)
    status, _, err = main(capsys, "train", "--project", tmp_path / "p", *TINY, "--steps", "5", "--no-forest-blend")
    assert status == 0, err
    again = Project(tmp_path / "p")
    assert again.load_model().active_version == 1 and again.load_model().versions[1].settings["forest_blend"] is False
    assert again.events[-1]["event"] == "fine-tuned from the command line" and again.events[-1]["version"] == 1


def bad_train(tmp_path, case):
    images, labels = write_pairs(tmp_path)
    if case == "unmatched":
        tifffile.imwrite(labels / "stray_labels.tif", np.zeros((8, 8), np.uint8))
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("x")
    out = ["--out", tmp_path / "m.safetensors"]
    return {
        "unmatched": (["--images", images, "--labels", labels, *out],
                      "images and labels are paired by file name, but 1 labels have no partner: stray"),
        "missing": (["--images", tmp_path / "nope", "--labels", labels, *out],
                    "images: no such image file or folder: "),
        "empty": (["--images", tmp_path / "empty", "--labels", labels, *out], "images: no images"),
        "unwritable": (["--images", images, "--labels", labels, "--out", tmp_path / "a_file" / "m.safetensors"],
                       "cannot write to the output folder"),
        "no data": (out, "give --images and --labels (or --project)"),
        "no project": (["--project", tmp_path / "nope"], "no project folder"),
        "architecture": (["--images", images, "--labels", labels, "--model", "unet9", "--out", "m"],
                         "--model unet9 is neither a file, 'default' nor an architecture"),
    }[case]


@pytest.mark.parametrize("case", ["unmatched", "missing", "empty", "unwritable", "no data", "no project",
                                  "architecture"])
def test_bad_training_command_lines(tmp_path, capsys, case):
    args, message = bad_train(tmp_path, case)
    if case != "architecture" and "--project" not in args:
        args += ["--model", "default"]
    status, _, err = main(capsys, "train", *args)
    assert status == 2 and err.startswith("napari-segnet train: error: ") and message in err, err
    assert not (tmp_path / "m.safetensors").exists()


def test_unreadable_label_file(tmp_path, capsys):
    images, labels = write_pairs(tmp_path)
    (labels / "cell1_labels.tif").write_bytes(b"garbage")
    status, _, err = main(capsys, "train", "--images", images, "--labels", labels, *TINY,
                          "--out", tmp_path / "m.safetensors")
    assert status == 2 and "labels: cannot read cell1_labels.tif as an image" in err


@pytest.mark.slow
def test_ctrl_c_during_training_writes_nothing(tmp_path):
    images, labels = write_pairs(tmp_path)
    status, err = interrupt(["train", "--images", images, "--labels", labels, *TINY, "--steps", "100000",
                             "--out", tmp_path / "m.safetensors"], "loss=", tmp_path)
    assert status == 130, err
    assert "interrupted: training stopped and nothing was saved" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "labels"]  # no model, no temporary


@pytest.mark.slow
def test_torchrun_two_gloo_processes(tmp_path):
    images, labels = write_pairs(tmp_path)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "napari_segnet", "train", "--images", images, "--labels", labels, *TINY, "--steps", "40",
               "--device", "cpu", "--out", tmp_path / "ddp.safetensors"]
    done = subprocess.run(list(map(str, command)), env=child_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    digests = dict(re.findall(r"rank (\d) of 2: weights ([0-9a-f]{16})", done.stderr))
    assert sorted(digests) == ["0", "1"] and digests["0"] == digests["1"]  # the same weights on both ranks
    means = running_means(done.stderr)  # only rank 0 shows progress: one bar
    assert means[-1] < 0.8 * means[0]
    assert done.stderr.count("saved to") == 1 and sorted(p.name for p in tmp_path.iterdir()) == [
        "ddp.safetensors", "images", "labels"]
    from napari_segnet.training.ddp import state_digest

    seg = Segmenter.load(tmp_path / "ddp.safetensors")
    assert seg.metadata.versions[-1].details["world_size"] == 2
    assert state_digest(seg.net) == digests["0"]  # rank 0 saved what both ranks hold
    assert seg.predict(two_class_image(seed=5)[0]).shape == (64, 64)


def test_instance_ids_as_labels_are_refused_for_a_new_model(tmp_path, capsys):
    """300 objects numbered 1…300 made a 301-class model without a word; evaluate refused them already."""
    images, labels = write_pairs(tmp_path)
    tifffile.imwrite(labels / "cell0_labels.tif", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 301)
    status, _, err = main(capsys, "train", "--images", images, "--labels", labels, *TINY,
                          "--out", tmp_path / "new" / "m.safetensors")
    assert status == 2 and "ids up to 300, which as class ids would make a model of 301 classes" in err, err
    assert not (tmp_path / "new").exists()  # the folder --out made is removed again


def project_with_corrections(folder):
    project = Project(folder)
    for i in range(2):
        image, labels = two_class_image(seed=i)
        project.add_image(f"img{i}", image)
        project.save_correction(f"img{i}", labels)
    project.close()


def test_a_project_open_in_another_process_is_refused(tmp_path, capsys):
    from cli_helpers import hold

    project_with_corrections(tmp_path / "p")
    child = hold(tmp_path / "p")
    try:
        status, _, err = main(capsys, "train", "--project", tmp_path / "p", *TINY, "--steps", "2")
    finally:
        child.communicate("")
    assert status == 2 and f"is open in another napari-segnet (process {child.pid} on" in err, err
    assert [e["event"] for e in Project(tmp_path / "p").events].count("model saved") == 0


def test_a_folder_that_is_not_a_project_is_not_filled(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    status, _, err = main(capsys, "train", "--project", tmp_path, *TINY, "--steps", "2")
    assert status == 2 and "is not a napari-segnet project and not empty (notes.txt)" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_full_disk_at_the_end_is_a_message_not_a_traceback(tmp_path, capsys, monkeypatch):
    import errno

    from napari_segnet.io import checkpoint

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    project_with_corrections(tmp_path / "p")
    monkeypatch.setattr(checkpoint, "save_file", full)
    status, _, err = main(capsys, "train", "--project", tmp_path / "p", *TINY, "--steps", "2")
    assert status == 1 and "the model could not be saved: could not save " in err and "No space left" in err, err
    images, labels = write_pairs(tmp_path / "pairs")
    status, _, err = main(capsys, "train", "--images", images, "--labels", labels, *TINY, "--steps", "2",
                          "--out", tmp_path / "out" / "m.safetensors")
    assert status == 1 and "could not save the model to " in err and "No space left" in err, err
    assert not (tmp_path / "out").exists()


def test_a_version_the_guard_keeps_inactive_exits_0_under_torchrun(tmp_path, capsys, monkeypatch):
    """torchrun turns a rank's status 3 into a wall of ChildFailedError tracebacks: ranks exit 0, and say so."""
    from napari_segnet.commands import train
    from napari_segnet.training import ddp

    monkeypatch.setattr(train, "_train", lambda *a, **k: 3)
    images, labels = write_pairs(tmp_path)
    args = ["train", "--images", images, "--labels", labels, *TINY, "--out", tmp_path / "m.safetensors"]
    assert main(capsys, *args)[0] == 3  # one process: 3, as documented
    monkeypatch.setattr(ddp, "world_size", lambda: 2)
    status, _, err = main(capsys, *args)
    assert status == 0 and "exit status 0 under torchrun" in err


def test_a_read_only_project_is_refused_before_training_unless_out(tmp_path, capsys, monkeypatch):
    import errno

    from napari_segnet.io import lockfile

    project_with_corrections(tmp_path / "p")

    def read_only(folder):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(lockfile, "acquire", read_only)
    status, _, err = main(capsys, "train", "--project", tmp_path / "p", *TINY, "--steps", "2")
    assert status == 2 and "is read-only: the result could not be saved into it (give --out)" in err, err
    status, _, err = main(capsys, "train", "--project", tmp_path / "p", *TINY, "--steps", "2", "--out",
                          tmp_path / "m.safetensors")
    assert status == 0 and Segmenter.load(tmp_path / "m.safetensors").active_version == 1, err


def test_a_truncated_compressed_label_file_is_one_message(tmp_path, capsys):
    from cli_helpers import truncate_compressed

    images, labels = write_pairs(tmp_path)
    truncate_compressed(labels / "cell1_labels.tif", two_class_image(seed=1)[1].astype(np.uint8))
    status, _, err = main(capsys, "train", "--images", images, "--labels", labels, *TINY,
                          "--out", tmp_path / "m.safetensors")
    assert status == 2 and "labels: cannot read cell1_labels.tif as an image (" in err, err


def test_a_project_whose_model_files_are_damaged_is_one_message(tmp_path, capsys):
    project_with_corrections(tmp_path / "p")
    with Project(tmp_path / "p") as project:
        project.save_model(Segmenter.create("unet", 1, 2, base_filters=4, depth=2))
    model = tmp_path / "p" / "models" / "v0000.safetensors"
    model.write_bytes(model.read_bytes()[:-64])  # a copy that broke off
    status, _, err = main(capsys, "train", "--project", tmp_path / "p", "--steps", "2")
    assert status == 2 and "the project's active model version 0 could not be read" in err, err
