"""The training set: (image, corrected labels, reviewed mask) triples — 2-D or stacks — as 2-D training planes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage
from skimage.transform import resize

from .._validation import check_labels
from ..inference.scale import zoom_labels
from ..inference.views import check_views, side_depth
from ..numerics.images import ImagePlanes
from . import guard
from .regions import as_view_bits, plane_index, reviewed_on, view_bit


@dataclass(frozen=True)
class TrainingPlane:
    """One 2-D plane to learn from: the part ``box`` (rows, cols) of plane ``index`` of ``image`` (the whole
    image, so normalisation sees all of its planes, as prediction does), its labels (h, w) and reviewed mask (h, w)
    bool. ``box`` None: the whole plane. ``axis``: the axis of a stack the plane is cut along (0: a (Y, X) plane;
    1: (Z, X); 2: (Z, Y)); ``image`` reads its planes along that axis (``ImagePlanes.along``)."""

    image: ImagePlanes
    index: int
    labels: np.ndarray
    reviewed: np.ndarray
    box: tuple[slice, slice] | None = None
    axis: int = 0

    @property
    def origin(self) -> tuple[int, int]:
        """(row, col) of the first pixel of :attr:`labels` in its plane."""
        return (0, 0) if self.box is None else (self.box[0].start, self.box[1].start)

    def raw(self) -> np.ndarray:
        """(C, h, w) of the image at :attr:`box`, in the image's dtype (only that block is read)."""
        return self.image.block(self.index, *(self.box or (slice(None), slice(None))))


def crop_to_reviewed(planes: Sequence[TrainingPlane], margin: int) -> list[TrainingPlane]:
    """Each plane cut to its reviewed regions: one crop per group of reviewed pixels (boxes grown by ``margin`` px
    of context, overlapping ones merged), so that a round's work scales with what was reviewed, not with the
    image. Reviewed pixels keep ``margin`` px of real context wherever the plane has it."""
    crops = []
    for plane in planes:
        for rows, cols in _reviewed_boxes(plane.reviewed, margin):
            o = plane.origin
            crops.append(replace(plane, labels=plane.labels[rows, cols], reviewed=plane.reviewed[rows, cols],
                                 box=(slice(o[0] + rows.start, o[0] + rows.stop),
                                      slice(o[1] + cols.start, o[1] + cols.stop))))
    return crops


def split_held_out(planes: Sequence[TrainingPlane]) -> tuple[list[TrainingPlane], list[TrainingPlane]]:
    """(planes to train on, planes to judge on): the reviewed pixels of each plane off and on the guard's held-out
    squares (:func:`napari_segnet.training.guard.split`, anchored at the plane's origin in its image; class
    boundaries left out of the judging: :func:`~napari_segnet.training.guard.without_boundaries`). With fewer than
    ``guard.MIN_HELD_OUT`` held-out pixels, or none left to train on: (``planes``, []) — every pixel trains."""
    parts = [(p, t, guard.without_boundaries(p.labels, h))
             for p in planes for t, h in [guard.split(p.reviewed, p.origin)]]
    train = [replace(p, reviewed=t) for p, t, _ in parts if t.any()]
    held = [replace(p, reviewed=h) for p, _, h in parts if h.any()]
    if not train or sum(int(p.reviewed.sum()) for p in held) < guard.MIN_HELD_OUT:
        return list(planes), []
    return train, held


def _reviewed_boxes(reviewed: np.ndarray, margin: int) -> list[tuple[slice, slice]]:
    """Boxes (rows, cols) around the connected groups of ``reviewed`` (Y, X), grown by ``margin`` and clipped,
    merged until none overlap."""
    return merge_boxes(ndimage.find_objects(ndimage.label(reviewed)[0]), reviewed.shape, margin)


