"""Where to correct next: the unreviewed tiles where the model is least certain, most uncertain first."""

from __future__ import annotations

import numpy as np


def uncertainty(proba: np.ndarray) -> np.ndarray:
    """1 − max p: float32 (*spatial) from class probabilities (C, *spatial) — the dock's uncertainty layer."""
    return (1 - np.asarray(proba).max(axis=0)).astype(np.float32)


def suggest_tiles(uncertainty_map: np.ndarray, reviewed: np.ndarray | None = None, tile: int = 128,
                  max_reviewed: float = 0.05, skip: set | frozenset = frozenset()) -> list[tuple[slice, slice]]:
    """Tiles of a (Y, X) uncertainty map to correct next, most uncertain first.

    The map is cut into ``tile``×``tile`` tiles (those at the right/bottom edge are smaller); a tile's score is its
    mean uncertainty. Tiles with more than ``max_reviewed`` of their pixels reviewed (``reviewed``: (Y, X) bool)
    and tiles in ``skip`` (as (row start, col start) pairs, e.g. those already visited) are left out. Returns
    (rows, cols) slice pairs; ties keep reading order.
    """
    u = np.asarray(uncertainty_map, dtype=np.float64)
    if u.ndim != 2:
        raise ValueError(f"the uncertainty map must be 2-D (Y, X), got shape {u.shape}")
    if not (isinstance(tile, int | np.integer) and tile >= 1):
        raise ValueError(f"tile must be a positive integer, got {tile!r}")
    reviewed = np.zeros(u.shape, bool) if reviewed is None else np.asarray(reviewed, bool)
    if reviewed.shape != u.shape:
        raise ValueError(f"reviewed mask of shape {reviewed.shape} does not match the map's {u.shape}")
    found = []
    for y in range(0, u.shape[0], tile):
        for x in range(0, u.shape[1], tile):
            box = (slice(y, min(y + tile, u.shape[0])), slice(x, min(x + tile, u.shape[1])))
            if (y, x) in skip or reviewed[box].mean() > max_reviewed:
                continue
            found.append((-u[box].mean(), len(found), box))
    return [box for *_, box in sorted(found, key=lambda f: f[:2])]
