"""FCN-32s / 16s / 8s (Long, Shelhamer, Darrell 2015) on one shared VGG16 backbone."""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import SegmentationNet

# VGG16 conv widths per stage (each stage ends in a 2×2 max-pool).
VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
FC_WIDTH = 4096
VARIANTS = {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8}

# Crop offsets of the reference implementation, derived from the input-coordinate of each feature map's pixel 0.
# conv1_1 has pad 100, so pixel i of every stage-1 map sits at input x = i − 99; each 2×2 pool maps j to
# 2j + 0.5, giving pool3: x = 8i − 95.5, pool4: x = 16i − 91.5, pool5: x = 32i − 83.5; fc6 (7×7, no pad)
# centres on pool5's i+3, so fc7/score_fr: x = 32i + 12.5. A k×k transposed conv of stride s maps output o to
# input (o − (k−1)/2) / s.
#   upscore2 (4, s2) of score_fr: x = 16o − 11.5; equal to pool4's 16i − 91.5 at i = o + 5   → crop pool4 by 5
#   upscore_pool4 (4, s2) of fuse_pool4: x = 8o − 23.5; pool3's 8i − 95.5 at i = o + 9      → crop pool3 by 9
#   upscore8 (16, s8) of fuse_pool3: x = o − 31                                             → crop output by 31
#   upscore16 (32, s16) of fuse_pool4: x = o − 27  (FCN-16s)                                 → crop output by 27
#   upscore32 (64, s32) of score_fr: x = o − 19    (FCN-32s)                                  → crop output by 19
CROP_POOL4, CROP_POOL3 = 5, 9
CROP_OUT = {32: 19, 16: 27, 8: 31}


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """Weights (channels, channels, k, k) of a transposed conv that upsamples each channel bilinearly."""
    factor = (kernel_size + 1) // 2
    centre = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(kernel_size, dtype=torch.float32) - centre).abs() / factor
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = ramp[:, None] * ramp[None, :]
    return weight


def upsampler(channels: int, stride: int) -> nn.ConvTranspose2d:
    """Learned upsampling by ``stride``: a (2·stride)² transposed conv without bias, initialised bilinear."""
    up = nn.ConvTranspose2d(channels, channels, kernel_size=2 * stride, stride=stride, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(channels, 2 * stride))
    return up


class FixedBilinearUpsample(nn.Module):
    """The paper's final upsampling: a depthwise (2·stride)² transposed conv fixed to bilinear (not learned).

    (N, C, h, w) → (N, C, (h−1)·stride + 2·stride, (w−1)·stride + 2·stride).
    """

    def __init__(self, channels: int, stride: int):
        super().__init__()
        self.stride = stride
        kernel = bilinear_kernel(1, 2 * stride).expand(channels, 1, -1, -1).clone()
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv_transpose2d(x, self.kernel.to(x.dtype), stride=self.stride, groups=x.shape[1])


def pooled(size: int) -> int:
    """Length after a 2×2 stride-2 max-pool in ceil mode (as Caffe pools)."""
    return math.ceil(size / 2)


def transposed(size: int, stride: int) -> int:
    """Length after a (2·stride) transposed conv of stride ``stride``."""
    return (size - 1) * stride + 2 * stride


class VGG16Backbone(nn.Module):
    """VGG16 conv stages with fc6/fc7 as 7×7 and 1×1 convolutions.

    Input (N, C, H, W) → pool3 (N, 256w, ·), pool4 (N, 512w, ·), fc7 (N, 4096w, ·) where w is ``width``.
    conv1_1 pads by 100 so that any input size survives fc6's unpadded 7×7 conv.
    """

    def __init__(self, in_channels: int, width: float = 1.0, dropout: float = 0.5):
        super().__init__()
        self.stages = nn.ModuleList()
        c_in = in_channels
        for s, widths in enumerate(VGG16_STAGES):
            layers: list[nn.Module] = []
            for i, w in enumerate(widths):
                c_out = max(1, round(w * width))
                layers += [nn.Conv2d(c_in, c_out, 3, padding=100 if s == i == 0 else 1), nn.ReLU(inplace=True)]
                c_in = c_out
            layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
            self.stages.append(nn.Sequential(*layers))
        fc = max(1, round(FC_WIDTH * width))
        self.fc = nn.Sequential(
            nn.Conv2d(c_in, fc, 7), nn.ReLU(inplace=True), nn.Dropout2d(dropout),  # fc6
            nn.Conv2d(fc, fc, 1), nn.ReLU(inplace=True), nn.Dropout2d(dropout),  # fc7
        )
        self.channels = {"pool3": round(256 * width), "pool4": round(512 * width), "fc7": fc}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = {}
        for s, stage in enumerate(self.stages, start=1):
            x = stage(x)
            feats[f"pool{s}"] = x
        feats["fc7"] = self.fc(x)
        return feats


