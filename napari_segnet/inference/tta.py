"""Test-time augmentation: class probabilities averaged over the 8 flips and 90° rotations of the input (the
symmetries of the square), each mapped back before averaging. Eight forward passes instead of one; measured on
new models after a few corrections (README "Test-time augmentation"): +0.003…+0.018 held-out mean IU."""

from __future__ import annotations

import torch
from torch import nn

#: (quarter turns, mirrored): the 8 symmetries of the square, identity first
SYMMETRIES = tuple((k, flip) for k in range(4) for flip in (False, True))


def transform(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """(B, C, h, w) turned by k quarter turns, then mirrored left-right when ``flip``."""
    x = torch.rot90(x, k, dims=(2, 3))
    return x.flip(3) if flip else x


def untransform(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """The inverse of :func:`transform`: mirror back, then turn back."""
    x = x.flip(3) if flip else x
    return torch.rot90(x, -k, dims=(2, 3))


def averaged_probabilities(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, C_in, h, w) → float32 softmax probabilities (B, C, h', w'), the mean of ``net``'s over the 8
    :data:`SYMMETRIES` of ``x``. Needs a network whose output is centred on its input, as every registered one
    is (a turned input of shape (w, h) gives a turned output)."""
    total = None
    for k, flip in SYMMETRIES:
        turned = transform(x, k, flip).contiguous(memory_format=torch.channels_last)
        p = untransform(torch.softmax(net(turned).float(), dim=1), k, flip)
        total = p if total is None else total + p
    return total / len(SYMMETRIES)
