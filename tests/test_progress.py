"""The one protocol of long operations: inputs checked up front, typed progress, one outcome, one driver."""

import numpy as np
import pytest
from conftest import FAST, smooth_image, tiny_segmenter, two_class_image

from napari_segnet.inference.tiling import PredictionResult, TileProgress
from napari_segnet.progress import Cancelled, Outcome, Progress, run
from napari_segnet.segmenter import FinetuneFinished
from napari_segnet.training.loop import TrainProgress
from napari_segnet.training.training_set import merge_corrections, training_planes


def test_predict_and_finetune_speak_the_same_protocol():
    seg = tiny_segmenter(num_classes=2)
    image, labels = two_class_image()
    for steps, progress_type, outcome_type, total in (
            (seg.predict_steps(image, tile_shape=32), TileProgress, PredictionResult, 4),
            (seg.finetune([image], [labels], **{**FAST, "steps": 3}), TrainProgress, FinetuneFinished, 3)):
        items = list(steps)
        assert all(isinstance(u, progress_type) and isinstance(u, Progress) for u in items[:-1])
        assert [(u.done, u.total) for u in items[:-1]] == [(i, total) for i in range(1, total + 1)]
        assert isinstance(items[-1], outcome_type) and isinstance(items[-1], Outcome)


def test_run_returns_the_outcome_and_cancels_on_false():
    seg = tiny_segmenter()
    image = smooth_image((64, 64))
    outcome = run(seg.predict_steps(image, tile_shape=32, want_proba=True))
    assert outcome.labels.shape == (64, 64) and outcome.proba.shape == (3, 64, 64)
    np.testing.assert_array_equal(outcome.labels, outcome.proba.argmax(0))
    seen = []
    with pytest.raises(Cancelled, match="cancelled after 1 of 3 steps"):
        run(seg.finetune([image], [np.zeros((64, 64), np.uint8)], **{**FAST, "steps": 3}),
            lambda done, total: seen.append(done) or False)
    assert seen == [1] and seg.active_version == 0


def test_a_generator_without_an_outcome_is_a_bug():
    with pytest.raises(RuntimeError, match="without its outcome"):
        run(iter([Progress(1, 1)]))


def test_training_planes_split_stacks_and_skip_unreviewed_slices():
    planes = [two_class_image(seed=s, size=32) for s in range(3)]
    stack, labels = np.stack([p[0] for p in planes]), np.stack([p[1] for p in planes])
    reviewed = np.zeros(labels.shape, bool)
    reviewed[2, 5:9, 5:9] = True
    reviewed[0] = True
    single, single_labels = two_class_image(seed=9, size=40)
    out = training_planes([stack, single], [labels, single_labels], [reviewed, None], num_classes=2)
    assert [(p.index, p.image.shape, int(p.reviewed.sum())) for p in out] == [
        (0, (32, 32), 32 * 32), (2, (32, 32), 16), (0, (40, 40), 40 * 40)]
    np.testing.assert_array_equal(out[1].labels, labels[2])
    assert out[0].image is out[1].image  # one image: normalised over all its planes, as prediction does
    rgb_stack = np.repeat(stack[..., None], 3, axis=-1)
    assert [p.index for p in training_planes([rgb_stack], [labels], [reviewed], in_channels=3)] == [0, 2]


def test_live_corrections_merge_into_an_images_training_labels():
    labels, reviewed = np.zeros((2, 3, 4), np.uint8), np.zeros((2, 3, 4), bool)
    labels[0, 0, 0], reviewed[0, 0, 0] = 2, True  # an earlier correction on plane 0
    plane = np.zeros((3, 4), bool)
    plane[1, :2] = True
    merged, mask = merge_corrections((2, 3, 4), np.uint8, labels, reviewed, {(0, 1): (np.full((3, 4), 1), plane)})
    assert merged[0, 0, 0] == 2 and mask[0, 0, 0] == 1 and merged[1].tolist()[1] == [1, 1, 0, 0]
    assert mask.sum() == 3 and merged.sum() == 4 and not reviewed[1].any()  # the inputs are left as they were
    side = np.zeros((2, 4), bool)
    side[1, 3] = True  # a (Z, X) plane (axis 1) at y = 2: voxel (1, 2, 3), reviewed in that view (bit 2)
    _, views = merge_corrections((2, 3, 4), np.uint8, labels, mask, {(1, 2): (np.full((2, 4), 1), side)})
    assert views[1, 2, 3] == 2 and views.sum() == 3 + 2
    fresh, fresh_mask = merge_corrections((3, 4), np.uint16, None, None, {(0, 0): (np.full((3, 4), 5), plane)})
    assert fresh.dtype == np.uint16 and fresh.sum() == 10 and (fresh_mask == plane).all()