class FCN(SegmentationNet):
    """FCN-32s/16s/8s: score fc7, upsample ×2 and add scores of pool4 (16s) and pool3 (8s), upsample to input.

    Input (N, in_channels, H, W) → logits (N, num_classes, H, W). ``width`` scales every channel count of the
    backbone (1.0 is the paper's VGG16: FCN-8s for 21 classes has 134,376,863 trainable parameters; 1/8 runs on
    a CPU). As in the paper, the ×2 upsamplings are learned and the final one is fixed bilinear.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 21, variant: str = "fcn8s",
                 width: float = 1.0, dropout: float = 0.5):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        if not width > 0:
            raise ValueError(f"width must be > 0, got {width}")
        self.in_channels, self.num_classes = in_channels, num_classes
        self.out_stride = VARIANTS[variant]
        self.backbone = VGG16Backbone(in_channels, width, dropout)
        ch = self.backbone.channels
        self.score_fr = nn.Conv2d(ch["fc7"], num_classes, 1)
        self.skips = nn.ModuleDict()  # score layers on pool4 / pool3, zero-initialised as in the paper
        for name, stride in (("pool4", 16), ("pool3", 8)):
            if self.out_stride <= stride:
                self.skips[name] = nn.Conv2d(ch[name], num_classes, 1)
                nn.init.zeros_(self.skips[name].weight)
                nn.init.zeros_(self.skips[name].bias)
        self.up2 = nn.ModuleList(upsampler(num_classes, 2) for _ in self.skips)  # upscore2, upscore_pool4
        self.up_final = FixedBilinearUpsample(num_classes, self.out_stride)
        self.total_stride = 32
        self.halo = self._halo()

    def _halo(self) -> int:
        """Context per side: 3×3 convs add their step, fc6 adds 3 steps of 32, pools and each transposed conv
        (two coarse inputs per output) may reach one step to one side; rounded up to whole pixels."""
        convs = 2 * 1 + 2 * 2 + 3 * 4 + 3 * 8 + 3 * 16 + 3 * 32
        pools = 1 + 2 + 4 + 8 + 16
        ups = 32 * (len(self.skips) > 0) + 16 * (len(self.skips) > 1) + self.out_stride
        return convs + pools + ups

    def _trace(self, size: int) -> int | None:
        """Length of the final upsampled map for an input length, or None where a crop would not fit."""
        lengths = {"pool1": pooled(size + 198)}
        for s in range(2, 6):
            lengths[f"pool{s}"] = pooled(lengths[f"pool{s - 1}"])
        score = lengths["pool5"] - 6
        if size < 1 or score < 1:
            return None
        for name, crop in (("pool4", CROP_POOL4), ("pool3", CROP_POOL3))[: len(self.skips)]:
            score = transposed(score, 2)
            if lengths[name] < crop + score:
                return None
        out = transposed(score, self.out_stride)
        return out if out >= CROP_OUT[self.out_stride] + size else None

    def is_valid_size(self, size: int) -> bool:
        return self._trace(size) is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, in_channels, H, W) → logits (N, num_classes, H, W)."""
        self.check_input(x)
        h, w = x.shape[2:]
        feats = self.backbone(x)
        score = self.score_fr(feats["fc7"])
        for (name, skip), up, crop in zip(self.skips.items(), self.up2, (CROP_POOL4, CROP_POOL3)):
            score = up(score)
            side = skip(feats[name])[:, :, crop : crop + score.shape[2], crop : crop + score.shape[3]]
            score = score + side
        out = self.up_final(score)
        c = CROP_OUT[self.out_stride]
        return out[:, :, c : c + h, c : c + w].contiguous()


def _factory(variant: str):
    def build(in_channels: int = 3, num_classes: int = 21, width: float = 1.0, dropout: float = 0.5) -> FCN:
        return FCN(in_channels, num_classes, variant=variant, width=width, dropout=dropout)

    build.__name__ = variant
    build.__doc__ = f"{variant.upper()}: {VARIANTS[variant]}-pixel output stride; ``width`` scales all channels."
    return build


fcn32s, fcn16s, fcn8s = (_factory(v) for v in ("fcn32s", "fcn16s", "fcn8s"))
