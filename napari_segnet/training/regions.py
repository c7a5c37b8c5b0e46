"""Reviewed regions: the boxes of an image a person looked at, fixed where wrong and accepted elsewhere.

A person does not review a whole image, nor only the pixels they paint: they look at a region (the tile Next
shows, the part of the view they paint in, a box they draw), fix what is wrong there and accept the rest of that
region. A region is a box (plane, y0, x0, y1, x1) of the image; strokes mark the :data:`TILE`² tiles of a fixed
grid that they touch (the grid Next uses), so that one stroke accepts the tile around it and not the image.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

#: Side (px) of the grid tiles a stroke marks as reviewed, and of the tiles Next suggests.
TILE = 128


@dataclass(frozen=True)
class Region:
    """A reviewed box: rows [y0, y1) and columns [x0, x1) of plane ``plane`` (0 for a 2-D image)."""

    plane: int
    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def clipped(self, shape: tuple[int, int]) -> Region | None:
        """This box cut to a plane of ``shape`` (Y, X); None when nothing is left."""
        y0, x0 = max(self.y0, 0), max(self.x0, 0)
        y1, x1 = min(self.y1, shape[0]), min(self.x1, shape[1])
        return Region(self.plane, y0, x0, y1, x1) if y1 > y0 and x1 > x0 else None


def tiles_touched(rows: tuple[int, int], cols: tuple[int, int], shape: tuple[int, int], plane: int = 0,
                  tile: int = TILE) -> list[Region]:
    """The grid tiles (clipped to a plane of ``shape``) that a stroke with bounding box rows [r0, r1), cols
    [c0, c1) touches; row-major."""
    found = []
    for y in range(max(rows[0], 0) // tile * tile, min(rows[1], shape[0]), tile):
        for x in range(max(cols[0], 0) // tile * tile, min(cols[1], shape[1]), tile):
            found.append(Region(plane, y, x, min(y + tile, shape[0]), min(x + tile, shape[1])))
    return found


def regions_mask(shape: tuple[int, ...], regions: Iterable[Region]) -> np.ndarray:
    """bool of ``shape`` ((Y, X), or (Z|T, Y, X) for a stack): True inside any region."""
    mask = np.zeros(shape, bool)
    stacked = len(shape) == 3
    for r in regions:
        if stacked and not 0 <= r.plane < shape[0]:
            continue
        mask[((r.plane,) if stacked else ()) + r.slices] = True
    return mask


def stroke_box(atoms) -> tuple[int, tuple[int, int], tuple[int, int]] | None:
    """(plane, (r0, r1), (c0, c1)): the bounding box of the pixels a napari paint event changed (its history
    ``atoms``: a masked atom has a ``slice_key``, an unmasked one is (indices, old values, new value)); None when
    no pixel changed. The plane is the first stack index (0 for 2-D)."""
    lo, hi, plane = None, None, 0
    for atom in atoms:
        if hasattr(atom, "slice_key"):
            key = atom.slice_key
            starts = np.array([k.start or 0 if isinstance(k, slice) else k for k in key[-2:]])
            stops = np.array([k.stop if isinstance(k, slice) else k + 1 for k in key[-2:]])
            plane = _plane(key[:-2])
        else:
            indices = atom[0]
            if len(indices[0]) == 0:
                continue
            starts = np.array([np.min(i) for i in indices[-2:]])
            stops = np.array([np.max(i) + 1 for i in indices[-2:]])
            plane = int(np.min(indices[0])) if len(indices) > 2 else 0
        lo = starts if lo is None else np.minimum(lo, starts)
        hi = stops if hi is None else np.maximum(hi, stops)
    if lo is None:
        return None
    return plane, (int(lo[0]), int(hi[0])), (int(lo[1]), int(hi[1]))


def _plane(key) -> int:
    if not key:
        return 0
    first = key[0]
    return int(first.start or 0) if isinstance(first, slice) else int(first)


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
