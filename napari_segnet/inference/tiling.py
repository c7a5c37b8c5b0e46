"""Overlap-tile prediction (U-Net paper): tiles planned by cost, mirrored context, centre crop or blending."""

from __future__ import annotations

import math
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ..models import SegmentationNet
from ..numerics.images import ImagePlanes, WindowedArray, reflect_index
from ..progress import Outcome, Progress
from .devices import autocast_dtype
from .forest_blend import ForestBlend
from .tile_pipeline import pipelined
from .tile_plan import DEFAULT_MAX_CONTEXT, AxisPlan, auto_plan, explicit_plan
from .tta import averaged_probabilities

__all__ = ["PredictionResult", "Region", "TileProgress", "TiledPredictor", "blend_window", "plan_tiles",
           "predict_tiled", "tile_budget", "tile_step"]

#: Most tiles per batch on CUDA (tiles are batched up to the memory budget; on the CPU one at a time).
MAX_CUDA_BATCH = 16
#: A row of tiles of an image that is not in memory is read at once up to this many bytes (``_RowBands``).
BAND_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Region:
    """The part of an image's output to predict: planes [p0, p1), rows [y0, y1), columns [x0, x1).

    The tiles are those of the whole image that contribute to the region, so a region's output equals that
    part of a whole-image pass, wherever it lies; regions that start on tile starts of an explicit
    ``tile_shape`` share no tile (the blocks of a distributed prediction).
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


def blend_window(plan: AxisPlan) -> np.ndarray:
    """float32 (step + 2·overlap,): the weights of an inner tile, 1 in the middle, ramping linearly towards 0
    across each overlap (two neighbours' ramps sum to 1)."""
    n = plan.step + 2 * plan.overlap
    if plan.overlap == 0:
        return np.ones(n, np.float32)
    ramp = (np.arange(n, dtype=np.float32) + 0.5) / (2 * plan.overlap)
    return np.minimum(1, np.minimum(ramp, ramp[::-1]))


def tile_weights(plan: AxisPlan, i: int, bounds: tuple[int, int] | None = None) -> np.ndarray:
    """float32 (kept length,): blend weights of tile i along one axis (within ``bounds``, see
    :meth:`AxisPlan.kept`), ramps only where a neighbour overlaps."""
    b0 = bounds[0] if bounds else 0
    kept = plan.kept(i, bounds)[1]
    kept = slice(kept.start + b0, kept.stop + b0)
    pos = np.arange(kept.start, kept.stop, dtype=np.float32) + 0.5
    w = np.ones_like(pos)
    if plan.overlap and i > 0:
        w = np.minimum(w, (pos - (plan.bounds[i] - plan.overlap)) / (2 * plan.overlap))
    if plan.overlap and i + 2 < len(plan.bounds):
        w = np.minimum(w, ((plan.bounds[i + 1] + plan.overlap) - pos) / (2 * plan.overlap))
    return w


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


def tile_budget(net: SegmentationNet, device: torch.device) -> int:
    """Most input pixels per tile (or per batch of tiles on CUDA) that fit the memory budget: ¼ of free CPU
    memory (≤ 2 GiB, tiles ≤ 1024²) or ½ of free GPU memory (≤ 4096²)."""
    if net not in _BYTES_PER_PIXEL:
        _BYTES_PER_PIXEL[net] = activation_bytes_per_pixel(net)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget, cap = free / 2, 4096
    else:
        import psutil

        budget, cap = min(psutil.virtual_memory().available / 4, 2 * 2**30), 1024
    return max(min(int(budget / _BYTES_PER_PIXEL[net]), cap**2), 1)


def tile_step(net: SegmentationNet, tile_shape, image_shape: tuple[int, int], device: torch.device
              ) -> tuple[int, int]:
    """Output pixels kept per tile (Y, X): of ``tile_shape``, or of the planner's choice when None."""
    return tuple(p.step for p in plan_tiles(net, tile_shape, image_shape, device))


def plan_tiles(net: SegmentationNet, tile_shape, image_shape: tuple[int, int], device: torch.device,
               max_context: int = DEFAULT_MAX_CONTEXT, max_pixels: int | None = None) -> tuple[AxisPlan, AxisPlan]:
    """The (Y, X) plans: tiles keeping ``tile_shape`` output pixels (an int or a pair; larger than the image
    means one whole-image pass), or when None the cheapest tiles within ``max_pixels`` (default: the memory
    budget, :func:`tile_budget`)."""
    if tile_shape is None:
        return auto_plan(net, image_shape, max_pixels or tile_budget(net, device), max_context)
    shape = (tile_shape,) * 2 if np.isscalar(tile_shape) else tuple(tile_shape)
    if len(shape) != 2 or not all(isinstance(k, (int, np.integer)) and k >= 1 for k in shape):
        raise ValueError(f"tile_shape must be a positive int or a (Y, X) pair of them, got {tile_shape!r}")
    return tuple(explicit_plan(net, n, min(int(k), n), max_context) for k, n in zip(shape, image_shape))


def predict_tiled(net: SegmentationNet, planes: ImagePlanes, normalize: Callable[[np.ndarray], np.ndarray],
                  device: torch.device, *, tile_shape=None, want_labels: bool = True, want_proba: bool = False,
                  labels_out=None, batch_size: int = 1, max_context: int = DEFAULT_MAX_CONTEXT,
                  region: Region | None = None, tta: bool = False, forest: ForestBlend | None = None
                  ) -> Iterator[TileProgress | PredictionResult]:
    """Tiled prediction of every plane of ``planes``, the one entry point: checks the arguments, then returns
    a generator that yields :class:`TileProgress` after each batch of tiles and finally a
    :class:`PredictionResult`.

    Tiles come from :func:`plan_tiles`; on CUDA they are batched up to the memory budget, and on
    out-of-memory the run starts again with tiles half the size (with a warning). Labels (``planes``' spatial
    shape: (Y, X), or (n_planes, Y, X) for stacks; uint8 up to 256 classes) go into ``labels_out`` when given
    (NumPy, memory-mapped, zarr), else a new array; probabilities float32 (C, *spatial) when ``want_proba``.
    With a :class:`Region`, only that part is predicted (exactly as in a whole-image pass) and the outputs have
    the region's shape. ``tta``: every tile's probabilities averaged over its 8 flips and rotations
    (:mod:`napari_segnet.inference.tta`; 8 forward passes). ``forest``: a version's pixel forest, mixed into
    every tile's probabilities (:mod:`napari_segnet.inference.forest_blend`).
    """
    plans = plan_tiles(net, tile_shape, planes.shape, device, max_context)
    stacked = planes.plane_axis is not None
    region = region or Region.whole(planes.n_planes, planes.shape)
    region.check(planes.n_planes, planes.shape)
    spatial = region.shape if stacked else region.shape[1:]
    labels = proba = None
    if want_labels or labels_out is not None:
        dtype = np.uint8 if net.num_classes <= 256 else np.uint16
        labels = labels_out if labels_out is not None else np.zeros(spatial, dtype)
        if tuple(labels.shape) != spatial:
            raise ValueError(f"out must have the image's spatial shape {spatial}, got {tuple(labels.shape)}")
    if want_proba:
        proba = np.zeros((net.num_classes, *spatial), np.float32)
    if device.type == "cuda" and batch_size == 1:
        area = plans[0].tile_in * plans[1].tile_in
        batch_size = int(np.clip(tile_budget(net, device) // area, 1, MAX_CUDA_BATCH))
    predictor = TiledPredictor(net, device, normalize, batch_size, tta, forest)
    proba_view = None if proba is None else (np.moveaxis(proba, 0, 1) if stacked else proba[None])
    labels_view = None if labels is None else _Planes(labels, stacked)

    def smaller(step: tuple[int, int]) -> tuple[AxisPlan, AxisPlan]:
        return plan_tiles(net, step, planes.shape, device, max_context)

    return _with_oom_retry(lambda p: predictor.run(planes, *p, labels_view, proba_view, region), plans, smaller,
                           PredictionResult(labels, proba))


class _Planes:
    """Index an output with or without a plane axis as (plane, ...): ``out[p, ...]`` → ``out[...]``."""

    def __init__(self, array, has_planes: bool):
        self.array, self.has_planes = array, has_planes

    def __setitem__(self, key, value):
        self.array[key if self.has_planes else key[1:]] = value


class _RowBands:
    """The planes to read tile (p, i, ·) from. For an image not in memory (zarr, dask, a TIFF's zarr view) that is
    the input of the whole tile row read at once (:meth:`ImagePlanes.windowed`): the row's tiles overlap by their
    context, and read one by one they decompressed each chunk again (a 4096² zarr predicted 15–25 % slower than
    the same image in memory). NumPy images, and bands over BAND_BYTES, are read tile by tile."""

    def __init__(self, planes: ImagePlanes, py: AxisPlan, px: AxisPlan, region: Region):
        self.planes, self.py, self.key, self.band = planes, py, None, planes
        self.cols = px.input_span(region.cols)
        size = py.tile_in * (self.cols[1] - self.cols[0]) * planes.channels * np.dtype(planes.image.dtype).itemsize
        self.lazy = not isinstance(planes.image, (np.ndarray, WindowedArray)) and size <= BAND_BYTES

    def __call__(self, p: int, i: int) -> ImagePlanes:
        if self.lazy and self.key != (p, i):
            rows = reflect_index(self.py.input_index(i), self.py.size)
            self.band, self.key = self.planes.windowed(p, (int(rows.min()), int(rows.max()) + 1), self.cols), (p, i)
        return self.band


class TiledPredictor:
    """Predicts planes of an image tile by tile with ``net`` on ``device``; memory is bounded by the tile size.

    Writes class ids into ``labels`` (n_planes, Y, X) and/or class probabilities into ``proba``
    (n_planes, C, Y, X): preallocated arrays (NumPy, memory-mapped or zarr) that the caller owns. Tiles are
    read (and normalised) and written on two threads while the network runs (:func:`pipelined`); a ``forest``
    is mixed into each tile's kept probabilities as they are written.
    """

    def __init__(self, net: SegmentationNet, device: torch.device, normalize: Callable[[np.ndarray], np.ndarray],
                 batch_size: int = 1, tta: bool = False, forest: ForestBlend | None = None):
        self.net, self.device, self.normalize = net, device, normalize
        self.batch_size, self.tta, self.forest = batch_size, tta, forest

    def run(self, planes: ImagePlanes, py: AxisPlan, px: AxisPlan, labels=None, proba=None,
            region: Region | None = None) -> Iterator[TileProgress]:
        """Yield a :class:`TileProgress` after each batch of tiles; closing the generator stops between tiles.
        With ``region``, ``labels``/``proba`` have its shape and only the tiles that contribute to it run."""
        region = region or Region.whole(planes.n_planes, planes.shape)
        grid = [(i, j) for i in range(len(py.starts)) if py.meets(i, region.rows)
                for j in range(len(px.starts)) if px.meets(j, region.cols)]
        tiles = [(p, i, j) for p in range(*region.planes) for i, j in grid]
        batches = [tiles[k : k + self.batch_size] for k in range(0, len(tiles), self.batch_size)]
        blend = bool(py.overlap or px.overlap)
        want_proba = blend or proba is not None or self.forest is not None
        sums: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        bands = _RowBands(planes, py, px, region)

        def read(batch):
            return self._host(np.stack([self._read(bands(p, i), p, py, px, i, j) for p, i, j in batch]))

        def write(batch, out):
            for (p, i, j), tile in zip(batch, out):
                (ty, iy), (tx, ix) = py.kept(i, region.rows), px.kept(j, region.cols)
                q = p - region.planes[0]
                kept = self._mixed(planes, p, tile[..., ty, tx], region, iy, ix)
                if not blend:
                    self._store(labels, proba, q, kept, iy, ix, probs=want_proba)
                    continue
                if q not in sums:
                    sums[q] = (np.zeros((tile.shape[0], *region.shape[1:]), np.float32),
                               np.zeros(region.shape[1:], np.float32))
                acc, weight = sums[q]
                w = tile_weights(py, i, region.rows)[:, None] * tile_weights(px, j, region.cols)[None, :]
                acc[:, iy, ix] += kept * w
                weight[iy, ix] += w
                if (i, j) == grid[-1]:
                    acc, weight = sums.pop(q)
                    self._store(labels, proba, q, acc / np.maximum(weight, 1e-12), slice(None), slice(None))

        done = 0
        for k in pipelined(batches, read, lambda x: self._forward(x, want_proba), write):
            done += len(batches[k - 1])
            yield TileProgress(done, len(tiles))

    def _mixed(self, planes: ImagePlanes, p: int, kept: np.ndarray, region: Region, iy: slice, ix: slice
               ) -> np.ndarray:
        """A tile's kept probabilities (C, h, w) at ``iy``, ``ix`` of ``region`` with the forest mixed in."""
        if self.forest is None:
            return kept
        rows = (region.rows[0] + iy.start, region.rows[0] + iy.stop)
        cols = (region.cols[0] + ix.start, region.cols[0] + ix.stop)
        forest = self.forest.forest_probabilities(lambda ys, xs: self.normalize(planes.read(p, ys, xs)),
                                                  planes.shape, rows, cols)
        return self.forest.mix(kept, forest)

    def _read(self, planes: ImagePlanes, p: int, py: AxisPlan, px: AxisPlan, i: int, j: int) -> np.ndarray:
        """Normalised float32 (C, tile_in_y, tile_in_x), mirrored where the tile leaves the image."""
        ys, xs = reflect_index(py.input_index(i), py.size), reflect_index(px.input_index(j), px.size)
        return self.normalize(planes.read(p, ys, xs))

    def _host(self, batch: np.ndarray) -> torch.Tensor:
        """A batch as a CPU tensor, in pinned (page-locked) memory when bound for a GPU: copies then overlap."""
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        return x.pin_memory() if self.device.type == "cuda" else x

    def _forward(self, x: torch.Tensor | np.ndarray, want_proba: bool = True) -> np.ndarray:
        """(B, C_in, h, w) → softmax probabilities float32 (B, C, h', w'), or class ids (B, h', w') computed on
        the device when ``want_proba`` is False; mixed precision where :func:`autocast_dtype` says so."""
        if isinstance(x, np.ndarray):
            x = self._host(x)
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        dtype = autocast_dtype(self.device, inference=True)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None), \
                _cudnn_benchmark(self.device.type == "cuda"):
            if self.tta:  # probabilities averaged over 8 flips / rotations (tta.py)
                proba = averaged_probabilities(self.net, x)
                return (proba if want_proba else proba.argmax(1).to(torch.int16)).cpu().numpy()
            logits = self.net(x)
            # the class axis innermost: argmax over a (B, C, h, w)-contiguous map (FCN's crop) took 17 ms of a
            # 61 ms 512² FCN-8s prediction, over channels_last 1 ms
            out = torch.softmax(logits.float(), dim=1) if want_proba else \
                logits.contiguous(memory_format=torch.channels_last).argmax(1).to(torch.int16)
        return out.cpu().numpy()

    @staticmethod
    def _store(labels, proba, p, tile: np.ndarray, iy: slice, ix: slice, probs: bool = True) -> None:
        """Write one tile's kept part: probabilities (C, h, w) when ``probs``, else class ids (h, w)."""
        if labels is not None:
            labels[p, iy, ix] = tile.argmax(axis=0) if probs else tile
        if proba is not None:
            proba[p, :, iy, ix] = tile


class _cudnn_benchmark:
    """Context: ``torch.backends.cudnn.benchmark`` on (fixed tile shapes pick the fastest kernels once)."""

    def __init__(self, enabled: bool):
        self.enabled, self.before = enabled, torch.backends.cudnn.benchmark

    def __enter__(self):
        if self.enabled:
            torch.backends.cudnn.benchmark = True

    def __exit__(self, *exc):
        torch.backends.cudnn.benchmark = self.before


def _with_oom_retry(make_run: Callable[[tuple[AxisPlan, AxisPlan]], Iterator[TileProgress]],
                    plans: tuple[AxisPlan, AxisPlan], smaller: Callable[[tuple[int, int]], tuple[AxisPlan, AxisPlan]],
                    outcome: PredictionResult) -> Iterator[TileProgress | PredictionResult]:
    """Run ``make_run(plans)``, then yield ``outcome``; on CUDA out-of-memory, warn and start again with tiles
    keeping half as many pixels per side (``smaller(step)``), until tiles cannot shrink."""
    while True:
        try:
            yield from make_run(plans)
            break
        except torch.cuda.OutOfMemoryError:
            step = tuple(max(1, math.ceil(p.step / 2)) for p in plans)
            retry = smaller(step)
            if all(r.tile_in >= p.tile_in for r, p in zip(retry, plans)):
                raise
            torch.cuda.empty_cache()
            plans = retry
            warnings.warn(f"CUDA ran out of memory; predicting again with {retry[0].step}×{retry[1].step} tiles",
                          RuntimeWarning, stacklevel=2)
    yield outcome
