"""Instance labels from semantic class ids: connected components, optional watershed split, grow-back.

A network trained with the U-Net paper's border-weighted cross-entropy on targets prepared by
``weightmap.separate_touching`` learns to leave a background gap where two objects touch (the pixels of each
object that have an 8-neighbour in another object, so 2 px between objects that shared an edge). The objects
are therefore the **face-connected** components (4-connectivity in 2-D) of each foreground class: a straight
1-px gap separates them, and so does a diagonal (staircase) gap, across which the pixels on either side touch
only at their corners — with 8-connectivity those would merge. Class 0 is background; components of different
classes are different objects even where they touch.

Then, in this order (each step can be turned off; the defaults were measured with ``benchmarks/instances.py``
on the nuclei sample, see README "Instances and object metrics"):
1. ``min_size``: objects smaller than this are removed (the speckle a network predicts). Default ``"auto"``:
   0.15 × the class's typical object area (the area of the object that the median foreground pixel lies in,
   so speckle hardly moves it) — scales with magnification; on the held-out nuclei F1@0.5 0.742 → 0.966.
2. ``split``: merged objects are cut by a watershed of the distance transform from its peaks, at least
   ``min_distance`` apart (default 1.5 × the typical radius √(area/π)), and only objects with a waist
   (solidity < 0.9): convex ones such as rods stay whole. On by default (F1@0.5 0.966 → 0.974 held out,
   0.907 → 0.915 on the training slices; no change on the synthetic cells and rods, where splitting every
   object makes 54 rod objects of 50 rods instead of 51 and F1 falls 0.959 → 0.949).
3. ``grow`` px of grow-back (default 1): objects are expanded (``skimage.segmentation.expand_labels``, nearest
   object wins) into pixels the network called background, never into a pixel it gave a foreground class, and
   — with ``grow_into="gaps"`` (default) — only where the grown object meets another object, i.e. back over
   the gap it was trained to leave (restores the targets' matched IoU 0.9944 → 0.9969; the default model
   leaves few gaps, ±0.0000). ``"background"`` grows every outline (mean matched IoU 0.947 → 0.899: worse).

Stacks (Z, Y, X) are labelled slice by slice, with ids unique across the stack.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .._validation import check_labels

#: Defaults chosen from ``benchmarks/instances.py`` (README, "Instances and object metrics"): ``min_size="auto"``
#: drops objects under MIN_SIZE_FRACTION × the class's typical object area; ``min_distance="auto"`` is
#: SPLIT_FRACTION × the typical object radius; only objects of solidity < SPLIT_SOLIDITY are split.
MIN_SIZE_FRACTION = 0.15
SPLIT = True
SPLIT_FRACTION = 1.5
SPLIT_SOLIDITY = 0.9
GROW = 1
GROW_INTO = "gaps"
GROW_MODES = ("gaps", "background")


def label_instances(labels, *, min_size: int | str = "auto", split: bool = SPLIT, min_distance: int | str = "auto",
                    grow: int = GROW, grow_into: str = GROW_INTO) -> np.ndarray:
    """Instance ids (int32, same shape; 0 = background, 1…N) from class ids ``labels`` (Y, X) or (Z, Y, X).

    labels: any integer (or bool) dtype, 0 = background, 1…C−1 = classes. Objects are the face-connected
    components of each class (module docstring). ``min_size``: objects with fewer pixels are dropped (0 keeps
    all; ``"auto"``: MIN_SIZE_FRACTION × the class's ``typical_area``). ``split``: watershed split of merged
    objects (``split_objects``) with peaks at least ``min_distance`` px apart (``"auto"``: SPLIT_FRACTION × the
    class's typical radius √(area/π)). ``grow``: px of grow-back (0 = none) into ``grow_into``: ``"gaps"`` or
    ``"background"`` (``grow_back``). Stacks are labelled slice by slice (typical areas over the whole stack);
    ids are unique across the stack, numbered slice after slice.
    """
    labels = check_labels(labels, "labels", ndim=(2, 3))
    _check_options(min_size, min_distance, grow, grow_into)
    stack = labels if labels.ndim == 3 else labels[None]
    classes = [int(c) for c in np.unique(stack[stack > 0])]
    need_areas = _is_auto(min_size) or (split and _is_auto(min_distance))
    areas = {c: typical_area(stack == c) for c in classes} if need_areas else {}
    sizes = {c: round(MIN_SIZE_FRACTION * areas[c]) if _is_auto(min_size) else min_size for c in classes}
    distances = {c: max(2, round(SPLIT_FRACTION * np.sqrt(areas[c] / np.pi))) if _is_auto(min_distance)
                 else min_distance for c in classes} if split else None
    out = np.zeros(stack.shape, np.int32)
    offset = 0
    for z, plane in enumerate(stack):
        ids = _label_slice(plane, sizes, distances, grow, grow_into)
        out[z] = np.where(ids > 0, ids + offset, 0)
        offset += int(ids.max())
    return out.reshape(labels.shape)


def _is_auto(value) -> bool:
    return isinstance(value, str) and value == "auto"


def _check_options(min_size, min_distance, grow, grow_into) -> None:
    for name, value, low in (("min_size", min_size, 0), ("grow", grow, 0), ("min_distance", min_distance, 1)):
        if name != "grow" and _is_auto(value):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            auto = "" if name == "grow" else ' or "auto"'
            raise ValueError(f"{name} must be an integer ≥ {low}{auto}, got {value!r}")
    if grow_into not in GROW_MODES:
        raise ValueError(f"grow_into must be one of {GROW_MODES}, got {grow_into!r}")


def typical_area(mask: np.ndarray) -> float:
    """The area (px) of the object a typical pixel of ``mask`` (Y, X) or (Z, Y, X, slice by slice) lies in:
    the pixel-weighted median of its face-connected components' areas (speckle hardly moves it); 0 if empty."""
    areas = []
    for plane in mask.reshape((-1,) + mask.shape[-2:]):
        areas.append(np.bincount(ndimage.label(plane)[0].ravel())[1:])
    return pixel_median_area(np.concatenate(areas))


def pixel_median_area(areas: np.ndarray) -> float:
    """The pixel-weighted median of object ``areas`` (N,): the area of the object the median pixel lies in."""
    areas = np.sort(areas)
    if areas.sum() == 0:
        return 0.0
    return float(areas[np.searchsorted(np.cumsum(areas), areas.sum() / 2)])


def _label_slice(labels: np.ndarray, sizes: dict, distances: dict | None, grow: int, grow_into: str) -> np.ndarray:
    """One (Y, X) slice: components → size filter → split (if ``distances``) → grow-back, renumbered 1…N."""
    out = np.zeros(labels.shape, np.int32)
    count = 0
    for cls in np.unique(labels[labels > 0]):
        objects = remove_small(ndimage.label(labels == cls)[0], sizes[int(cls)])
        if distances is not None:
            objects = split_objects(objects, distances[int(cls)], SPLIT_SOLIDITY)
        out[objects > 0] = objects[objects > 0] + count
        count += int(objects.max())
    if grow:
        out = grow_back(out, labels, grow, grow_into)
    return out


def remove_small(objects: np.ndarray, min_size: int) -> np.ndarray:
    """``objects`` (int ids, any shape) without those of fewer than ``min_size`` pixels, renumbered 1…N."""
    keep = np.bincount(objects.ravel()) >= max(min_size, 1)
    keep[0] = False
    table = np.zeros(keep.shape, np.int32)
    table[keep] = np.arange(1, keep.sum() + 1)
    return table[objects]


def split_objects(objects: np.ndarray, min_distance: int, max_solidity: float = SPLIT_SOLIDITY) -> np.ndarray:
    """Merged objects cut apart: a watershed of −(distance transform) from its local maxima (int32, 1…N).

    objects: (Y, X) ids whose objects do not touch along an edge (the components of one class). Only objects
    with a waist — solidity (area / convex hull area) below ``max_solidity`` — are split; convex ones (a
    nucleus, a rod) stay whole. In those, each object's Euclidean distance transform (distance to the nearest
    pixel outside it) has a peak per round part; peaks closer than ``min_distance`` px (along either axis) are
    merged (``skimage.feature.peak_local_max``, per object), so two overlapping discs whose centres lie further
    apart become two objects. Tie it to the objects' size (``label_instances`` uses 1.5 × their typical radius):
    a much smaller one cuts lobes off. The watershed (4-connected) floods only within each object.
    """
    from skimage.feature import peak_local_max
    from skimage.measure import regionprops
    from skimage.segmentation import watershed

    if objects.max() == 0:
        return objects.astype(np.int32)
    concave = np.zeros(int(objects.max()) + 1, bool)
    concave[[r.label for r in regionprops(objects) if r.solidity < max_solidity]] = True
    to_split = np.where(concave[objects], objects, 0)
    distance = object_distances(to_split)
    peaks = peak_local_max(distance, min_distance=min_distance, labels=to_split, exclude_border=False)
    markers = remove_small(np.where(concave[objects], 0, objects), 0)  # convex objects: their own marker
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1) + markers.max()
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
    ids = check_labels(ids, "ids", ndim=(2, 3))
    if ids.ndim == 3:
        ids = ids.astype(np.int64)
        ids = np.where(ids > 0, ids + (int(ids.max()) + 1) * np.arange(len(ids))[:, None, None], 0)
    return sequential_ids(ids)[0]


def sequential_ids(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """(ids renumbered 1…n in the order of their values, 0 staying 0: int32, same shape; n) for non-negative
    integer ``ids``. A lookup table (O(pixels + largest id)) when the ids are not much larger than the pixel
    count; ``np.unique`` (a sort) otherwise."""
    top = int(ids.max())
    if top <= 4 * ids.size + 65536:
        present = np.bincount(ids.ravel().astype(np.intp), minlength=top + 1) > 0
        present[0] = False
        table = np.cumsum(present).astype(np.int32)
        return table[ids], int(table[-1])
    values, inverse = np.unique(ids, return_inverse=True)
    inverse = inverse.reshape(ids.shape).astype(np.int32) + int(values[0] != 0)
    return inverse, len(values) - int(values[0] == 0)
