"""The project folder: reopening restores images, corrections and every model version; failed saves lose nothing."""

import numpy as np
import pytest
from cli_helpers import hold
from conftest import FAST, run, same_state, state, tiny_segmenter, two_class_image

from napari_segnet.io import checkpoint
from napari_segnet.project import Project, ProjectSaveError


def test_reopening_restores_the_session(tmp_path):
    project = Project(tmp_path / "p")
    image, labels = two_class_image()
    mask = np.zeros(labels.shape, bool)
    mask[:40] = True
    project.add_image("cells 1", image)
    project.add_image("cells-2", image[:50])
    project.save_correction("cells 1", labels, mask)
    seg = tiny_segmenter(num_classes=2)
    run(seg.finetune(*project.training_set(), **FAST))
    run(seg.finetune(*project.training_set(), **FAST))
    seg.rollback(1)
    project.save_model(seg)

    again = Project(tmp_path / "p")
    assert again.names == ["cells 1", "cells-2"]
    np.testing.assert_array_equal(again.image("cells 1"), image)
    saved_labels, saved_mask = again.correction("cells 1")
    np.testing.assert_array_equal(saved_labels, labels)
    np.testing.assert_array_equal(saved_mask, mask)
    assert again.correction("cells-2") is None
    images, lbls, masks = again.training_set()
    assert len(images) == len(lbls) == len(masks) == 1
    restored = again.load_model()
    assert restored.active_version == 1 and restored.available_versions == [0, 1, 2]
    np.testing.assert_array_equal(restored.predict(image), seg.predict(image))
    restored.rollback(2)
    seg.rollback(2)
    np.testing.assert_array_equal(restored.predict(image), seg.predict(image))
    assert [e["event"] for e in again.events] == ["image added", "image added", "correction saved", "model saved"]


def test_empty_project_has_no_model(tmp_path):
    assert Project(tmp_path).load_model() is None and Project(tmp_path).training_set() == ([], [], [])


def test_a_full_disk_raises_a_clear_error_and_keeps_the_previous_files(tmp_path, monkeypatch):
    project = Project(tmp_path)
    image, labels = two_class_image()
    project.add_image("a", image)
    project.save_correction("a", labels)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "replace", full)
    with pytest.raises(ProjectSaveError, match="No space left.*Nothing was lost"):
        project.save_correction("a", 1 - labels)
    monkeypatch.undo()
    np.testing.assert_array_equal(Project(tmp_path).correction("a")[0], labels)  # old correction intact
    assert not [p for p in tmp_path.rglob("*.tmp")]


@pytest.mark.parametrize("name", ["../escape", ".hidden", "a/b", ""])
def test_unsafe_names_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match="not usable as a file name"):
        Project(tmp_path).add_image(name, np.zeros((4, 4)))


def test_correction_for_unknown_image_or_wrong_mask(tmp_path):
    project = Project(tmp_path)
    with pytest.raises(ValueError, match="no image named"):
        project.save_correction("x", np.zeros((4, 4), np.uint8))
    project.add_image("x", np.zeros((4, 4)))
    with pytest.raises(ValueError, match="does not match"):
        project.save_correction("x", np.zeros((4, 4), np.uint8), np.ones((3, 3), bool))


def test_layer_names_become_safe_file_names(tmp_path):
    assert Project.safe_name("cells: day 1/2") == "cells_ day 1_2"
    assert Project.safe_name("..hidden") == "hidden" and Project.safe_name("") == "image"
    Project(tmp_path).add_image(Project.safe_name("a/b"), np.zeros((2, 2)))


def test_a_damaged_log_is_reported_copied_aside_and_the_rest_loaded(tmp_path):
    project = Project(tmp_path)
    image, labels = two_class_image()
    project.add_image("a", image)
    project.save_correction("a", labels)
    seg = tiny_segmenter(num_classes=2)
    run(seg.finetune(*project.training_set(), **FAST))
    project.save_model(seg)
    (tmp_path / "log.json").write_text('{"events": [')  # truncated by a crash or an editor
    with pytest.warns(RuntimeWarning, match="log.json is damaged"):
        again = Project(tmp_path)
    assert len(again.problems) == 1 and "a copy was kept as log.json.broken-" in again.problems[0]
    copies = list(tmp_path.glob("log.json.broken-*"))
    assert len(copies) == 1 and copies[0].read_text() == '{"events": ['
    assert again.names == ["a"] and again.correction("a") is not None
    restored = again.load_model()  # the newest saved version becomes active
    assert restored.active_version == 1 and restored.available_versions == [0, 1]
    again.log("reopened")  # a new log is written; the copy stays
    assert copies[0].read_text() == '{"events": [' and [e["event"] for e in Project(tmp_path).events] == ["reopened"]


