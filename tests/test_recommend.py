"""A model knows how it should be trained: the recommendation it is made with, kept by checkpoints, and resolved
alike by Segmenter.finetune, the dock, live mode and ``napari-segnet train`` (explicit settings win)."""

from dataclasses import asdict, replace

import numpy as np
import pytest
import tifffile
from cli_helpers import main, one_thread  # noqa: F401
from conftest import open_dock, two_class_image

from napari_segnet.io.checkpoint import metadata_from_json, metadata_to_json
from napari_segnet.live import LiveSession, LiveSettings
from napari_segnet.segmenter import Segmenter
from napari_segnet.training.recommend import NEW_MODEL, TRAINED_MODEL, TrainRecommendation
from napari_segnet.training.settings import TrainSettings

#: A small new U-Net (the same in every frontend): options are the model's, not training settings.
OPTIONS = {"base_filters": 4, "depth": 2}
#: Settings given explicitly: each replaces the recommendation's own, the others stay.
GIVEN = {"loss": "dice", "steps": 3, "lr": 5e-3, "seed": 0}


def three_class_image(size=48):
    """Discs (class 1 on the left half, class 2 on the right, brighter) on a noisy background; (image, labels)."""
    image, labels = two_class_image(size=size)
    labels[:, size // 2:][labels[:, size // 2:] == 1] = 2
    return (image + 60.0 * (labels == 2)).astype(np.float32), labels


def test_a_new_model_recommends_the_new_model_settings_and_a_trained_one_the_defaults():
    new = Segmenter.create("unet", 1, 3).recommended_settings
    assert (new.loss, new.lr, new.batch_size, new.patch_size, new.distill) == ("balanced_ce", 1e-3, 4, 64, 0.25)
    assert (new.auto_per_patch, new.auto_per_patch_distilled, new.auto_min_steps, new.auto_max_seconds) == \
        (100.0, 50.0, 100, 15.0)
    assert new.resolved(3 * 64 * 64).steps == 300 and new == NEW_MODEL.settings
    default = Segmenter.default()  # its file records no recommendation: the defaults
    assert default.metadata.recommendation == {} and default.recommended_settings == TRAINED_MODEL.settings
    assert TRAINED_MODEL.settings == TrainSettings()
    assert (default.recommended_settings.loss, default.recommended_settings.lr) == ("border_ce", 2e-4)


def test_the_recommendation_survives_save_and_load_and_old_checkpoints_get_the_defaults(tmp_path):
    seg = Segmenter.create("unet", 1, 3, **OPTIONS)
    again = Segmenter.load(seg.save(tmp_path / "new"))
    assert again.metadata.recommendation["name"] == "new model" and again.recommended_settings == NEW_MODEL.settings
    old = Segmenter(seg.net, replace(seg.metadata, recommendation={}))  # as written before recommendations
    assert Segmenter.load(old.save(tmp_path / "old")).recommended_settings == TrainSettings()
    text = metadata_to_json(seg.metadata).replace('"body_lr_scale": 1.0', '"from_the_future": 1')  # one unknown,
    record = metadata_from_json(text).recommendation  # … body_lr_scale missing: the default
    assert TrainRecommendation.from_dict(record) == NEW_MODEL
    assert TrainRecommendation.from_dict({"name": "mine", "settings": {"lr": 0.5}}).settings == TrainSettings(lr=0.5)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        TrainRecommendation.from_dict({"settings": {"lr": -1}})
    assert NEW_MODEL.with_given(loss="ce", steps=7) == replace(NEW_MODEL.settings, loss="ce", steps=7,
                                                               auto_max_seconds=None)  # given steps run in full
    with pytest.raises(ValueError, match="unknown fine-tune setting"):
        NEW_MODEL.with_given(learning_rate=1.0)


def test_live_mode_takes_the_loss_from_the_model_unless_given():
    new, trained = Segmenter.create("unet", 1, 2, **OPTIONS), Segmenter.default()
    assert LiveSession(new).settings.loss == "balanced_ce" and LiveSession(trained).settings.loss == "border_ce"
    assert LiveSession(new, LiveSettings(loss="dice")).settings.loss == "dice"
    burst = LiveSession(new).settings.train_settings(seed=3)
    assert burst == {"steps": 10, "lr": 3e-4, "batch_size": 4, "patch_size": 96, "distill": 0.0,
                     "forest_blend": False, "seed": 3, "loss": "balanced_ce"}  # its own burst values, never the forest


def python_settings(image, labels, **given) -> dict:
    """The settings a ``Segmenter.create`` + ``finetune`` run records in its version."""
    seg = Segmenter.create("unet", 1, 3, **OPTIONS)
    *_, done = seg.finetune([image], [labels], accept_worse=True, **given)
    assert done.version == 1
    return seg.metadata.version(1).settings


def cli_settings(capsys, tmp_path, image, labels, *flags) -> dict:
    """The settings ``napari-segnet train --model unet`` records in the version it saves."""
    folder = tmp_path / f"cli{len(flags)}"
    for kind, array in (("images", image), ("labels", labels)):
        (folder / kind).mkdir(parents=True)
        tifffile.imwrite(folder / kind / "a.tif", array)
    status, _, err = main(capsys, "train", "--images", folder / "images", "--labels", folder / "labels",
                          "--model", "unet", "--option", "base_filters=4", "--option", "depth=2",
                          "--accept-worse", "--out", folder / "m.safetensors", *flags)
    assert status == 0, err
    seg = Segmenter.load(folder / "m.safetensors")
    assert seg.recommended_settings == NEW_MODEL.settings  # the CLI's new model keeps its recommendation too
    return seg.metadata.version(1).settings


@pytest.mark.slow
@pytest.mark.gui
@pytest.mark.usefixtures("one_thread")
def test_every_frontend_resolves_the_same_settings_for_a_new_unet(make_napari_viewer, monkeypatch, capsys,
                                                                   tmp_path, errors):
    image, labels = three_class_image()
    viewer, widget, _ = open_dock(make_napari_viewer, monkeypatch)
    widget.architecture.value = "unet"
    widget.options.value = "base_filters=4, depth=2"
    widget.class_names.value = "background, left, right"
    widget.use_model()  # "Use this model"
    dock = asdict(widget.settings())
    assert not errors and widget.segmenter.recommended_settings == NEW_MODEL.settings
    assert dock == asdict(NEW_MODEL.settings) and dock["steps"] == "auto"
    python, cli = python_settings(image, labels), cli_settings(capsys, tmp_path, image, labels)
    # 48² reviewed: 100 per 64² tile (50 with forest labels) = 56 (28), at least 100 — the auto rule ran in both
    assert python["steps"] == cli["steps"] == 100
    assert {**python, "steps": "auto"} == {**cli, "steps": "auto"} == dock
    assert (dock["loss"], dock["lr"], dock["patch_size"], dock["distill"], dock["auto_max_seconds"]) == \
        ("balanced_ce", 1e-3, 64, 0.25, 15.0)

    widget.loss.value, widget.steps.value, widget.lr.value = GIVEN["loss"], GIVEN["steps"], GIVEN["lr"]
    given = {**asdict(widget.settings()), "seed": 0}  # the dock has no seed field
    python = python_settings(image, labels, **GIVEN)
    cli = cli_settings(capsys, tmp_path, image, labels, "--loss", "dice", "--steps", "3", "--lr", "5e-3",
                       "--seed", "0")
    assert python == cli == given == {**asdict(NEW_MODEL.settings), **GIVEN, "auto_max_seconds": None}
