"""The training set: (image, corrected labels, reviewed mask) triples — 2-D or stacks — as 2-D training planes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._validation import check_labels
from ..numerics.images import ImagePlanes


@dataclass(frozen=True)
class TrainingPlane:
    """One 2-D plane to learn from: plane ``index`` of ``image`` (the whole image, so normalisation sees all
    of its planes, as prediction does), its labels (Y, X) and reviewed mask (Y, X) bool."""

    image: ImagePlanes
    index: int
    labels: np.ndarray
    reviewed: np.ndarray


def training_planes(images: Sequence, labels: Sequence, masks: Sequence | None = None, *, in_channels: int = 1,
                    num_classes: int | None = None, channel_axis: int | None = None) -> list[TrainingPlane]:
    """The one conversion of user corrections into training planes, used by ``Segmenter.finetune`` (and so by
    the dock, the project folder and Python alike).

    images: 2-D images or stacks (see ``ImagePlanes`` for axes); labels: (Y, X) for a 2-D image, (Z|T, Y, X)
    for a stack; masks: bool arrays of the labels' shape, True where reviewed (None, or a None entry: every
    pixel). A stack contributes each plane that has a reviewed pixel. Raises ``ValueError`` saying what does
    not match; at least one reviewed pixel overall is required.
    """
    images, labels = list(images), list(labels)
    masks = [None] * len(images) if masks is None else list(masks)
    if not images or not (len(images) == len(labels) == len(masks)):
        raise ValueError(f"need as many labels and masks as images (at least one), got {len(images)} images, "
                         f"{len(labels)} labels, {len(masks)} masks")
    planes = [p for im, lb, mk in zip(images, labels, masks)
              for p in _planes_of(ImagePlanes(im, in_channels, channel_axis), lb, mk, num_classes)]
    if not planes:
        raise ValueError("no reviewed pixels to learn from: mark at least part of an image as reviewed")
    return planes


def check_validation(validation, *, in_channels: int, num_classes: int, channel_axis: int | None = None) -> None:
    """``ValueError`` ("validation: …") unless ``validation`` is an (images, labels) pair that
    :func:`training_planes` accepts: the guard set gets the training set's checks when a run is asked for."""
    if len(validation) != 2:
        raise ValueError("validation must be a pair (images, labels)")
    try:
        training_planes(*validation, in_channels=in_channels, num_classes=num_classes, channel_axis=channel_axis)
    except ValueError as e:
        raise ValueError(f"validation: {e}") from None


def _planes_of(image: ImagePlanes, labels, mask, num_classes: int | None) -> list[TrainingPlane]:
    stacked = image.plane_axis is not None
    expected = ((image.n_planes,) if stacked else ()) + image.shape
    if stacked and np.ndim(labels) == 2:
        raise ValueError(f"the image is a stack of {image.n_planes} planes but the labels have shape "
                         f"{np.shape(labels)}: give labels of shape {expected}, or pass single 2-D planes")
    labels = check_labels(labels, "labels", num_classes, ndim=(3,) if stacked else (2,))
    if labels.shape != expected:
        raise ValueError(f"labels of shape {labels.shape} do not match the image's {expected}")
    reviewed = np.ones(labels.shape, bool) if mask is None else np.asarray(mask, bool)
    if reviewed.shape != labels.shape:
        raise ValueError(f"mask of shape {reviewed.shape} does not match the labels' {labels.shape}")
    if not stacked:
        return [TrainingPlane(image, 0, labels, reviewed)] if reviewed.any() else []
    return [TrainingPlane(image, z, labels[z], reviewed[z]) for z in range(image.n_planes) if reviewed[z].any()]
