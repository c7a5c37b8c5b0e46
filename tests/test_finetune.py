"""Fine-tuning: the loss falls, border weights separate touching objects, Stop/NaN/rollback/validation guard."""

import numpy as np
import pytest
import torch
from conftest import FAST, run, same_state, state, tiny_segmenter, two_class_image
from scipy import ndimage

from napari_segnet.segmenter import Segmenter
from napari_segnet.training.loop import TrainingAborted, TrainProgress


def test_loss_falls_and_accuracy_rises():
    seg = tiny_segmenter(num_classes=2)
    image, labels = two_class_image()
    before = seg.score([image], [labels])["mean_iu"]
    # validation given: every pixel trains (without it a quarter is held out for the guard, test_guard.py)
    steps, done = run(seg.finetune([image], [labels], validation=([image], [labels]),
                                   **{**FAST, "steps": 100, "lr": 1e-2}))
    assert [s.step for s in steps] == list(range(1, 101)) and all(isinstance(s, TrainProgress) for s in steps)
    first, last = np.mean([s.loss for s in steps[:10]]), np.mean([s.loss for s in steps[-10:]])
    assert last < 0.4 * first  # measured: 0.685 → 0.104
    assert done.accepted and done.version == 1 and seg.active_version == 1
    assert before < 0.2 and seg.score([image], [labels])["mean_iu"] > 0.8  # measured: 0.05 → 0.92


def test_border_weights_separate_touching_objects_that_plain_ce_merges():
    """Two squares 1 px apart: the gap is a sliver of background. Border-weighted CE learns it."""
    size = 48
    labels = np.zeros((size, size), np.uint8)
    labels[8:40, 6:23] = 1
    labels[8:40, 24:42] = 1  # gap at column 23
    rng = np.random.default_rng(0)
    image = np.where(labels > 0, 100.0, 0.0).astype(np.float32)
    image[:, 23] = 60.0  # the gap is only slightly darker than the objects
    image += rng.normal(0, 5, image.shape).astype(np.float32)
    settings = {"steps": 120, "batch_size": 2, "patch_size": 48, "lr": 3e-3, "seed": 1, "augment": False}
    counts = {}
    for loss in ("ce", "border_ce"):
        seg = tiny_segmenter(num_classes=2, base_filters=4, depth=2)
        run(seg.finetune([image], [labels], loss=loss, class_weights=None, **settings))
        counts[loss] = ndimage.label(seg.predict(image) == 1)[1]
    assert counts == {"ce": 1, "border_ce": 2}


def test_labels_outside_the_reviewed_mask_have_no_influence_at_all():
    image, labels = two_class_image()
    reviewed = np.zeros(labels.shape, bool)
    reviewed[:32, :32] = True
    garbage = np.where(reviewed, labels, 1 - labels)  # every unreviewed label wrong
    trained = []
    for lab in (labels, garbage):
        seg = tiny_segmenter(num_classes=2)
        run(seg.finetune([image], [lab], [reviewed], **FAST))
        trained.append(state(seg))
    assert same_state(*trained)  # bit-identical weights: masked pixels reach neither loss nor weight map
    seg = tiny_segmenter(num_classes=2)
    with pytest.raises(ValueError, match="no reviewed pixels"):
        list(seg.finetune([image], [labels], [np.zeros(labels.shape, bool)], **FAST))


def test_stop_leaves_the_model_exactly_as_it_was():
    seg = tiny_segmenter(num_classes=2)
    image, labels = two_class_image()
    before = state(seg)
    gen = seg.finetune([image], [labels], **FAST)
    for update in gen:
        if update.step == 10:
            break
    gen.close()
    assert same_state(before, state(seg)) and seg.active_version == 0 and len(seg.versions) == 1


def test_nan_loss_aborts_and_restores():
    seg = tiny_segmenter(num_classes=2)
    image, labels = two_class_image()
    before = state(seg)
    with pytest.raises(TrainingAborted, match="left unchanged"):
        list(seg.finetune([image], [labels], **{**FAST, "lr": 1e30}))
    assert same_state(before, state(seg)) and len(seg.versions) == 1


