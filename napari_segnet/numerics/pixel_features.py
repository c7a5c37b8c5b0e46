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


def window_features(read, shape: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """float32 (y1 - y0, x1 - x0, F): the features of rows [y0, y1) and columns [x0, x1) of a plane of ``shape``
    (Y, X), exactly as the whole plane gives them: ``read(ys, xs)`` returns the normalised plane (C, len(ys),
    len(xs)) at those indices, and is asked for the box grown by :data:`MARGIN` (clipped to the plane)."""
    (y0, y1), (x0, x1) = rows, cols
    wy, wx = (max(y0 - MARGIN, 0), min(y1 + MARGIN, shape[0])), (max(x0 - MARGIN, 0), min(x1 + MARGIN, shape[1]))
    features = pixel_features(read(np.arange(*wy), np.arange(*wx)))
    return features[y0 - wy[0] : y1 - wy[0], x0 - wx[0] : x1 - wx[0]]
