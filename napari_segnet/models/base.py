"""Common contract of every segmentation network: logits out, total stride, halo, valid input sizes."""

from __future__ import annotations

import torch
from torch import nn


class SegmentationNet(nn.Module):
    """Base class: maps images (N, in_channels, H, W) to logits (N, num_classes, H', W').

    Subclasses set ``in_channels``, ``num_classes``, ``total_stride`` (the product of all pooling strides: tiles
    must start on multiples of it for tiled and whole-image predictions to agree) and ``halo`` (context, in input
    pixels on each side, that an output pixel needs: the receptive-field radius, or the valid-convolution border).
    They override :meth:`output_size` when the output is smaller than the input (valid convolutions) and
    :meth:`is_valid_size` when only some input sizes work.
    """

    in_channels: int
    num_classes: int
    total_stride: int
    halo: int

    def is_valid_size(self, size: int) -> bool:
        """Whether one spatial input dimension of ``size`` pixels is accepted."""
        return size >= 1

    def output_size(self, size: int) -> int:
        """Spatial output size for one input dimension of ``size`` pixels (same as input unless overridden)."""
        return size

    def valid_size(self, at_least: int = 1, min_output: int = 0, search: int = 100_000) -> int:
        """The smallest valid input size ≥ ``at_least`` whose output is ≥ ``min_output`` pixels — the one search
        for input sizes (tiles, training patches, probes). ``ValueError`` if none lies within ``search``."""
        for size in range(max(at_least, 1), max(at_least, 1) + search):
            if self.is_valid_size(size) and self.output_size(size) >= min_output:
                return size
        raise ValueError(f"{type(self).__name__} accepts no input size from {at_least} to {at_least + search}")

    @property
    def shrink(self) -> int:
        """Pixels per side that valid (unpadded) convolutions remove: output pixel 0 sits at input ``shrink``."""
        size = self.valid_size()
        return (size - self.output_size(size)) // 2

    def nearest_valid_sizes(self, size: int, search: int = 4096) -> tuple[int | None, int | None]:
        """The largest valid size ≤ ``size`` and the smallest valid size ≥ ``size`` (None where none is found)."""
        below = next((s for s in range(size, max(size - search, 0), -1) if self.is_valid_size(s)), None)
        try:
            above = self.valid_size(size, search=search)
        except ValueError:
            above = None
        return below, above

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` naming the nearest valid sizes if ``x`` (N, C, H, W) cannot go through the net."""
        if x.ndim != 4:
            raise ValueError(f"expected a 4-D tensor (N, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects {self.in_channels} input channel(s), got {x.shape[1]}"
            )
        for axis, size in zip("HW", x.shape[2:]):
            if not self.is_valid_size(int(size)):
                below, above = self.nearest_valid_sizes(int(size))
                options = " or ".join(str(s) for s in (below, above) if s is not None)
                raise ValueError(
                    f"{type(self).__name__} cannot take {axis}={size}; nearest valid sizes: {options}"
                )

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, num_classes={self.num_classes}, "
            f"total_stride={self.total_stride}, halo={self.halo}"
        )


def count_parameters(net: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``net``; BatchNorm running statistics are buffers, not counted."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)


def cpu_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of ``net``'s state dict (weights and buffers; channels_last weights of a
    training copy come back in the standard layout that safetensors stores)."""
    return {k: v.detach().to("cpu", memory_format=torch.contiguous_format, copy=True)
            for k, v in net.state_dict().items()}


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """An inference copy of ``net`` (in eval mode) with every Conv2d → BatchNorm2d pair inside an
    ``nn.Sequential`` merged into one convolution: y = γ·(Wx + b − μ)/σ + β = W'x + b'. Same outputs (to
    float rounding), one pass over memory fewer per pair. Pre-activation BN (BN before its conv, as in
    FC-DenseNet) cannot be folded and is kept."""
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(net).eval()
    for seq in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d:
                seq[i], seq[i + 1] = fuse_conv_bn_eval(conv, bn), nn.Identity()
    return folded
