"""The dock's sections as magicgui containers: one small builder each, layout only (no behaviour)."""

from __future__ import annotations

import ast
from types import SimpleNamespace

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
    create_widget,
)
from napari.layers import Image, Labels
from qtpy.QtWidgets import QTableWidget

from ..models import list_models
from ..training.settings import LOSSES

DEFAULT = "default (pretrained nuclei U-Net)"
REVIEW = ("regions I reviewed", "whole image")
STARTS = ("from pretrained", "from scratch")

#: What each architecture is, in a few words (the model list shows these; the value stays the registry name).
ARCHITECTURES = {
    "unet": "U-Net, small and fast",
    "unet_paper": "U-Net of the paper (31 M, slow)",
    "fcn8s": "FCN-8s (VGG16, 134 M, slow)",
    "fcn16s": "FCN-16s (VGG16, 134 M)",
    "fcn32s": "FCN-32s (VGG16, 134 M)",
    "fc_densenet56": "FC-DenseNet 56 (1.4 M)",
    "fc_densenet67": "FC-DenseNet 67 (3.5 M)",
    "fc_densenet103": "FC-DenseNet 103 (9.3 M)",
}
#: The losses in plain words (short: the dock's width follows its longest choice).
LOSS_NAMES = {
    "border_ce": "cross-entropy + border weights",
    "ce": "cross-entropy",
    "balanced_ce": "class-balanced cross-entropy",
    "dice": "Dice (overlap)",
    "ce_dice": "cross-entropy + Dice",
    "border_ce_dice": "border-weighted CE + Dice",
}


def project_section() -> SimpleNamespace:
    """The project folder: images, corrections and every model version, saved and restored."""
    w = SimpleNamespace(
        project_dir=FileEdit(label="project", mode="d",
                             tooltip="a folder that keeps images, corrections and every model version; "
                                     "saved after each fine-tune, restored when opened again"),
    )
    w.box = Container(label="Project", widgets=list(vars(w).values()))
    return w


def model_section() -> SimpleNamespace:
    """Architecture with options and class names, load/save, versions, device."""
    w = SimpleNamespace(
        architecture=ComboBox(label="architecture", value=DEFAULT, choices=[(DEFAULT, DEFAULT), *(
            (ARCHITECTURES.get(name, name), name) for name in list_models())],
                              tooltip="the network; new models: start with the small U-Net"),
        options=LineEdit(label="size options", value="", tooltip="advanced: the network's size, e.g. depth=3, "
                                                                 "base_filters=16 (filled in for each architecture)"),
        class_names=LineEdit(label="classes", value="background, nucleus",
                             tooltip="class names, comma-separated; the first is the background (0)"),
        start=ComboBox(label="start", choices=list(STARTS), value=STARTS[0],
                       tooltip="a new model starts from the general encoder shipped with the plugin (learns your "
                               "classes from fewer corrections; U-Net depth 3, 16 filters) or from random weights"),
        new_button=PushButton(text="Use this model",
                              tooltip="a new model of this architecture and these classes; the model you have now "
                                      "stays in the model list below, with all its versions"),
        models=ComboBox(label="model", choices=[], tooltip="every model of this session; choose one to use it "
                                                            "again as you left it"),
        load_file=FileEdit(label="load", mode="r", filter="*.safetensors *.zip",
                           tooltip="a napari-segnet checkpoint, or a bioimage.io package exported by napari-segnet"),
        save_file=FileEdit(label="save as", mode="w", filter="*.safetensors"),
        save_button=PushButton(text="Save model"),
        versions=ComboBox(label="version", choices=[]),
        rollback_button=PushButton(text="Use this version",
                                   tooltip="make the chosen version the model (older or newer: nothing is deleted)"),
        device_label=Label(value=""),
    )
    w.box = Container(label="Model", widgets=list(vars(w).values()))
    return w


def export_section() -> SimpleNamespace:
    """A bioimage.io model package of the active model: file, authors, licence, the Export button."""
    w = SimpleNamespace(
        export_file=FileEdit(label="export as", mode="w", filter="*.zip",
                             tooltip="the bioimage.io package (.zip) to write; empty: asks"),
        authors=LineEdit(label="authors", value="", tooltip="comma-separated; empty: your login name"),
        licence=LineEdit(label="licence", value="CC-BY-4.0", tooltip="SPDX id of the weights' licence"),
        export_button=PushButton(text="Export to bioimage.io…"),
    )
    w.box = Container(label="bioimage.io", widgets=list(vars(w).values()))
    return w


def legend_section() -> SimpleNamespace:
    """The class legend (colour → class name) of the active model."""
    from .legend import ClassLegend

    return SimpleNamespace(legend=ClassLegend())


def image_section() -> SimpleNamespace:
    """The image layer to work on, a file to open, the channel axis."""
    w = SimpleNamespace(
        image_layer=create_widget(annotation=Image, label="image"),
        open_file=FileEdit(label="open file", mode="r", filter="*.tif *.tiff *.png *.zarr"),
        channel_axis=ComboBox(label="channel axis", choices=["auto", "0", "-1"], value="auto"),
    )
    w.box = Container(label="Image", widgets=list(vars(w).values()))
    return w


