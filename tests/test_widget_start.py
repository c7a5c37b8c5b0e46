"""The dock offers a pretrained or a from-scratch start for new models, and the 'separate touching objects' switch."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_segnet._widgets.sections import DEFAULT
from napari_segnet.models.pretrained import NAME
from napari_segnet.training.recommend import NEW_MODEL
from napari_segnet.training.settings import TrainSettings

pytestmark = pytest.mark.gui


def test_new_models_start_pretrained_unless_asked(dock, errors):  # noqa: F811
    viewer, widget, _ = dock
    assert list(widget.start.choices) == ["from pretrained", "from scratch"]
    assert widget.start.value == "from pretrained" and widget.separate.value and widget.loss.value == "border_ce"
    widget.architecture.value = "unet"
    assert "base_filters=16, depth=3" in widget.options.value
    widget.class_names.value = "background, granular, fibrous"
    widget.use_model()  # a new model for the user's own classes recommends region classes
    assert not widget.separate.value and widget.loss.value == "balanced_ce"
    assert not errors and widget.segmenter.start["start"] == "pretrained"
    assert widget.segmenter.start["encoder"] == NAME and widget.segmenter.num_classes == 3
    widget.start.value = "from scratch"
    widget.use_model()
    assert widget.segmenter.start == {"start": "scratch"}
    widget.start.value = "from pretrained"
    widget.options.value = "base_filters=4, depth=3"  # no encoder fits: scratch, said in the record
    widget.use_model()
    assert not errors and widget.segmenter.start == {"start": "scratch"}
    widget.separate.value = True  # objects that touch, e.g. nuclei: the U-Net border weights
    assert widget.loss.value == "border_ce"


def test_new_models_fine_tune_with_the_measured_settings_and_the_forest(dock, errors):  # noqa: F811
    viewer, widget, _ = dock
    widget.steps.value = 0  # auto (the fixture sets 60)
    default = widget.settings()  # the fixture's model recommends the defaults
    assert default.distill == 0 and default.patch_size == 128 and not widget.forest.value
    widget.architecture.value = "unet"
    widget.class_names.value = "background, cell"
    widget.use_model()  # the fields follow the new model's recommendation
    new = widget.settings()
    assert widget.forest.value and new.distill == NEW_MODEL.settings.distill == 0.25
    assert (new.loss, new.lr, new.batch_size, new.patch_size) == ("balanced_ce", 1e-3, 4, 64)
    assert new.resolved(3 * 64 * 64).steps == 300  # 100 per reviewed 64² tile …
    assert new.resolved(3 * 64 * 64, distilled=True).steps == 150  # … 50 in a round with forest labels
    widget.forest.value = False
    assert widget.settings().distill == 0
    widget.architecture.value = DEFAULT
    widget.use_model()
    assert widget.settings() == TrainSettings(loss="border_ce", lr=2e-4) and not errors


def test_a_new_model_learns_from_reviewed_regions_and_the_forest_in_the_dock(dock, errors):  # noqa: F811
    viewer, widget, truth = dock
    widget.architecture.value = "unet"
    widget.class_names.value = "background, cell"
    widget.use_model()
    widget.predict()
    layer = viewer.layers["cells prediction"]
    widget.review.value = "regions I reviewed"
    layer.brush_size = 15
    inside = tuple(np.argwhere(ndi.binary_erosion(truth == 1, iterations=3))[0])  # deep in a cell
    for y, x in ((20, 20), (20, 70), (70, 45), inside):  # strokes with the true class under each, both classes
        layer.paint((y, x), int(truth[y, x]))
    assert len(viewer.layers["cells reviewed"].data) == 1  # the strokes marked their (one) 128² tile
    viewer.layers["cells reviewed"].data = [np.array([[-0.5, -0.5], [47.5, 95.5]])]  # the person narrows it …
    layer.data[:48] = truth[:48]  # … and corrects everything in it
    viewer.layers["cells reviewed"].shape_type = ["rectangle"]
    widget.steps.value = 5
    widget.finetune()
    assert not errors, errors
    version = widget.segmenter.metadata.versions[-1]
    assert version.settings["distill"] == NEW_MODEL.settings.distill and version.settings["patch_size"] == 64
    assert version.details["distillation"]["distilled"]  # a new head is behind the forest
    assert version.reviewed_pixels == 48 * 96  # the box, not the forest's pixels nor the strokes outside it
