"""Segmentation losses: (pixel-/class-)weighted cross-entropy, soft Dice, and their sum."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.ndim != 4:
        raise ValueError(f"logits must be (N, C, H, W), got shape {tuple(logits.shape)}")
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"target must be (N, H, W) = {tuple(logits.shape[:1] + logits.shape[2:])} to match logits "
            f"{tuple(logits.shape)}, got {tuple(target.shape)}"
        )
    if target.dtype.is_floating_point or target.dtype == torch.bool:
        raise ValueError(f"target must hold integer class ids, got dtype {target.dtype}")


def _valid_mask(target: torch.Tensor, num_classes: int, mask: torch.Tensor | None,
                ignore_index: int | None) -> torch.Tensor:
    """Bool (N, H, W): pixels that count; raises for class ids out of range among them."""
    valid = torch.ones_like(target, dtype=torch.bool) if mask is None else mask.to(torch.bool)
    if valid.shape != target.shape:
        raise ValueError(f"mask must have the target's shape {tuple(target.shape)}, got {tuple(valid.shape)}")
    if ignore_index is not None:
        valid = valid & (target != ignore_index)
    ids = target[valid]
    if ids.numel() and (ids.min() < 0 or ids.max() >= num_classes):
        raise ValueError(f"target holds class ids {int(ids.min())}…{int(ids.max())}, expected 0…{num_classes - 1}")
    return valid


def weighted_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    class_weights: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """The U-Net energy, averaged: Σ_x m(x)·w(x)·w_c(ℓ(x))·(−log p_ℓ(x)(x)) / Σ_x m(x).

    logits (N, C, H, W); target (N, H, W) class ids; weight (N, H, W) per-pixel weights such as
    :func:`napari_segnet.numerics.weightmap.unet_weight_map` (default 1); class_weights (C,) (default 1); mask (N, H, W)
    bool, pixels to learn from (default all); pixels equal to ``ignore_index`` are skipped. Dividing by the
    number of counted pixels (not by Σ w) keeps the border weights' emphasis and makes the loss independent of
    the image size. Returns a scalar; 0 when no pixel counts.
    """
    _check(logits, target)
    valid = _valid_mask(target, logits.shape[1], mask, ignore_index)
    safe = torch.where(valid, target, torch.zeros_like(target)).long()
    ce = F.cross_entropy(logits.float(), safe, reduction="none")  # (N, H, W)
    w = valid.float()
    if weight is not None:
        if weight.shape != target.shape:
            raise ValueError(f"weight must have the target's shape {tuple(target.shape)}, got {tuple(weight.shape)}")
        w = w * weight.to(ce.dtype)
    if class_weights is not None:
        cw = torch.as_tensor(class_weights, dtype=ce.dtype, device=ce.device)
        if cw.shape != (logits.shape[1],):
            raise ValueError(f"class_weights must have shape ({logits.shape[1]},), got {tuple(cw.shape)}")
        w = w * cw[safe]
    return (w * ce).sum() / valid.sum().clamp(min=1)


def dice_coefficients(y_pred: torch.Tensor, y_true: torch.Tensor, squared: bool = True,
                      mask: torch.Tensor | None = None, eps: float = 1e-7) -> torch.Tensor:
    """Soft Dice per class, (C,): (2·Σ y_true·y_pred + ε) / (Σ y_true² + Σ y_pred² + ε).

    y_pred, y_true: (N, C, H, W) probabilities and one-hot (or soft) targets; sums run over N, H, W and the
    pixels where ``mask`` (N, H, W) is True. ``squared=False`` sums y_true and y_pred linearly instead.
    """
    if y_pred.shape != y_true.shape or y_pred.ndim != 4:
        raise ValueError(f"y_pred and y_true must both be (N, C, H, W), got {tuple(y_pred.shape)} "
                         f"and {tuple(y_true.shape)}")
    if mask is not None:
        m = mask.to(y_pred.dtype).unsqueeze(1)
        y_pred, y_true = y_pred * m, y_true * m
    dims = (0, 2, 3)
    inter = (y_true * y_pred).sum(dims)
    if squared:
        denom = (y_true * y_true).sum(dims) + (y_pred * y_pred).sum(dims)
    else:
        denom = y_true.sum(dims) + y_pred.sum(dims)
    return (2 * inter + eps) / (denom + eps)


def soft_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    squared: bool = True,
    from_logits: bool = True,
    mask: torch.Tensor | None = None,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """1 − (1/C)·Σ_c Dice_c, the soft Dice loss averaged over classes.

    logits (N, C, H, W) (softmax applied; with ``from_logits=False`` they are probabilities already);
    target (N, H, W) class ids, or (N, C, H, W) float one-hot/soft targets. A class absent from both target and
    prediction scores Dice 1. ``squared`` chooses Σy² (default) or Σy in the denominator.
    """
    if target.ndim == 4:
        if target.shape != logits.shape:
            raise ValueError(f"one-hot target must match logits {tuple(logits.shape)}, got {tuple(target.shape)}")
        y_true, valid = target.to(logits.dtype), mask
    else:
        _check(logits, target)
        valid = _valid_mask(target, logits.shape[1], mask, ignore_index)
        safe = torch.where(valid, target, torch.zeros_like(target)).long()
        y_true = F.one_hot(safe, logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype)
    y_pred = torch.softmax(logits.float(), dim=1) if from_logits else logits
    return 1 - dice_coefficients(y_pred, y_true.to(y_pred.dtype), squared, valid).mean()


def ce_dice_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                 class_weights: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                 ignore_index: int | None = None) -> torch.Tensor:
    """(Weighted) cross-entropy + soft Dice loss; arguments as :func:`weighted_cross_entropy`."""
    ce = weighted_cross_entropy(logits, target, weight, class_weights, mask, ignore_index)
    return ce + soft_dice_loss(logits, target, mask=mask, ignore_index=ignore_index)
