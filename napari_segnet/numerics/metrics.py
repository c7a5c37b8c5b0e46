"""Segmentation metrics: the FCN paper's from a confusion matrix, and object scores from matched instances."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from .._validation import check_labels, check_same_shape
from .instances import label_instances, sequential_ids, unique_per_slice

#: IoU thresholds of ``object_scores`` by default.
THRESHOLDS = (0.5, 0.75, 0.9)


def confusion_matrix(pred, target, num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """n (num_classes, num_classes) int64: n[i, j] = pixels of true class i predicted as class j.

    ``pred`` and ``target`` are integer arrays of the same shape (any ndim); pixels whose target equals
    ``ignore_index`` are not counted.
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    target = check_labels(target, "target", num_classes, ignore_index=ignore_index)
    pred = check_labels(pred, "pred", num_classes)
    check_same_shape(pred, target, "pred", "target")
    keep = slice(None) if ignore_index is None else target != ignore_index
    t, p = target[keep].astype(np.int64).ravel(), pred[keep].astype(np.int64).ravel()
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def scores_from_confusion(n: np.ndarray) -> dict[str, object]:
    """The four FCN metrics and per-class IU from a confusion matrix ``n`` (C, C).

    t_i = Σ_j n_ij (true pixels of class i); IU_i = n_ii / (t_i + Σ_j n_ji − n_ii).
    Classes absent from both truth and prediction have IU = NaN and are left out of the means; a class
    predicted but absent from the truth has IU 0 (it counts) and no accuracy (it is left out of mean accuracy).

    Returns a dict: ``pixel_accuracy``, ``mean_accuracy``, ``mean_iu``, ``frequency_weighted_iu`` (floats),
    ``iu`` (float (C,)) and ``confusion`` (int64 (C, C)). Pixel scores stay a dict on purpose (object scores are
    a record, :class:`ObjectScores`): every saved model's version history stores them as this JSON object
    (``Version.scores``, ``parent_scores``) and the guard (:mod:`napari_segnet.training.guard`) extends them
    with its own keys, so the one shape serves memory, files and the guard.
    """
    n = np.asarray(n, dtype=np.float64)
    diag, t, predicted = np.diag(n), n.sum(axis=1), n.sum(axis=0)
    union = t + predicted - diag
    with np.errstate(invalid="ignore", divide="ignore"):
        iu = np.where(union > 0, diag / union, np.nan)
        acc = np.where(t > 0, diag / t, np.nan)
    total = t.sum()
    present = union > 0
    return {
        "pixel_accuracy": float(diag.sum() / total) if total else float("nan"),
        "mean_accuracy": float(np.nanmean(acc)) if (t > 0).any() else float("nan"),
        "mean_iu": float(np.nanmean(iu)) if present.any() else float("nan"),
        "frequency_weighted_iu": float((t[present] * iu[present]).sum() / total) if total else float("nan"),
        "iu": iu,
        "confusion": n.astype(np.int64),
    }


def segmentation_scores(pred, target, num_classes: int, ignore_index: int | None = None) -> dict[str, object]:
    """Pixel accuracy, mean accuracy, mean IU, frequency-weighted IU and per-class IU (FCN paper, §5).

    pred, target: integer class ids of the same shape. Returns a dict with those keys (floats; ``iu`` a
    (num_classes,) array with NaN for classes absent from both) plus ``confusion`` (num_classes, num_classes).
    """
    return scores_from_confusion(confusion_matrix(pred, target, num_classes, ignore_index))


