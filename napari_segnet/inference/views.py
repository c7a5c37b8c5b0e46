"""Three views of a volume: the 2-D network predicts its YX, ZX and ZY planes and the probabilities are averaged.

A 2-D network sees a (Z, Y, X) volume slice by slice along Z; objects cut at a grazing angle, or thin along Z, are
then judged from one side only. Predicting the planes of the two side views too — the ZX planes (one per row y)
and the ZY planes (one per column x) — and averaging the three probability maps before the argmax lets every voxel
be judged from three sides. Anisotropic voxels: the side views are first resampled along Z to the Y/X spacing
(linear), so the network sees objects of the shape it was trained on, and their probabilities are resampled back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from skimage.transform import resize

from .tiling import PredictionResult, TileProgress

#: Progress units per view: a three-view prediction reports 3 × this.
UNITS = 1000


def check_views(views: int, spacing) -> tuple[float, float, float] | None:
    """``ValueError`` unless ``views`` is 1 or 3 and ``spacing`` is None or three positive numbers (z, y, x)."""
    if views not in (1, 3) or isinstance(views, bool):
        raise ValueError(f"views must be 1 (YX planes) or 3 (YX, ZX and ZY planes), got {views!r}")
    if spacing is None:
        return None
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or not all(s > 0 and np.isfinite(s) for s in spacing):
        raise ValueError(f"spacing must be three positive voxel sizes (z, y, x), got {spacing}")
    return spacing


def side_depth(n_slices: int, spacing) -> int:
    """Rows of the side views' planes of a volume of ``n_slices`` slices: resampled along Z to the Y/X voxel size
    (``spacing`` (z, y, x); None: isotropic, ``n_slices``)."""
    factor = 1.0 if spacing is None else spacing[0] / float(np.sqrt(spacing[1] * spacing[2]))
    return max(2, round(n_slices * factor)) if factor != 1.0 else n_slices


def three_views(predict: Callable[[np.ndarray], Iterator], volume: np.ndarray, spacing=None, want_labels=True,
                want_proba=False, labels_out=None) -> Iterator[TileProgress | PredictionResult]:
    """The prediction of a (Z, Y, X) ``volume`` from its three views, as a generator of progress and one
    :class:`PredictionResult`. ``predict(array)`` returns the plain (slice-wise) prediction generator of a (N, H, W)
    stack with probabilities; ``spacing`` (z, y, x) voxel sizes (None: isotropic)."""
    if volume.ndim != 3:
        raise ValueError(f"views=3 needs a single-channel (Z, Y, X) volume, got shape {volume.shape}")
    depth = side_depth(volume.shape[0], spacing)
    side = volume if depth == volume.shape[0] else resize(volume.astype(np.float32), (depth, *volume.shape[1:]),
                                                            order=1, preserve_range=True, anti_aliasing=False)
    views = ((volume, (0, 1, 2, 3)), (side.transpose(1, 0, 2), (0, 2, 1, 3)), (side.transpose(2, 0, 1), (0, 2, 3, 1)))
    total = None
    for i, (planes, back) in enumerate(views):
        proba = yield from _one_view(predict(np.ascontiguousarray(planes)), i)
        proba = proba.transpose(back)  # (C, Z or depth, Y, X)
        if proba.shape[1] != volume.shape[0]:
            proba = resize(proba, (proba.shape[0], *volume.shape), order=1, preserve_range=True, anti_aliasing=False)
        total = proba if total is None else total + proba
    proba = (total / 3).astype(np.float32)
    labels = None
    if want_labels:
        labels = proba.argmax(axis=0).astype(np.uint8 if proba.shape[0] <= 256 else np.int32)
        if labels_out is not None:
            labels_out[...] = labels
            labels = labels_out
    yield PredictionResult(labels, proba if want_proba else None)


def _one_view(steps: Iterator, index: int):
    """Forward one view's progress (as units of the whole three-view run); return its probabilities."""
    for item in steps:
        if isinstance(item, PredictionResult):
            return item.proba
        yield TileProgress(index * UNITS + int(UNITS * item.done / max(item.total, 1)), 3 * UNITS)
    raise RuntimeError("a view's prediction ended without a result")
