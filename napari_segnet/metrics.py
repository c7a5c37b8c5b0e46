"""The FCN paper's segmentation metrics, computed from a confusion matrix."""

from __future__ import annotations

import numpy as np

from ._validation import check_labels, check_same_shape


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