def merge_boxes(boxes, shape: tuple[int, int], margin: int) -> list[tuple[slice, slice]]:
    """(rows, cols) boxes grown by ``margin``, clipped to ``shape`` (Y, X) and merged until none overlap."""
    boxes = [[max(r.start - margin, 0), min(r.stop + margin, shape[0]), max(c.start - margin, 0),
              min(c.stop + margin, shape[1])] for r, c in boxes]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]:
                    boxes[i] = [min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return [(slice(y0, y1), slice(x0, x1)) for y0, y1, x0, x1 in boxes]


def training_planes(images: Sequence, labels: Sequence, masks: Sequence | None = None, *, in_channels: int = 1,
                    num_classes: int | None = None, channel_axis: int | None = None,
                    spacing: Sequence | None = None) -> list[TrainingPlane]:
    """The one conversion of user corrections into training planes, used by ``Segmenter.finetune`` (and so by
    the dock, the project folder and Python alike).

    images: 2-D images or stacks (see ``ImagePlanes`` for axes); labels: (Y, X) for a 2-D image, (Z|T, Y, X)
    for a stack; masks: of the labels' shape, bool True where reviewed, or (stacks) uint8 view bits
    (:mod:`napari_segnet.training.regions`: 1 reviewed on a (Y, X) plane, 2 on a (Z, X) plane, 4 on a (Z, Y)
    plane); None, or a None entry: every pixel, on (Y, X) planes. A stack contributes each plane of each view that
    has a reviewed pixel, in that view's orientation. Raises ``ValueError`` saying what does not match; at least
    one reviewed pixel overall is required. ``spacing``: one voxel size (z, y, x) or None per image; the (Z, X)
    and (Z, Y) planes of a volume with one are resampled along Z to its Y/X voxel size (linear; labels and mask by
    nearest neighbour), as ``predict(views=3, spacing=…)`` sees them.
    """
    images, labels = list(images), list(labels)
    masks = [None] * len(images) if masks is None else list(masks)
    if not images or not (len(images) == len(labels) == len(masks)):
        raise ValueError(f"need as many labels and masks as images (at least one), got {len(images)} images, "
                         f"{len(labels)} labels, {len(masks)} masks")
    spacing = [None] * len(images) if spacing is None else [check_views(3, s) for s in spacing]
    if len(spacing) != len(images):
        raise ValueError(f"need one voxel size (or None) per image, got {len(spacing)} for {len(images)} images")
    planes = [p for im, lb, mk, sp in zip(images, labels, masks, spacing)
              for p in _planes_of(ImagePlanes(im, in_channels, channel_axis), lb, mk, num_classes, sp)]
    if not planes:
        raise ValueError("no reviewed pixels to learn from: mark at least part of an image as reviewed")
    return planes


def merge_corrections(shape: tuple[int, ...], dtype, labels: np.ndarray | None, reviewed: np.ndarray | None,
                      planes: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """An image's corrected labels and reviewed mask (both ``shape``: (Y, X), or (Z, Y, X) with view bits,
    :mod:`~napari_segnet.training.regions`) with the corrections of ``planes`` merged in: {(axis, plane index)
    ((0, 0) for a 2-D image): (labels, reviewed bool) of that plane}; a plane's reviewed pixels take its labels and
    become reviewed in its view, the rest stay as they were. ``labels`` / ``reviewed``: what the image had (None,
    or another shape: nothing yet; labels then ``dtype`` zeros). Returns new arrays; the inputs are not changed."""
    stack = len(shape) == 3
    labels = np.zeros(shape, dtype) if labels is None or labels.shape != shape else labels.copy()
    if reviewed is None or reviewed.shape != shape:
        reviewed = np.zeros(shape, np.uint8 if stack else bool)
    reviewed = as_view_bits(reviewed) if stack else reviewed.copy()
    for (axis, z), (plane_labels, plane_reviewed) in planes.items():
        index = plane_index(len(shape), axis, z)
        labels[index] = np.where(plane_reviewed, plane_labels, labels[index])
        reviewed[index] |= (plane_reviewed * view_bit(axis)).astype(reviewed.dtype) if stack else plane_reviewed
    return labels, reviewed


def check_validation(validation, *, in_channels: int, num_classes: int, channel_axis: int | None = None) -> None:
    """``ValueError`` ("validation: …") unless ``validation`` is an (images, labels) pair that
    :func:`training_planes` accepts: the guard set gets the training set's checks when a run is asked for."""
    if len(validation) != 2:
        raise ValueError("validation must be a pair (images, labels)")
    try:
        training_planes(*validation, in_channels=in_channels, num_classes=num_classes, channel_axis=channel_axis)
    except ValueError as e:
        raise ValueError(f"validation: {e}") from None


def _planes_of(image: ImagePlanes, labels, mask, num_classes: int | None, spacing=None) -> list[TrainingPlane]:
    stacked = image.plane_axis is not None
    expected = ((image.n_planes,) if stacked else ()) + image.shape
    if stacked and np.ndim(labels) == 2:
        raise ValueError(f"the image is a stack of {image.n_planes} planes but the labels have shape "
                         f"{np.shape(labels)}: give labels of shape {expected}, or pass single 2-D planes")
    labels = check_labels(labels, "labels", num_classes, ndim=(3,) if stacked else (2,))
    if labels.shape != expected:
        raise ValueError(f"labels of shape {labels.shape} do not match the image's {expected}")
    bits = np.ones(labels.shape, np.uint8) if mask is None else as_view_bits(mask)
    if bits.shape != labels.shape:
        raise ValueError(f"mask of shape {bits.shape} does not match the labels' {labels.shape}")
    if not stacked:
        return [TrainingPlane(image, 0, labels, bits > 0)] if bits.any() else []
    planes, depth = [], side_depth(image.n_planes, spacing)
    for axis in (0, 1, 2):
        reviewed = np.moveaxis(reviewed_on(bits, axis), axis, 0)  # (planes, rows, cols) of this view
        if not reviewed.any():
            continue
        cut, lb = image.along(axis), np.moveaxis(labels, axis, 0)
        found = [i for i in range(len(reviewed)) if reviewed[i].any()]
        if axis and depth != image.n_planes:
            planes += [_resampled(cut, i, lb[i], reviewed[i], axis, depth) for i in found]
        else:
            planes += [TrainingPlane(cut, i, lb[i], reviewed[i], axis=axis) for i in found]
    return planes


def _resampled(cut: ImagePlanes, index: int, labels: np.ndarray, reviewed: np.ndarray, axis: int, depth: int
               ) -> TrainingPlane:
    """Plane ``index`` of a side view (rows along Z) resampled to ``depth`` rows: its image linearly (the plane of
    ``three_views``' resampled volume; normalised with the whole volume's parameters), labels (Z, cols) and
    reviewed mask by nearest neighbour."""
    if cut.channel_axis is not None:
        raise ValueError("voxel sizes resample the side views of single-channel volumes only (as views=3)")
    raw = cut.block(index, slice(None), slice(None))[0].astype(np.float32)
    shape = (depth, raw.shape[1])
    plane = ImagePlanes(resize(raw, shape, order=1, preserve_range=True, anti_aliasing=False), 1)
    plane.whole = cut.whole
    return TrainingPlane(plane, 0, zoom_labels(labels, shape), zoom_labels(reviewed, shape), axis=axis)
