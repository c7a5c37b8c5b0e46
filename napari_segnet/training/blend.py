"""Whether a new version keeps a pixel forest beside its network, and with what weight.

A new model learns the user's classes from a few reviewed tiles; a pixel forest on the same pixels (ilastik's
method) is often as good from the first round, and the two make different errors. The round's forest is fitted
on the training pixels before the network trains (:func:`~napari_segnet.training.distillation.fit_reviewed_forest`);
after training, each weight of :data:`WEIGHTS` is scored on the guard's held-out reviewed squares
(:mod:`napari_segnet.training.guard`), which neither learnt from. The version keeps the forest at the best weight
(the smaller on a tie) only if that beats the network alone by more than the guard's tolerance: a forest costs time
at every prediction (features and 50 trees: a 1024² two-channel image took 2.8 s instead of 0.4 s on 2 cores), so
differences at the level of noise keep the network alone. The guard then compares the version, blended, with the
active one, blended as it was chosen. The weight is picked on those same squares, which favours the new version
a little; measured in the dock-level benchmark (README).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..inference.forest_blend import ForestBlend
from ..numerics.metrics import confusion_matrix
from ..numerics.pixel_features import window_features
from .guard import TOLERANCE, guard_scores
from .patches import TrainingImage
from .pixel_forest import PixelForest

#: The forest weights a round chooses from.
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class BlendChoice:
    """The weight a round chose and the held-out mean IU of every weight tried (``details["forest_blend"]``)."""

    weight: float
    mean_iu: dict[float, float]

    def to_dict(self) -> dict:
        return {"weight": self.weight, "mean_iu": {str(w): round(v, 4) for w, v in self.mean_iu.items()}}

    def note(self) -> str:
        """What the fine-tune's message adds."""
        network, best = self.mean_iu[0.0], self.mean_iu[self.weight]
        if self.weight == 0.0:
            return (f"; it predicts with the network alone (mixed with a pixel forest it scored no better on the "
                    f"held-out squares; the forest alone {self.mean_iu[1.0]:.3f})")
        return (f"; it predicts mixed with a pixel forest at weight {self.weight:g} (on the held-out squares: mixed "
                f"{best:.3f}, the network alone {network:.3f})")


def choose_blend(forest: PixelForest | None, judged: Sequence[TrainingImage], num_classes: int,
                 network_proba: Callable[[TrainingImage], np.ndarray]) -> tuple[ForestBlend | None, BlendChoice | None]:
    """(the forest to keep or None, the choice; None without a forest or held-out planes) for a version whose
    round fitted ``forest`` on its training pixels (:func:`~napari_segnet.training.distillation.fit_reviewed_forest`)
    and is judged on ``judged`` (their reviewed pixels: the held-out squares); ``network_proba(item)`` gives the new
    network's probabilities (K, Y, X) on a judged plane."""
    if forest is None or not judged:
        return None, None
    counts = {w: np.zeros((num_classes, num_classes), np.int64) for w in WEIGHTS}
    for it in judged:
        net = network_proba(it)[:, it.reviewed]
        trees = _forest_proba(forest, it)[:, it.reviewed]
        for w in WEIGHTS:
            counts[w] += confusion_matrix(((1 - w) * net + w * trees).argmax(0), it.labels[it.reviewed], num_classes)
    scores = {w: guard_scores(n)["mean_iu"] for w, n in counts.items()}
    best = max(WEIGHTS, key=lambda w: (scores[w], -w))
    if not scores[best] > scores[0.0] + TOLERANCE:  # a forest costs time at every prediction: only for a real gain
        best = 0.0
    choice = BlendChoice(best, scores)
    return (ForestBlend(forest.ensemble(), best) if best > 0 else None), choice


def _forest_proba(forest: PixelForest, item: TrainingImage) -> np.ndarray:
    """float32 (K, Y, X): the forest's probabilities on a judged plane, computed only in the bounding box of its
    judged pixels (zero elsewhere)."""
    rows, cols = np.nonzero(item.reviewed.any(1))[0], np.nonzero(item.reviewed.any(0))[0]
    (y0, y1), (x0, x1) = (int(rows[0]), int(rows[-1]) + 1), (int(cols[0]), int(cols[-1]) + 1)
    features = window_features(lambda ys, xs: item.image[:, ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1],
                               item.reviewed.shape, (y0, y1), (x0, x1))
    out = np.zeros((forest.num_classes, *item.reviewed.shape), np.float32)
    out[:, y0:y1, x0:x1] = np.moveaxis(forest.probabilities(features), -1, 0)
    return out
