"""Segmenter: a network with its metadata (classes, normalisation, versions); predict, save, load."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from pathlib import Path

import numpy as np
import torch

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .devices import pick_device
from .images import ImagePlanes
from .models import SegmentationNet, build_model
from .normalization import Normalization
from .tiling import (
    DEFAULT_MAX_CONTEXT,
    TiledPredictor,
    TileProgress,
    activation_bytes_per_pixel,
    auto_step,
    run_with_oom_retry,
)


class PredictionCancelled(RuntimeError):
    """Raised by :meth:`Segmenter.predict` when its progress callback returns ``False``."""


class _Planes:
    """Index an output with or without a plane axis as (plane, ...): ``out[p, ...]`` → ``out[...]``."""

    def __init__(self, array, has_planes: bool):
        self.array, self.has_planes = array, has_planes

    def __setitem__(self, key, value):
        self.array[key if self.has_planes else key[1:]] = value


class Segmenter:
    """A segmentation network plus what it needs to be used on real images.

    ``metadata`` holds: architecture, options, in_channels, num_classes, class_names, normalization.
    """

    def __init__(self, net: SegmentationNet, metadata: dict):
        self.net = net
        self.metadata = metadata
        self._bytes_per_pixel: float | None = None

    # ---- construction -------------------------------------------------------------------------------------
    @classmethod
    def create(cls, architecture: str = "unet", in_channels: int = 1, num_classes: int = 2,
               class_names: list[str] | None = None, normalization: Normalization | dict | None = None,
               **options) -> Segmenter:
        """A new, untrained model; ``options`` go to :func:`napari_segnet.models.build_model`."""
        net = build_model(architecture, in_channels, num_classes, **options)
        names = list(class_names) if class_names is not None else ["background"] + [
            f"class {i}" for i in range(1, num_classes)]
        if len(names) != num_classes:
            raise ValueError(f"{num_classes} classes need {num_classes} class names, got {len(names)}: {names}")
        norm = normalization if isinstance(normalization, Normalization) else Normalization.from_dict(
            normalization or {})
        metadata = {"architecture": architecture, "options": options, "in_channels": in_channels,
                    "num_classes": num_classes, "class_names": names, "normalization": norm.to_dict()}
        return cls(net, metadata)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Segmenter:
        """A model saved by :meth:`save`; ``CheckpointError`` (a ``ValueError``) for any other file."""
        state, meta = load_checkpoint(path)
        try:
            seg = cls.create(meta["architecture"], meta["in_channels"], meta["num_classes"], meta["class_names"],
                             meta["normalization"], **meta["options"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{Path(path).name} describes a model this version cannot build: {e}") from e
        expected = seg.net.state_dict()
        wrong = sorted(k for k in expected if k not in state or state[k].shape != expected[k].shape)
        extra = sorted(set(state) - set(expected))
        if wrong or extra:
            raise CheckpointError(f"{Path(path).name} does not fit a {meta['architecture']} network: "
                                  f"missing or misshapen {wrong[:3]}, unexpected {extra[:3]}")
        seg.net.load_state_dict(state)
        seg.metadata = {**seg.metadata, **meta}
        return seg

    def save(self, path: str | os.PathLike) -> Path:
        """Write weights and metadata to ``path`` (a ``.safetensors`` file) atomically; returns the path."""
        return save_checkpoint(path, self.net.state_dict(), self.metadata)

    # ---- properties ---------------------------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return list(self.metadata["class_names"])

    @property
    def num_classes(self) -> int:
        return int(self.metadata["num_classes"])

    @property
    def normalization(self) -> Normalization:
        return Normalization.from_dict(self.metadata["normalization"])

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    # ---- prediction ---------------------------------------------------------------------------------------
    def predict(self, image, tile_shape: int | tuple[int, int] | None = None, device=None,
                progress: Callable[[int, int], bool | None] | None = None, channel_axis: int | None = None,
                out=None, batch_size: int = 1) -> np.ndarray:
        """Class ids for ``image``: an integer array of the image's spatial shape ((Y, X) or (Z|T, Y, X)).

        image: (Y, X), (Y, X, 3|4), (C, Y, X) or (Z|T, Y, X) NumPy/dask/zarr array, any int or float dtype.
        tile_shape: output pixels per tile (rounded to the net's stride); None picks it from free memory; a
        shape larger than the image means one whole-image pass. progress(done, total) is called after every
        batch of tiles; returning ``False`` cancels (``PredictionCancelled``). ``out``: a preallocated array of
        the spatial shape (e.g. a memory-mapped or zarr one) to write into.
        """
        gen = self.predict_steps(image, tile_shape, device, channel_axis, labels_out=out, batch_size=batch_size)
        return _drive(gen, progress)[0]

    def predict_proba(self, image, tile_shape: int | tuple[int, int] | None = None, device=None,
                      progress: Callable[[int, int], bool | None] | None = None, channel_axis: int | None = None,
                      batch_size: int = 1) -> np.ndarray:
        """Class probabilities, float32 (C, *spatial); arguments as :meth:`predict`."""
        gen = self.predict_steps(image, tile_shape, device, channel_axis, want_labels=False, want_proba=True,
                                 batch_size=batch_size)
        return _drive(gen, progress)[1]

    def predict_steps(self, image, tile_shape=None, device=None, channel_axis: int | None = None, *,
                      want_labels: bool = True, want_proba: bool = False, labels_out=None, batch_size: int = 1,
                      max_context: int = DEFAULT_MAX_CONTEXT,
                      ) -> Generator[TileProgress, None, tuple[np.ndarray | None, np.ndarray | None]]:
        """The prediction as a generator (for thread workers): yields :class:`TileProgress`, returns
        (labels or None, proba or None). Closing it stops between tiles; outputs are then incomplete."""
        planes = ImagePlanes(image, self.metadata["in_channels"], channel_axis)
        offset, scale = self.normalization.parameters(planes)
        dev = pick_device(device)
        self.net.to(dev).eval()
        spatial = ((planes.n_planes,) if planes.plane_axis is not None else ()) + planes.shape
        stacked = planes.plane_axis is not None
        labels = proba = None
        if want_labels or labels_out is not None:
            labels = labels_out if labels_out is not None else np.zeros(spatial, self._label_dtype())
            if tuple(labels.shape) != spatial:
                raise ValueError(f"out must have the image's spatial shape {spatial}, got {tuple(labels.shape)}")
        if want_proba:
            proba = np.zeros((self.num_classes, *spatial), np.float32)
        step = self._tile_step(tile_shape, planes.shape, dev)
        predictor = TiledPredictor(self.net, dev, lambda t: Normalization.apply(t, offset, scale), batch_size,
                                   max_context)
        proba_view = None if proba is None else (np.moveaxis(proba, 0, 1) if stacked else proba[None])
        labels_view = None if labels is None else _Planes(labels, stacked)
        yield from run_with_oom_retry(lambda s: predictor.run(planes, s, labels_view, proba_view), step,
                                      self.net.total_stride)
        return labels, proba

    def _label_dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.num_classes <= 256 else np.uint16)

    def _tile_step(self, tile_shape, image_shape: tuple[int, int], device: torch.device) -> tuple[int, int]:
        if tile_shape is None:
            if self._bytes_per_pixel is None:
                self._bytes_per_pixel = activation_bytes_per_pixel(self.net)
            return (auto_step(self.net, device, self._bytes_per_pixel),) * 2
        shape = (tile_shape,) * 2 if np.isscalar(tile_shape) else tuple(tile_shape)
        if len(shape) != 2 or not all(isinstance(k, (int, np.integer)) and k >= 1 for k in shape):
            raise ValueError(f"tile_shape must be a positive int or a (Y, X) pair of them, got {tile_shape!r}")
        return tuple(min(int(k), n) for k, n in zip(shape, image_shape))


def _drive(gen: Generator, progress: Callable[[int, int], bool | None] | None):
    """Run a prediction generator to its return value, reporting to ``progress`` (False from it cancels)."""
    try:
        while True:
            update = next(gen)
            if progress is not None and progress(update.done, update.total) is False:
                gen.close()
                raise PredictionCancelled(f"prediction cancelled after {update.done} of {update.total} tiles")
    except StopIteration as stop:
        return stop.value
