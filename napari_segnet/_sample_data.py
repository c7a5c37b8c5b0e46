"""File › Open Sample: the nuclei slices with ground truth, a synthetic multi-class image and a mosaic of real
textures."""

from __future__ import annotations

from .data.synthetic import CLASS_NAMES, TEXTURE_CLASS_NAMES, synthetic_image, texture_mosaic
from .sample_data import HELD_OUT, nuclei


def nuclei_sample() -> list[tuple]:
    """One held-out nuclei slice (256², uint16) and its ground-truth labels (hidden: the first screen should
    show the raw image, not what looks like a segmentation already done)."""
    image, labels = nuclei()
    z = HELD_OUT[len(HELD_OUT) // 2]
    return [(image[z], {"name": "nuclei"}),
            (labels[z], {"name": "nuclei ground truth", "opacity": 0.4, "visible": False}, "labels")]


def synthetic_sample() -> list[tuple]:
    """A 512² synthetic image with cells, rods and vesicles, and its labels (hidden)."""
    image, labels, _ = synthetic_image((512, 512), n_objects=160, seed=1)
    return [(image, {"name": "synthetic"}),
            (labels, {"name": "synthetic ground truth", "opacity": 0.4, "visible": False,
                      "metadata": {"class_names": CLASS_NAMES}}, "labels")]


def textures_sample() -> list[tuple]:
    """A 256×512 mosaic of real photographed textures (brick, grass, gravel: a new model's own classes) and its
    labels (hidden)."""
    image, labels = texture_mosaic((256, 512), seed=7, half="bottom")
    return [(image, {"name": "textures"}),
            (labels, {"name": "textures ground truth", "opacity": 0.4, "visible": False,
                      "metadata": {"class_names": TEXTURE_CLASS_NAMES}}, "labels")]
