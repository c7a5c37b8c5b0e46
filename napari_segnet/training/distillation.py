"""Distillation from a pixel forest: in a new model's first rounds, the forest's confident predictions label the
pixels nobody reviewed, down-weighted, so the network learns from the whole image and not only its reviewed tiles.

The forest (:class:`napari_segnet.training.pixel_forest.PixelForest`) is fitted on exactly the reviewed pixels of the
training planes; its labels never replace a reviewed one. The network stays the model that is fine-tuned, saved
and exported: nothing of the forest is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..numerics.metrics import confusion_matrix, scores_from_confusion
from ..numerics.pixel_features import pixel_features
from .patches import TrainingImage
from .pixel_forest import PixelForest
from .settings import TrainSettings

#: An unreviewed pixel gets the forest's label when its top class probability is at least this: with 3 classes,
#: every pixel where the forest leans to one class; with 2, every pixel. Measured (benchmarks/hitl.py, README):
#: 0.45 against 0.6 lifted tissue 0.924 → 0.929 after 5 rounds, objects level (0.865 / 0.862); 0.8 lowered tissue
#: to 0.909 — the forest's less certain labels teach the network more than they mislead it, at their 0.25 weight.
CONFIDENCE = 0.45
#: Forest labels reach this far (px) around the reviewed pixels of a plane.
REACH = 256
#: At most this many pixels of windows (each plane's reviewed pixels' bounding box grown by REACH) get forest
#: labels in one round, planes in order; the rest learn from their reviewed pixels only (features and forest over
#: 2 Mpx take about 4 s on 2 cores, 170 MB).
MAX_FOREST_PIXELS = 2 * 1024 * 1024
#: Side (px) of the checkerboard squares that split the reviewed pixels into two folds (forest_cv_mean_iu): larger
#: than the objects of a typical image, so that the forest is seldom scored on an object it learnt from next door.
#: Measured (benchmarks/hitl.py, README): 32 against 16 lifted objects 0.862 → 0.868 after 5 rounds (the forest's
#: labels stop sooner where the network is ahead), tissue unchanged (0.929).
CV_BLOCK = 32


@dataclass(frozen=True)
class Distillation:
    """What distillation decided in one fine-tune; a version keeps it as ``details["distillation"]``
    (:meth:`to_dict`, JSON).

    distilled: whether the network also learnt forest labels on unreviewed pixels. why: the reason no forest was
    fitted at all (None when one was). forest_cv_mean_iu: the forest's two-fold cross-validated mean IU on the
    reviewed pixels (:func:`forest_cv_mean_iu`; NaN: too few pixels to score; None: no forest fitted).
    network_mean_iu: the network's mean IU on the same pixels before the run (None: no forest fitted).
    """

    distilled: bool
    why: str | None = None
    forest_cv_mean_iu: float | None = None
    network_mean_iu: float | None = None

    def to_dict(self) -> dict:
        """The JSON form: the fields that are set (a version's metadata stores it)."""
        return {k: v for k, v in (("forest_cv_mean_iu", self.forest_cv_mean_iu),
                                  ("network_mean_iu", self.network_mean_iu), ("distilled", self.distilled),
                                  ("why", self.why)) if v is not None}

    @classmethod
    def from_dict(cls, record: dict) -> Distillation:
        """The record of :meth:`to_dict` (as read back from a saved model's metadata)."""
        return cls(bool(record["distilled"]), record.get("why"), record.get("forest_cv_mean_iu"),
                   record.get("network_mean_iu"))


@dataclass(frozen=True, eq=False)
class ReviewedForest:
    """A round's pixel forest, fitted once for distillation and the blend (:mod:`~napari_segnet.training.blend`):
    the planes it saw with their windows (``used``), each window's features, labels and reviewed pixels, and the
    forest fitted on all of them (None, and ``why``, when it cannot be: no window fits, or one class only)."""

    used: list
    features: list
    labels: list
    reviewed: list
    forest: PixelForest | None
    why: str | None = None


def fit_reviewed_forest(items: list[TrainingImage], num_classes: int, seed: int = 0) -> ReviewedForest:
    """The pixel forest of the reviewed pixels of ``items`` (within :func:`windows`)."""
    used = [(it, w) for it, w in zip(items, windows(items)) if w]
    if not used:
        return ReviewedForest([], [], [], [], None, "the planes are too large for the pixel forest")
    features, labels, reviewed = forest_inputs(used)
    if len(np.unique(np.concatenate([lb[r] for lb, r in zip(labels, reviewed)]))) < 2:
        return ReviewedForest(used, features, labels, reviewed, None,
                              "the reviewed pixels show one class: nothing to tell apart")
    return ReviewedForest(used, features, labels, reviewed, PixelForest(features, labels, reviewed, num_classes, seed))


def distill(items: list[TrainingImage], settings: TrainSettings, num_classes: int, network_mean_iu: float,
            fitted: ReviewedForest | None = None) -> tuple[list[TrainingImage], Distillation]:
    """The training planes to learn from, and what was decided (for the version's record).

    A forest that has seen one class only would label every pixel with it: no forest labels then. While the
    forest is ahead — its cross-validated mean IU on the reviewed pixels (:func:`forest_cv_mean_iu`)
    above ``network_mean_iu``, the network's on the same pixels before this round — copies of ``items`` whose
    confident unreviewed pixels carry the forest's labels with ``settings.distill`` times their loss weight;
    reviewed pixels, their labels and weights unchanged. Otherwise ``items`` as they are. ``fitted``: the round's
    forest of these ``items`` (:func:`fit_reviewed_forest`; fitted here when None).
    """
    seed = settings.seed or 0
    fitted = fitted or fit_reviewed_forest(items, num_classes, seed)
    if fitted.forest is None:
        return items, Distillation(False, fitted.why)
    used, features, labels, reviewed = fitted.used, fitted.features, fitted.labels, fitted.reviewed
    forest_iu = _cv_mean_iu(features, labels, reviewed, num_classes, seed)
    record = Distillation(False, forest_cv_mean_iu=round(forest_iu, 4),
                          network_mean_iu=round(float(network_mean_iu), 4))
    if not forest_iu > network_mean_iu and not np.isnan(network_mean_iu):
        return items, record
    taught = {id(it): _taught(it, w, fitted.forest.probabilities(f), settings) for (it, w), f in zip(used, features)}
    return [taught.get(id(it), it) for it in items], replace(record, distilled=True)


def forest_cv_mean_iu(items: list[TrainingImage], num_classes: int, seed: int = 0) -> float:
    """Two-fold cross-validated mean IU of the pixel forest on the reviewed pixels of ``items``: the pixels are
    split by a checkerboard of CV_BLOCK² squares; each half is predicted by a forest fitted on the other.
    NaN when a half is empty or no plane is small enough."""
    used = [(it, w) for it, w in zip(items, windows(items)) if w]
    return _cv_mean_iu(*forest_inputs(used), num_classes, seed) if used else float("nan")


def forest_inputs(used: list[tuple[TrainingImage, tuple[slice, slice]]]) -> tuple[list, list, list]:
    """(features (y, x, F), labels, reviewed) of each plane's window."""
    return ([pixel_features(it.image[:, w[0], w[1]]) for it, w in used], [it.labels[w] for it, w in used],
            [it.reviewed[w] for it, w in used])


def _cv_mean_iu(features: list[np.ndarray], labels: list[np.ndarray], reviewed: list[np.ndarray],
                num_classes: int, seed: int) -> float:
    halves = [_checkerboard(r.shape, CV_BLOCK) for r in reviewed]
    n = np.zeros((num_classes, num_classes), np.int64)
    for fold in (False, True):
        train = [r & (h == fold) for r, h in zip(reviewed, halves)]
        test = [r & (h != fold) for r, h in zip(reviewed, halves)]
        if not any(t.any() for t in train) or not any(t.any() for t in test):
            return float("nan")
        forest = PixelForest(features, labels, train, num_classes, seed)
        for f, lb, t in zip(features, labels, test):
            n += confusion_matrix(forest.probabilities(f)[t].argmax(-1), lb[t], num_classes)
    return float(scores_from_confusion(n)["mean_iu"])


def windows(items: list[TrainingImage]) -> list[tuple[slice, slice] | None]:
    """Per plane, the slices of its reviewed pixels' bounding box grown by REACH; None once MAX_FOREST_PIXELS
    are used up."""
    windows, budget = [], MAX_FOREST_PIXELS
    for it in items:
        rows, cols = np.nonzero(it.reviewed.any(1))[0], np.nonzero(it.reviewed.any(0))[0]
        h, w = it.reviewed.shape
        window = (slice(max(rows[0] - REACH, 0), min(rows[-1] + REACH + 1, h)),
                  slice(max(cols[0] - REACH, 0), min(cols[-1] + REACH + 1, w)))
        area = (window[0].stop - window[0].start) * (window[1].stop - window[1].start)
        windows.append(window if area <= budget else None)
        budget -= area if area <= budget else 0
    return windows


def _taught(item: TrainingImage, window: tuple[slice, slice], proba: np.ndarray, settings: TrainSettings
            ) -> TrainingImage:
    """``item`` with forest labels on its confident unreviewed pixels inside ``window``; proba (y, x, K)."""
    confident = np.zeros_like(item.reviewed)
    confident[window] = proba.max(-1) >= CONFIDENCE
    confident &= ~item.reviewed
    labels = item.labels.copy()
    labels[window] = np.where(confident[window], proba.argmax(-1), labels[window])
    learn = item.reviewed | confident
    weights = settings.weight_map(labels, learn)
    weights[confident] *= settings.distill
    weights[item.reviewed] = item.weights[item.reviewed]
    return replace(item, labels=labels, weights=weights.astype(np.float32), reviewed=learn)


def _checkerboard(shape: tuple[int, int], block: int) -> np.ndarray:
    """bool (Y, X): True on the 'odd' squares of a checkerboard of ``block``² squares."""
    rows, cols = np.indices(shape)
    return ((rows // block + cols // block) % 2).astype(bool)
