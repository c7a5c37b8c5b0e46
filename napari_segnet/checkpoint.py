"""Checkpoints: tensors in safetensors, metadata as JSON in its header; atomic writes; never unpickled."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

FORMAT = "napari-segnet"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"


class CheckpointError(ValueError):
    """A file that is not a valid napari-segnet checkpoint (or does not fit the model)."""


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)``, then rename the temporary file over ``path``: a reader never sees half a file,
    and a failure (full or read-only disk) leaves any previous file intact."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())  # not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], metadata: dict) -> Path:
    """Write ``state_dict`` and JSON-serialisable ``metadata`` to ``path`` (``.safetensors`` appended if
    missing) atomically. Raises ``OSError`` with the path if the disk refuses."""
    path = Path(path)
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "metadata": json.dumps(metadata)}
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    try:
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))
    except OSError as e:
        raise OSError(e.errno, f"could not save the model to {path}: {e.strerror or e}") from e
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata of a checkpoint, without loading its tensors; ``CheckpointError`` for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path.name} is not a napari-segnet checkpoint (safetensors with JSON metadata); pickled .pt/.pth "
            "files are refused because loading them can run code"
        ) from e
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path.name} is a safetensors file but not a napari-segnet checkpoint")
    if int(header.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{path.name} was written by a newer napari-segnet; please upgrade")
    try:
        return json.loads(header["metadata"])
    except (KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path.name} has damaged metadata") from e


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """(state_dict on the CPU, metadata) of a checkpoint written by :func:`save_checkpoint`."""
    metadata = read_metadata(path)
    return load_file(str(path), device="cpu"), metadata
