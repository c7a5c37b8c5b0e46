"""The guard: a quarter of the reviewed pixels is held out of training, and a new version becomes active only if it
is not worse than the active one there.

Why held out: the labels a person accepts in a reviewed region are the old version's own prediction wherever they
did not paint, and the painted pixels are exactly where the old version was wrong. Scored on the pixels a version
was trained on, the old version wins on the accepted ones by construction and the new one on the painted ones.
Held-out pixels are judged alike for both: neither version learnt their labels.

Which pixels: squares of :data:`BLOCK` px on a fixed grid of the *image* (not of the crop a round trains on), the
odd rows of squares crossed with the odd columns — a quarter of every reviewed region, the same squares in every
round, so that no version of a session ever trains on them and every later round can compare on them again. Pixels
painted there stay painted in the layer; they judge versions instead of training them. Within those squares, the
pixels within :data:`BAND` px of a boundary between classes do not judge: where a person accepted a region, its
boundaries are the old version's own prediction (nobody repaints a contour one pixel off), so scoring them would
favour the old version by construction again. Both versions are judged on the rest: which class each object and
region is, the errors a person corrects.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.segmentation import find_boundaries

from ..numerics.metrics import scores_from_confusion

#: Side (px) of the held-out squares: larger than a typical object, so that a version is seldom judged on the
#: other half of an object it learnt from next door.
BLOCK = 32
#: Pixels this close (px) to a boundary between classes of the labels are left out of the judging.
BAND = 2
#: Fewer held-out pixels than this cannot judge a version: the run trains on every reviewed pixel and is accepted
#: (its message says so).
MIN_HELD_OUT = 256
#: A version is kept inactive only if its mean IU on the held-out pixels is more than this below the active one's:
#: differences at the level of noise never keep a person stuck on an old version. One number, no test of
#: significance: an earlier rule also asked for the drop to exceed 2 bootstrap standard errors over the held-out
#: squares, and in the dock-level benchmark (benchmarks/dock_loop.py, a new 3-class model, 15 rounds) it activated
#: 4 versions the squares showed worse by 0.011–0.040, all of them worse on the held-out frames too; of the 9 rounds
#: whose squares showed a drop > 0.005, none was better on the held-out frames by more than 0.006.
TOLERANCE = 0.005


def held_out(shape: tuple[int, int], origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """bool (Y, X): True on the held-out squares, for an array of ``shape`` whose first pixel sits at ``origin``
    (row, col) of its image."""
    rows = ((np.arange(shape[0]) + origin[0]) // BLOCK) % 2 == 1
    cols = ((np.arange(shape[1]) + origin[1]) // BLOCK) % 2 == 1
    return rows[:, None] & cols[None, :]


def split(reviewed: np.ndarray, origin: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """(train, held out): the reviewed pixels (Y, X) bool off and on the held-out squares (:func:`held_out`)."""
    guard = held_out(reviewed.shape, origin)
    return reviewed & ~guard, reviewed & guard


def without_boundaries(labels: np.ndarray, judged: np.ndarray) -> np.ndarray:
    """``judged`` (Y, X) bool less the pixels within :data:`BAND` px of a boundary between classes of ``labels``."""
    near = ndimage.binary_dilation(find_boundaries(labels, mode="inner"), iterations=BAND) if BAND else False
    return judged & ~near


def guard_scores(confusion: np.ndarray) -> dict:
    """FCN scores of a confusion matrix (C, C) of held-out pixels, the means taken over the classes present in their
    labels only: a class nobody reviewed here does not swing the mean IU from 1 to ½ on a few false pixels (they
    still cost the IU of the class they belong to)."""
    scores = scores_from_confusion(confusion)
    scores["mean_iu"] = _present_mean_iu(np.asarray(confusion))
    return scores


def _present_mean_iu(n: np.ndarray) -> float:
    """Mean IU of a confusion matrix (C, C) over the classes present in its labels (rows)."""
    diag, truth, pred = np.diag(n), n.sum(axis=1), n.sum(axis=0)
    present = truth > 0
    if not present.any():
        return float("nan")
    return float(np.mean(diag[present] / (truth + pred - diag)[present]))


def accepts(before: dict, after: dict, tolerance: float = TOLERANCE) -> bool:
    """Whether the new version (``after``) may become active: its mean IU is at most ``tolerance`` below the active
    version's (``before``); with nothing to compare (NaN) it is accepted. A Python bool (it is logged as JSON)."""
    return bool(not after["mean_iu"] - before["mean_iu"] < -tolerance)


def verdict(version: int, parent: int, accepted: bool, before: dict | None, after: dict | None, guard: str) -> str:
    """The message of a finished fine-tune, in plain words (the dock shows it as it is)."""
    where = {"validation": "on your validation images",
             "held-out reviewed pixels": "on the quarter of your reviewed regions kept out of training"}.get(guard)
    if before is None or after is None or where is None:
        return (f"version {version} is active (trained from version {parent}); too few reviewed pixels were left to "
                f"compare it with version {parent}, which stays available")
    scores = f"mean IU {after['mean_iu']:.3f} against {before['mean_iu']:.3f} for version {parent} {where}"
    if accepted:
        return f"version {version} is active (trained from version {parent}): {scores}"
    return f"version {version} was kept inactive: {scores}, so version {parent} stays active ({version} is kept)"
