"""A version's pixel forest: stored as arrays (equal to the fitted forest), mixed into every prediction exactly as a
whole-image pass mixes it (tiles, regions, dask blocks, a saved and reloaded model), chosen by a round on the
held-out squares, kept by versions that do not choose anew, and left out of what bioimage.io gets."""

import numpy as np
import pytest
import torch
from conftest import tiny_segmenter
from scipy import ndimage
from sklearn.ensemble import RandomForestClassifier

from napari_segnet.inference.forest_blend import ForestBlend, split_state
from napari_segnet.io.checkpoint import FOREST_PREFIX as PREFIX
from napari_segnet.io.checkpoint import CheckpointError
from napari_segnet.io.metadata import Version
from napari_segnet.numerics.images import ImagePlanes
from napari_segnet.numerics.normalization import Normalization
from napari_segnet.numerics.pixel_features import MARGIN, pixel_features
from napari_segnet.numerics.tree_ensemble import TreeEnsemble
from napari_segnet.progress import run
from napari_segnet.segmenter import Segmenter
from napari_segnet.training.blend import WEIGHTS
from napari_segnet.training.pixel_forest import PixelForest
from napari_segnet.training.recommend import NEW_MODEL


def _normalised(seg, image):
    offset, scale = seg.normalization.parameters(ImagePlanes(image, 1))
    return Normalization.apply(image[None].astype(np.float32), offset, scale)


def _blobs(shape=(160, 150), seed=0):
    """An image of bright blobs on a dim background, and its 3-class truth (background, rim, core)."""
    rng = np.random.default_rng(seed)
    centres = np.zeros(shape, bool)
    centres[tuple(rng.integers(0, s, 25) for s in shape)] = True
    distance = ndimage.distance_transform_edt(~centres)
    truth = np.where(distance < 4, 2, np.where(distance < 8, 1, 0)).astype(np.uint8)
    image = (truth.astype(np.float32) * 900 + ndimage.gaussian_filter(rng.random(shape), 1) * 600).astype(np.uint16)
    return image, truth


@pytest.fixture
def forest_seg():
    """A tiny 3-class model with a forest fitted on every pixel of a blob image, at weight 0.5."""
    seg = tiny_segmenter(padding="valid", batch_norm=False)
    image, truth = _blobs()
    features = pixel_features(_normalised(seg, image))
    forest = PixelForest([features], [truth], [np.ones(truth.shape, bool)], 3)
    seg.forest = ForestBlend(forest.ensemble(), 0.5)
    return seg, image, truth


def test_the_arrays_predict_what_the_fitted_forest_predicts():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 6)).astype(np.float32)
    y = np.where(x[:, 0] + x[:, 1] > 0, 2, 0)  # class 1 never seen
    fitted = RandomForestClassifier(n_estimators=7, max_depth=6, random_state=0).fit(x, y)
    trees = TreeEnsemble.from_sklearn(fitted, 3)
    probe = rng.normal(size=(500, 6)).astype(np.float32)
    proba = trees.probabilities(probe)
    np.testing.assert_allclose(proba[:, [0, 2]], fitted.predict_proba(probe), atol=1e-6)
    assert proba[:, 1].max() == 0 and 0.2 < (proba.argmax(1) == 2).mean() < 0.8
    again = TreeEnsemble.from_tensors(trees.to_tensors("f."), "f.")
    np.testing.assert_array_equal(again.probabilities(probe), proba)


def test_arrays_that_are_not_trees_are_refused():
    fitted = RandomForestClassifier(n_estimators=2, max_depth=3, random_state=0).fit(
        np.arange(40, dtype=np.float32)[:, None], np.arange(40) % 2)
    tensors = TreeEnsemble.from_sklearn(fitted, 2).to_tensors("f.")
    looping = dict(tensors, **{"f.left": torch.zeros_like(tensors["f.left"])})  # a child before its parent
    with pytest.raises(ValueError, match="children must follow"):
        TreeEnsemble.from_tensors(looping, "f.")
    with pytest.raises(ValueError, match="f.value"):
        TreeEnsemble.from_tensors({k: v for k, v in tensors.items() if k != "f.value"}, "f.")
    with pytest.raises(ValueError, match="weight"):
        ForestBlend(TreeEnsemble.from_tensors(tensors, "f."), 0.0)