def iou_pairs(pred_instances: np.ndarray, true_instances: np.ndarray):
    """IoU of every overlapping (true, pred) object pair, without a dense matrix.

    pred_instances, true_instances: non-negative integer ids of the same shape (0 = background). Objects are
    renumbered 0…n−1 in order of their ids. Returns (true_index, pred_index, iou) 1-D arrays over the
    overlapping pairs, n_true and n_pred. Cost: O(pixels) for ids up to a few × the pixel count.
    """
    t, n_true = sequential_ids(true_instances)
    p, n_pred = sequential_ids(pred_instances)
    t, p = t.ravel(), p.ravel()
    true_area = np.bincount(t, minlength=n_true + 1)
    pred_area = np.bincount(p, minlength=n_pred + 1)
    both = (t > 0) & (p > 0)
    ti, pi, overlap = count_pairs(t[both], p[both], n_true + 1, n_pred + 1)
    iou = overlap / (true_area[ti] + pred_area[pi] - overlap)
    return ti - 1, pi - 1, iou, n_true, n_pred


def count_pairs(a: np.ndarray, b: np.ndarray, n_a: int, n_b: int):
    """(a values, b values, counts) of the distinct pairs (a[i], b[i]) of two 1-D int arrays with values in
    [0, n_a) and [0, n_b): by ``np.bincount`` when n_a·n_b is small, else by ``np.unique``."""
    keys = a.astype(np.int64) * n_b + b
    if n_a * n_b <= 4 * a.size + 65536:
        counts = np.bincount(keys, minlength=n_a * n_b)
        keys = np.flatnonzero(counts)
        counts = counts[keys]
    else:
        keys, counts = np.unique(keys, return_counts=True)
    return keys // n_b, keys % n_b, counts


