"""Distillation from a pixel forest (issue 16): the forest's labels on unreviewed pixels, only while it is ahead."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_segnet.data.synthetic import tissue_image
from napari_segnet.numerics.pixel_features import pixel_features
from napari_segnet.segmenter import Segmenter
from napari_segnet.training import distillation
from napari_segnet.training.distillation import Distillation
from napari_segnet.training.finetune_outcome import forest_note
from napari_segnet.training.patches import TrainingImage
from napari_segnet.training.pixel_forest import PixelForest
from napari_segnet.training.settings import TrainSettings


def _halves(size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A normalised (1, Y, X) image: left half dark (class 0), right half bright (class 1), noise σ 0.05."""
    truth = np.zeros((size, size), np.int64)
    truth[:, size // 2:] = 1
    image = truth + np.random.default_rng(seed).normal(0, 0.05, truth.shape)
    return image[None].astype(np.float32), truth


def _item(image, truth, reviewed, settings=None) -> TrainingImage:
    settings = settings or TrainSettings(loss="balanced_ce")
    return TrainingImage(image, truth * reviewed, settings.weight_map(truth * reviewed, reviewed), reviewed)


def test_the_forest_learns_intensity_from_a_few_pixels_and_knows_only_the_classes_it_saw():
    image, truth = _halves()
    reviewed = np.zeros(truth.shape, bool)
    reviewed[::8, ::8] = True  # 64 pixels
    features = pixel_features(image)
    assert features.shape[:2] == truth.shape and features.dtype == np.float32
    proba = PixelForest([features], [truth], [reviewed], num_classes=3).probabilities(features)
    assert proba.shape == (64, 64, 3)
    np.testing.assert_allclose(proba.sum(-1), 1, atol=1e-5)
    assert (proba[..., 2] == 0).all()  # no reviewed pixel of class 2
    assert (proba.argmax(-1) == truth).mean() > 0.97


def test_cross_validation_on_a_checkerboard_of_the_reviewed_pixels():
    image, truth = _halves()
    everything = np.ones(truth.shape, bool)
    assert distillation.forest_cv_mean_iu([_item(image, truth, everything)], 2) > 0.97
    one_square = np.zeros(truth.shape, bool)
    one_square[:distillation.CV_BLOCK, :distillation.CV_BLOCK] = True  # one fold is empty: cannot tell
    assert np.isnan(distillation.forest_cv_mean_iu([_item(image, truth, one_square)], 2))


def test_forest_labels_fill_unreviewed_pixels_down_weighted_and_leave_reviewed_ones_alone():
    image, truth = _halves()
    reviewed = np.zeros(truth.shape, bool)
    reviewed[:, 24:40] = True  # a strip across the boundary
    settings = TrainSettings(loss="balanced_ce", distill=0.5)
    item = _item(image, truth, reviewed, settings)
    before = (item.labels.copy(), item.weights.copy(), item.reviewed.copy())
    (taught,), record = distillation.distill([item], settings, 2, network_mean_iu=0.3)
    assert record.distilled and record.forest_cv_mean_iu > 0.9 and record.network_mean_iu == 0.3 and record.why is None
    for kept, now in zip(before, (item.labels, item.weights, item.reviewed)):  # the input is not modified
        np.testing.assert_array_equal(kept, now)
    np.testing.assert_array_equal(taught.labels[reviewed], item.labels[reviewed])
    np.testing.assert_array_equal(taught.weights[reviewed], item.weights[reviewed])
    new = taught.reviewed & ~reviewed
    assert new.sum() > 0.9 * (~reviewed).sum()  # confident nearly everywhere on this easy image
    assert (taught.labels[new] == truth[new]).mean() > 0.97
    full = settings.weight_map(taught.labels, taught.reviewed)
    np.testing.assert_allclose(taught.weights[new], 0.5 * full[new], rtol=1e-6)


def test_only_pixels_whose_top_forest_probability_reaches_the_confidence_get_a_label():
    image, truth = _halves(8)
    reviewed = np.zeros(truth.shape, bool)
    reviewed[0, 0] = True
    settings = TrainSettings(loss="balanced_ce", distill=0.25)
    proba = np.full((8, 8, 3), 1 / 3)  # undecided everywhere but two pixels
    for (y, x), top in (((2, 2), distillation.CONFIDENCE + 0.01), ((4, 4), distillation.CONFIDENCE - 0.01)):
        proba[y, x] = (top, (1 - top) / 2, (1 - top) / 2)  # just above, just below
    proba[3, 3] = (0.1, 0.2, 0.7)
    window = (slice(0, 8), slice(0, 8))
    taught = distillation._taught(_item(image, truth, reviewed, settings), window, proba, settings)
    assert np.argwhere(taught.reviewed & ~reviewed).tolist() == [[2, 2], [3, 3]]
    assert taught.labels[2, 2] == 0 and taught.labels[3, 3] == 2


def test_no_forest_labels_once_the_network_is_ahead():
    image, truth = _halves()
    reviewed = np.zeros(truth.shape, bool)
    reviewed[:, 24:40] = True
    settings = TrainSettings(loss="balanced_ce", distill=0.5)
    item = _item(image, truth, reviewed, settings)
    taught, record = distillation.distill([item], settings, 2, network_mean_iu=1.0)
    assert taught == [item] and not record.distilled
    assert "the network was ahead of it" in forest_note(record) and forest_note(None) == ""
    assert "too few reviewed pixels" in forest_note(replace(record, forest_cv_mean_iu=float("nan")))
    assert Distillation.from_dict(record.to_dict()) == record  # as a saved version's metadata reads back


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_distill_is_a_weight_in_zero_one(bad):
    with pytest.raises(ValueError, match="distill"):
        TrainSettings(distill=bad)


def test_a_fine_tune_with_forest_labels_records_the_decision_and_counts_only_reviewed_pixels():
    image, truth = tissue_image((96, 96), seed=3)
    reviewed = np.zeros(truth.shape, bool)
    reviewed[:48, :48] = True
    torch.manual_seed(0)
    seg = Segmenter.create("unet", 1, 3)
    *_, finished = seg.finetune([image], [truth], [reviewed], steps=5, batch_size=2, patch_size=32, lr=1e-3,
                                loss="balanced_ce", seed=0, accept_worse=True, distill=0.5)
    version = seg.metadata.versions[-1]
    record = version.details["distillation"]
    assert record["distilled"] and record["forest_cv_mean_iu"] > record["network_mean_iu"]  # a new head: ~chance
    assert (f"also learnt the pixel forest's guesses on unreviewed pixels (mean IU on the reviewed pixels: forest "
            f"{record['forest_cv_mean_iu']:.3f}, network {record['network_mean_iu']:.3f}" in finished.message)
    assert version.reviewed_pixels == 48 * 48  # what the user reviewed, not the forest's pixels
    assert version.settings["distill"] == 0.5


@pytest.mark.parametrize("distill, steps", [(0.5, 9), (0.0, 18)])
def test_auto_steps_of_a_round_follow_whether_it_learns_forest_labels(distill, steps):
    """48² reviewed pixels = 2.25 patches of 32²: 4 steps per patch with forest labels, 8 without."""
    image, truth = tissue_image((96, 96), seed=3)
    reviewed = np.zeros(truth.shape, bool)
    reviewed[:48, :48] = True
    torch.manual_seed(0)
    seg = Segmenter.create("unet", 1, 3)
    updates = list(seg.finetune([image], [truth], [reviewed], batch_size=2, patch_size=32, loss="balanced_ce",
                                seed=0, accept_worse=True, distill=distill, auto_per_patch=8.0,
                                auto_per_patch_distilled=4.0, auto_min_steps=1))
    version = seg.metadata.versions[-1]
    assert version.details.get("distillation", {}).get("distilled", False) == (distill > 0)
    assert updates[-2].total == steps and version.settings["steps"] == steps


def test_planes_beyond_the_pixel_budget_learn_from_their_reviewed_pixels_only(monkeypatch):
    image, truth = _halves()
    reviewed = np.zeros(truth.shape, bool)
    reviewed[:, 24:40] = True
    settings = TrainSettings(loss="balanced_ce", distill=0.5)
    first, second = _item(image, truth, reviewed, settings), _item(image, truth, reviewed.copy(), settings)
    monkeypatch.setattr(distillation, "MAX_FOREST_PIXELS", 64 * 64 + 10)  # room for one 64² window
    (a, b), record = distillation.distill([first, second], settings, 2, network_mean_iu=0.3)
    assert record.distilled and a.reviewed.sum() > reviewed.sum() and b is second
    monkeypatch.setattr(distillation, "MAX_FOREST_PIXELS", 100)
    taught, record = distillation.distill([first], settings, 2, network_mean_iu=0.3)
    assert taught == [first] and not record.distilled and "too large" in record.why


def test_no_forest_labels_while_the_reviewed_pixels_show_one_class():
    image, truth = _halves()
    reviewed = np.zeros(truth.shape, bool)
    reviewed[:, :24] = True  # background only: a forest would call every pixel background, 100 % confident
    settings = TrainSettings(loss="balanced_ce", distill=0.25)
    item = _item(image, truth, reviewed, settings)
    taught, record = distillation.distill([item], settings, 2, network_mean_iu=0.0)
    assert taught == [item] and not record.distilled and "one class" in record.why
    assert forest_note(record) == f"; no pixel forest: {record.why}"
    assert record.to_dict() == {"distilled": False, "why": record.why}  # the JSON of versions saved before
    reviewed[0, 40] = True  # one pixel of the other class: the forest may teach
    assert distillation.distill([_item(image, truth, reviewed, settings)], settings, 2, 0.0)[1].distilled