def test_features_read_exactly_their_margin():
    image = np.random.default_rng(1).random((1, 260, 240)).astype(np.float32)
    whole = pixel_features(image)[100:140, 90:130]
    window = pixel_features(image[:, 100 - MARGIN : 140 + MARGIN, 90 - MARGIN : 130 + MARGIN])
    assert np.abs(window[MARGIN:-MARGIN, MARGIN:-MARGIN] - whole).max() == 0
    short = pixel_features(image[:, 100 - 40 : 140 + 40, 90 - 40 : 130 + 40])[40:-40, 40:-40]
    assert np.abs(short - whole).max() > 1e-4  # less context is not the same


def test_tiles_and_regions_mix_the_forest_in_as_the_whole_image_does(forest_seg):
    seg, image, truth = forest_seg
    whole = seg.predict_proba(image)
    assert np.abs(whole - seg.predict_proba(image, tile_shape=24)).max() < 1e-5
    network = run(seg.predict_steps(image, want_labels=False, want_proba=True, network_only=True)).proba
    trees = np.moveaxis(seg.forest.ensemble.probabilities(pixel_features(_normalised(seg, image))), -1, 0)
    np.testing.assert_allclose(whole, 0.5 * network + 0.5 * trees, atol=1e-5)
    from napari_segnet.inference.tiling import Region

    part = run(seg.predict_steps(image, 24, region=Region((0, 1), (40, 100), (30, 77)), want_proba=True)).proba
    np.testing.assert_allclose(part, whole[:, 40:100, 30:77], atol=1e-5)
    seg.forest = ForestBlend(seg.forest.ensemble, 1.0)
    labels = seg.predict(image, tile_shape=32)
    np.testing.assert_array_equal(labels, trees.argmax(0))
    assert (labels == truth).mean() > 0.9  # the forest saw every pixel: the network alone is noise
    assert (network.argmax(0) == truth).mean() < 0.8


def test_a_saved_model_keeps_its_forest_and_a_damaged_one_is_refused(forest_seg, tmp_path):
    seg, image, _ = forest_seg
    path = seg.save(tmp_path / "m.safetensors")
    loaded = Segmenter.load(path)
    assert loaded.forest.weight == 0.5
    np.testing.assert_array_equal(loaded.predict(image), seg.predict(image))
    from safetensors.torch import load_file, save_file

    state, header = load_file(path), None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
    state[PREFIX + "right"] = torch.zeros_like(state[PREFIX + "right"])
    save_file(state, tmp_path / "bad.safetensors", metadata=header)
    with pytest.raises(CheckpointError, match="damaged pixel forest"):
        Segmenter.load(tmp_path / "bad.safetensors")


def test_rollback_brings_each_versions_forest_back(forest_seg):
    seg, image, _ = forest_seg
    forest, blended = seg.forest, seg.predict(image)
    seg.metadata = seg.metadata.with_version(Version(1, 0))
    seg.add_weights(1, seg.weights())  # version 1: these weights and this forest
    seg.forest = None
    network = seg.predict(image)
    assert (network != blended).mean() > 0.05
    seg.rollback(1)
    assert seg.forest.weight == forest.weight and split_state(seg.weights(0))[1] is None
    np.testing.assert_array_equal(seg.predict(image), blended)
    seg.rollback(0)
    assert seg.forest is None
    np.testing.assert_array_equal(seg.predict(image), network)


