"""Cross-entropy variants and soft Dice against hand-computed values (including the lecture's example)."""

import math

import pytest
import torch

from napari_segnet.numerics.losses import ce_dice_loss, dice_coefficients, soft_dice_loss, weighted_cross_entropy

# Two pixels: a has logits (0, 0) and class 0 → −log ½ = ln 2; b has logits (ln 3, 0) and class 1 → −log ¼ = ln 4.
LOGITS = torch.tensor([[[[0.0, math.log(3.0)]], [[0.0, 0.0]]]])  # (1, 2, 1, 2)
TARGET = torch.tensor([[[0, 1]]])  # (1, 1, 2)
LN2 = math.log(2.0)


def test_plain_cross_entropy_is_the_mean_negative_log_likelihood():
    assert weighted_cross_entropy(LOGITS, TARGET).item() == pytest.approx((LN2 + 2 * LN2) / 2)


def test_pixel_and_class_weights_multiply_per_pixel_and_average_over_pixels():
    w = torch.tensor([[[2.0, 1.0]]])
    assert weighted_cross_entropy(LOGITS, TARGET, weight=w).item() == pytest.approx((2 * LN2 + 2 * LN2) / 2)
    loss = weighted_cross_entropy(LOGITS, TARGET, weight=w, class_weights=torch.tensor([1.0, 3.0]))
    assert loss.item() == pytest.approx((2 * LN2 + 3 * 2 * LN2) / 2)


def test_mask_and_ignore_index_drop_pixels():
    mask = torch.tensor([[[False, True]]])
    assert weighted_cross_entropy(LOGITS, TARGET, mask=mask).item() == pytest.approx(2 * LN2)
    ignored = torch.tensor([[[255, 1]]])
    assert weighted_cross_entropy(LOGITS, ignored, ignore_index=255).item() == pytest.approx(2 * LN2)
    assert weighted_cross_entropy(LOGITS, TARGET, mask=torch.zeros(1, 1, 2, dtype=torch.bool)).item() == 0


# The lecture's 4×4 worked example: 8 foreground pixels; Σ y_true·y_pred = 7.41, Σ y_pred = 7.82, Σ y_true = 8.
ON = [0.95, 0.90, 0.92, 0.93, 0.94, 0.91, 0.96, 0.90]  # predictions on the 8 true pixels
OFF = [0.10, 0.05, 0.05, 0.06, 0.05, 0.03, 0.04, 0.03]  # predictions on the 8 background pixels
Y_TRUE = torch.tensor([1.0] * 8 + [0.0] * 8).reshape(1, 1, 4, 4)
Y_PRED = torch.tensor(ON + OFF).reshape(1, 1, 4, 4)


def test_lecture_dice_with_linear_sums():
    dice = dice_coefficients(Y_PRED, Y_TRUE, squared=False).item()
    assert dice == pytest.approx(2 * 7.41 / (7.82 + 8), abs=1e-6)
    assert round(dice, 4) == 0.9368
    loss = soft_dice_loss(Y_PRED, Y_TRUE, squared=False, from_logits=False).item()
    assert loss == pytest.approx(1 - 0.93679, abs=1e-5)


def test_squared_dice_uses_squared_sums():
    expected = 2 * 7.41 / (8 + sum(v * v for v in ON + OFF))  # Σ y_true² = 8, Σ y_pred² = 6.8671 + 0.0245
    assert dice_coefficients(Y_PRED, Y_TRUE).item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(14.82 / 14.8916, abs=1e-6)  # 0.99519


def test_dice_averages_over_classes_from_class_ids():
    # pixel a: p = (½, ½), class 0; pixel b: p = (¾, ¼), class 1. Squared Dice:
    # class 0: 2·½ / (1 + ¼ + 9/16) = 16/29; class 1: 2·¼ / (1 + ¼ + 1/16) = 8/21
    expected = 1 - (16 / 29 + 8 / 21) / 2
    assert soft_dice_loss(LOGITS, TARGET).item() == pytest.approx(expected, abs=1e-6)
    total = ce_dice_loss(LOGITS, TARGET).item()
    assert total == pytest.approx(3 * LN2 / 2 + expected, abs=1e-6)


def test_losses_have_gradients():
    logits = LOGITS.clone().requires_grad_()
    ce_dice_loss(logits, TARGET, weight=torch.ones(1, 1, 2)).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("target, match", [
    (torch.tensor([[[0, 2]]]), "class ids 0…2, expected 0…1"),
    (torch.tensor([[0, 1]]), "target must be"),
    (torch.tensor([[[0.0, 1.0]]]), "integer class ids"),
])
def test_bad_targets(target, match):
    with pytest.raises(ValueError, match=match):
        weighted_cross_entropy(LOGITS, target)


def test_bad_weight_shapes():
    with pytest.raises(ValueError, match="weight must have"):
        weighted_cross_entropy(LOGITS, TARGET, weight=torch.ones(2))
    with pytest.raises(ValueError, match="class_weights must have shape"):
        weighted_cross_entropy(LOGITS, TARGET, class_weights=torch.ones(3))
