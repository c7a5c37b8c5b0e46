"""Shared fixtures: tiny models with non-trivial BatchNorm statistics, smooth random images."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_segnet.segmenter import Segmenter


def randomize_batchnorm(net: torch.nn.Module) -> None:
    """Give BN layers non-identity running statistics so eval-mode behaviour is really exercised."""
    gen = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def tiny_segmenter(arch="unet", in_channels=1, num_classes=3, **options) -> Segmenter:
    torch.manual_seed(0)
    defaults = {"unet": {"base_filters": 4, "depth": 3}}.get(arch, {})
    seg = Segmenter.create(arch, in_channels, num_classes, **{**defaults, **options})
    randomize_batchnorm(seg.net)
    return seg


def smooth_image(shape, seed=0, dtype=np.uint16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.random(shape, dtype=np.float32), 2) * 4000
    return img.astype(dtype)


@pytest.fixture
def segmenter():
    return tiny_segmenter()



# GUI tests without a display (issue 17): skipped, or failed under NAPARI_SEGNET_REQUIRE_GUI=1; see display_hooks.py
from display_hooks import pytest_collection_modifyitems, pytest_runtest_setup  # noqa: E402, F401
