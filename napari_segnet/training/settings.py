"""Fine-tune settings (TrainSettings: loss, steps, lr, patches, …) and the weight-map policy of each loss."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields, replace

import numpy as np

from ..numerics.weightmap import unet_weight_map

#: border_ce_dice = the border-weighted CE + soft Dice (measured against border_ce: README, "Human in the loop from
#: the shipped default"); ce_dice adds Dice to CE without the border term.
LOSSES = ("border_ce", "ce", "balanced_ce", "dice", "ce_dice", "border_ce_dice")

#: ``steps="auto"``: AUTO_STEPS steps per patch-sized area (patch_size²) of reviewed pixels, clipped to
#: [AUTO_MIN_STEPS, AUTO_MAX_STEPS] (chosen with ``benchmarks/hitl.py --data shift``, README "Default model").
AUTO_STEPS, AUTO_MIN_STEPS, AUTO_MAX_STEPS = 25.0, 40, 400
def auto_steps(reviewed_pixels: int, patch_size: int, per_patch: float = AUTO_STEPS,
               min_steps: int = AUTO_MIN_STEPS) -> int:
    """The ``steps="auto"`` rule: ``per_patch`` steps per patch_size² of reviewed pixels, clipped to
    [min_steps, AUTO_MAX_STEPS]."""
    steps = round(per_patch * reviewed_pixels / patch_size**2)
    return int(min(AUTO_MAX_STEPS, max(min_steps, steps)))


@dataclass(frozen=True)
class TrainSettings:
    """Everything that defines a fine-tune run; stored with the version it creates. The defaults are what a trained
    model recommends (:mod:`napari_segnet.training.recommend`)."""

    loss: str = "border_ce"
    w0: float = 10.0
    sigma: float = 5.0
    class_weights: str | None = None  # balanced ones over-grow objects (README, HITL from the shipped default)
    steps: int | str = "auto"
    lr: float = 2e-4
    batch_size: int = 4
    patch_size: int = 128
    augment: bool = True
    seed: int | None = None
    distill: float = 0.0  # loss weight of a pixel forest's labels on unreviewed pixels (0: off; distillation.py)
    forest_blend: bool = False  # the version may keep a pixel forest blended into its predictions (blend.py)
    auto_per_patch: float = AUTO_STEPS  # steps="auto": steps per patch_size² of reviewed pixels …
    auto_min_steps: int = AUTO_MIN_STEPS  # … and at least this many
    auto_per_patch_distilled: float | None = None  # … in a round that learns forest labels too (None: the same)
    body_lr_scale: float = 1.0  # lr of every parameter outside the classifier head (``net.head``) = lr × this
    auto_max_seconds: float | None = None  # … the round's preparation and training within this many seconds
    #                                        (None: no limit; resolved(), after_spending())

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("steps", "batch_size", "patch_size"):
            value = getattr(self, name)
            if name == "steps" and isinstance(value, str) and value == "auto":
                continue
            if not isinstance(value, int) or value < 1:
                also = ' or "auto"' if name == "steps" else ""
                raise ValueError(f"{name} must be a positive integer{also}, got {value!r}")
        if not (isinstance(self.lr, numbers.Real) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.seed is not None and (not isinstance(self.seed, numbers.Integral) or isinstance(self.seed, bool)):
            raise ValueError(f"seed must be an integer or None, got {self.seed!r}")
        rates = [r for r in (self.auto_per_patch, self.auto_per_patch_distilled) if r is not None]
        if not all(r > 0 and math.isfinite(r) for r in rates) or self.auto_min_steps < 1:
            raise ValueError(f"auto_per_patch(_distilled) must be positive and auto_min_steps ≥ 1, got {rates}, "
                             f"{self.auto_min_steps}")
        if not (self.body_lr_scale > 0 and math.isfinite(self.body_lr_scale)):
            raise ValueError(f"body_lr_scale must be a positive number, got {self.body_lr_scale}")
        if not (0 <= self.distill <= 1):
            raise ValueError(f"distill must be a weight in [0, 1], got {self.distill}")
        budget = self.auto_max_seconds
        if budget is not None and not (budget > 0 and math.isfinite(budget)):
            raise ValueError(f"auto_max_seconds must be a positive number of seconds or None, got {budget}")

    @classmethod
    def of(cls, **settings) -> TrainSettings:
        """Settings from keyword arguments; ``ValueError`` naming the valid ones for an unknown name. Steps given
        as a number run in full: ``auto_max_seconds`` bounds only ``steps="auto"``."""
        unknown = sorted(set(settings) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown fine-tune setting(s) {unknown}; valid: {[f.name for f in fields(cls)]}")
        if settings.get("steps", "auto") != "auto":
            settings = {**settings, "auto_max_seconds": None}  # steps the user gave run in full
        return cls(**settings)

    def resolved(self, reviewed_pixels: int, distilled: bool = False) -> TrainSettings:
        """A copy with ``steps="auto"`` turned into a number for ``reviewed_pixels`` (:func:`auto_steps`), at
        ``auto_per_patch_distilled`` steps per patch when the round learns forest labels too (``distilled``).
        ``auto_max_seconds`` then shortens the run if its first steps show it would take longer (the speed of
        steps 2…PROBE_STEPS, then the length is fixed and the cosine schedule follows it)."""
        if self.steps != "auto":
            return self
        rate = self.auto_per_patch_distilled if distilled and self.auto_per_patch_distilled else self.auto_per_patch
        return replace(self, steps=auto_steps(reviewed_pixels, self.patch_size, rate, self.auto_min_steps))

    def after_spending(self, seconds: float) -> TrainSettings:
        """A copy whose ``auto_max_seconds`` (if any) is ``seconds`` shorter, for a round that already spent them
        preparing (planes, the pixel forest): the budget bounds the round, not only its training. At least 1 s
        (or the whole budget, if shorter) is left, and a run never stops before its speed is measured."""
        if self.auto_max_seconds is None:
            return self
        budget = self.auto_max_seconds
        return replace(self, auto_max_seconds=max(budget - seconds, min(budget, 1.0)))

    def weight_map_args(self) -> dict:
        """w0, sigma and class weights of the per-pixel weights this loss uses."""
        border = self.loss in ("border_ce", "border_ce_dice")
        weights = self.class_weights if border else None
        if self.loss == "balanced_ce":
            weights = self.class_weights or "balanced"
        return {"w0": self.w0 if border else 0.0, "sigma": self.sigma, "class_weights": weights}

    def weight_map(self, labels: np.ndarray, reviewed: np.ndarray | None = None) -> np.ndarray:
        """float32 (Y, X): the per-pixel weights this loss trains with on ``labels`` (Y, X), computed from the
        ``reviewed`` pixels only — exactly what a fine-tune uses (and the dock's "Show weight map" shows)."""
        return unet_weight_map(labels, mask=reviewed, **self.weight_map_args())
