"""FC-DenseNet 56 / 67 / 103 ("Tiramisu", Jégou et al. 2017): dense blocks in a U-shaped encoder–decoder."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import SegmentationNet


class DenseLayer(nn.Sequential):
    """BN ⇒ ReLU ⇒ 3×3 conv (growth_rate maps) ⇒ Dropout."""

    def __init__(self, in_ch: int, growth_rate: int, dropout: float):
        super().__init__(
            nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True),
            nn.Conv2d(in_ch, growth_rate, 3, padding=1), nn.Dropout2d(dropout),
        )


class DenseBlock(nn.Module):
    """n dense layers, each fed the concatenation of the block input and all earlier layers' outputs.

    (N, C, H, W) → the n·growth_rate new maps (N, n·k, H, W), or with ``keep_input`` (N, C + n·k, H, W).
    """

    def __init__(self, in_ch: int, n_layers: int, growth_rate: int, dropout: float, keep_input: bool):
        super().__init__()
        self.keep_input = keep_input
        self.layers = nn.ModuleList(
            DenseLayer(in_ch + i * growth_rate, growth_rate, dropout) for i in range(n_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = []
        for layer in self.layers:
            out = layer(torch.cat([x, *new], dim=1))
            new.append(out)
        return torch.cat([x, *new] if self.keep_input else new, dim=1)


class TransitionDown(nn.Sequential):
    """BN ⇒ ReLU ⇒ 1×1 conv (same width) ⇒ Dropout ⇒ 2×2 max-pool."""

    def __init__(self, channels: int, dropout: float):
        super().__init__(
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1), nn.Dropout2d(dropout), nn.MaxPool2d(2),
        )


class TransitionUp(nn.Module):
    """3×3 transposed conv of stride 2 on the new maps of the previous block, cropped to the skip, concatenated.

    x: (N, C, h, w), skip: (N, S, 2h, 2w) → (N, C + S, 2h, 2w).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up(x)[:, :, : skip.shape[2], : skip.shape[3]]  # (2h+1) → 2h, as the reference crops
        return torch.cat([up, skip], dim=1)


class FCDenseNet(SegmentationNet):
    """Configurable FC-DenseNet; ``layers_per_block`` lists down blocks, the bottleneck, then up blocks.

    Input (N, in_channels, H, W), H and W multiples of 2**pools → logits (N, num_classes, H, W).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 11,
        layers_per_block: Sequence[int] = (4,) * 11,
        growth_rate: int = 12,
        first_filters: int = 48,
        dropout: float = 0.2,
    ):
        super().__init__()
        if len(layers_per_block) % 2 == 0 or len(layers_per_block) < 3:
            raise ValueError(f"layers_per_block needs an odd length ≥ 3, got {list(layers_per_block)}")
        self.in_channels, self.num_classes = in_channels, num_classes
        pools = len(layers_per_block) // 2
        down, bottleneck, up = layers_per_block[:pools], layers_per_block[pools], layers_per_block[pools + 1 :]
        self.first = nn.Conv2d(in_channels, first_filters, 3, padding=1)
        self.down_blocks, self.trans_down, skip_channels = nn.ModuleList(), nn.ModuleList(), []
        c = first_filters
        for n in down:
            self.down_blocks.append(DenseBlock(c, n, growth_rate, dropout, keep_input=True))
            c += n * growth_rate
            skip_channels.append(c)
            self.trans_down.append(TransitionDown(c, dropout))
        self.bottleneck = DenseBlock(c, bottleneck, growth_rate, dropout, keep_input=False)
        self.trans_up, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        new = bottleneck * growth_rate
        for i, n in enumerate(up):
            self.trans_up.append(TransitionUp(new))
            c = new + skip_channels[-1 - i]
            last = i == len(up) - 1
            self.up_blocks.append(DenseBlock(c, n, growth_rate, dropout, keep_input=last))
            new = n * growth_rate
        self.head = nn.Conv2d(c + new, num_classes, 1)
        self.total_stride = 2**pools
        self.halo = self._halo(down, bottleneck, up)

    @staticmethod
    def _halo(down: Sequence[int], bottleneck: int, up: Sequence[int]) -> int:
        """Context per side along the deepest path: each 3×3 conv adds its step, each pool and each transposed
        conv (two coarse inputs per output) may reach one step to one side."""
        steps = [2**i for i in range(len(down))]
        convs = 1 + sum(n * s for n, s in zip(down, steps)) + sum(n * s for n, s in zip(up, reversed(steps)))
        convs += bottleneck * 2 ** len(down)
        return convs + 2 * sum(steps)

    def is_valid_size(self, size: int) -> bool:
        return size >= 1 and size % self.total_stride == 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, in_channels, H, W) → logits (N, num_classes, H, W)."""
        self.check_input(x)
        x = self.first(x)
        skips = []
        for block, down in zip(self.down_blocks, self.trans_down):
            x = block(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.trans_up, self.up_blocks, reversed(skips)):
            x = block(up(x, skip))
        return self.head(x)


def fc_densenet56(in_channels: int = 3, num_classes: int = 11, growth_rate: int = 12, dropout: float = 0.2,
                  first_filters: int = 48) -> FCDenseNet:
    """FC-DenseNet56: 4 layers in each of 11 blocks, growth rate 12."""
    return FCDenseNet(in_channels, num_classes, (4,) * 11, growth_rate, first_filters, dropout)


def fc_densenet67(in_channels: int = 3, num_classes: int = 11, growth_rate: int = 16, dropout: float = 0.2,
                  first_filters: int = 48) -> FCDenseNet:
    """FC-DenseNet67: 5 layers in each of 11 blocks, growth rate 16."""
    return FCDenseNet(in_channels, num_classes, (5,) * 11, growth_rate, first_filters, dropout)


def fc_densenet103(in_channels: int = 3, num_classes: int = 11, growth_rate: int = 16, dropout: float = 0.2,
                   first_filters: int = 48) -> FCDenseNet:
    """FC-DenseNet103: blocks of 4, 5, 7, 10, 12 | 15 | 12, 10, 7, 5, 4 layers, growth rate 16."""
    return FCDenseNet(in_channels, num_classes, (4, 5, 7, 10, 12, 15, 12, 10, 7, 5, 4), growth_rate,
                      first_filters, dropout)
