"""The one peer of the human-in-the-loop benchmarks: the product's own pixel forest (ilastik's method).

:class:`napari_segnet.training.pixel_forest.PixelForest` — the forest distillation uses — trained on exactly the
pixels the simulated user reviewed for the network, predicting whole images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_segnet.numerics.pixel_features import pixel_features
from napari_segnet.training.pixel_forest import PixelForest


def features(image: np.ndarray, channel_axis: int | None = None) -> np.ndarray:
    """float32 (Y, X, F) forest features of a 2-D ``image`` ((Y, X), or with channels on ``channel_axis``), each
    channel normalised as the product's default does (percentiles 1 → 0, 99.8 → 1)."""
    planes = (np.asarray(image, np.float32)[None] if channel_axis is None
              else np.moveaxis(np.asarray(image, np.float32), channel_axis, 0))
    lo, hi = np.percentile(planes, [1, 99.8], axis=(1, 2), keepdims=True)
    return pixel_features((planes - lo) / np.maximum(hi - lo, 1e-6))


class ForestPeer:
    """The pixel forest of a set of working images (each (Y, X), or with channels on ``channel_axis``): features
    computed once, a forest fitted per round.

    ``num_classes``: classes of the labels (0 … num_classes − 1).
    """

    def __init__(self, images: Sequence[np.ndarray], num_classes: int, channel_axis: int | None = None):
        self.num_classes, self.channel_axis = num_classes, channel_axis
        self.train_features = [features(im, channel_axis) for im in images]

    def fit_predict(self, truths: Sequence[np.ndarray], reviewed: Sequence[np.ndarray],
                    test_images: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Fit on the ``reviewed`` ((Y, X) bool) pixels of ``truths`` ((Y, X) class ids) of the working images;
        (class ids of every working image, class ids of every test image), each (Y, X)."""
        forest = PixelForest(self.train_features, truths, reviewed, self.num_classes)

        def predict(f):
            return forest.probabilities(f).argmax(-1).astype(np.uint8)

        return ([predict(f) for f in self.train_features],
                [predict(features(im, self.channel_axis)) for im in test_images])
