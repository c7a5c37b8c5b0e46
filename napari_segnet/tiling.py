"""Overlap-tile prediction (U-Net paper): mirrored context, stride-aligned tiles, centre crop or blending."""

from __future__ import annotations

import math
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from .devices import autocast_dtype
from .images import ImagePlanes, reflect_index
from .models import SegmentationNet
from .progress import Outcome, Progress

# Above this many pixels of context per side, tiles do not wait for full context: they overlap and blend.
DEFAULT_MAX_CONTEXT = 256


@dataclass(frozen=True)
class AxisPlan:
    """Tiling of one axis of ``size`` pixels.

    Tile i reads input pixels [starts[i] − pad, starts[i] − pad + tile_in) of the mirror-extended image (every
    tile start ≡ −pad mod the net's stride, as in a whole-image pass) and its output pixel j lies at image
    position starts[i] − pad + offset + j, where offset = (tile_in − tile_out) / 2 is the valid-conv shrink.
    It keeps output pixels [crop − overlap, crop + step + overlap), i.e. image [start − overlap,
    start + step + overlap); overlap > 0 only when blending.
    """

    size: int
    step: int
    pad: int
    tile_in: int
    crop: int
    overlap: int = 0

    @property
    def starts(self) -> range:
        return range(0, self.size, self.step)


@dataclass(frozen=True)
class Region:
    """The part of an image's output to predict: planes [p0, p1), rows [y0, y1), columns [x0, x1).

    The tiles are those of the whole image that contribute to the region, so a region's output equals that
    part of a whole-image pass, wherever it lies; regions that start on tile starts share no tile (the blocks
    of a distributed prediction).
    """

    planes: tuple[int, int]
    rows: tuple[int, int]
    cols: tuple[int, int]

    @classmethod
    def whole(cls, n_planes: int, shape: tuple[int, int]) -> Region:
        return cls((0, n_planes), (0, shape[0]), (0, shape[1]))

    @property
    def shape(self) -> tuple[int, int, int]:
        """(planes, rows, columns)."""
        return tuple(b - a for a, b in (self.planes, self.rows, self.cols))

    def check(self, n_planes: int, shape: tuple[int, int]) -> None:
        for name, (lo, hi), size in zip(("planes", "rows", "columns"), (self.planes, self.rows, self.cols),
                                        (n_planes, *shape)):
            if not 0 <= lo < hi <= size:
                raise ValueError(f"region {name} [{lo}, {hi}) do not lie within the image's {size}")


@dataclass(frozen=True)
class TileProgress(Progress):
    """``done`` of ``total`` tiles (over all planes) are predicted."""

    unit: ClassVar[str] = "tiles"


@dataclass(frozen=True)
class PredictionResult(Outcome):
    """The outcome of a prediction: class ids (spatial shape) and/or probabilities (C, *spatial), or None."""

    labels: np.ndarray | None
    proba: np.ndarray | None


def _contributing(plan: AxisPlan, bounds: tuple[int, int]) -> list[int]:
    """Tile starts along one axis whose kept output [start − overlap, start + step + overlap) meets [bounds)."""
    return [s for s in plan.starts if s - plan.overlap < bounds[1] and s + plan.step + plan.overlap > bounds[0]]