def predict_section() -> SimpleNamespace:
    """Whole image or current slice, uncertainty layer, test-time augmentation, the Predict button."""
    w = SimpleNamespace(
        slice_only=CheckBox(text="current slice only", value=False),
        uncertainty=CheckBox(text="show uncertainty", value=False),
        tta=CheckBox(text="average 8 flips / rotations", value=False,
                     tooltip="test-time augmentation: every tile predicted in its 8 flips and 90° rotations and the "
                             "probabilities averaged — 8× the time, steadier classes (most after few corrections)"),
        views=CheckBox(text="volume: predict from 3 views", value=False,
                       tooltip="a (Z, Y, X) stack predicted from its YX, ZX and ZY planes, probabilities averaged "
                               "(the layer's scale gives the voxel size) — about 5× the time; off: slice by slice"),
        instances=CheckBox(text="instances layer", value=False,
                           tooltip="also write an '<image> instances' layer: one id per object (touching "
                                   "objects split at the gaps the model learned)"),
        object_size=FloatSpinBox(label="object size (px)", value=0.0, min=0.0, max=10_000.0, step=1.0,
                                 tooltip="typical object diameter in this image; the image is zoomed to the size "
                                         "the model was trained on (predict and fine-tune). 0: use it as it is"),
        size_layer=create_widget(annotation=Labels, label="size from"),
        estimate_button=PushButton(text="Estimate from this labels layer"),
        predict_button=PushButton(text="Predict"),
    )
    w.box = Container(label="Predict", widgets=list(vars(w).values()))
    return w


def finetune_section() -> SimpleNamespace:
    """Loss and its parameters, steps, learning rate, which pixels count as reviewed, Start/Stop."""
    w = SimpleNamespace(
        separate=CheckBox(text="separate touching objects", value=True,
                          tooltip="on: the U-Net border weights (loss border_ce) for objects that touch, e.g. "
                                  "nuclei; off: class-balanced CE, better for regions such as tissue types"),
        forest=CheckBox(text="also learn from a quick random-forest guess at first", value=False,
                        tooltip="while a random forest on the reviewed pixels scores better than the network, its "
                                "confident labels on unreviewed pixels train the network too (¼ weight); on "
                                "for new models"),
        blend=CheckBox(text="let a quick random forest help predict", value=False,
                       tooltip="each fine-tune also fits a random forest on the reviewed pixels and mixes it into "
                               "the new version's predictions where the held-out quarter of your reviewed regions "
                               "says the mixture is better; on for new models"),
        loss=ComboBox(label="loss", choices=[(LOSS_NAMES.get(n, n), n) for n in LOSSES], value="border_ce"),
        w0=FloatSpinBox(label="border weight (w0)", value=10.0, min=0, max=100, step=1,
                        tooltip="how much more the pixels between touching objects count (U-Net paper: 10)"),
        sigma=FloatSpinBox(label="border width σ (px)", value=5.0, min=0.5, max=50, step=0.5,
                           tooltip="how far from the objects the border weight reaches (U-Net paper: 5 px)"),
        steps=SpinBox(label="steps", value=0, min=0, max=100_000,
                      tooltip="optimisation steps; 0 = auto: 25 per 128² of reviewed pixels, 40 to 400"),
        lr=FloatSpinBox(label="learning rate", value=2e-4, min=1e-6, max=1.0, step=1e-4),
        review=ComboBox(label="learn from", choices=list(REVIEW), value=REVIEW[0],
                        tooltip="regions I reviewed: the green boxes of the '<image> reviewed' layer — each stroke "
                                "marks the 128-px tile around it, Fine-tune marks the tile Next shows, and you can "
                                "draw or delete boxes there; what you did not paint inside a box counts as "
                                "accepted. Whole image: only if you corrected every pixel"),
        mark_view_button=PushButton(text="Mark what I see as reviewed"),
        unmark_button=PushButton(text="Remove the last reviewed box"),
        weights_button=PushButton(text="Show weight map"),
        train_button=PushButton(text="Fine-tune"),
        stop_button=PushButton(text="Stop", enabled=False),
        guard_status=Label(value=""),
        use_anyway_button=PushButton(text="Use it anyway", visible=False),
    )
    w.box = Container(label="Fine-tune", widgets=list(vars(w).values()))
    return w


def evaluate_section() -> SimpleNamespace:
    """The ground-truth layer, the Evaluate button and the metrics table."""
    w = SimpleNamespace(
        truth_layer=create_widget(annotation=Labels, label="ground truth"),
        eval_button=PushButton(text="Evaluate prediction"),
        eval_note=Label(value=""),
    )
    w.box = Container(label="Evaluate", widgets=list(vars(w).values()))
    w.table = QTableWidget(0, 2)
    w.table.setHorizontalHeaderLabels(["metric", "value"])
    w.table.verticalHeader().setVisible(False)
    w.table.horizontalHeader().setStretchLastSection(True)
    w.table.setMinimumHeight(160)
    return w


def parse_options(text: str) -> dict:
    """``name=value, …`` → dict; values are Python literals (numbers, strings, True/False)."""
    options = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        try:
            if not sep:
                raise ValueError
            options[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise ValueError(f"cannot read the option {part!r}; write name=value, e.g. depth=3") from None
    return options
