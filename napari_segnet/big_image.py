"""Images larger than memory (OME-Zarr, multiscale, dask): predicted block by block into a zarr store.

The output is cut into blocks of whole tiles of the whole-image tiling (as :mod:`napari_segnet.distributed` does,
so each block's labels are those of a whole-image pass); the blocks that meet the visible region come first,
nearest its centre first, then the rest outward. Each block reads only its input window (with the tiles' halo),
writes its labels into the zarr store and is reported, so a viewer can show it at once. Pixels a person painted
(a ``painted`` mask, zarr or NumPy) keep their labels. Memory follows the block and the tile, never the image; the
normalisation is measured once on a strided sample of the whole image (or its coarsest level). Next ranks the
tiles of the part in view (:func:`uncertainty_in_view`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from .distributed import block_input, plan_blocks
from .inference.devices import pick_device
from .inference.suggest import uncertainty
from .inference.tile_plan import DEFAULT_MAX_CONTEXT, explicit_plan
from .inference.tiling import Region, tile_step
from .numerics.images import ImagePlanes
from .progress import Outcome, Progress, run

#: Output pixels per block side: each block is predicted, written and shown at once. The dock also predicts
#: tiles of this size, so that a block is one tile and the visible region costs few more pixels than it shows (the
#: shipped default on 2 shared cores: a 1024² region took 2.4 s with 512² tiles, 3.3 s with the tiles free memory
#: allows, 4.2–5.5 s with 384² or 256² ones, whose halo costs more).
BLOCK = 512
#: Chunk side (px) of the zarr stores made here.
CHUNK = 512
#: Pixels of image kept around each reviewed region of a big image when it joins the training set.
CONTEXT = 64
#: Next on a big image ranks the tiles of the part in view, at most this many pixels of it (zoom in for more):
#: the shipped default ranked a 1.4 Mpx view of a 20 000² OME-Zarr in 0.6 s on 2 cores (benchmarks/big_image.py).
MAX_RANKED = 2048 * 2048


@dataclass(frozen=True)
class BlockWritten(Progress):
    """``done`` of ``total`` blocks are written; the last one is ``region`` (a ``tiling.Region``)."""

    region: Region | None = field(default=None, compare=False)
    unit: ClassVar[str] = "block"


@dataclass(frozen=True)
class BigPredictionDone(Outcome):
    """Every block is written into ``labels`` (the zarr array given)."""

    labels: object = field(repr=False)


def full_resolution(data, multiscale: bool = False):
    """The full-resolution array of a napari layer's data: level 0 of a multiscale one (a list of levels), else
    the data itself."""
    return data[0] if multiscale or isinstance(data, (list, tuple)) else data


def is_big(data, multiscale: bool = False) -> bool:
    """Whether a layer's data is predicted block by block into a zarr store: a multiscale image, or any array
    that is not in memory (dask, zarr)."""
    return multiscale or not isinstance(full_resolution(data), np.ndarray)


def labels_store(shape: tuple[int, ...], num_classes: int, folder: str | Path | None = None,
                 name: str = "prediction"):
    """The zarr array (``shape``, uint8 or uint16) that a big image's labels are written into:
    ``folder/<name>.zarr`` (reopened, painted pixels and all, when it exists with this shape and dtype), or a new
    temporary folder when ``folder`` is None. Chunks of :data:`CHUNK` px (one plane of a stack)."""
    dtype = np.uint8 if num_classes <= 256 else np.uint16
    return _store(shape, dtype, folder, f"{name}.zarr")


def painted_store(labels):
    """The bool zarr array beside the zarr array ``labels`` (made by :func:`labels_store`) that records which
    pixels a person painted (reopened when it exists)."""
    path = Path(labels.store.root)
    return _store(tuple(labels.shape), bool, path.parent, path.stem + ".painted.zarr")


def _store(shape, dtype, folder, filename):
    import zarr

    folder = Path(tempfile.mkdtemp(prefix="napari-segnet-")) if folder is None else Path(folder)
    path = folder / filename
    if path.exists():
        array = zarr.open_array(str(path), mode="r+")
        if tuple(array.shape) == tuple(shape) and array.dtype == np.dtype(dtype):
            return array
        raise ValueError(f"{path} holds an array of shape {array.shape} ({array.dtype}), not {shape}: move it "
                         "aside or choose another project folder")
    chunks = tuple(1 if i < len(shape) - 2 else min(n, CHUNK) for i, n in enumerate(shape))
    folder.mkdir(parents=True, exist_ok=True)
    return zarr.open_array(str(path), mode="w", shape=shape, chunks=chunks, dtype=dtype, fill_value=0)


def predict_blocks(seg, image, out, *, first: tuple | None = None, painted=None, reviewed: list = (),
                   block: int = BLOCK, tile_shape=None, device=None, channel_axis: int | None = None,
                   max_context: int = DEFAULT_MAX_CONTEXT, overview=None
                   ) -> Iterator[BlockWritten | BigPredictionDone]:
    """Check the inputs, then return a generator that predicts ``image`` (any lazily read array ``predict``
    takes; 2-D or a stack) into ``out`` (a zarr or NumPy array of its spatial shape, (Y, X) or (Z|T, Y, X)) block
    by block, yielding :class:`BlockWritten` after each block and :class:`BigPredictionDone` last.

    ``first``: (plane, (r0, r1), (c0, c1)), the visible region, whose blocks go first (nearest its centre
    first); ``painted``: bool array of ``out``'s shape, True where a person painted, and ``reviewed``: regions
    (``training.regions.Region`` of (Y, X) planes) they accepted — both keep their labels; ``block``: output px per
    block side (rounded to whole tiles); ``overview``: a smaller copy of the image with the same axes (the coarsest
    level of a multiscale image) whose intensities stand for the whole image's — the normalisation's sample is
    taken from it instead of a strided sample of ``image``, which decompresses every chunk once before the first
    block (7 s of a 20 000² OME-Zarr here). Percentiles of a pyramid level are close to, not equal to, the full
    image's: the same image predicted whole may differ slightly."""
    planes = ImagePlanes(image, seg.in_channels, channel_axis)
    spatial = ((planes.n_planes,) if planes.plane_axis is not None else ()) + planes.shape
    if tuple(out.shape) != spatial:
        raise ValueError(f"the output of shape {tuple(out.shape)} does not fit the image's {spatial}")
    if painted is not None and tuple(painted.shape) != spatial:
        raise ValueError(f"the painted mask of shape {tuple(painted.shape)} does not fit the image's {spatial}")
    if not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be a positive number of pixels, got {block!r}")
    norm = norm_parameters(seg, planes, overview, channel_axis)
    step = tile_step(seg.net, tile_shape, planes.shape, pick_device(device))
    steps = tuple(explicit_plan(seg.net, n, k, max_context).step for n, k in zip(planes.shape, step))
    blocks = visible_first(plan_blocks(planes.n_planes, planes.shape, steps, block), first)
    kept = _Kept(painted, [r for r in reviewed if r.axis == 0], out.ndim == 3)
    return _blocks(seg, image, out, blocks, kept, steps, norm, device, channel_axis, max_context)


