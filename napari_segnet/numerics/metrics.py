"""Segmentation metrics: the FCN paper's from a confusion matrix, and object scores from matched instances."""

from __future__ import annotations

from collections.abc import Sequence

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


def object_scores(pred_instances, true_instances, thresholds=THRESHOLDS, *, true_is_semantic: bool | None = None,
                  per_slice: bool = True) -> list[dict[str, float | int]]:
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
    total IoU. Returns one JSON-ready dict per threshold, in order, with keys ``threshold``, ``n_pred``,
    ``n_true``, ``tp``, ``fp`` (= n_pred − tp), ``fn`` (= n_true − tp), ``precision`` tp/(tp+fp), ``recall``
    tp/(tp+fn), ``f1`` 2tp/(2tp+fp+fn), ``average_precision`` tp/(tp+fp+fn) (the 2018 Data Science Bowl's AP at
    one threshold) and ``mean_matched_iou`` (mean IoU of the matched pairs). A ratio whose denominator is 0
    (no predictions, no true objects, no match) is 0, as in stardist.
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
    return [_scores_at(match_objects(ti, pi, iou, t), t, n_pred, n_true) for t in thresholds]


def _check_thresholds(thresholds) -> tuple[float, ...]:
    values = tuple(float(t) for t in np.atleast_1d(thresholds))
    if not values or not all(0 < t <= 1 for t in values):
        raise ValueError(f"thresholds must be IoUs in (0, 1], got {thresholds!r}")
    return values


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


def _scores_at(matched: np.ndarray, threshold: float, n_pred: int, n_true: int) -> dict[str, float | int]:
    tp = int(matched.size)
    fp, fn = n_pred - tp, n_true - tp
    return {
        "threshold": threshold, "n_pred": n_pred, "n_true": n_true, "tp": tp, "fp": fp, "fn": fn,
        "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn), "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "average_precision": _ratio(tp, tp + fp + fn), "mean_matched_iou": _ratio(matched.sum(), tp),
    }


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


def object_score_rows(scores: list[dict[str, float | int]]) -> list[tuple[str, float | int]]:
    """``object_scores`` as a flat (name, value) table: object counts, then per threshold t precision, recall,
    F1, AP and mean matched IoU, named like ``"F1 @ 0.5"``."""
    if not scores:
        return []
    rows: list[tuple[str, float | int]] = [("predicted objects", scores[0]["n_pred"]),
                                           ("true objects", scores[0]["n_true"])]
    names = (("precision", "precision"), ("recall", "recall"), ("F1", "f1"), ("AP", "average_precision"),
             ("mean matched IoU", "mean_matched_iou"))
    for s in scores:
        rows += [(f"{name} @ {s['threshold']:g}", s[key]) for name, key in names]
    return rows


def pixel_score_rows(scores: dict, class_names: Sequence[str] = ()) -> list[tuple[str, float]]:
    """:func:`segmentation_scores` as a flat (name, value) table: the four FCN metrics, then the IU of each
    class, named after ``class_names`` where given (``"IU nucleus"``), else after the class id."""
    rows = [(k.replace("_", " "), scores[k]) for k in
            ("pixel_accuracy", "mean_accuracy", "mean_iu", "frequency_weighted_iu")]
    return rows + [(f"IU {class_names[i] if i < len(class_names) else i}", v) for i, v in enumerate(scores["iu"])]
