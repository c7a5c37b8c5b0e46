"""Instance labels from semantic class ids: connected components, optional watershed split, grow-back.

A network trained with the U-Net paper's border-weighted cross-entropy on targets prepared by
``weightmap.separate_touching`` learns to leave a background gap where two objects touch (the pixels of each
object that have an 8-neighbour in another object, so 2 px between objects that shared an edge). The objects
are therefore the **face-connected** components (4-connectivity in 2-D) of each foreground class: a straight
1-px gap separates them, and so does a diagonal (staircase) gap, across which the pixels on either side touch
only at their corners — with 8-connectivity those would merge. Class 0 is background; components of different
classes are different objects even where they touch.

Then, in this order (each step optional, defaults measured on the held-out nuclei, see README):
1. objects smaller than ``min_size`` pixels are removed (speckle the network predicts);
2. ``split=True`` cuts merged objects by a watershed of the distance transform from its peaks;
3. ``grow`` px of grow-back: objects are expanded (``skimage.segmentation.expand_labels``, nearest object
   wins) into pixels the network called background, never into a pixel it gave a foreground class, and — with
   ``grow_into="gaps"`` — only where the grown object meets another object, i.e. back over the gap it was
   trained to leave; ``"background"`` grows every outline.

Stacks (Z, Y, X) are labelled slice by slice, with ids unique across the stack.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._validation import check_labels

#: Defaults chosen from ``benchmarks/instances.py`` (README, "Instances and object metrics").
MIN_SIZE = 32
GROW = 1
GROW_INTO = "gaps"
GROW_MODES = ("gaps", "background")


def label_instances(labels, *, min_size: int = MIN_SIZE, split: bool = False, min_distance: int | None = None,
                    grow: int = GROW, grow_into: str = GROW_INTO) -> np.ndarray:
    """Instance ids (int32, same shape; 0 = background, 1…N) from class ids ``labels`` (Y, X) or (Z, Y, X).

    labels: any integer (or bool) dtype, 0 = background, 1…C−1 = classes. Objects are the face-connected
    components of each class (module docstring); ``min_size``: objects with fewer pixels are dropped (0 or 1
    keeps all); ``split``: watershed split of merged objects (``split_objects``; ``min_distance`` None = half the
    median object radius); ``grow``: px of grow-back (0 = none) and ``grow_into``: ``"gaps"`` or
    ``"background"`` (``grow_back``). Stacks are labelled slice by slice; ids are unique across the stack and
    numbered slice after slice.
    """
    labels = check_labels(labels, "labels", ndim=(2, 3))
    _check_options(min_size, min_distance, grow, grow_into)
    if labels.ndim == 2:
        return _label_slice(labels, min_size, split, min_distance, grow, grow_into)
    out = np.zeros(labels.shape, np.int32)
    offset = 0
    for z, plane in enumerate(labels):
        ids = _label_slice(plane, min_size, split, min_distance, grow, grow_into)
        out[z] = np.where(ids > 0, ids + offset, 0)
        offset += int(ids.max())
    return out


def _check_options(min_size, min_distance, grow, grow_into) -> None:
    for name, value, low in (("min_size", min_size, 0), ("grow", grow, 0), ("min_distance", min_distance, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                  or value < low):
            raise ValueError(f"{name} must be an integer ≥ {low}, got {value!r}")
    if grow_into not in GROW_MODES:
        raise ValueError(f"grow_into must be one of {GROW_MODES}, got {grow_into!r}")


def _label_slice(labels: np.ndarray, min_size, split, min_distance, grow, grow_into) -> np.ndarray:
    """One (Y, X) slice: components → size filter → split → grow-back, renumbered 1…N."""
    out = np.zeros(labels.shape, np.int32)
    count = 0
    for cls in np.unique(labels[labels > 0]):
        objects = remove_small(ndimage.label(labels == cls)[0], min_size)
        if split:
            objects = split_objects(objects, min_distance)
        out[objects > 0] = objects[objects > 0] + count
        count += int(objects.max())
    if grow:
        out = grow_back(out, labels, grow, grow_into)
    return out


def remove_small(objects: np.ndarray, min_size: int) -> np.ndarray:
    """``objects`` (int ids, any shape) without those of fewer than ``min_size`` pixels, renumbered 1…N."""
    keep = np.bincount(objects.ravel()) >= min_size
    keep[0] = False
    table = np.zeros(keep.shape, np.int32)
    table[keep] = np.arange(1, keep.sum() + 1)
    return table[objects]


def split_objects(objects: np.ndarray, min_distance: int | None = None) -> np.ndarray:
    """Merged objects cut apart: a watershed of −(distance transform) from its local maxima (int32, 1…N).

    objects: (Y, X) ids whose objects do not touch along an edge (the components of one class). Each object's
    Euclidean distance transform (distance to the nearest pixel outside it) has one peak per round part; peaks
    closer than ``min_distance`` px are merged (``skimage.feature.peak_local_max``, per object), so two discs
    of radius r whose centres lie more than ``min_distance`` apart become two objects. ``min_distance`` None:
    half the median equivalent radius √(area/π) of the objects (at least 2), so the split scales with the
    objects' size. The watershed (4-connected) floods only within each object.
    """
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    if objects.max() == 0:
        return objects.astype(np.int32)
    if min_distance is None:
        areas = np.bincount(objects.ravel())[1:]
        min_distance = max(2, round(0.5 * np.sqrt(np.median(areas[areas > 0]) / np.pi)))
    distance = object_distances(objects)
    peaks = peak_local_max(distance, min_distance=min_distance, labels=objects, exclude_border=False)
    markers = np.zeros(objects.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    out = watershed(-distance, markers, mask=objects > 0).astype(np.int32)
    unmarked = (objects > 0) & (out == 0)  # an object without a peak (never seen; kept whole to be safe)
    if unmarked.any():
        extra, _ = ndimage.label(unmarked)
        out[unmarked] = extra[unmarked] + out.max()
    return out


def object_distances(objects: np.ndarray) -> np.ndarray:
    """float32 (Y, X): each object pixel's Euclidean distance to the nearest pixel not in its object (0 outside).

    Computed object by object in its bounding box grown by 1 px, so objects touching at a corner do not see
    each other as interior.
    """
    distance = np.zeros(objects.shape, np.float32)
    padded = np.pad(objects, 1)
    for k, box in enumerate(ndimage.find_objects(padded), start=1):
        if box is None:
            continue
        win = tuple(slice(s.start - 1, s.stop + 1) for s in box)
        inside = padded[win] == k
        d = ndimage.distance_transform_edt(inside)[1:-1, 1:-1]
        target = distance[tuple(slice(s.start - 1, s.stop - 1) for s in box)]
        target[inside[1:-1, 1:-1]] = d[inside[1:-1, 1:-1]]
    return distance


def grow_back(instances: np.ndarray, labels: np.ndarray, grow: int, grow_into: str = GROW_INTO) -> np.ndarray:
    """``instances`` (Y, X) expanded by up to ``grow`` px into pixels that ``labels`` calls background (0).

    Contested pixels go to the nearest object (``skimage.segmentation.expand_labels``), so an object never grows
    into another one nor into a pixel of a foreground class (e.g. speckle dropped by ``min_size``).
    ``grow_into="gaps"`` keeps only grown pixels with an 8-neighbour in another (grown) object — the pixels
    ``weightmap.separate_touching`` cut to make the training gap; ``"background"`` keeps all of them.
    """
    from skimage.segmentation import expand_labels

    grown = expand_labels(instances, grow)
    new = (instances == 0) & (labels == 0) & (grown > 0)
    if grow_into == "gaps":
        big = np.iinfo(grown.dtype).max
        other = (ndimage.maximum_filter(grown, size=3) != grown) | (
            ndimage.minimum_filter(np.where(grown == 0, big, grown), size=3) != grown)
        new &= other
    return np.where(new, grown, instances).astype(np.int32)


def instance_classes(instances, labels) -> dict[int, int]:
    """{instance id: class id} for every id > 0 in ``instances``: the foreground class of most of its pixels.

    instances, labels: integer arrays of the same shape (e.g. ``label_instances(labels)`` and ``labels``);
    pixels where ``labels`` is 0 (grown-back gaps) do not vote; an instance with none gets class 0.
    """
    ids = check_labels(instances, "instances").astype(np.int64)
    classes = check_labels(labels, "labels").astype(np.int64)
    if ids.shape != classes.shape:
        raise ValueError(f"instances and labels must have the same shape, got {ids.shape} and {classes.shape}")
    present = np.flatnonzero(np.bincount(ids.ravel()))
    present = present[present > 0]
    if present.size == 0:
        return {}
    fg = (ids > 0) & (classes > 0)
    n_classes = int(classes.max()) + 1
    votes = np.bincount(ids[fg] * n_classes + classes[fg], minlength=(int(ids.max()) + 1) * n_classes)
    winner = votes.reshape(-1, n_classes).argmax(axis=1)
    return {int(k): int(winner[k]) for k in present}


def unique_per_slice(ids) -> np.ndarray:
    """Ids (int32, same shape) renumbered 1…N so that an id of a (Z, Y, X) stack names pixels of one slice only.

    For instance labels whose ids span slices (a 3-D nucleus), when objects are compared slice by slice.
    Pixels keep their grouping within a slice; 0 stays 0; a (Y, X) image is only renumbered.
    """
    ids = check_labels(ids, "ids", ndim=(2, 3)).astype(np.int64)
    key = ids if ids.ndim == 2 else ids + (int(ids.max()) + 1) * np.arange(len(ids))[:, None, None]
    key = np.where(ids > 0, key, 0)
    _, inverse = np.unique(key, return_inverse=True)
    inverse = inverse.reshape(ids.shape).astype(np.int32)
    return inverse if (ids == 0).any() else inverse + 1
