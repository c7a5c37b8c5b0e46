"""Exact parameter counts, paper shapes, size checks and the FCN upsampling of each network family."""

import pytest
import torch

from napari_segnet.models import build_model, count_parameters
from napari_segnet.models.fcn import FixedBilinearUpsample, upsampler


def meta_model(name, *args, **options):
    """Full-size networks built on the meta device: exact shapes and counts, no memory, no compute."""
    with torch.device("meta"):
        return build_model(name, *args, **options)


def test_unet_paper_parameter_count_and_shape():
    net = meta_model("unet_paper", 1, 2)
    assert count_parameters(net) == 31_030_658
    assert net(torch.empty(1, 1, 572, 572, device="meta")).shape == (1, 2, 388, 388)
    assert net.output_size(572) == 388 and net.halo == 92 and net.total_stride == 16


def test_unet_same_padding_keeps_size_and_options_change_counts():
    net = build_model("unet", 3, 4, base_filters=4, depth=3).eval()
    assert net(torch.randn(2, 3, 24, 40)).shape == (2, 4, 24, 40)
    # (conv ⇒ BN ⇒ ReLU)×2 per level, no conv bias with BN: count by hand for base 4, depth 1, 1 → 2 classes:
    # down 1→4 (36) + BN 8 + 4→4 (144) + BN 8; bottom 4→8 (288) + 16 + 8→8 (576) + 16;
    # up-conv 8→4 2×2 (128 + 4 bias); up convs 8→4 (288) + 8 + 4→4 (144) + 8; head 4→2 (8 + 2)
    tiny = build_model("unet", 1, 2, base_filters=4, depth=1)
    assert count_parameters(tiny) == 36 + 8 + 144 + 8 + 288 + 16 + 576 + 16 + 132 + 288 + 8 + 144 + 8 + 10


def test_valid_unet_output_size_matches_forward():
    net = build_model("unet", 1, 3, base_filters=2, depth=2, padding="valid", batch_norm=False)
    for size in (44, 60):
        assert net(torch.randn(1, 1, size, size)).shape[-1] == net.output_size(size) == size - 40
    assert net.halo == 20


@pytest.mark.parametrize("name, expected", [
    ("fcn32s", 134_346_581), ("fcn16s", 134_364_410), ("fcn8s", 134_376_863),
])
def test_fcn_parameter_counts(name, expected):
    count = count_parameters(meta_model(name, 3, 21))
    assert count == expected
    assert abs(count - 134.4e6) / 134.4e6 < 0.005  # the paper's 134.3–134.5 M


def test_fcn_variants_share_one_backbone_class():
    nets = [build_model(n, 1, 2, width=1 / 32) for n in ("fcn32s", "fcn16s", "fcn8s")]
    assert {type(n.backbone).__name__ for n in nets} == {"VGG16Backbone"}
    assert [len(n.skips) for n in nets] == [0, 1, 2]


@pytest.mark.parametrize("name, expected", [
    ("fc_densenet56", 1_376_795), ("fc_densenet67", 3_463_243), ("fc_densenet103", 9_322_091),
])
def test_fc_densenet_trainable_parameter_counts(name, expected):
    assert count_parameters(meta_model(name, 3, 11)) == expected


def test_fcn_takes_any_size():
    net = build_model("fcn8s", 2, 3, width=1 / 32).eval()
    for h, w in ((1, 1), (17, 45), (100, 33)):
        assert net(torch.randn(1, 2, h, w)).shape == (1, 3, h, w)


def test_bilinear_upsampling_interpolates_a_ramp_exactly():
    ramp = torch.arange(6.0).repeat(6, 1)[None, None]  # (1, 1, 6, 6), value = column index
    for up in (upsampler(1, 2), FixedBilinearUpsample(1, 8)):
        s = up.stride[0] if isinstance(up.stride, tuple) else up.stride
        out = up(ramp)[0, 0].detach()
        assert out.shape == ((6 - 1) * s + 2 * s,) * 2
        # away from the border, output column o sits at input (o − (s − 0.5)) / s: a linear ramp of slope 1/s
        inner = out[2 * s : -2 * s, 2 * s : -2 * s]
        cols = torch.arange(2 * s, out.shape[1] - 2 * s, dtype=torch.float32)
        torch.testing.assert_close(inner, ((cols - (s - 0.5)) / s).expand_as(inner))


def test_final_fcn_upsampler_is_fixed_and_intermediate_ones_learn():
    net = build_model("fcn8s", 1, 2, width=1 / 32)
    assert not any(p.requires_grad for p in net.up_final.parameters())
    assert all(p.requires_grad for p in net.up2.parameters())


@pytest.mark.parametrize("name, size, nearest", [
    ("unet", 37, "32 or 48"), ("fc_densenet56", 70, "64 or 96"), ("unet_paper", 500, "492 or 508"),
])
def test_invalid_size_names_the_nearest_valid_sizes(name, size, nearest):
    net = meta_model(name, 1, 2)
    with pytest.raises(ValueError, match=f"H={size}; nearest valid sizes: {nearest}"):
        net(torch.empty(1, 1, size, 64 if name != "unet_paper" else 572, device="meta"))


def test_wrong_input_channels_is_a_clear_error():
    net = build_model("unet", 3, 2, base_filters=2, depth=1)
    with pytest.raises(ValueError, match="expects 3 input channel"):
        net(torch.randn(1, 1, 8, 8))
