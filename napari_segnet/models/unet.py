"""U-Net (Ronneberger, Fischer, Brox 2015): contracting path, expanding path, skip concatenation."""

from __future__ import annotations

import torch
from torch import nn

from .base import SegmentationNet

PADDINGS = ("valid", "same")


class DoubleConv(nn.Sequential):
    """(3×3 conv ⇒ [BN] ⇒ ReLU) × 2; 'valid' convs shrink each side by 2 px, 'same' convs keep the size."""

    def __init__(self, in_ch: int, out_ch: int, padding: str, batch_norm: bool):
        pad = 1 if padding == "same" else 0
        layers: list[nn.Module] = []
        for c_in in (in_ch, out_ch):
            # With BN the conv bias is redundant (BN's shift absorbs it), so it is dropped.
            layers.append(nn.Conv2d(c_in, out_ch, 3, padding=pad, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Up(nn.Module):
    """2×2 up-convolution (halves channels) ⇒ centre-crop the skip to match ⇒ concatenate ⇒ DoubleConv."""

    def __init__(self, in_ch: int, out_ch: int, padding: str, batch_norm: bool):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2)
        self.conv = DoubleConv(2 * out_ch, out_ch, padding, batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """x: (N, in_ch, h, w), skip: (N, out_ch, H, W) with H ≥ 2h → (N, out_ch, H', W')."""
        x = self.up(x)
        dy = (skip.shape[2] - x.shape[2]) // 2  # the paper's "cropping of the feature map from the
        dx = (skip.shape[3] - x.shape[3]) // 2  # contracting path" (0 for 'same' padding)
        skip = skip[:, :, dy : dy + x.shape[2], dx : dx + x.shape[3]]
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(SegmentationNet):
    """U-Net with configurable width, depth, padding and batch norm.

    ``UNet(1, 2, base_filters=64, depth=4, padding="valid", batch_norm=False)`` is the paper's network:
    31,030,658 parameters, 572×572 → 388×388. The padded variant with BN (the default) keeps the input size
    for inputs divisible by ``2**depth``.

    Input (N, in_channels, H, W) → logits (N, num_classes, H', W'); H' = H for 'same', smaller for 'valid'.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        base_filters: int = 32,
        depth: int = 4,
        padding: str = "same",
        batch_norm: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        if depth < 1 or base_filters < 1:
            raise ValueError(f"depth and base_filters must be ≥ 1, got depth={depth}, base_filters={base_filters}")
        self.in_channels, self.num_classes = in_channels, num_classes
        self.depth, self.padding = depth, padding
        widths = [base_filters * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c_in = in_channels
        for w in widths[:-1]:
            self.down.append(DoubleConv(c_in, w, padding, batch_norm))
            c_in = w
        self.pool = nn.MaxPool2d(2)
        self.bottom = DoubleConv(widths[-2], widths[-1], padding, batch_norm)
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()  # the paper's drop-out at the bottom
        self.up = nn.ModuleList(Up(widths[i + 1], widths[i], padding, batch_norm) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        self.total_stride = 2**depth
        self.halo = self._halo()

    def _halo(self) -> int:
        """Context per side. Valid: (input − output) / 2 (92 for the paper's net), exact for stride-aligned tiles.

        Same: each 3×3 conv at resolution step j adds j px per side; each 2×2 max-pool may reach j px to one
        side only (its window's phase), so the pool terms are added in full.
        """
        if self.padding == "valid":
            return self.shrink
        convs = sum(2 * 2**i for i in range(self.depth)) * 2 + 2 * 2**self.depth  # down + up paths, bottom
        pools = sum(2**i for i in range(self.depth))
        return convs + pools

    def _trace(self, size: int) -> int | None:
        """Follow one spatial size through the net; None where a level gets a non-positive or odd size."""
        shrink = 4 if self.padding == "valid" else 0
        for _ in range(self.depth):
            size -= shrink
            if size <= 0 or size % 2:
                return None
            size //= 2
        size -= shrink
        for _ in range(self.depth):
            size = 2 * size - shrink
            if size <= 0:
                return None
        return size if size > 0 else None

    def is_valid_size(self, size: int) -> bool:
        return self._trace(size) is not None

    def output_size(self, size: int) -> int:
        out = self._trace(size)
        if out is None:
            raise ValueError(f"UNet cannot take size {size}; nearest valid sizes: {self.nearest_valid_sizes(size)}")
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, in_channels, H, W) → logits (N, num_classes, H', W')."""
        self.check_input(x)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.drop(self.bottom(x))
        for up, skip in zip(self.up, reversed(skips)):
            x = up(x, skip)
        return self.head(x)


def unet(in_channels: int = 1, num_classes: int = 2, base_filters: int = 32, depth: int = 4,
         padding: str = "same", batch_norm: bool = True, dropout: float = 0.0) -> UNet:
    """The fast default: padded convs with BN, 32 base filters, depth 4 (all options configurable)."""
    return UNet(in_channels, num_classes, base_filters, depth, padding, batch_norm, dropout)


def unet_paper(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0) -> UNet:
    """The paper's configuration: 64 base filters, 4 poolings, unpadded convs with bias, no BN."""
    return UNet(in_channels, num_classes, base_filters=64, depth=4, padding="valid", batch_norm=False,
                dropout=dropout)
