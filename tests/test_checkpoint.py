"""Checkpoints: round trip, atomic writes, and refusal of pickles and foreign files (no code ever runs)."""

import os
import pickle
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import smooth_image, tiny_segmenter
from safetensors.torch import save_file

from napari_segnet.io import checkpoint
from napari_segnet.io.checkpoint import CheckpointError
from napari_segnet.segmenter import Segmenter


def test_round_trip_keeps_weights_metadata_and_predictions(tmp_path):
    seg = tiny_segmenter(class_names=["background", "nucleus", "border"])
    path = seg.save(tmp_path / "model")
    assert path.name == "model.safetensors"
    loaded = Segmenter.load(path)
    assert loaded.class_names == ["background", "nucleus", "border"]
    assert loaded.metadata.options == {"base_filters": 4, "depth": 3}
    image = smooth_image((64, 80))
    np.testing.assert_array_equal(loaded.predict_proba(image), seg.predict_proba(image))


class Payload:
    """Unpickling this writes a file: proof that code ran."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors"])
def test_malicious_pickle_is_refused_without_running_code(tmp_path, suffix):
    marker = tmp_path / "pwned"
    evil = tmp_path / f"model{suffix}"
    evil.write_bytes(pickle.dumps({"state_dict": Payload(str(marker))}))
    with pytest.raises(CheckpointError, match="not a napari-segnet checkpoint.*refused"):
        Segmenter.load(evil)
    assert not marker.exists()
    pickle.loads(evil.read_bytes())  # the payload is real: unpickling does create the file
    assert marker.exists()


def test_foreign_safetensors_and_missing_files_are_refused(tmp_path):
    foreign = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a napari-segnet checkpoint"):
        Segmenter.load(foreign)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Segmenter.load(tmp_path / "nothing.safetensors")


def test_weights_that_do_not_fit_the_architecture_are_refused(tmp_path):
    seg = tiny_segmenter()
    meta = replace(seg.metadata, options={"base_filters": 8, "depth": 3})  # claims a wider net
    path = checkpoint.save_checkpoint(tmp_path / "m", seg.net.state_dict(), meta)
    with pytest.raises(CheckpointError, match="does not fit a unet network"):
        Segmenter.load(path)
    meta = replace(seg.metadata, architecture="segnet")
    path = checkpoint.save_checkpoint(tmp_path / "m2", seg.net.state_dict(), meta)
    with pytest.raises(CheckpointError, match="cannot build"):
        Segmenter.load(path)


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    seg = tiny_segmenter()
    path = seg.save(tmp_path / "m.safetensors")
    before = path.read_bytes()

    def broken(tensors, filename, metadata):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", broken)
    with pytest.raises(OSError, match="could not save the model"):
        seg.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temporary left behind



def test_saved_files_get_normal_permissions(tmp_path):
    path = tiny_segmenter().save(tmp_path / "m")
    assert path.stat().st_mode & 0o777 == 0o666 & ~_current_umask()


def _current_umask():
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_killed_save_leaves_no_lasting_debris(tmp_path):
    """A save killed with kill -9 leaves its temporary file; the next save of the same target removes it."""
    seg = tiny_segmenter()
    dead = tmp_path / ".m.safetensors.k2j3h.tmp"
    dead.write_bytes(b"x" * 1000)
    os.utime(dead, (time.time() - 3600,) * 2)
    live = tmp_path / ".m.safetensors.zz9.tmp"  # a save of the same file in progress right now: kept
    live.write_bytes(b"y")
    other = tmp_path / ".other.safetensors.abc.tmp"  # another target's: not ours to judge
    other.write_bytes(b"z")
    os.utime(other, (time.time() - 3600,) * 2)
    seg.save(tmp_path / "m.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, "m.safetensors"])
