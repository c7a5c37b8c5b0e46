"""Helpers of the command-line tests: run ``napari-segnet`` in this process or in a child, interrupt a child."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from conftest import two_class_image

from napari_segnet import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def one_thread():
    """torch on one thread, as dask's workers and the children here run: CPU kernels split their sums by thread
    (2 threads may round a float32 probability 1 ulp from 1 thread), and 2 threads on a shared 2-core machine
    run several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def main(capsys, *argv) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``napari-segnet argv…`` run in this process."""
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def child_env() -> dict:
    """The environment of a child ``python -m napari_segnet``: this checkout first, one thread, no tqdm colour."""
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def interrupt(argv: list, marker: str, cwd: Path, timeout: float = 120, group: bool = False) -> tuple[int, str]:
    """Start ``python -m napari_segnet argv…``, send SIGINT (Ctrl-C) once ``marker`` appeared on its stderr;
    (exit status, stderr). ``group``: as a terminal does, to the child and every process it started (its own
    process group), and fail if any of them outlives it by 10 s."""
    # a shell runs background jobs with SIGINT ignored, and children inherit that: give Ctrl-C back to the child
    proc = subprocess.Popen([sys.executable, "-m", "napari_segnet", *map(str, argv)], cwd=cwd, env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=group,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    err, deadline = b"", time.monotonic() + timeout
    os.set_blocking(proc.stderr.fileno(), False)
    while marker.encode() not in err:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{marker!r} never appeared: {err.decode()[-2000:]}")
        err += proc.stderr.read() or b""
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT) if group else proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    finally:
        proc.kill()
    os.set_blocking(proc.stderr.fileno(), True)
    err += proc.stderr.read()
    if group:
        _expect_group_gone(proc.pid)
    return proc.returncode, err.decode()


def _expect_group_gone(pgid: int, wait: float = 10) -> None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(pgid, signal.SIGKILL)
    raise AssertionError(f"processes of the interrupted command outlived it by {wait:g} s")


def write_pairs(folder: Path, n: int = 2, size: int = 64, label_suffix: str = "_labels") -> tuple[Path, Path]:
    """``folder/images/cell{i}.tif`` and ``folder/labels/cell{i}{label_suffix}.tif``: bright discs (class 1)."""
    images, labels = folder / "images", folder / "labels"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for i in range(n):
        image, label = two_class_image(seed=i, size=size)
        tifffile.imwrite(images / f"cell{i}.tif", image)
        tifffile.imwrite(labels / f"cell{i}{label_suffix}.tif", label.astype(np.uint8))
    return images, labels


def hold(folder):
    """A child process that opens the project ``folder`` and keeps it open until its stdin closes."""
    code = ("import sys; from napari_segnet.project import Project; p = Project(sys.argv[1]); print('open', "
            "flush=True); sys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", code, str(folder)], env=child_env(), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "open"
    return child


def truncate_compressed(path, array):
    """``array`` as a zlib-compressed TIFF at ``path``, cut 30 bytes short of its end (a copy that broke off)."""
    tifffile.imwrite(path, array, compression="zlib")
    path.write_bytes(path.read_bytes()[:-30])
