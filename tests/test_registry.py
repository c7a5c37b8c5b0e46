"""One contract over every registered architecture: logits shape, backward pass, odd sizes, bad names."""

import pytest
import torch
from conftest import TINY

from napari_segnet.models import build_model, list_models, model_options


def test_registry_lists_the_lectures_three_families():
    assert list_models() == ["fc_densenet103", "fc_densenet56", "fc_densenet67", "fcn16s", "fcn32s", "fcn8s",
                             "unet", "unet_paper"]


@pytest.mark.parametrize("name", list_models())
def test_contract_forward_backward_and_odd_sizes(name):
    torch.manual_seed(0)
    net = build_model(name, in_channels=2, num_classes=3, **TINY[name])
    size = next(s for s in range(40, 400) if net.is_valid_size(s))
    x = torch.randn(2, 2, size, size)
    out = net(x)
    assert out.shape == (2, 3, net.output_size(size), net.output_size(size))
    out.square().mean().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert net.total_stride >= 4 and net.total_stride & (net.total_stride - 1) == 0 and net.halo > 0
    odd = 2 * size + 1
    net.eval()
    if net.is_valid_size(odd):
        assert net(torch.randn(1, 2, odd, size)).shape[2] == net.output_size(odd)
    else:
        below, above = net.nearest_valid_sizes(odd)
        with pytest.raises(ValueError, match="nearest valid sizes"):
            net(torch.randn(1, 2, odd, size))
        assert net(torch.randn(1, 2, above, size)).shape[1] == 3


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="valid names: fc_densenet103, .*unet"):
        build_model("segnet")


def test_unknown_option_lists_valid_options():
    with pytest.raises(ValueError, match=r"unknown option widht for fcn8s; valid options: dropout, width"):
        build_model("fcn8s", widht=0.5)
    assert model_options("unet")["padding"] == "same"


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_channel_counts(bad):
    with pytest.raises(ValueError, match="positive integer"):
        build_model("unet", in_channels=bad)