def test_rollback_and_version_history():
    seg = tiny_segmenter(num_classes=2)
    image, labels = two_class_image()
    v0 = state(seg)
    run(seg.finetune([image], [labels], **FAST))
    v1 = state(seg)
    run(seg.finetune([image], [labels], **FAST))
    assert [v.version for v in seg.versions] == [0, 1, 2] and seg.versions[2].parent == 1
    assert seg.versions[2].settings["loss"] == "border_ce" and seg.versions[2].reviewed_pixels == 64 * 64
    seg.rollback(0)
    assert same_state(v0, state(seg)) and seg.active_version == 0
    seg.rollback(1)
    assert same_state(v1, state(seg))
    with pytest.raises(ValueError, match="available versions: \\[0, 1, 2\\]"):
        seg.rollback(7)


def test_validation_guard_keeps_a_worse_version_inactive():
    seg = tiny_segmenter(num_classes=2)
    image, labels = two_class_image()
    run(seg.finetune([image], [labels], **{**FAST, "steps": 60}))
    good = state(seg)
    inverted = 1 - labels  # train on wrong labels: the validation set exposes it
    _, done = run(seg.finetune([image], [inverted], validation=([image], [labels]), **FAST))
    assert not done.accepted and "stays active" in done.message
    assert done.scores_after["mean_iu"] < done.scores_before["mean_iu"]
    assert seg.active_version == 1 and same_state(good, state(seg)) and len(seg.versions) == 3
    _, done = run(seg.finetune([image], [inverted], validation=([image], [labels]), accept_worse=True, **FAST))
    assert done.accepted and seg.active_version == 3


def test_deterministic_with_a_seed():
    image, labels = two_class_image()
    results = []
    for _ in range(2):
        seg = tiny_segmenter(num_classes=2)
        steps, _ = run(seg.finetune([image], [labels], **FAST))
        results.append([s.loss for s in steps])
    assert results[0] == results[1]


def test_images_of_different_sizes_and_all_losses():
    seg = tiny_segmenter(num_classes=2)
    (a, la), (b, lb) = two_class_image(0, 64), two_class_image(1, 40)
    for loss in ("ce", "balanced_ce", "dice", "ce_dice", "border_ce_dice"):
        steps, done = run(seg.finetune([a, b[:40, :33]], [la, lb[:40, :33]], loss=loss, **{**FAST, "steps": 3}))
        assert np.isfinite([s.loss for s in steps]).all() and done.accepted


def test_saved_versions_survive_a_round_trip(tmp_path):
    seg = tiny_segmenter(num_classes=2)
    image, labels = two_class_image()
    run(seg.finetune([image], [labels], **FAST))
    loaded = Segmenter.load(seg.save(tmp_path / "m"))
    assert loaded.active_version == 1 and [v.version for v in loaded.versions] == [0, 1]
    np.testing.assert_array_equal(loaded.predict(image), seg.predict(image))


@pytest.mark.parametrize("kwargs, match", [
    ({"labels": [np.zeros((10, 10), np.uint8)]}, "do not match"),
    ({"labels": [np.full((64, 64), 5, np.uint8)]}, "class ids 0…1"),
    ({"masks": [np.ones((3, 3), bool)]}, "mask of shape"),
    ({"images": []}, "at least one"),
    ({"loss": "hinge"}, "loss must be one of"),
    ({"steps": 0}, "steps must be a positive integer"),
    ({"lr": -1.0}, "lr must be"),
    ({"images": [np.zeros((2, 64, 64))]}, "single 2-D planes"),
])
def test_bad_inputs_fail_before_training(kwargs, match):
    seg = tiny_segmenter(num_classes=2)
    image, labels = two_class_image()
    args = {"images": [image], "labels": [labels], **kwargs}
    with pytest.raises(ValueError, match=match):
        seg.finetune(args.pop("images"), args.pop("labels"), args.pop("masks", None), **args)


def test_a_diverging_fine_tune_is_aborted_and_the_model_restored():
    """lr = 1e6: the loss stays finite (~1e12), so only a divergence check can catch it."""
    seg = tiny_segmenter(num_classes=2)
    image, labels = two_class_image()
    before = state(seg)
    with pytest.raises(TrainingAborted, match="diverged: the loss rose from 1.05"):
        list(seg.finetune([image], [labels], **{**FAST, "lr": 1e6}))
    assert same_state(before, state(seg)) and len(seg.versions) == 1 and seg.active_version == 0


