"""The dock offers a pretrained or a from-scratch start for new models, and the 'separate touching objects' switch."""

import pytest
from test_widget import dock  # noqa: F401  (the fixture; errors comes from conftest)

from napari_segnet.pretrained import NAME

pytestmark = pytest.mark.gui


def test_new_models_start_pretrained_unless_asked(dock, errors):  # noqa: F811
    viewer, widget, _ = dock
    assert list(widget.start.choices) == ["from pretrained", "from scratch"]
    assert widget.start.value == "from pretrained" and widget.separate.value and widget.loss.value == "border_ce"
    widget.architecture.value = "unet"  # a new model for the user's own classes: region classes by default
    assert "base_filters=16, depth=3" in widget.options.value
    assert not widget.separate.value and widget.loss.value == "balanced_ce"
    widget.class_names.value = "background, granular, fibrous"
    widget.use_model()
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
