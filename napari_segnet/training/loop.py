"""The fine-tune loop as a generator of typed progress updates; the model changes only when a run completes."""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from ..inference.devices import autocast_dtype, pick_device
from ..models import SegmentationNet
from ..models.base import cpu_state
from ..numerics.losses import ce_dice_loss, soft_dice_loss, weighted_cross_entropy
from ..progress import Outcome, Progress
from . import ddp
from .patches import TrainingImage, augment, sample_patch
from .settings import TrainSettings

#: A run has diverged when the mean of its last 3 losses exceeds this multiple of its first loss (the loss of
#: the untouched model; at least 0.1). Healthy runs start at their highest loss and fall; lr = 1e6 reaches
#: ~1e12 within a few steps.
DIVERGENCE_FACTOR = 100.0

#: ``auto_max_seconds``: the speed of a run is measured over its steps 2…PROBE_STEPS (the first pays one-time
#: costs), then its length is fixed.
PROBE_STEPS = 10


class TrainingAborted(RuntimeError):
    """A run stopped because training diverged (NaN/inf or exploding loss); the model is left as it was."""


@dataclass(frozen=True)
class TrainProgress(Progress):
    """After each optimisation step (``done`` of ``total``): the batch loss, a running mean, seconds left."""

    loss: float = float("nan")
    mean_loss: float = float("nan")
    seconds_left: float = float("nan")
    unit: ClassVar[str] = "steps"

    @property
    def step(self) -> int:
        """The step just finished (= ``done``)."""
        return self.done


@dataclass(frozen=True)
class TrainResult(Outcome):
    """The outcome of a completed run: the trained weights (CPU) and what happened to them."""

    state_dict: dict[str, torch.Tensor] = field(repr=False)
    steps: int
    final_loss: float
    seconds: float


def compute_loss(name: str, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
    """The loss ``name`` on logits (N, C, h, w) with target, weight and mask (N, h, w)."""
    if name == "dice":
        return soft_dice_loss(logits, target, mask=mask)
    if name in ("ce_dice", "border_ce_dice"):
        return ce_dice_loss(logits, target, weight=weight, mask=mask)
    return weighted_cross_entropy(logits, target, weight=weight, mask=mask)


def patch_sizes(net: SegmentationNet, patch_size: int) -> tuple[int, int]:
    """(input, output) patch sides: the smallest valid input ≥ patch_size (for a valid net, the smallest
    whose output is ≥ patch_size)."""
    size_in = net.valid_size(patch_size, min_output=patch_size if net.shrink else 0)
    return size_in, net.output_size(size_in)


def finetune_net(net: SegmentationNet, items: Sequence[TrainingImage], settings: TrainSettings, device=None
                 ) -> Iterator[TrainProgress | TrainResult]:
    """Check the inputs, then return a generator that trains a copy of ``net`` on patches of ``items``: it
    yields :class:`TrainProgress` per step and finally a :class:`TrainResult`. ``net`` itself is never
    modified: closing the generator discards the copy.

    The generator raises :class:`TrainingAborted` if the loss becomes NaN/inf or explodes
    (:data:`DIVERGENCE_FACTOR`), or the trained weights are not finite.
    """
    usable = usable_items(items)
    settings = settings.resolved(int(sum(it.reviewed.sum() for it in usable)))
    return _train(net, usable, settings, pick_device(device))


def usable_items(items: Sequence[TrainingImage]) -> list[TrainingImage]:
    """The items with reviewed pixels; ``ValueError`` when none has any."""
    usable = [it for it in items if it.reviewed.any()]
    if not usable:
        raise ValueError("no reviewed pixels to learn from: mark at least part of an image as reviewed")
    return usable


def warm_up_in_background() -> threading.Thread:
    """Pay torch's one-time cost of a process's first optimizer (building ``torch.optim.Adam`` imports
    ``torch._dynamo``: 1.3 s here) in a daemon thread, so that the first fine-tune round does not (the dock calls
    this when it opens). Only an optimisation: it says nothing if it fails (napari closed within a second of
    opening the dock stops the interpreter under the import: "operator … does not exist")."""
    def warm_up():
        try:
            torch.optim.Adam([torch.zeros(1, requires_grad=True)])
        except Exception:  # noqa: BLE001 - the first fine-tune then pays the import itself
            pass

    thread = threading.Thread(target=warm_up, daemon=True, name="napari-segnet warm-up")
    thread.start()
    return thread


def _train(net: SegmentationNet, usable: list[TrainingImage], settings: TrainSettings, dev: torch.device
           ) -> Iterator[TrainProgress | TrainResult]:
    # under torchrun every rank samples other patches; ddp.wrap starts all ranks from rank 0's weights
    seed = (settings.seed if settings.seed is not None else int(torch.randint(0, 2**31, ()).item())) + ddp.rank()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    # channels_last: forward + backward of the default U-Net 3.6× faster on the CPU here (benchmarks/finetune.py)
    model = copy.deepcopy(net).to(dev, memory_format=torch.channels_last).train()
    trained = ddp.wrap(model, dev)
    optimizer = torch.optim.Adam(_param_groups(model, settings), lr=settings.lr)
    # cosine decay of every group's lr to 5 % of itself: a run ends on settled weights instead of wherever the last
    # large step left them (a factor, not CosineAnnealingLR's one eta_min, so head and body decay alike)
    steps = settings.steps  # the run's length; ``auto_max_seconds`` may shorten it after PROBE_STEPS steps
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: cosine_factor(t, steps))  # reads it live
    amp_dtype = autocast_dtype(dev)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    sizes = patch_sizes(model, settings.patch_size)
    areas = np.array([it.reviewed.sum() for it in usable], np.float64)
    start, losses, step = time.perf_counter(), [], 0
    while step < steps:
        step += 1
        x, y, w, m = _batch(usable, areas / areas.sum(), sizes, settings, rng, dev)
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = trained(x.contiguous(memory_format=torch.channels_last))
        loss = compute_loss(settings.loss, logits.float(), y, w, m)
        losses.append(ddp.mean(loss))  # the same on every rank, so every rank takes the same decisions
        _check_divergence(losses)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        elapsed = time.perf_counter() - start
        if step == 1:
            first = elapsed
        if step == PROBE_STEPS and settings.auto_max_seconds is not None:
            fit = budget_steps(steps, step, elapsed, (elapsed - first) / (step - 1), settings.auto_max_seconds)
            steps = int(ddp.mean(torch.tensor(float(fit))))  # one length on every rank
        yield TrainProgress(step, steps, losses[-1], float(np.mean(losses[-20:])), elapsed / step * (steps - step))
    ddp.sync_buffers(model)
    state = cpu_state(model)
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise TrainingAborted("training produced non-finite weights; the model was left unchanged. "
                              "Try a lower learning rate.")
    yield TrainResult(state, steps, float(np.mean(losses[-10:])), time.perf_counter() - start)