def test_a_round_chooses_the_weight_on_the_held_out_squares_and_later_rounds_keep_it():
    seg = tiny_segmenter(recommendation=NEW_MODEL)
    image, truth = _blobs((192, 192))
    reviewed = np.zeros(truth.shape, bool)
    reviewed[:128, :128] = True  # four held-out 32² squares
    done = run(seg.finetune([image], [truth], [reviewed], steps=5, seed=0, auto_max_seconds=None))
    record = seg.versions[1].details["forest_blend"]
    scores = {float(w): v for w, v in record["mean_iu"].items()}
    assert set(scores) == set(WEIGHTS)
    assert record["weight"] == max(WEIGHTS, key=lambda w: (scores[w], -w))
    assert record["weight"] > 0 and scores[record["weight"]] > scores[0.0] + 0.05  # 5 steps: a weak network
    assert seg.forest.weight == record["weight"] and "predicts mixed with a pixel forest at weight" in done.message
    assert done.scores_after["mean_iu"] == pytest.approx(scores[record["weight"]], abs=1e-3)
    run(seg.finetune([image], [truth], [reviewed], steps=2, seed=0, forest_blend=False, distill=0.0,
                     accept_worse=True, auto_max_seconds=None))
    assert seg.active_version == 2 and seg.forest.weight == record["weight"]  # kept from its parent
    assert "forest_blend" not in seg.versions[2].details


def test_bioimageio_gets_the_network_alone_and_live_sessions_keep_the_forest(forest_seg, tmp_path):
    import zipfile

    from napari_segnet.live import LiveSession

    seg, image, _ = forest_seg
    path = seg.export_bioimageio(tmp_path / "m.zip", image[:64, :64], max_context=32)
    with zipfile.ZipFile(path) as z:
        test_in, test_out = (np.load(z.open(n))[0] for n in ("test_input.npy", "test_output.npy"))
        readme = z.read("README.md").decode()
    network = run(seg.predict_steps(test_in[0], test_in.shape[1:], want_labels=False, want_proba=True,
                                    max_context=32, network_only=True)).proba
    np.testing.assert_allclose(test_out, network, atol=1e-5)
    assert np.abs(test_out - seg.predict_proba(test_in[0])).max() > 0.05  # the blend is not what it holds
    assert "blended in at weight 0.5" in readme and Segmenter.load(path).forest.weight == 0.5
    forest, seg.forest = seg.forest, None
    np.testing.assert_array_equal(run(seg.predict_steps(image, network_only=True)).labels, seg.predict(image))
    seg.forest = forest
    session = LiveSession(seg)
    assert session.model.forest is forest and session.base.forest is forest
    assert session.settings.train_settings(0)["forest_blend"] is False



def test_a_live_refresh_mixes_the_forest_in_as_the_whole_image_does(forest_seg):
    from napari_segnet.live import LiveSession

    seg, image, truth = forest_seg
    whole = seg.predict(image)
    live = LiveSession(seg)
    live.add_plane("blobs", image, whole)
    part = live.refresh("blobs", (slice(40, 100), slice(30, 95)))
    assert (part.labels == whole[40:100, 30:95]).mean() > 0.999
    assert (run(seg.predict_steps(image, network_only=True)).labels[40:100, 30:95] != part.labels).mean() > 0.05


def test_the_forest_is_kept_only_for_a_gain_beyond_the_guards_tolerance():
    from napari_segnet.training.blend import choose_blend
    from napari_segnet.training.guard import TOLERANCE
    from napari_segnet.training.patches import TrainingImage

    image, truth = _blobs((128, 128))
    x = (image[None] / image.max()).astype(np.float32)
    forest = PixelForest([pixel_features(x)], [truth], [np.ones(truth.shape, bool)], 3)
    judged = [TrainingImage(x, truth, np.ones(truth.shape, np.float32), np.ones(truth.shape, bool))]
    perfect = np.eye(3, dtype=np.float32)[truth].transpose(2, 0, 1)  # a network that is never wrong
    kept, choice = choose_blend(forest, judged, 3, lambda it: perfect)
    assert kept is None and choice.weight == 0.0 and choice.mean_iu[0.0] == 1.0
    assert choice.mean_iu[1.0] < 1.0  # the forest is good, not perfect
    uniform = np.full((3, *truth.shape), 1 / 3, np.float32)
    uniform[0] += 1e-3  # a network that calls everything background
    kept, choice = choose_blend(forest, judged, 3, lambda it: uniform)
    assert choice.weight > 0 and kept.weight == choice.weight
    assert choice.mean_iu[choice.weight] > choice.mean_iu[0.0] + TOLERANCE
    assert choose_blend(None, judged, 3, lambda it: uniform) == (None, None)
