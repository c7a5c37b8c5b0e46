"""Intensity normalisation, part of a model's metadata so that training and prediction agree."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .images import ImagePlanes

NOT_FINITE = "the image contains NaN or infinite values; replace them before predicting or training"

MODES = ("percentile", "fixed", "none")


@dataclass(frozen=True)
class Normalization:
    """How raw intensities become network inputs: x' = (x − offset) / scale, per channel.

    ``percentile`` (the default): offset and scale from each image's ``low``/``high`` percentiles, so 1 → 0 and
    99.8 → 1 whatever the dtype or exposure; computed once per image (over all its planes) from a grid sample of
    at most a million pixels. ``fixed``: the given ``offset``/``scale`` (one per channel, or one for all).
    ``none``: inputs as they are.
    """

    mode: str = "percentile"
    low: float = 1.0
    high: float = 99.8
    offset: tuple[float, ...] = (0.0,)
    scale: tuple[float, ...] = (1.0,)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"normalization mode must be one of {MODES}, got {self.mode!r}")
        if not 0 <= self.low < self.high <= 100:
            raise ValueError(f"percentiles need 0 ≤ low < high ≤ 100, got {self.low}, {self.high}")
        if self.mode == "fixed" and (not all(np.isfinite(self.scale)) or 0 in self.scale):
            raise ValueError(f"fixed normalization needs finite non-zero scales, got {self.scale}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        d = dict(d)
        for k in ("offset", "scale"):
            if k in d:
                d[k] = tuple(float(v) for v in d[k])
        return cls(**d)

    def parameters(self, planes: ImagePlanes) -> tuple[np.ndarray, np.ndarray]:
        """offset, scale: float32 (C, 1, 1) for this image. Raises ``ValueError`` for NaN/inf in the image."""
        c = planes.channels
        if self.mode == "none":
            return np.zeros((c, 1, 1), np.float32), np.ones((c, 1, 1), np.float32)
        if self.mode == "fixed":
            offset, scale = np.broadcast_to(self.offset, (c,)), np.broadcast_to(self.scale, (c,))
        else:
            sample = planes.sample()
            if not np.isfinite(sample).all():
                raise ValueError(NOT_FINITE)
            offset, high = np.percentile(sample, [self.low, self.high], axis=1)
            scale = high - offset
            scale[scale <= 0] = 1.0  # a constant image maps to 0 instead of dividing by zero
        return (np.asarray(offset, np.float32).reshape(c, 1, 1), np.asarray(scale, np.float32).reshape(c, 1, 1))

    @staticmethod
    def apply(tile: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """(C, h, w) raw → normalised float32; raises ``ValueError`` if the tile holds NaN/inf."""
        out = (tile - offset) / scale
        if not np.isfinite(out).all():
            raise ValueError(NOT_FINITE)
        return out.astype(np.float32, copy=False)
