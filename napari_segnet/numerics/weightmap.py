"""The U-Net paper's border weight map w(x) = w_c(x) + w0·exp(−(d1(x) + d2(x))² / (2σ²))."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .._validation import check_labels, check_same_shape

# The border term is dropped where it is below this; the map is therefore exact to TOLERANCE (≪ 1e-4).
TOLERANCE = 1e-6


def class_weight_map(labels: np.ndarray, class_weights=None, mask: np.ndarray | None = None) -> np.ndarray:
    """w_c(x) (same shape as labels, float32): 1 for ``None``; for ``"balanced"`` N / (K·n_k) for class k
    with n_k pixels among N, K classes present (rare classes weigh more, the mean weight is 1), counted over
    the pixels where ``mask`` is True (default all); or ``class_weights[labels]`` for one weight per class."""
    if class_weights is None:
        return np.ones(labels.shape, np.float32)
    if isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ValueError(f"class_weights must be None, 'balanced' or a sequence, got {class_weights!r}")
        counted = labels if mask is None else labels[mask]
        counts = np.bincount(counted.ravel(), minlength=int(labels.max()) + 1)
        present = counts > 0
        table = np.ones(counts.shape, np.float64)
        table[present] = counted.size / (present.sum() * counts[present])
    else:
        table = np.asarray(class_weights, dtype=np.float64)
        if table.ndim != 1 or len(table) <= labels.max():
            raise ValueError(
                f"class_weights needs one weight per class ({labels.max() + 1} or more), got shape {table.shape}"
            )
        if not np.isfinite(table).all() or (table < 0).any():
            raise ValueError("class_weights must be finite and non-negative")
    return table[labels].astype(np.float32)


def object_map(labels: np.ndarray, instances=None) -> np.ndarray:
    """Object ids 1…K (0 = no object), same shape as labels.

    Without ``instances``: the connected components (face connectivity) of each foreground class, so objects
    that touch only at a corner count as two. With ``instances``: its non-zero ids, renumbered.
    """
    if instances is not None:
        ids = check_labels(instances, "instances")
        check_same_shape(ids, labels, "instances", "labels")
        _, inverse = np.unique(ids, return_inverse=True)
        inverse = inverse.reshape(ids.shape)
        return inverse if ids.min() == 0 else inverse + 1
    objects = np.zeros(labels.shape, np.int32)
    count = 0
    for cls in np.unique(labels[labels > 0]):
        comp, n = ndimage.label(labels == cls)
        objects[comp > 0] = comp[comp > 0] + count
        count += n
    return objects


def nearest_two_distances(objects: np.ndarray, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """d1, d2 (float32, same shape as objects): Euclidean distances to the nearest and second-nearest object.

    Each object's distance transform is computed only in its bounding box grown by ``reach`` px; beyond it a
    distance counts as +inf. Both distances are exact wherever d1 + d2 ≤ reach.
    """
    d1 = np.full(objects.shape, np.inf, np.float32)
    d2 = np.full(objects.shape, np.inf, np.float32)
    pad = int(math.ceil(reach))
    for k, box in enumerate(ndimage.find_objects(objects), start=1):
        if box is None:
            continue
        win = tuple(slice(max(s.start - pad, 0), min(s.stop + pad, n)) for s, n in zip(box, objects.shape))
        d = ndimage.distance_transform_edt(objects[win] != k).astype(np.float32)
        a, b = d1[win], d2[win]
        b[...] = np.where(d < a, a, np.minimum(b, d))
        a[...] = np.minimum(a, d)
    return d1, d2


def unet_weight_map(labels, w0: float = 10.0, sigma: float = 5.0, class_weights=None, instances=None,
                    mask=None) -> np.ndarray:
    """The U-Net paper's pixel weights for labels (Y, X) (any ndim) → float32 map of the same shape.

    w(x) = w_c(x) + w0·exp(−(d1(x) + d2(x))² / (2σ²)) on background pixels (label 0), w_c(x) elsewhere, as the
    authors' reference implementation does; d1/d2 are the distances to the nearest / second-nearest object.
    Background pixels in thin gaps between objects get the highest weights (w_c + w0·exp(−4/(2σ²)) for a
    1-px gap). ``class_weights``: None (w_c = 1), ``"balanced"`` or one weight per class; ``instances``:
    optional instance ids, same shape, used as the objects instead of connected components. ``mask``: bool,
    same shape, True where the labels are known (reviewed); objects and class frequencies then come from those
    pixels only, so labels elsewhere have no influence at all.
    """
    labels = check_labels(labels, "labels", ndim=(2, 3))
    if mask is not None:
        mask = np.asarray(mask, bool)
        check_same_shape(mask, labels, "mask", "labels")
        labels = np.where(mask, labels, 0)
        instances = None if instances is None else np.where(mask, instances, 0)
    if not (w0 >= 0 and math.isfinite(w0)):
        raise ValueError(f"w0 must be a finite number ≥ 0, got {w0}")
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma}")
    weights = class_weight_map(labels, class_weights, mask)
    if w0 == 0:
        return weights
    # w0·exp(−r²/(2σ²)) < TOLERANCE once r > σ·sqrt(2·ln(w0/TOLERANCE)).
    reach = sigma * math.sqrt(2 * math.log(max(w0 / TOLERANCE, 1.0)))
    d1, d2 = nearest_two_distances(object_map(labels, instances), reach)
    border = w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2))
    background = labels == 0
    weights[background] += border[background]
    return weights


def separate_touching(instances, classes=None) -> np.ndarray:
    """Semantic targets with a background gap between touching objects, as the U-Net paper prepares its data.

    instances: (Y, X) ids (0 = background); classes: optional dict id → class (default: every object is
    class 1). Returns uint8 class ids where pixels next to a different object are set to 0.
    """
    ids = check_labels(instances, "instances", ndim=(2,))
    big = np.iinfo(ids.dtype).max
    highest = ndimage.maximum_filter(ids, size=3)
    lowest = ndimage.minimum_filter(np.where(ids == 0, big, ids), size=3)
    touching = (ids > 0) & ((highest != ids) | (lowest != ids))
    if classes is None:
        out = (ids > 0).astype(np.uint8)
    else:
        table = np.zeros(int(ids.max()) + 1, np.uint8)
        for k, c in classes.items():
            table[k] = c
        out = table[ids]
    out[touching] = 0
    return out
