"""A whole-image pass as ``predict`` makes it: mirrored context around the image, the net, centre crop, softmax."""

from __future__ import annotations

import torch
from torch import nn


def mirror_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices (n + 2·pad,) into an axis of n pixels, mirrored without repeating the edge at any distance."""
    idx = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = torch.remainder(idx, period)
    return torch.where(idx >= n, period - idx, idx)


class MirrorContext(nn.Module):
    """(N, C_in, H, W) raw-normalised image → (N, classes, H, W) probabilities, as one tile of overlap-tile
    prediction: ``pad`` mirrored pixels of context on each side, the net, output pixels [crop, crop + H)."""

    def __init__(self, net: nn.Module, pad: int, crop: int):
        super().__init__()
        self.net, self.pad, self.crop = net, pad, crop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        x = x.index_select(2, mirror_index(h, self.pad, x.device)).index_select(3, mirror_index(w, self.pad, x.device))
        logits = self.net(x)
        return torch.softmax(logits[:, :, self.crop : self.crop + h, self.crop : self.crop + w], dim=1)
