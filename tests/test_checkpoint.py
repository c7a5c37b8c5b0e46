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


def test_a_small_file_describing_a_huge_network_is_refused_before_it_is_built(tmp_path):
    """The metadata of a 1 MB file said: a U-Net of 3000 base filters, 68 G parameters (273 GB). The loader
    built it, then compared tensors. The description is now checked against the tensors on torch's meta device
    first. Run in a child limited to 6 GiB of address space, so that a regression fails instead of swapping."""
    import subprocess
    import sys

    from cli_helpers import child_env

    seg = tiny_segmenter()
    lie = replace(seg.metadata, options={"base_filters": 3000, "depth": 4})
    path = checkpoint.save_checkpoint(tmp_path / "lie", seg.net.state_dict(), lie)
    assert path.stat().st_size < 2**20
    code = ("import resource, sys, time; resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30)); "
            "from napari_segnet.segmenter import Segmenter; start = time.perf_counter()\n"
            "try:\n    Segmenter.load(sys.argv[1])\n"
            "except BaseException as e:\n    print(type(e).__name__, e, f'{time.perf_counter() - start:.3f}')")
    done = subprocess.run([sys.executable, "-c", code, str(path)], env=child_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.startswith("CheckpointError lie.safetensors does not fit a unet network: its metadata "
                                  "describes 68,167,185,021 numbers, its tensors hold "), done.stdout + done.stderr
    assert float(done.stdout.split()[-1]) < 1.0  # seconds: nothing was allocated


def test_a_save_killed_inside_safetensors_leaves_nothing_that_lasts(tmp_path):
    """safetensors writes its own .tmpXXXXXX beside the file it is asked for, then renames it: a save killed
    with kill -9 left that file, which no cleanup recognised. The save now happens inside a temporary folder
    named after the target, which the next save of that target removes once it is stale."""
    import signal
    import subprocess
    import sys

    from cli_helpers import child_env

    code = ("import sys, torch; from napari_segnet.io import checkpoint; from conftest import tiny_segmenter\n"
            "seg = tiny_segmenter()\n"
            "while True:\n    checkpoint.save_checkpoint(sys.argv[1], {'w': torch.zeros(2**28, dtype=torch.uint8)}, "
            "seg.metadata)")
    env = {**child_env(), "PYTHONPATH": f"{os.path.dirname(__file__)}{os.pathsep}{child_env()['PYTHONPATH']}"}
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "m.safetensors")], env=env)
    deadline = time.monotonic() + 120
    try:
        while not any(p.name.startswith(".tmp") or (p.is_dir() and any(p.iterdir())) for p in tmp_path.iterdir()):
            assert time.monotonic() < deadline and child.poll() is None, "the child never wrote"
            time.sleep(0.002)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    debris = sorted(p.name for p in tmp_path.iterdir() if p.name != "m.safetensors")
    assert debris and all(n.startswith(".m.safetensors.") and n.endswith(".tmp") for n in debris), debris
    for p in tmp_path.rglob("*"):  # an hour later
        os.utime(p, (time.time() - 3600,) * 2)
    tiny_segmenter().save(tmp_path / "m.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
