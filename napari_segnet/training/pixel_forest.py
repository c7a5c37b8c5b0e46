"""A fast pixel classifier, ilastik's method: a random forest on scikit-image's multiscale features.

It learns from a few reviewed pixels in about a second, which is what a new network lacks in its first rounds.
:mod:`napari_segnet.training.distillation` uses its confident predictions on the unreviewed pixels as extra
(down-weighted) targets for the network; the network stays the model the user fine-tunes, saves and exports.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: scikit-image's feature set as ilastik uses it: smoothed intensity, edges and texture at σ = 1, 2, 4, 8, 16.
FEATURES = {"intensity": True, "edges": True, "texture": True, "sigma_min": 1, "sigma_max": 16}
#: A forest small enough to fit in about a second on two cores: 50 trees of depth ≤ 10, each on a bootstrap sample
#: of 5 % of the pixels but at least TREE_SAMPLES (or all of them).
FOREST = {"n_estimators": 50, "max_depth": 10, "n_jobs": -1}
TREE_SAMPLES = 1000
#: At most this many reviewed pixels (a stratified-by-chance sample) train the forest.
MAX_TRAINING_PIXELS = 100_000


def pixel_features(image: np.ndarray) -> np.ndarray:
    """float32 (Y, X, F) features of a normalised plane ``image`` (C, Y, X)."""
    from skimage.feature import multiscale_basic_features  # only when a forest is asked for

    if image.ndim != 3:
        raise ValueError(f"expected a (C, Y, X) plane, got shape {image.shape}")
    plane = image[0] if image.shape[0] == 1 else image
    channel_axis = None if image.shape[0] == 1 else 0
    return multiscale_basic_features(plane, channel_axis=channel_axis, **FEATURES).astype(np.float32)


class PixelForest:
    """A random forest fitted on the reviewed pixels of one or more planes.

    features: (Y, X, F) per plane (:func:`pixel_features`); labels: (Y, X) class ids; reviewed: (Y, X) bool.
    """

    def __init__(self, features: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                 reviewed: Sequence[np.ndarray], num_classes: int, seed: int = 0):
        from sklearn.ensemble import RandomForestClassifier

        x = np.concatenate([f[r] for f, r in zip(features, reviewed, strict=True)])
        y = np.concatenate([lb[r] for lb, r in zip(labels, reviewed, strict=True)])
        if len(y) == 0:
            raise ValueError("no reviewed pixels to fit the pixel classifier on")
        rng = np.random.default_rng(seed)
        if len(y) > MAX_TRAINING_PIXELS:
            keep = rng.choice(len(y), MAX_TRAINING_PIXELS, replace=False)
            x, y = x[keep], y[keep]
        self.num_classes = num_classes
        per_tree = min(len(y), max(TREE_SAMPLES, len(y) // 20))
        self.forest = RandomForestClassifier(random_state=seed, max_samples=per_tree, **FOREST).fit(x, y)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """float32 (Y, X, num_classes) class probabilities (0 for classes no reviewed pixel showed)."""
        flat = features.reshape(-1, features.shape[-1])
        proba = np.zeros((len(flat), self.num_classes), np.float32)
        proba[:, self.forest.classes_] = self.forest.predict_proba(flat)
        return proba.reshape(*features.shape[:-1], self.num_classes)