def test_a_stack_saved_by_the_dock_trains_through_the_project(tmp_path):
    project = Project(tmp_path)
    planes = [two_class_image(seed=s) for s in range(3)]
    stack, labels = np.stack([p[0] for p in planes]), np.stack([p[1] for p in planes])
    reviewed = np.zeros(labels.shape, bool)
    reviewed[[0, 2], :40] = True  # slice 1 was not looked at
    project.add_image("stack", stack)
    project.save_correction("stack", labels, reviewed)
    seg = tiny_segmenter(num_classes=2)
    _, done = run(seg.finetune(*project.training_set(), **FAST))
    assert done.version == 1 and seg.versions[1].images == 2
    assert seg.versions[1].reviewed_pixels == 2 * 40 * 64


def test_a_second_process_is_refused_a_project_and_a_dead_holder_leaves_no_stale_lock(tmp_path):
    """Two writers of one project each saved their version into the same log: one was lost. The folder is locked
    by the process that opens it (flock: the kernel drops it when that process dies, however it dies)."""
    import signal

    from napari_segnet.project import ProjectInUseError

    Project(tmp_path / "p").add_image("a", np.zeros((4, 4)))
    child = hold(tmp_path / "p")
    try:
        with pytest.raises(ProjectInUseError, match=rf"p is open in another napari-segnet \(process {child.pid} "):
            Project(tmp_path / "p")
        first = Project(tmp_path / "q")  # in one process a project may be opened twice (the dock reopening it)
        assert Project(tmp_path / "q").names == first.names == []
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert Project(tmp_path / "p").names == ["a"]  # its holder killed: no stale lock


def test_a_closed_project_can_be_opened_by_another_process(tmp_path):
    with Project(tmp_path / "p") as project:
        project.add_image("a", np.zeros((4, 4)))
    child = hold(tmp_path / "p")
    child.communicate("")
    assert child.returncode == 0


def test_a_folder_of_other_files_is_not_made_a_project(tmp_path):
    (tmp_path / "thesis.docx").write_text("years of work")
    with pytest.raises(ValueError, match="is not a napari-segnet project and not empty .thesis.docx.: choose an empty"):
        Project(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.docx"]
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".DS_Store").write_text("")
    assert Project(tmp_path / "empty").names == []  # hidden files do not count


def test_a_read_only_folder_opens_read_only(tmp_path, monkeypatch):
    """A project on a read-only mount: the lock file cannot be made; it opens for reading, and saving says why."""
    import errno
    import os as os_module

    project = Project(tmp_path / "p")
    project.add_image("a", np.zeros((4, 4)))
    project.close()
    real_open = os_module.open

    def read_only_mount(path, flags, *args, **kwargs):
        if flags & (os_module.O_WRONLY | os_module.O_RDWR | os_module.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    def no_mkdir(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(os_module, "open", read_only_mount)
    monkeypatch.setattr(os_module, "mkdir", no_mkdir)
    with pytest.warns(RuntimeWarning, match="is read-only"):
        again = Project(tmp_path / "p")
    assert again.read_only and again.names == ["a"] and "read-only" in again.problems[0]
    with pytest.raises(ProjectSaveError, match="Read-only file system. Nothing was lost"):
        again.add_image("b", np.zeros((4, 4)))


def two_versions(folder):
    """A project whose log's active model is version 1, with version 0 saved too."""
    seg = tiny_segmenter(num_classes=2)
    image, labels = two_class_image()
    run(seg.finetune([image], [labels], **{**FAST, "steps": 2}, accept_worse=True))
    project = Project(folder)
    project.save_model(seg)
    project.close()
    return seg


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_log_naming_a_missing_or_truncated_model_falls_back_to_the_newest_readable(tmp_path, damage):
    seg = two_versions(tmp_path / "p")
    active = tmp_path / "p" / "models" / "v0001.safetensors"
    active.unlink() if damage == "missing" else active.write_bytes(active.read_bytes()[:-100])
    project = Project(tmp_path / "p")
    with pytest.warns(RuntimeWarning, match="active model version 1 could not be read .*version 0, the newest"):
        restored = project.load_model()
    assert restored.active_version == 0 and same_state(state(restored), seg.weights(0))
    (tmp_path / "p" / "models" / "v0000.safetensors").write_bytes(b"")
    with pytest.raises(checkpoint.CheckpointError, match="active model version 1 could not be read .* and no "
                                                         "other saved version can be"):
        Project(tmp_path / "p").load_model()


def test_save_model_on_a_full_disk_raises_project_save_error(tmp_path, monkeypatch):
    import errno

    seg = tiny_segmenter(num_classes=2)
    project = Project(tmp_path / "p")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(ProjectSaveError, match="No space left on device. Nothing was lost"):
        project.save_model(seg)
    assert list((tmp_path / "p" / "models").iterdir()) == []
