"""The fine-tune loop as a generator of typed progress updates; the model changes only when a run completes."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .devices import pick_device
from .losses import ce_dice_loss, soft_dice_loss, weighted_cross_entropy
from .models import SegmentationNet
from .models.base import cpu_state
from .patches import TrainingImage, augment, sample_patch

LOSSES = ("border_ce", "ce", "balanced_ce", "dice", "ce_dice")


class TrainingAborted(RuntimeError):
    """A run stopped because training diverged (NaN/inf loss); the model is left as it was."""


@dataclass(frozen=True)
class TrainSettings:
    """Everything that defines a fine-tune run; stored with the version it creates."""

    loss: str = "border_ce"
    w0: float = 10.0
    sigma: float = 5.0
    class_weights: str | None = "balanced"
    steps: int = 100
    lr: float = 5e-4
    batch_size: int = 4
    patch_size: int = 128
    augment: bool = True
    seed: int | None = None

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("steps", "batch_size", "patch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")

    def weight_map_args(self) -> dict:
        """w0, sigma and class weights of the per-pixel weights this loss uses."""
        border = self.loss in ("border_ce",)
        balanced = self.loss in ("border_ce", "balanced_ce") and self.class_weights is not None
        return {"w0": self.w0 if border else 0.0, "sigma": self.sigma,
                "class_weights": self.class_weights if balanced else None}


@dataclass(frozen=True)
class TrainProgress:
    """After each optimisation step: the batch loss, a running mean and the estimated seconds left."""

    step: int
    total: int
    loss: float
    mean_loss: float
    seconds_left: float


@dataclass(frozen=True)
class TrainResult:
    """The last update of a completed run: the trained weights (CPU) and what happened to them."""

    state_dict: dict[str, torch.Tensor] = field(repr=False)
    steps: int
    final_loss: float
    seconds: float


def compute_loss(name: str, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
    """The loss ``name`` on logits (N, C, h, w) with target, weight and mask (N, h, w)."""
    if name == "dice":
        return soft_dice_loss(logits, target, mask=mask)
    if name == "ce_dice":
        return ce_dice_loss(logits, target, weight=weight, mask=mask)
    return weighted_cross_entropy(logits, target, weight=weight, mask=mask)


def patch_sizes(net: SegmentationNet, patch_size: int) -> tuple[int, int]:
    """(input, output) patch sides: the smallest valid input ≥ patch_size (≥ the output for valid nets)."""
    size_in = next(n for n in range(patch_size, patch_size + 10_000) if net.is_valid_size(n)
                   and net.output_size(n) >= min(patch_size, n))
    return size_in, net.output_size(size_in)


def finetune_net(net: SegmentationNet, items: Sequence[TrainingImage], settings: TrainSettings, device=None
                 ) -> Generator[TrainProgress | TrainResult, None, None]:
    """Train a copy of ``net`` on patches of ``items``; yield :class:`TrainProgress` per step and finally a
    :class:`TrainResult`. ``net`` itself is never modified: closing the generator discards the copy.

    Raises :class:`TrainingAborted` if the loss becomes NaN or infinite.
    """
    dev = pick_device(device)
    seed = settings.seed if settings.seed is not None else int(torch.randint(0, 2**31, ()).item())
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = copy.deepcopy(net).to(dev).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    # cosine decay to 5 % of lr: a run ends on settled weights instead of wherever the last large step left them
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.steps, eta_min=settings.lr / 20)
    amp = dev.type == "cuda"
    amp_dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp and amp_dtype == torch.float16)
    size_in, size_out = patch_sizes(model, settings.patch_size)
    usable = [it for it in items if it.reviewed.any()]
    if not usable:
        raise ValueError("no reviewed pixels to learn from: mark at least part of an image as reviewed")
    areas = np.array([it.reviewed.sum() for it in usable], np.float64)
    start, losses = time.perf_counter(), []
    for step in range(1, settings.steps + 1):
        picks = rng.choice(len(usable), size=settings.batch_size, p=areas / areas.sum())
        batch = [sample_patch(usable[i], size_in, size_out, rng) for i in picks]
        if settings.augment:
            batch = [augment(*b, rng=rng) for b in batch]
        x, y, w, m = (torch.from_numpy(np.stack(a)).to(dev) for a in zip(*batch))
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp):
            logits = model(x)
        loss = compute_loss(settings.loss, logits.float(), y, w, m)
        if not torch.isfinite(loss):
            raise TrainingAborted(f"the loss became {loss.item()} at step {step}; the model was left unchanged. "
                                  "Try a lower learning rate or check the image for extreme values.")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        losses.append(loss.item())
        elapsed = time.perf_counter() - start
        yield TrainProgress(step, settings.steps, losses[-1], float(np.mean(losses[-20:])),
                            elapsed / step * (settings.steps - step))
    yield TrainResult(cpu_state(model), settings.steps, float(np.mean(losses[-10:])), time.perf_counter() - start)