def budget_steps(steps: int, done: int, elapsed: float, seconds_per_step: float, max_seconds: float) -> int:
    """The length of a run of ``steps`` planned steps, ``done`` of them run in ``elapsed`` s, that must end within
    ``max_seconds`` at ``seconds_per_step`` (never fewer than ``done``)."""
    more = (max_seconds - elapsed) // max(seconds_per_step, 1e-9)
    return int(min(steps, max(done, done + more)))


def cosine_factor(step: int, steps: int) -> float:
    """The lr multiplier at ``step`` of ``steps``: cosine from 1 to 0.05."""
    return 0.05 + 0.95 * (1 + math.cos(math.pi * step / steps)) / 2


def _param_groups(model: SegmentationNet, settings: TrainSettings) -> list[dict]:
    """Adam's parameter groups: the classifier head (``model.head``, where the network has one) at ``lr``, the
    rest at ``lr × body_lr_scale``."""
    head = {id(p) for p in model.head.parameters()} if hasattr(model, "head") else set()
    body = [p for p in model.parameters() if id(p) not in head]
    return [g for g in ({"params": [p for p in model.parameters() if id(p) in head], "lr": settings.lr},
                        {"params": body, "lr": settings.lr * settings.body_lr_scale}) if g["params"]]


def _batch(usable: list[TrainingImage], p: np.ndarray, sizes: tuple[int, int], settings: TrainSettings,
           rng: np.random.Generator, dev: torch.device) -> tuple[torch.Tensor, ...]:
    """One batch: image (B, C, s_in, s_in) float32, target (B, s_out, s_out) int64, weights, mask."""
    picks = rng.choice(len(usable), size=settings.batch_size, p=p)
    batch = [sample_patch(usable[i], *sizes, rng) for i in picks]
    if settings.augment:
        batch = [augment(*b, rng=rng) for b in batch]
    return tuple(torch.from_numpy(np.stack(a)).to(dev) for a in zip(*batch))


def _check_divergence(losses: list[float]) -> None:
    """Raise :class:`TrainingAborted` if the last loss is NaN/inf or the recent ones exploded."""
    step, last = len(losses), losses[-1]
    if not math.isfinite(last):
        raise TrainingAborted(f"the loss became {last} at step {step}; the model was left unchanged. "
                              "Try a lower learning rate or check the image for extreme values.")
    recent, limit = float(np.mean(losses[-3:])), DIVERGENCE_FACTOR * max(losses[0], 0.1)
    if recent > limit:
        raise TrainingAborted(f"training diverged: the loss rose from {losses[0]:.3g} to {recent:.3g} by step "
                              f"{step}; the model was left unchanged. Try a lower learning rate.")