def match_objects(true_index, pred_index, iou, threshold: float) -> np.ndarray:
    """IoUs of the matched pairs (1-D): the one-to-one matching with IoU ≥ ``threshold`` of most pairs, and
    among those the highest total IoU (stardist's ``matching``).

    Candidate pairs (IoU ≥ threshold) form a bipartite graph; each of its connected components is solved by
    ``scipy.optimize.linear_sum_assignment`` with stardist's cost −[IoU ≥ t] − IoU/(2n). For t > 0.5 every
    component is a single pair (an object can overlap only one other by more than half their union), so
    ~1000 objects match in milliseconds.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    keep = iou >= threshold
    ti, pi, iou = true_index[keep], pred_index[keep], iou[keep]
    if ti.size == 0:
        return np.zeros(0)
    t_nodes, t_local = np.unique(ti, return_inverse=True)
    p_nodes, p_local = np.unique(pi, return_inverse=True)
    n_t = len(t_nodes)
    graph = coo_matrix((np.ones(ti.size), (t_local, n_t + p_local)), shape=(n_t + len(p_nodes),) * 2)
    _, component = connected_components(graph, directed=False)
    edge_component = component[t_local]
    sizes = np.bincount(edge_component)
    single = sizes[edge_component] == 1
    matched = [iou[single]]
    for c in np.unique(edge_component[~single]):
        e = edge_component == c
        rows, r = np.unique(t_local[e], return_inverse=True)
        cols, k = np.unique(p_local[e], return_inverse=True)
        n = min(len(rows), len(cols))
        cost = np.zeros((len(rows), len(cols)))
        cost[r, k] = -1 - iou[e] / (2 * n)
        a, b = linear_sum_assignment(cost)
        chosen = cost[a, b] < 0
        score = np.zeros_like(cost)
        score[r, k] = iou[e]
        matched.append(score[a[chosen], b[chosen]])
    return np.concatenate(matched)


@dataclass(frozen=True)
class ObjectScores:
    """Object detection scores at one IoU ``threshold``, from a one-to-one matching (:func:`object_scores`).

    Counts are objects: n_pred, n_true, tp (matched pairs), fp = n_pred − tp, fn = n_true − tp. Ratios in [0, 1]:
    precision tp/(tp+fp), recall tp/(tp+fn), f1 2tp/(2tp+fp+fn), average_precision tp/(tp+fp+fn) (the 2018 Data
    Science Bowl's AP at one threshold), mean_matched_iou (mean IoU of the matched pairs); a ratio whose
    denominator is 0 is 0, as in stardist. ``to_dict()`` is its JSON form.
    """

    threshold: float
    n_pred: int
    n_true: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    average_precision: float
    mean_matched_iou: float

    @classmethod
    def of(cls, threshold: float, n_pred: int, n_true: int, tp: int, matched_iou_sum: float) -> ObjectScores:
        """The scores of ``tp`` matches among ``n_pred`` predicted and ``n_true`` true objects whose IoUs sum to
        ``matched_iou_sum``."""
        fp, fn = n_pred - tp, n_true - tp
        return cls(float(threshold), int(n_pred), int(n_true), int(tp), int(fp), int(fn), _ratio(tp, tp + fp),
                   _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn), _ratio(tp, tp + fp + fn),
                   _ratio(matched_iou_sum, tp))

    @classmethod
    def pooled(cls, scores: Sequence[ObjectScores]) -> ObjectScores:
        """The scores of several images together (counts summed, matched IoU averaged over all matches); all at
        the same threshold."""
        thresholds = {s.threshold for s in scores}
        if len(thresholds) != 1:
            raise ValueError(f"pool scores of one IoU threshold, got {sorted(thresholds)}")
        return cls.of(thresholds.pop(), sum(s.n_pred for s in scores), sum(s.n_true for s in scores),
                      sum(s.tp for s in scores), sum(s.mean_matched_iou * s.tp for s in scores))

    def to_dict(self) -> dict[str, float | int]:
        """The JSON form: a dict of the fields."""
        return asdict(self)


def object_scores(pred_instances, true_instances, thresholds=THRESHOLDS, *, true_is_semantic: bool | None = None,
                  per_slice: bool = True) -> list[ObjectScores]:
    """Object detection scores at each IoU threshold, from a one-to-one matching of objects by IoU.

    pred_instances: instance ids (Y, X) or (Z, Y, X), 0 = background (e.g. ``label_instances(pred)``).
    true_instances: the same shape, instance ids or — ``true_is_semantic=True`` — class ids, which become their
    face-connected components as drawn (``label_instances(..., min_size=0, split=False, grow=0)``, slice by
    slice, whatever ``per_slice``). ``None`` decides
    with ``looks_semantic``: semantic if some id covers two separate regions of comparable size (≥ 10 % of
    its largest); stray specks of an instance do not count. Pass it explicitly when you know.
    ``per_slice`` (default): a stack is scored as 2-D slices (ids spanning slices, like 3-D nuclei, name one
    object per slice) with counts pooled over the stack; ``False`` scores 3-D objects.

    Matching: stardist's ``matching`` — of the pairs with IoU ≥ t, the most pairs one-to-one, then the highest
    total IoU. Returns one :class:`ObjectScores` per threshold, in order.
    """
    pred = check_labels(pred_instances, "pred_instances", ndim=(2, 3))
    true = check_labels(true_instances, "true_instances", ndim=(2, 3))
    check_same_shape(pred, true, "pred_instances", "true_instances")
    thresholds = _check_thresholds(thresholds)
    if true_is_semantic is None:
        true_is_semantic = looks_semantic(true, per_slice)
    if true_is_semantic:
        true = label_instances(true, min_size=0, split=False, grow=0)
    elif per_slice:
        true = unique_per_slice(true)
    if per_slice:
        pred = unique_per_slice(pred)
    ti, pi, iou, n_true, n_pred = iou_pairs(pred, true)
    matches = [match_objects(ti, pi, iou, t) for t in thresholds]
    return [ObjectScores.of(t, n_pred, n_true, m.size, float(m.sum())) for t, m in zip(thresholds, matches)]


def _check_thresholds(thresholds) -> tuple[float, ...]:
    values = tuple(float(t) for t in np.atleast_1d(thresholds))
    if not values or not all(0 < t <= 1 for t in values):
        raise ValueError(f"thresholds must be IoUs in (0, 1], got {thresholds!r}")
    return values


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


def looks_semantic(labels: np.ndarray, per_slice: bool = True, ratio: float = 0.1) -> bool:
    """True if ``labels`` (Y, X) or (Z, Y, X) look like class ids: some non-zero id covers two 8-connected
    regions (26-connected in 3-D; within one slice with ``per_slice``) the smaller of which has at least
    ``ratio`` × the pixels of the id's largest region. Instance annotations often carry stray specks of an
    object (0.1–2 % of it in the shipped nuclei), which this ignores."""
    structure = np.ones((3,) * labels.ndim, bool)
    if per_slice and labels.ndim == 3:
        structure[[0, 2]] = False
    regions, n = ndimage.label(labels > 0, structure)
    fg = regions > 0
    if n == 0:
        return False
    ids, n_ids = sequential_ids(unique_per_slice(labels) if per_slice else labels)
    owner, _, sizes = count_pairs(ids[fg], regions[fg], n_ids + 1, n + 1)
    order = np.lexsort((-sizes, owner))  # by id, largest region first
    owner, sizes = owner[order], sizes[order]
    first = np.r_[True, owner[1:] != owner[:-1]]
    largest = np.maximum.accumulate(np.where(first, np.arange(len(owner)), 0))
    second = np.r_[False, first[:-1]] & ~first  # the second-largest region of an id
    return bool((sizes[second] >= ratio * sizes[largest[second]]).any())


def object_score_rows(scores: Sequence[ObjectScores]) -> list[tuple[str, float | int]]:
    """``object_scores`` as a flat (name, value) table: object counts, then per threshold t precision, recall,
    F1, AP and mean matched IoU, named like ``"F1 @ 0.5"``."""
    if not scores:
        return []
    rows: list[tuple[str, float | int]] = [("predicted objects", scores[0].n_pred),
                                           ("true objects", scores[0].n_true)]
    names = (("precision", "precision"), ("recall", "recall"), ("F1", "f1"), ("AP", "average_precision"),
             ("mean matched IoU", "mean_matched_iou"))
    for s in scores:
        rows += [(f"{name} @ {s.threshold:g}", getattr(s, key)) for name, key in names]
    return rows


def pixel_score_rows(scores: dict, class_names: Sequence[str] = ()) -> list[tuple[str, float]]:
    """:func:`segmentation_scores` as a flat (name, value) table: the four FCN metrics, then the IU of each
    class, named after ``class_names`` where given (``"IU nucleus"``), else after the class id."""
    rows = [(k.replace("_", " "), scores[k]) for k in
            ("pixel_accuracy", "mean_accuracy", "mean_iu", "frequency_weighted_iu")]
    return rows + [(f"IU {class_names[i] if i < len(class_names) else i}", v) for i, v in enumerate(scores["iu"])]


@dataclass(frozen=True)
class Evaluation:
    """A prediction scored against ground truth: ``pixels`` as :func:`segmentation_scores` returns them, ``objects``
    one :class:`ObjectScores` per IoU threshold asked for (none: pixel scores only)."""

    pixels: dict
    objects: list[ObjectScores]


def evaluate(pred: np.ndarray, truth: np.ndarray, num_classes: int, thresholds: Sequence[float] = (0.5,),
             scored: np.ndarray | None = None) -> Evaluation:
    """Score class ids ``pred`` against ``truth`` (both (Y, X) or (Z, Y, X)), as the dock's Evaluate and
    ``napari-segnet evaluate`` do: FCN pixel scores over ``num_classes`` on the ``scored`` pixels (bool, same
    shape; None: all), and object scores of the prediction's instances (``label_instances(pred)``) against the
    truth's objects (its instance ids, or the components of its classes) at each IoU in ``thresholds``, over the
    whole image. Raises ``ValueError`` for shapes that differ."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    check_same_shape(pred, truth, "prediction", "ground truth")
    keep = (slice(None),) if scored is None else (np.asarray(scored, bool),)
    pixels = segmentation_scores(pred[keep], truth[keep], num_classes)
    objects = object_scores(label_instances(pred), truth, tuple(thresholds)) if len(thresholds) else []
    return Evaluation(pixels, objects)
