"""The one simulated person of the benchmarks: which tile it corrects next, and how it paints a correction.

The Python-API benchmarks (``hitl``, ``multiclass``, ``hitl_shift``, ``live``) and the dock-driven one
(``dock_loop``) share these rules: the oracle looks at the not yet reviewed tile with the most wrong pixels
(:func:`worst_tile`), the dock's Next follows the model's uncertainty (:func:`next_tile`); a correction is either
the whole tile's truth (:func:`correct_tile`) or brush dabs on every wrong patch worth a stroke
(:func:`wrong_patches`), or, in live mode, bands along the boundary of wrongly predicted objects
(:func:`boundary_strokes`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from scipy import ndimage

#: A tile counts as reviewed (and is not looked at again) when more than this share of its pixels is.
REVIEWED_SHARE = 0.05
#: The person ignores wrong patches smaller than this (px): stray pixels along edges are not worth a stroke.
MIN_AREA = 12
#: A patch smaller than this (px) gets a dab on every pixel; larger ones on every other row and column.
DENSE_AREA = 40

Box = tuple[slice, slice]


def worst_tile(preds: Sequence[np.ndarray], truths: Sequence[np.ndarray], reviewed: Sequence[np.ndarray],
               tile: int = 128) -> tuple[int, Box] | None:
    """(image index, (rows, cols)) of the ``tile``² tile (a grid from the origin, clipped at the border) with the
    most wrong pixels, over images ``preds`` / ``truths`` (each (Y, X) class ids) and their reviewed masks ((Y, X)
    bool), skipping tiles whose reviewed share is above REVIEWED_SHARE; None when every tile is reviewed."""
    best, where = -1, None
    for i, (p, t, r) in enumerate(zip(preds, truths, reviewed, strict=True)):
        for y in range(0, t.shape[0], tile):
            for x in range(0, t.shape[1], tile):
                box = (slice(y, min(y + tile, t.shape[0])), slice(x, min(x + tile, t.shape[1])))
                if r[box].mean() > REVIEWED_SHARE:
                    continue
                wrong = int(np.count_nonzero(p[box] != t[box]))
                if wrong > best:
                    best, where = wrong, (i, box)
    return where


def next_tile(seg, images: Sequence[np.ndarray], reviewed: Sequence[np.ndarray], tile: int = 128
              ) -> tuple[int, Box] | None:
    """(image index, (rows, cols)) of the tile the dock's Next shows first: over all ``images`` (each (Y, X)), the
    unreviewed ``tile``² tile with the highest mean uncertainty (1 − max p) of ``seg`` (a Segmenter); no ground
    truth needed."""
    from napari_segnet.inference.suggest import suggest_tiles, uncertainty

    best, where = -1.0, None
    for i, (image, r) in enumerate(zip(images, reviewed, strict=True)):
        u = uncertainty(seg.predict_proba(image))
        tiles = suggest_tiles(u, r, tile, max_reviewed=REVIEWED_SHARE)
        if tiles and u[tiles[0]].mean() > best:
            best, where = float(u[tiles[0]].mean()), (i, tuple(tiles[0]))
    return where


def correct_tile(truths: Sequence[np.ndarray], reviewed: list[np.ndarray], where: tuple[int, Box]
                 ) -> list[np.ndarray]:
    """The person corrects every pixel of tile ``where`` (:func:`worst_tile`'s answer): it becomes reviewed (in
    place in ``reviewed``); returns the corrected labels of every image (truth on reviewed pixels, 0 elsewhere)."""
    i, box = where
    reviewed[i][box] = True
    return [np.where(r, t, 0) for t, r in zip(truths, reviewed, strict=True)]


def wrong_patches(pred: np.ndarray, truth: np.ndarray, box: Box, min_area: int = MIN_AREA
                  ) -> Iterator[tuple[int, int, int]]:
    """Brush dabs (y, x, true class), in image coordinates, that paint every wrong patch of ≥ ``min_area`` pixels
    inside ``box`` of ``pred`` (Y, X) with its class in ``truth`` (Y, X): every other row and column of a patch
    (a 3-px brush covers the gaps), every pixel of a patch under DENSE_AREA."""
    part, want = pred[box], truth[box]
    for cls in np.unique(want):
        wrong, _ = ndimage.label((part != want) & (want == cls))
        for i, sl in enumerate(ndimage.find_objects(wrong), start=1):
            comp = wrong[sl] == i
            if comp.sum() < min_area:
                continue
            ys, xs = np.nonzero(comp)
            keep = ((ys % 2) == 0) & ((xs % 2) == 0) | (comp.sum() < DENSE_AREA)
            for y, x in zip(ys[keep], xs[keep]):
                yield box[0].start + sl[0].start + int(y), box[1].start + sl[1].start + int(x), int(cls)


def boundary_strokes(pred: np.ndarray, truth: np.ndarray, width: int = 2) -> list[np.ndarray]:
    """Live mode's strokes: bool (Y, X) bands of ± ``width`` px along the boundary of each true object (connected
    component of ``truth > 0``) that ``pred`` gets wrong (IoU < 0.5), largest object first."""
    from skimage.morphology import disk

    objects, _ = ndimage.label(truth > 0)
    found = []
    for i, box in enumerate(ndimage.find_objects(objects), start=1):
        obj = objects == i
        iou = (obj & (pred > 0)).sum() / (obj | (pred > 0))[box].sum()
        if iou < 0.5:
            band = ndimage.binary_dilation(obj, disk(width)) & ~ndimage.binary_erosion(obj, disk(width))
            found.append((-obj.sum(), i, band))
    return [band for *_, band in sorted(found, key=lambda f: f[:2])]
