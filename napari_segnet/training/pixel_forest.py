"""A fast pixel classifier, ilastik's method: a random forest on scikit-image's multiscale features.

It learns from a few reviewed pixels in about a second, which is what a new network lacks in its first rounds.
:mod:`napari_segnet.training.distillation` uses its confident predictions on the unreviewed pixels as extra
(down-weighted) targets for the network, and :mod:`napari_segnet.training.blend` may keep it in a version,
blended with the network (:mod:`napari_segnet.inference.forest_blend`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..numerics.tree_ensemble import TreeEnsemble

#: A forest small enough to fit in about a second on two cores: 50 trees of depth ≤ 10, each on a bootstrap sample
#: of 5 % of the pixels but at least TREE_SAMPLES (or all of them).
FOREST = {"n_estimators": 50, "max_depth": 10, "n_jobs": -1}
TREE_SAMPLES = 1000
#: At most this many reviewed pixels (a stratified-by-chance sample) train the forest.
MAX_TRAINING_PIXELS = 100_000


class PixelForest:
    """A random forest fitted on the reviewed pixels of one or more planes.

    features: (Y, X, F) per plane (:func:`~napari_segnet.numerics.pixel_features.pixel_features`); labels: (Y, X)
    class ids; reviewed: (Y, X) bool.
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

    def ensemble(self) -> TreeEnsemble:
        """The fitted trees as arrays (a version keeps them in its state dict; no pickle)."""
        return TreeEnsemble.from_sklearn(self.forest, self.num_classes)
