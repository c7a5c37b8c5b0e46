"""The pixel features of ilastik's method: scikit-image's multiscale intensity, edges and texture of a plane."""

from __future__ import annotations

import numpy as np

#: scikit-image's feature set as ilastik uses it: smoothed intensity, edges and texture at σ = 1, 2, 4, 8, 16.
FEATURES = {"intensity": True, "edges": True, "texture": True, "sigma_min": 1, "sigma_max": 16}
#: Pixels of real image a feature needs on each side to be exactly what the whole plane gives: the Gaussian's
#: radius at the largest σ (truncated at 4 σ, as scikit-image does) plus 2 for the Hessian's finite differences.
#: Measured: windows with this margin give the whole plane's features to the last bit; 64 differed by 7e-7.
MARGIN = int(4 * FEATURES["sigma_max"] + 0.5) + 2


def pixel_features(image: np.ndarray) -> np.ndarray:
    """float32 (Y, X, F) features of a normalised plane ``image`` (C, Y, X); F = 20 per channel."""
    from skimage.feature import multiscale_basic_features

    if image.ndim != 3:
        raise ValueError(f"expected a (C, Y, X) plane, got shape {image.shape}")
    plane = image[0] if image.shape[0] == 1 else image
    channel_axis = None if image.shape[0] == 1 else 0
    return multiscale_basic_features(plane, channel_axis=channel_axis, **FEATURES).astype(np.float32)
