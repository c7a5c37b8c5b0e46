"""Checkpoints: tensors in safetensors, typed metadata as JSON in its header; atomic writes; never unpickled."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from ..numerics.normalization import Normalization
from .fileio import atomic_write
from .metadata import ModelMetadata, Version

FORMAT = "napari-segnet"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"


class CheckpointError(ValueError):
    """A file that is not a valid napari-segnet checkpoint (or does not fit the model)."""


def metadata_to_json(meta: ModelMetadata) -> str:
    """The JSON text stored in a checkpoint's header."""
    d = asdict(meta)
    d["class_names"] = list(meta.class_names)
    d["normalization"] = meta.normalization.to_dict()
    return json.dumps(d)


def metadata_from_json(text: str) -> ModelMetadata:
    """Parse :func:`metadata_to_json`'s text; unknown keys of a version record go to its ``details``.
    Raises ``KeyError``/``TypeError``/``ValueError`` for text that does not describe a model."""
    d = json.loads(text)
    known = {f.name for f in fields(Version)} - {"details"}
    versions = tuple(
        Version(**{k: v for k, v in r.items() if k in known},
                details={**r.get("details", {}), **{k: v for k, v in r.items() if k not in known | {"details"}}})
        for r in d.pop("versions", [{"version": 0, "note": "created"}]))
    return ModelMetadata(architecture=d["architecture"], in_channels=int(d["in_channels"]),
                         num_classes=int(d["num_classes"]), class_names=tuple(d["class_names"]),
                         options=dict(d.get("options", {})),
                         normalization=Normalization.from_dict(d.get("normalization", {})),
                         versions=versions, active_version=int(d.get("active_version", 0)),
                         recommendation=dict(d.get("recommendation") or {}))


def save_checkpoint(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], metadata: ModelMetadata) -> Path:
    """Write ``state_dict`` and ``metadata`` to ``path`` (``.safetensors`` appended if missing) atomically.
    Raises ``OSError`` with the path if the disk refuses."""
    path = Path(path)
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "metadata": metadata_to_json(metadata)}
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    try:
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))
    except OSError as e:
        raise OSError(e.errno, f"could not save the model to {path}: {e.strerror or e}") from e
    return path


def read_metadata(path: str | os.PathLike) -> ModelMetadata:
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
        return metadata_from_json(header["metadata"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{path.name} has damaged metadata ({type(e).__name__}: {e})") from e


#: Tensors whose names start with this are a version's pixel forest, not the network's
#: (:mod:`napari_segnet.inference.forest_blend` reads them).
FOREST_PREFIX = "pixel_forest."


def load_network(path: str | os.PathLike) -> tuple[torch.nn.Module, ModelMetadata, dict[str, torch.Tensor]]:
    """(network with the file's weights, metadata, the other tensors: a pixel forest's) of a checkpoint. The
    network the metadata describes is first built on torch's ``meta`` device (shapes, no memory) and compared with
    the tensors the file's header lists: a small file whose metadata describes a huge network (a U-Net of 68 G
    parameters) is refused before anything is allocated. ``CheckpointError`` for a file that does not fit its own
    description."""
    from ..models import build_model

    metadata, name = read_metadata(path), Path(path).name

    def build(device: str | None = None):
        try:
            with torch.device(device or "cpu"):
                return build_model(metadata.architecture, metadata.in_channels, metadata.num_classes,
                                   **metadata.options)
        except (TypeError, ValueError, RuntimeError, OverflowError) as e:  # RuntimeError: sizes past int64
            raise CheckpointError(f"{name} describes a model this version cannot build: {e}") from e

    expected = {k: tuple(v.shape) for k, v in build("meta").state_dict().items()}
    held = {k: v for k, v in tensor_shapes(path).items() if not k.startswith(FOREST_PREFIX)}
    wrong = sorted(k for k in expected if held.get(k) != expected[k])
    extra = sorted(set(held) - set(expected))
    if wrong or extra:
        raise CheckpointError(
            f"{name} does not fit a {metadata.architecture} network: its metadata describes "
            f"{sum(math.prod(s) for s in expected.values()):,} numbers, its tensors hold "
            f"{sum(math.prod(s) for s in held.values()):,}; missing or misshapen {wrong[:3]}, unexpected {extra[:3]}")
    net, state = build(), load_checkpoint(path)[0]
    net.load_state_dict({k: v for k, v in state.items() if k in expected})
    return net, metadata, {k: v for k, v in state.items() if k not in expected}


def tensor_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Name → shape of every tensor in a safetensors file, read from its header only."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{Path(path).name} has damaged weights ({e})") from e


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], ModelMetadata]:
    """(state_dict on the CPU, metadata) of a checkpoint written by :func:`save_checkpoint`."""
    metadata = read_metadata(path)
    try:
        return load_file(str(path), device="cpu"), metadata
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{Path(path).name} has damaged weights ({e})") from e