def test_without_validation_a_version_worse_on_the_held_out_pixels_stays_inactive():
    seg = tiny_segmenter(num_classes=2)
    image, labels = (np.tile(a, (2, 2)) for a in two_class_image())  # 24 discs: a quarter of them held out
    _, done = run(seg.finetune([image], [labels], **{**FAST, "steps": 100, "lr": 1e-2}))
    assert done.accepted and done.guard == "held-out reviewed pixels" and done.scores_after["mean_iu"] > 0.85
    assert seg.versions[1].details["held_out_pixels"] == 128 * 128 // 4 and seg.versions[1].reviewed_pixels == 128 * 128
    good = state(seg)
    _, done = run(seg.finetune([image], [labels], **{**FAST, "steps": 20, "lr": 1.0}))  # ruins it
    assert not done.accepted and done.scores_after["mean_iu"] < done.scores_before["mean_iu"] - 0.3
    assert "kept inactive" in done.message and "kept out of training" in done.message
    assert "rollback" not in done.message and "(" + "2 is kept)" in done.message
    assert seg.active_version == 1 and same_state(good, state(seg)) and seg.available_versions == [0, 1, 2]
    assert seg.versions[2].scores["mean_iu"] == pytest.approx(done.scores_after["mean_iu"])
    seg.rollback(2)  # the user may still activate it
    assert seg.active_version == 2


def test_border_ce_dice_is_the_border_weighted_ce_plus_soft_dice():
    from napari_segnet.numerics.losses import soft_dice_loss, weighted_cross_entropy
    from napari_segnet.training.loop import compute_loss
    from napari_segnet.training.settings import TrainSettings

    labels = np.zeros((24, 24), np.int64)
    labels[4:10, 4:10] = labels[4:10, 11:18] = 1  # two squares 1 px apart: a border term between them
    border, plain = TrainSettings(loss="border_ce_dice"), TrainSettings(loss="ce_dice")
    np.testing.assert_array_equal(border.weight_map(labels), TrainSettings(loss="border_ce").weight_map(labels))
    assert border.weight_map(labels)[6, 10] > 5 and plain.weight_map(labels)[6, 10] == 1
    logits = torch.randn(1, 2, 24, 24, generator=torch.Generator().manual_seed(0))
    target, weight = torch.from_numpy(labels)[None], torch.from_numpy(border.weight_map(labels))[None]
    mask = torch.ones_like(target, dtype=torch.bool)
    expected = weighted_cross_entropy(logits, target, weight, mask=mask) + soft_dice_loss(logits, target, mask=mask)
    assert compute_loss("border_ce_dice", logits, target, weight, mask).item() == pytest.approx(expected.item())


def test_one_function_commits_a_version_with_the_guards_verdict():
    from napari_segnet.io.metadata import Version
    from napari_segnet.training.finetune_outcome import commit_version

    seg = tiny_segmenter()
    parent = {k: v.clone() for k, v in seg.weights().items()}
    changed = {k: v + 1 if v.is_floating_point() else v for k, v in parent.items()}
    worse = lambda: ({"mean_iu": 0.9}, {"mean_iu": 0.5})  # noqa: E731 (the guard's scores: 0.4 below)
    done = commit_version(seg, Version(1, 0, note="a"), changed, worse, "held-out reviewed pixels")
    assert not done.accepted and seg.active_version == 0 and seg.metadata.version_ids == [0, 1]
    assert same_state(parent, seg.weights()) and same_state(changed, seg.weights(1))  # kept, inactive
    assert seg.versions[1].scores == {"mean_iu": 0.5} and seg.versions[1].details["parent_scores"] == {"mean_iu": 0.9}
    assert "version 1 was kept inactive" in done.message
    done = commit_version(seg, Version(2, 0), changed, lambda: (None, None), "held-out reviewed pixels", note="; x")
    assert done.accepted and done.guard == "none" and seg.active_version == 2 and done.message.endswith("; x")