def ceil_to(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def plan_axis(net: SegmentationNet, size: int, step: int, max_context: int = DEFAULT_MAX_CONTEXT) -> AxisPlan:
    """Plan one axis for tiles that keep ``step`` output pixels (rounded up to the net's stride).

    The context kept around each tile is the net's halo (exact results), or ``max_context`` when the halo is
    larger: then neighbouring tiles overlap by half of it and are blended.
    """
    s = net.total_stride
    step = max(s, ceil_to(min(step, ceil_to(size, s)), s))
    shrink = net.shrink  # valid convolutions: output pixel 0 sits at input `shrink`
    margin = max(net.halo - shrink, 0)
    blend = margin > max_context
    margin = ceil_to(min(margin, max_context), s)
    overlap = margin // 2 if blend else 0
    pad = shrink + margin
    tile_in = net.valid_size(step + 2 * pad, min_output=step + 2 * margin)
    return AxisPlan(size, step, pad, tile_in, margin, overlap)


def blend_window(plan: AxisPlan) -> np.ndarray:
    """float32 (step + 2·overlap,): 1 in the middle, ramping linearly towards 0 across each overlap."""
    n = plan.step + 2 * plan.overlap
    if plan.overlap == 0:
        return np.ones(n, np.float32)
    ramp = (np.arange(n, dtype=np.float32) + 0.5) / (2 * plan.overlap)
    return np.minimum(1, np.minimum(ramp, ramp[::-1]))


def activation_bytes_per_pixel(net: SegmentationNet) -> float:
    """Float32 bytes of all layer outputs per input pixel (an upper bound of inference memory), by a probe."""
    size = net.valid_size(4 * net.total_stride)
    total = 0

    def count(_module, _inputs, output):
        nonlocal total
        total += output.numel() if torch.is_tensor(output) else 0

    hooks = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
    try:
        with torch.inference_mode():
            net.eval()(torch.zeros(1, net.in_channels, size, size, device=next(net.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    return 4.0 * total / size**2


_BYTES_PER_PIXEL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def auto_step(net: SegmentationNet, device: torch.device) -> int:
    """Output pixels per tile side that fit a memory budget: ¼ of free CPU memory (≤ 2 GiB, tiles ≤ 1024 px)
    or ½ of free GPU memory (tiles ≤ 2048 px)."""
    if net not in _BYTES_PER_PIXEL:
        _BYTES_PER_PIXEL[net] = activation_bytes_per_pixel(net)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget, cap = free / 2, 2048
    else:
        import psutil

        budget, cap = min(psutil.virtual_memory().available / 4, 2 * 2**30), 1024
    side = min(int(math.sqrt(budget / _BYTES_PER_PIXEL[net])), cap)
    pad = plan_axis(net, 10**6, net.total_stride).pad
    return max(net.total_stride, (side - 2 * pad) // net.total_stride * net.total_stride)


def tile_step(net: SegmentationNet, tile_shape, image_shape: tuple[int, int], device: torch.device
              ) -> tuple[int, int]:
    """Output pixels per tile (Y, X): ``tile_shape`` (an int or a pair; larger than the image means one pass)
    checked and clipped to the image, or picked from free memory when None."""
    if tile_shape is None:
        return (auto_step(net, device),) * 2
    shape = (tile_shape,) * 2 if np.isscalar(tile_shape) else tuple(tile_shape)
    if len(shape) != 2 or not all(isinstance(k, (int, np.integer)) and k >= 1 for k in shape):
        raise ValueError(f"tile_shape must be a positive int or a (Y, X) pair of them, got {tile_shape!r}")
    return tuple(min(int(k), n) for k, n in zip(shape, image_shape))


def predict_tiled(net: SegmentationNet, planes: ImagePlanes, normalize: Callable[[np.ndarray], np.ndarray],
                  device: torch.device, *, tile_shape=None, want_labels: bool = True, want_proba: bool = False,
                  labels_out=None, batch_size: int = 1, max_context: int = DEFAULT_MAX_CONTEXT,
                  region: Region | None = None) -> Iterator[TileProgress | PredictionResult]:
    """Tiled prediction of every plane of ``planes``, the one entry point: checks the arguments, then returns
    a generator that yields :class:`TileProgress` after each batch of tiles and finally a
    :class:`PredictionResult`.

    The tile comes from ``tile_shape`` (see :func:`tile_step`); on CUDA out-of-memory the run starts again with
    tiles half the size (with a warning). Labels (``planes``' spatial shape: (Y, X), or (n_planes, Y, X) for
    stacks; uint8 up to 256 classes) go into ``labels_out`` when given (NumPy, memory-mapped, zarr), else a new
    array; probabilities float32 (C, *spatial) when ``want_proba``. With a :class:`Region`, only that part is
    predicted (exactly as in a whole-image pass) and the outputs have the region's shape.
    """
    step = tile_step(net, tile_shape, planes.shape, device)
    stacked = planes.plane_axis is not None
    region = region or Region.whole(planes.n_planes, planes.shape)
    region.check(planes.n_planes, planes.shape)
    spatial = (region.shape if stacked else region.shape[1:])
    labels = proba = None
    if want_labels or labels_out is not None:
        dtype = np.uint8 if net.num_classes <= 256 else np.uint16
        labels = labels_out if labels_out is not None else np.zeros(spatial, dtype)
        if tuple(labels.shape) != spatial:
            raise ValueError(f"out must have the image's spatial shape {spatial}, got {tuple(labels.shape)}")
    if want_proba:
        proba = np.zeros((net.num_classes, *spatial), np.float32)
    predictor = TiledPredictor(net, device, normalize, batch_size, max_context)
    proba_view = None if proba is None else (np.moveaxis(proba, 0, 1) if stacked else proba[None])
    labels_view = None if labels is None else _Planes(labels, stacked)
    return _with_oom_retry(lambda s: predictor.run(planes, s, labels_view, proba_view, region), step,
                           net.total_stride,
                           PredictionResult(labels, proba))


class _Planes:
    """Index an output with or without a plane axis as (plane, ...): ``out[p, ...]`` → ``out[...]``."""

    def __init__(self, array, has_planes: bool):
        self.array, self.has_planes = array, has_planes

    def __setitem__(self, key, value):
        self.array[key if self.has_planes else key[1:]] = value


class TiledPredictor:
    """Predicts planes of an image tile by tile with ``net`` on ``device``; memory is bounded by the tile size.

    Writes class ids into ``labels`` (n_planes, Y, X) and/or class probabilities into ``proba``
    (n_planes, C, Y, X): preallocated arrays (NumPy, memory-mapped or zarr) that the caller owns.
    """

    def __init__(self, net: SegmentationNet, device: torch.device, normalize: Callable[[np.ndarray], np.ndarray],
                 batch_size: int = 1, max_context: int = DEFAULT_MAX_CONTEXT):
        self.net, self.device, self.normalize = net, device, normalize
        self.batch_size, self.max_context = batch_size, max_context

    def run(self, planes: ImagePlanes, step: tuple[int, int], labels=None, proba=None, region: Region | None = None
            ) -> Iterator[TileProgress]:
        """Yield a :class:`TileProgress` after each batch of tiles; closing the generator stops between tiles.
        With ``region``, ``labels``/``proba`` have its shape and only the tiles that contribute to it run."""
        region = region or Region.whole(planes.n_planes, planes.shape)
        py, px = (plan_axis(self.net, n, k, self.max_context) for n, k in zip(planes.shape, step))
        tiles = [(y, x) for y in _contributing(py, region.rows) for x in _contributing(px, region.cols)]
        total, done = region.shape[0] * len(tiles), 0
        blend = py.overlap or px.overlap
        windows = (blend_window(py), blend_window(px)) if blend else None
        for p in range(*region.planes):
            acc = np.zeros((self.net.num_classes, *region.shape[1:]), np.float32) if blend else None
            weight = np.zeros(region.shape[1:], np.float32) if blend else None
            for i in range(0, len(tiles), self.batch_size):
                batch = tiles[i : i + self.batch_size]
                probs = self._forward(np.stack([self._read(planes, p, py, px, y, x) for y, x in batch]))
                for (y, x), prob in zip(batch, probs):
                    (ty, iy), (tx, ix) = self._kept(py, y, region.rows), self._kept(px, x, region.cols)
                    if blend:
                        self._accumulate(acc, weight, prob[:, ty, tx], windows, py, px, iy, ix, y, x, region)
                    else:
                        self._store(labels, proba, p - region.planes[0], prob[:, ty, tx], iy, ix)
                done += len(batch)
                yield TileProgress(done, total)
            if blend:
                acc /= np.maximum(weight, 1e-12)
                self._store(labels, proba, p - region.planes[0], acc, slice(None), slice(None))

    def _read(self, planes: ImagePlanes, p: int, py: AxisPlan, px: AxisPlan, y: int, x: int) -> np.ndarray:
        """Normalised float32 (C, tile_in_y, tile_in_x), mirrored where the tile leaves the image."""
        ys = reflect_index(np.arange(y - py.pad, y - py.pad + py.tile_in), py.size)
        xs = reflect_index(np.arange(x - px.pad, x - px.pad + px.tile_in), px.size)
        return self.normalize(planes.read(p, ys, xs))

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """(B, C_in, h, w) → softmax probabilities float32 (B, C, h', w'), mixed precision on CUDA."""
        x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=torch.channels_last)
        dtype = autocast_dtype(self.device)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            logits = self.net(x)
        return torch.softmax(logits.float(), dim=1).cpu().numpy()

    @staticmethod
    def _kept(plan: AxisPlan, start: int, bounds: tuple[int, int]) -> tuple[slice, slice]:
        """(slice in the tile output, slice in the region [bounds)) of what one tile contributes along one axis."""
        lo = max(start - plan.overlap, bounds[0])
        hi = min(start + plan.step + plan.overlap, bounds[1])
        first = plan.crop - (start - lo)
        return slice(first, first + hi - lo), slice(lo - bounds[0], hi - bounds[0])

    @staticmethod
    def _accumulate(acc, weight, prob, windows, py, px, iy, ix, y, x, region: Region) -> None:
        """Add the kept part ``prob`` of tile (y, x), weighted by its blend window, at region slices iy, ix."""
        oy, ox = region.rows[0] - (y - py.overlap), region.cols[0] - (x - px.overlap)
        w = windows[0][iy.start + oy : iy.stop + oy][:, None] * windows[1][ix.start + ox : ix.stop + ox][None, :]
        acc[:, iy, ix] += prob * w
        weight[iy, ix] += w

    @staticmethod
    def _store(labels, proba, p, prob: np.ndarray, iy: slice, ix: slice) -> None:
        if labels is not None:
            labels[p, iy, ix] = prob.argmax(axis=0)
        if proba is not None:
            proba[p, :, iy, ix] = prob


def _with_oom_retry(make_run: Callable[[tuple[int, int]], Iterator[TileProgress]], step: tuple[int, int],
                    minimum: int, outcome: PredictionResult) -> Iterator[TileProgress | PredictionResult]:
    """Run ``make_run(step)``, then yield ``outcome``; on CUDA out-of-memory, warn and start again with tiles
    half the size."""
    while True:
        try:
            yield from make_run(step)
            break
        except torch.cuda.OutOfMemoryError:
            if min(step) <= minimum:
                raise
            torch.cuda.empty_cache()
            step = tuple(max(minimum, k // 2) for k in step)
            warnings.warn(f"CUDA ran out of memory; predicting again with {step[0]}×{step[1]} tiles",
                          RuntimeWarning, stacklevel=2)
    yield outcome
