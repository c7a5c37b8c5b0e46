"""Reviewed regions: the boxes of an image a person looked at, fixed where wrong and accepted elsewhere.

A person does not review a whole image, nor only the pixels they paint: they look at a region (the tile Next
shows, the part of the view they paint in, a box they draw), fix what is wrong there and accept the rest of that
region. A region is a box (plane, y0, x0, y1, x1) of the image; strokes mark the :data:`TILE`² tiles of a fixed
grid that they touch (the grid Next uses), so that one stroke accepts the tile around it and not the image.

A volume (Z, Y, X) can be corrected in any view (napari's transposed dims): a region's ``axis`` says which planes
its box lies in — 0 the (Y, X) planes (``plane`` = z), 1 the (Z, X) planes (``plane`` = y, rows z, columns x),
2 the (Z, Y) planes (``plane`` = x, rows z, columns y). A reviewed mask of a stack holds *view bits*
(:func:`view_bit`): a voxel reviewed on a (Y, X) plane has bit 1, on a (Z, X) plane bit 2, on a (Z, Y) plane bit
4, so that each view trains on planes of its own orientation. A bool mask is the same as bit 1 everywhere (the
masks of projects saved before views existed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

#: Side (px) of the grid tiles a stroke marks as reviewed, and of the tiles Next suggests.
TILE = 128


def view_bit(axis: int) -> int:
    """The bit of a reviewed mask that marks voxels reviewed on planes cut along ``axis`` (0, 1 or 2)."""
    return 1 << axis


def reviewed_on(mask: np.ndarray, axis: int = 0) -> np.ndarray:
    """bool of ``mask``'s shape: reviewed on planes cut along ``axis`` (a bool ``mask``: its True pixels for axis
    0, nothing for the side views)."""
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return mask if axis == 0 else np.zeros(mask.shape, bool)
    return (mask & view_bit(axis)) > 0


def as_view_bits(mask) -> np.ndarray:
    """A reviewed mask as uint8 view bits: integers 0…7 are view bits already; any other mask (bool, float, or
    integers beyond 7 such as a 0/255 image) means its non-zero pixels, reviewed on (Y, X) planes (bit 1), as masks
    meant before views existed."""
    mask = np.asarray(mask)
    if np.issubdtype(mask.dtype, np.integer) and mask.dtype != bool and (mask.size == 0 or 0 <= mask.min()
                                                                         and mask.max() <= 7):
        return mask.astype(np.uint8)
    return (mask != 0).astype(np.uint8)


@dataclass(frozen=True)
class Region:
    """A reviewed box: rows [y0, y1) and columns [x0, x1) of plane ``plane`` (0 for a 2-D image) of the planes cut
    along ``axis`` (0: (Y, X) planes; 1: (Z, X); 2: (Z, Y); see the module docstring)."""

    plane: int
    y0: int
    x0: int
    y1: int
    x1: int
    axis: int = 0

    def index(self, ndim: int) -> tuple:
        """Where the box lies in an array of ``ndim`` 2 (Y, X) or 3 (Z|T, Y, X)."""
        return plane_index(ndim, self.axis, self.plane, self.slices)

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def clipped(self, shape: tuple[int, int]) -> Region | None:
        """This box cut to a plane of ``shape`` (Y, X); None when nothing is left."""
        y0, x0 = max(self.y0, 0), max(self.x0, 0)
        y1, x1 = min(self.y1, shape[0]), min(self.x1, shape[1])
        return Region(self.plane, y0, x0, y1, x1, self.axis) if y1 > y0 and x1 > x0 else None


def tiles_touched(rows: tuple[int, int], cols: tuple[int, int], shape: tuple[int, int], plane: int = 0,
                  tile: int = TILE, axis: int = 0) -> list[Region]:
    """The grid tiles (clipped to a plane of ``shape``) that a stroke with bounding box rows [r0, r1), cols
    [c0, c1) in plane ``plane`` of the planes along ``axis`` touches; row-major."""
    found = []
    for y in range(max(rows[0], 0) // tile * tile, min(rows[1], shape[0]), tile):
        for x in range(max(cols[0], 0) // tile * tile, min(cols[1], shape[1]), tile):
            found.append(Region(plane, y, x, min(y + tile, shape[0]), min(x + tile, shape[1]), axis))
    return found


def regions_mask(shape: tuple[int, ...], regions: Iterable[Region]) -> np.ndarray:
    """Reviewed mask of ``shape`` ((Y, X), or (Z|T, Y, X) for a stack): bool for a 2-D image (True inside any
    region), uint8 view bits for a stack (each region sets its axis's :func:`view_bit`)."""
    stacked = len(shape) == 3
    mask = np.zeros(shape, np.uint8 if stacked else bool)
    for r in regions:
        if stacked and not 0 <= r.plane < shape[r.axis]:
            continue
        if stacked:
            mask[r.index(3)] |= view_bit(r.axis)
        else:
            mask[r.slices] = True
    return mask


def plane_shape(shape: tuple[int, ...], axis: int = 0) -> tuple[int, int]:
    """(rows, cols) of the planes cut along ``axis`` of an array of ``shape`` ((Y, X) or (Z|T, Y, X))."""
    if len(shape) == 2:
        return tuple(shape)
    rest = [n for a, n in enumerate(shape) if a != axis]
    return rest[0], rest[1]


def plane_index(ndim: int, axis: int, plane: int, region: tuple[slice, slice] = (slice(None), slice(None))
                ) -> tuple:
    """Where ``region`` (rows, cols) of plane ``plane`` cut along ``axis`` lies in an array of ``ndim`` 2 (Y, X: the
    region itself) or 3 (Z|T, Y, X)."""
    if ndim == 2:
        return tuple(region)
    index = list(region)
    index.insert(axis, plane)
    return tuple(index)


def reviewed_planes(mask: np.ndarray) -> list[tuple[int, int]]:
    """(axis, plane) of every plane of every view with a reviewed pixel in ``mask`` (bool or view bits; a 2-D
    mask: [(0, 0)] when any pixel is reviewed)."""
    mask = np.asarray(mask)
    if mask.ndim == 2:
        return [(0, 0)] if mask.any() else []
    found = []
    for axis in (0, 1, 2):
        on = reviewed_on(mask, axis)
        found += [(axis, int(i)) for i in np.nonzero(on.any(axis=tuple(a for a in range(3) if a != axis)))[0]]
    return found


def stroke_box(atoms, axis: int = 0) -> tuple[int, tuple[int, int], tuple[int, int]] | None:
    """(plane, (r0, r1), (c0, c1)): the bounding box of the pixels a napari paint event changed (its history
    ``atoms``: a masked atom has a ``slice_key``, an unmasked one is (indices, old values, new value)), in the
    planes cut along ``axis`` of a stack (the axis napari slices: the one not displayed); None when no pixel
    changed. The plane is the first index along ``axis`` (0 for 2-D)."""
    lo, hi = None, None
    for atom in atoms:
        if hasattr(atom, "slice_key"):
            key = atom.slice_key
            starts = np.array([k.start or 0 if isinstance(k, slice) else k for k in key])
            stops = np.array([k.stop if isinstance(k, slice) else k + 1 for k in key])
        else:
            indices = atom[0]
            if len(indices[0]) == 0:
                continue
            starts = np.array([np.min(i) for i in indices])
            stops = np.array([np.max(i) + 1 for i in indices])
        lo = starts if lo is None else np.minimum(lo, starts)
        hi = stops if hi is None else np.maximum(hi, stops)
    if lo is None:
        return None
    if len(lo) == 2:
        return 0, (int(lo[0]), int(hi[0])), (int(lo[1]), int(hi[1]))
    r, c = (a for a in range(3) if a != axis)
    return int(lo[axis]), (int(lo[r]), int(hi[r])), (int(lo[c]), int(hi[c]))


def view_region(center, canvas_size, zoom: float, scale, translate, shape: tuple[int, int], plane: int = 0
                ) -> Region | None:
    """The part of a plane of ``shape`` (Y, X) a 2-D view shows: camera ``center`` (world y, x), canvas size
    (height, width) in screen pixels at ``zoom`` screen pixels per world unit, the layer's ``scale`` and
    ``translate`` (y, x); None when the plane is out of sight."""
    center, half = np.asarray(center, float)[-2:], np.asarray(canvas_size, float) / (2 * zoom)
    scale, translate = np.asarray(scale, float)[-2:], np.asarray(translate, float)[-2:]
    lo = np.floor((center - half - translate) / scale + 0.5).astype(int)
    hi = np.ceil((center + half - translate) / scale + 0.5).astype(int)
    return Region(plane, int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])).clipped(shape)


def view_of(rows: slice, cols: slice, canvas_size, scale, translate, fill: float = 0.6
            ) -> tuple[np.ndarray, float]:
    """The camera that shows the tile ``rows`` × ``cols`` of a layer (its ``scale`` and ``translate`` (y, x))
    centred and filling ``fill`` of the canvas (height, width in screen pixels) along its longer side: (world
    centre (y, x), zoom in screen pixels per world unit). The inverse of :func:`view_region`, which gives the
    tile back (with the margin around it)."""
    scale, translate = np.asarray(scale, float)[-2:], np.asarray(translate, float)[-2:]
    center = translate + scale * np.array([(rows.start + rows.stop) / 2, (cols.start + cols.stop) / 2])
    side = max(rows.stop - rows.start, cols.stop - cols.start) * scale.max()
    return center, fill * min(canvas_size) / side