def norm_parameters(seg, planes: ImagePlanes, overview=None, channel_axis: int | None = None) -> tuple:
    """The normalisation's (offset, scale) of a big image (``planes``): from a strided sample of it, or of its
    ``overview`` (see :func:`predict_blocks`)."""
    sampled = planes if overview is None else ImagePlanes(overview, seg.in_channels, channel_axis)
    if sampled.channels != planes.channels:
        raise ValueError(f"the overview has {sampled.channels} channels, the image {planes.channels}")
    return seg.normalization.parameters(sampled)


def uncertainty_in_view(seg, image, shown: tuple, *, overview=None, channel_axis: int | None = None,
                        tile: int = 128) -> tuple[np.ndarray, tuple[int, int]]:
    """(1 − max p, float32 (h, w); its origin (row, col)) of the part ``shown`` = (plane, (r0, r1), (c0, c1)) of a
    big ``image``, grown to whole ``tile``-grid tiles of the image, predicted as the blocks are (the same
    normalisation, the whole image's tiling): what Next ranks. ``ValueError`` over :data:`MAX_RANKED` pixels."""
    plane, (r0, r1), (c0, c1) = shown
    planes = ImagePlanes(image, seg.in_channels, channel_axis)
    (h, w) = planes.shape
    r0, c0 = r0 // tile * tile, c0 // tile * tile
    r1, c1 = min(-(-r1 // tile) * tile, h), min(-(-c1 // tile) * tile, w)
    if (r1 - r0) * (c1 - c0) > MAX_RANKED:
        raise ValueError(f"zoom in: Next ranks the tiles of the part in view of an image predicted block by block, "
                         f"at most {MAX_RANKED:,} pixels ({r1 - r0} × {c1 - c0} are in view)")
    region = Region((plane, plane + 1), (r0, r1), (c0, c1))
    result = run(seg.predict_steps(image, BLOCK, channel_axis=channel_axis, want_labels=False, want_proba=True,
                                   norm_parameters=norm_parameters(seg, planes, overview, channel_axis),
                                   region=region))
    return uncertainty(result.proba.reshape(seg.num_classes, r1 - r0, c1 - c0)), (r0, c0)


class _Kept:
    """Pixels a prediction must not change, read block by block: painted ones and those of reviewed regions."""

    def __init__(self, painted, regions: list, stacked: bool):
        self.painted, self.regions, self.stacked = painted, regions, stacked

    def __getitem__(self, index: tuple) -> np.ndarray:
        """bool of the block at ``index`` ((planes,) rows, cols slices)."""
        shape = tuple(s.stop - s.start for s in index)
        keep = np.zeros(shape, bool) if self.painted is None else np.array(self.painted[index], bool)
        planes = index[0] if self.stacked else slice(0, 1)
        rows, cols = index[-2:]
        for r in self.regions:
            if planes.start <= r.plane < planes.stop:
                at = ((r.plane - planes.start,) if self.stacked else ()) + (
                    slice(max(r.y0 - rows.start, 0), max(r.y1 - rows.start, 0)),
                    slice(max(r.x0 - cols.start, 0), max(r.x1 - cols.start, 0)))
                keep[at] = True
        return keep


def _blocks(seg, image, out, blocks, kept, steps, norm, device, channel_axis, max_context):
    stacked = out.ndim == 3
    for i, region in enumerate(blocks):
        window = block_input(seg, image, region, steps, channel_axis, max_context)
        result = run(seg.predict_steps(window, steps, device, channel_axis, max_context=max_context,
                                       norm_parameters=norm, region=region))
        index = ((slice(*region.planes),) if stacked else ()) + (slice(*region.rows), slice(*region.cols))
        labels = result.labels.reshape(tuple(s.stop - s.start for s in index)).astype(out.dtype)
        keep = kept[index]
        if keep.any():
            labels = np.where(keep, np.asarray(out[index]), labels)
        out[index] = labels
        yield BlockWritten(i + 1, len(blocks), region)
    yield BigPredictionDone(out)


def visible_first(blocks: list[Region], first: tuple | None) -> list[Region]:
    """``blocks`` with those meeting ``first`` ((plane, (r0, r1), (c0, c1))) in front, each group ordered by the
    distance of the block's centre to the region's centre (its plane first); unchanged when ``first`` is None."""
    if first is None:
        return list(blocks)
    plane, rows, cols = first
    centre = np.array([(rows[0] + rows[1]) / 2, (cols[0] + cols[1]) / 2])

    def key(b: Region):
        meets = b.planes[0] <= plane < b.planes[1] and b.rows[0] < rows[1] and rows[0] < b.rows[1] \
            and b.cols[0] < cols[1] and cols[0] < b.cols[1]
        mid = np.array([(b.rows[0] + b.rows[1]) / 2, (b.cols[0] + b.cols[1]) / 2])
        return (not meets, abs(b.planes[0] - plane), float(np.hypot(*(mid - centre))))

    return sorted(blocks, key=key)


def reviewed_crops(image, labels, regions, in_channels: int = 1, channel_axis: int | None = None,
                   margin: int = CONTEXT) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """The corrections of a big image as small training-set entries: for each group of reviewed ``regions``
    (``training.regions.Region`` of its (Y, X) planes; overlapping boxes grown by ``margin`` px are merged) a
    tuple (name, image crop, labels crop (h, w), reviewed mask crop (h, w) bool). Only the crops are read. The
    crops keep the image's layout without its stack axis (a plane of (Z, Y, X) is (Y, X)); each is normalised on
    its own when it trains (``margin`` px of context give its percentiles the surroundings)."""
    planes = ImagePlanes(image, in_channels, channel_axis)
    if any(r.axis != 0 for r in regions):
        raise ValueError("big images are corrected on their (Y, X) planes: reviewed boxes of other views of a "
                         "big stack are not learnt from yet")
    from .training.training_set import merge_boxes

    found = []
    for plane in sorted({r.plane for r in regions}):
        mine = [c for r in regions if r.plane == plane and (c := r.clipped(planes.shape)) is not None]
        for rows, cols in merge_boxes([r.slices for r in mine], planes.shape, margin):
            index: list = [slice(None)] * np.ndim(image)
            if planes.plane_axis is not None:
                index[planes.plane_axis] = plane
            index[planes.y_axis], index[planes.x_axis] = rows, cols
            reviewed = np.zeros((rows.stop - rows.start, cols.stop - cols.start), bool)
            for r in mine:
                reviewed[max(r.y0 - rows.start, 0):max(r.y1 - rows.start, 0),
                         max(r.x0 - cols.start, 0):max(r.x1 - cols.start, 0)] = True
            label_index = ((plane,) if planes.plane_axis is not None else ()) + (rows, cols)
            name = (f"p{plane} " if planes.plane_axis is not None else "") + \
                f"y{rows.start}-{rows.stop} x{cols.start}-{cols.stop}"
            found.append((name, np.asarray(image[tuple(index)]), np.asarray(labels[label_index]), reviewed))
    return found
