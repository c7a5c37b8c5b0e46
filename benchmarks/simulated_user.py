"""The simulated user of the human-in-the-loop benchmarks: which tile it corrects next."""

from __future__ import annotations

import numpy as np


def worst_tile(preds, truths, reviewed, tile: int) -> tuple[int, int, int]:
    """(image index, y, x) of the unreviewed ``tile``² tile (clipped at the border) with the most wrong pixels,
    over images ``preds`` / ``truths`` (each (Y, X)) with their reviewed masks (a tile counts as reviewed when its
    first pixel is)."""
    best, where = -1, None
    for i, (p, t, r) in enumerate(zip(preds, truths, reviewed)):
        for y in range(0, t.shape[0], tile):
            for x in range(0, t.shape[1], tile):
                if r[y, x]:
                    continue
                wrong = int(np.count_nonzero(p[y : y + tile, x : x + tile] != t[y : y + tile, x : x + tile]))
                if wrong > best:
                    best, where = wrong, (i, y, x)
    return where
