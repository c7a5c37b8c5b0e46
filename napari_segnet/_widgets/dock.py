"""The SegNet dock: model → image → predict → correct → fine-tune → evaluate; every action calls the core."""

from __future__ import annotations

import ast

import numpy as np
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
from napari.utils.notifications import show_info, show_warning
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from ..devices import describe, pick_device
from ..metrics import segmentation_scores
from ..models import list_models, model_options
from ..project import Project
from ..segmenter import FinetuneFinished, Segmenter
from ..training import LOSSES, TrainProgress
from ..weightmap import unet_weight_map
from .layers import PAINTED, prediction_name, show_prediction, track_paint
from .loss_plot import LossPlot
from .runner import USER_ERRORS, Job, notify

DEFAULT = "default (pretrained nuclei U-Net)"
REVIEW = ("whole image", "painted pixels only")


def guarded(method):
    """Turn an error a user can cause into a notification (never a traceback); nothing else changes."""
    def wrapper(self, *args):
        try:
            return method(self, *args)
        except USER_ERRORS as e:
            notify(e)
    wrapper.__name__ = method.__name__
    return wrapper


class SegNetWidget(QWidget):
    """The dock. ``segmenter`` is the active model; ``training_set`` maps image layer names to the
    (image, corrected labels, reviewed mask) used by every fine-tune, so corrections of several images add up."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.segmenter: Segmenter | None = None
        self.project: Project | None = None
        self.training_set: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.job: Job | None = None
        self._build()
        self.setLayout(QVBoxLayout())
        for box in (self.model_box, self.image_box, self.predict_box, self.train_box):
            self.layout().addWidget(box.native)
        self.layout().addWidget(self.loss_plot)
        self.layout().addWidget(self.eval_box.native)
        self.layout().addWidget(self.table)
        self.layout().addStretch()
        self.device_label.value = f"device: {describe(pick_device())}"

    # ---- layout -------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.architecture = ComboBox(label="architecture", choices=[DEFAULT, *list_models()], value=DEFAULT)
        self.options = LineEdit(label="options", value="",
                                tooltip="the architecture's options as name=value, comma-separated")
        self.class_names = LineEdit(label="classes", value="background, nucleus",
                                    tooltip="class names, comma-separated; the first is the background (0)")
        self.new_button = PushButton(text="Use this model")
        self.load_file = FileEdit(label="load", mode="r", filter="*.safetensors")
        self.save_file = FileEdit(label="save as", mode="w", filter="*.safetensors")
        self.save_button = PushButton(text="Save model")
        self.versions = ComboBox(label="version", choices=[])
        self.rollback_button = PushButton(text="Roll back to this version")
        self.device_label = Label(value="")
        self.project_dir = FileEdit(label="project", mode="d",
                                    tooltip="a folder that keeps images, corrections and every model version; "
                                            "saved after each fine-tune, restored when opened again")
        self.model_box = Container(label="Model", widgets=[
            self.project_dir, self.architecture, self.options, self.class_names, self.new_button, self.load_file,
            self.save_file, self.save_button, self.versions, self.rollback_button, self.device_label])

        self.image_layer = create_widget(annotation=Image, label="image")
        self.open_file = FileEdit(label="open file", mode="r", filter="*.tif *.tiff *.png *.zarr")
        self.channel_axis = ComboBox(label="channel axis", choices=["auto", "0", "-1"], value="auto")
        self.image_box = Container(label="Image", widgets=[self.image_layer, self.open_file, self.channel_axis])

        self.slice_only = CheckBox(text="current slice only", value=False)
        self.uncertainty = CheckBox(text="show uncertainty", value=False)
        self.predict_button = PushButton(text="Predict")
        self.predict_box = Container(label="Predict", widgets=[
            self.slice_only, self.uncertainty, self.predict_button])

        self.loss = ComboBox(label="loss", choices=list(LOSSES), value="border_ce")
        self.w0 = FloatSpinBox(label="w0", value=10.0, min=0, max=100, step=1)
        self.sigma = FloatSpinBox(label="σ (px)", value=5.0, min=0.5, max=50, step=0.5)
        self.steps = SpinBox(label="steps", value=150, min=1, max=100_000)
        self.lr = FloatSpinBox(label="learning rate", value=1e-3, min=1e-6, max=1.0, step=1e-4)
        self.review = ComboBox(label="reviewed", choices=list(REVIEW), value=REVIEW[0],
                               tooltip="which pixels of the corrected layer the model may learn from")
        self.weights_button = PushButton(text="Show weight map")
        self.train_button = PushButton(text="Fine-tune")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.train_box = Container(label="Fine-tune", widgets=[
            self.loss, self.w0, self.sigma, self.steps, self.lr, self.review, self.weights_button,
            self.train_button, self.stop_button])
        self.loss_plot = LossPlot()

        self.truth_layer = create_widget(annotation=Labels, label="ground truth")
        self.eval_button = PushButton(text="Evaluate prediction")
        self.eval_box = Container(label="Evaluate", widgets=[self.truth_layer, self.eval_button])
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["metric", "value"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMinimumHeight(200)

        self.project_dir.changed.connect(self.open_project)
        self.architecture.changed.connect(self._show_options)
        self.new_button.changed.connect(self.use_model)
        self.load_file.changed.connect(self.load_model)
        self.save_button.changed.connect(self.save_model)
        self.rollback_button.changed.connect(self.rollback)
        self.open_file.changed.connect(self.open_image)
        self.predict_button.changed.connect(self.predict)
        self.weights_button.changed.connect(self.show_weight_map)
        self.train_button.changed.connect(self.finetune)
        self.stop_button.changed.connect(self.stop)
        self.eval_button.changed.connect(self.evaluate)

    def reset_choices(self, event=None) -> None:
        """Refresh the layer pickers (napari calls this when layers are added or removed)."""
        self.image_layer.reset_choices()
        self.truth_layer.reset_choices()

    # ---- model --------------------------------------------------------------------------------------------
    def model(self) -> Segmenter:
        """The active model, created from the Model section on first use."""
        if self.segmenter is None:
            self.use_model()
        return self.segmenter

    @guarded
    def use_model(self, *_) -> None:
        if self.architecture.value == DEFAULT:
            self.set_model(Segmenter.default())
            return
        names = [n.strip() for n in self.class_names.value.split(",") if n.strip()]
        if len(names) < 2:
            raise ValueError("give at least two class names, e.g. 'background, nucleus'")
        image = self.image_layer.value
        channels = 3 if image is not None and image.rgb else 1
        self.set_model(Segmenter.create(self.architecture.value, channels, len(names), class_names=names,
                                        **self.parse_options()))

    def _show_options(self, *_) -> None:
        """Fill the options field with the chosen architecture's defaults."""
        name = self.architecture.value
        defaults = {} if name == DEFAULT else model_options(name)
        self.options.value = ", ".join(f"{k}={v!r}" for k, v in defaults.items())

    def parse_options(self) -> dict:
        """``name=value, …`` → dict; values are Python literals (numbers, strings, True/False)."""
        options = {}
        for part in filter(None, (p.strip() for p in self.options.value.split(","))):
            key, sep, value = part.partition("=")
            try:
                if not sep:
                    raise ValueError
                options[key.strip()] = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError):
                raise ValueError(f"cannot read the option {part!r}; write name=value, e.g. depth=3") from None
        return options

    def set_model(self, segmenter: Segmenter) -> None:
        previous, self.segmenter = self.segmenter, segmenter
        if previous is not None and previous.num_classes != segmenter.num_classes:
            self.training_set.clear()  # corrections made for other classes cannot train this model
        self._refresh_versions()
        show_info(f"model: {segmenter.metadata['architecture']}, classes {segmenter.class_names}")

    @guarded
    def load_model(self, *_) -> None:
        self.set_model(Segmenter.load(self.load_file.value))

    @guarded
    def save_model(self, *_) -> None:
        path = self.model().save(self.save_file.value)
        show_info(f"saved {path}")

    @guarded
    def rollback(self, *_) -> None:
        if self.versions.value is None:
            raise ValueError("no version to roll back to")
        self.model().rollback(int(self.versions.value))
        self._refresh_versions()
        show_info(f"version {self.versions.value} is active")

    def _refresh_versions(self) -> None:
        seg = self.segmenter
        self.versions.choices = [str(v) for v in seg.available_versions]
        self.versions.value = str(seg.active_version)

    # ---- project folder -----------------------------------------------------------------------------------
    @guarded
    def open_project(self, *_) -> None:
        """Open (or start) the project folder and restore its images, corrections and model."""
        self.project = Project(self.project_dir.value)
        for name in self.project.names:
            image = self.project.image(name)
            if name not in self.viewer.layers:
                self.viewer.add_image(image, name=name)
            saved = self.project.correction(name)
            if saved is not None:
                labels, reviewed = saved
                layer_name = prediction_name(self.viewer.layers[name])
                if layer_name not in self.viewer.layers:
                    self.viewer.add_labels(labels, name=layer_name, opacity=0.5)
                self.training_set[name] = (image, labels, reviewed)
        model = self.project.load_model()
        if model is not None:
            self.set_model(model)
        show_info(f"project {self.project.folder}: {len(self.project.names)} image(s), "
                  f"{'model version ' + str(model.active_version) if model else 'no model yet'}")

    def _save_to_project(self, image: Image, labels: np.ndarray, reviewed: np.ndarray) -> None:
        name = Project.safe_name(image.name)
        if name not in self.project.names:
            self.project.add_image(name, np.asarray(image.data))
        self.project.save_correction(name, labels, reviewed)

    # ---- image and prediction -----------------------------------------------------------------------------
    @guarded
    def open_image(self, *_) -> None:
        self.viewer.open(str(self.open_file.value))

    def current_image(self) -> Image:
        image = self.image_layer.value
        if image is None:
            raise ValueError("open an image first (File › Open, or File › Open Sample › napari SegNet)")
        return image

    def _channel_axis(self):
        return None if self.channel_axis.value == "auto" else int(self.channel_axis.value)

    def _region(self, image: Image) -> tuple:
        """The current slice's index for stacks when 'current slice only' is on, else () (everything)."""
        stack_dims = image.data.ndim - (3 if image.rgb else 2)
        if not self.slice_only.value or stack_dims <= 0:
            return ()
        return tuple(int(self.viewer.dims.current_step[i]) for i in range(stack_dims))

    @guarded
    def predict(self, *_) -> None:
        image, seg = self.current_image(), self.model()
        region = self._region(image)
        data = image.data[region] if region else image.data
        want_proba = self.uncertainty.value
        steps = seg.predict_steps(data, channel_axis=self._channel_axis(), want_proba=want_proba)
        self._run(Job(steps, "Predicting", lambda u: None,
                      lambda result: self._show(image, region, *result)))

    def _show(self, image: Image, region: tuple, labels, proba) -> None:
        show_prediction(self.viewer, image, labels, self.segmenter.class_names, region)
        if proba is not None:
            uncertainty = 1 - proba.max(axis=0)
            name = f"{image.name} uncertainty"
            if name in self.viewer.layers and not region:
                self.viewer.layers[name].data = uncertainty
            else:
                self.viewer.add_image(uncertainty, name=name, colormap="magma", blending="additive",
                                      opacity=0.6, visible=True)

    # ---- fine-tuning --------------------------------------------------------------------------------------
    def corrections(self, image: Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image, labels, reviewed mask) from the image's prediction layer as the user corrected it."""
        name = prediction_name(image)
        if name not in self.viewer.layers:
            raise ValueError(f"predict '{image.name}' first, then correct the '{name}' layer")
        layer = self.viewer.layers[name]
        labels = np.asarray(layer.data)
        reviewed = track_paint(layer).copy() if self.review.value == REVIEW[1] else np.ones(labels.shape, bool)
        if not reviewed.any():
            raise ValueError("nothing is marked as reviewed: paint corrections first, or count the whole image")
        if labels.max() >= self.model().num_classes:
            raise ValueError(f"'{name}' holds class {labels.max()}, but the model has classes 0…"
                             f"{self.model().num_classes - 1}; paint only with those label values")
        return np.asarray(image.data), labels, reviewed

    def training_lists(self) -> tuple[list, list, list]:
        """Every image's corrections, one 2-D plane each (stacks are split into their slices)."""
        images, labels, masks = [], [], []
        for data, lab, rev in self.training_set.values():
            if lab.ndim == 2:
                images.append(data), labels.append(lab), masks.append(rev)
                continue
            for z in range(lab.shape[0]):
                if rev[z].any():
                    images.append(data[z]), labels.append(lab[z]), masks.append(rev[z])
        return images, labels, masks

    @guarded
    def finetune(self, *_) -> None:
        image = self.current_image()
        self.training_set[image.name] = self.corrections(image)
        if self.project is not None:
            self._save_to_project(image, *self.training_set[image.name][1:])
        seg = self.model()
        images, labels, masks = self.training_lists()
        gen = seg.finetune(images, labels, masks, loss=self.loss.value, w0=self.w0.value, sigma=self.sigma.value,
                           steps=self.steps.value, lr=self.lr.value, channel_axis=self._channel_axis())
        self.loss_plot.clear()
        self.train_button.enabled, self.stop_button.enabled = False, True
        self._run(Job(gen, "Fine-tuning", self._on_train_update, self._on_trained, self._on_train_end))

    def _on_train_update(self, update) -> None:
        if isinstance(update, TrainProgress):
            self.loss_plot.add(update.loss)

    def _on_trained(self, finished: FinetuneFinished | None) -> None:
        if not isinstance(finished, FinetuneFinished):
            return
        self._refresh_versions()
        (show_info if finished.accepted else show_warning)(finished.message)
        if self.project is not None:
            try:
                self.project.save_model(self.segmenter)
            except OSError as e:
                notify(e)
        self._predict_after = finished.accepted

    def _on_train_end(self) -> None:
        self.train_button.enabled, self.stop_button.enabled = True, False
        if getattr(self, "_predict_after", False):  # refresh the prediction, keeping painted pixels
            self._predict_after = False
            self.predict()

    def stop(self, *_) -> None:
        if self.job is not None:
            self.job.stop()

    @guarded
    def show_weight_map(self, *_) -> None:
        image = self.current_image()
        _, labels, _ = self.corrections(image)
        plane = labels[self._region(image)] if labels.ndim > 2 else labels
        if plane.ndim != 2:
            raise ValueError("tick 'current slice only' to see the weight map of one slice of a stack")
        weights = unet_weight_map(plane, w0=self.w0.value, sigma=self.sigma.value, class_weights="balanced")
        name = f"{image.name} weight map"
        if name in self.viewer.layers:
            self.viewer.layers[name].data = weights
        else:
            self.viewer.add_image(weights, name=name, colormap="inferno", opacity=0.7)

    # ---- evaluation ---------------------------------------------------------------------------------------
    @guarded
    def evaluate(self, *_) -> None:
        image, truth = self.current_image(), self.truth_layer.value
        name = prediction_name(image)
        if truth is None or name not in self.viewer.layers:
            raise ValueError("predict first, and pick a ground-truth Labels layer")
        if truth.name == name:
            raise ValueError("pick a ground-truth layer other than the prediction itself")
        pred = np.asarray(self.viewer.layers[name].data)
        target = np.asarray(truth.data)
        if pred.shape != target.shape:
            raise ValueError(f"the ground truth has shape {target.shape}, the prediction {pred.shape}")
        n = max(self.model().num_classes, int(target.max()) + 1)
        self.show_scores(segmentation_scores(pred, target, n))

    def show_scores(self, scores: dict) -> None:
        names = self.model().class_names
        rows = [(k.replace("_", " "), scores[k]) for k in
                ("pixel_accuracy", "mean_accuracy", "mean_iu", "frequency_weighted_iu")]
        rows += [(f"IU {names[i] if i < len(names) else i}", v) for i, v in enumerate(scores["iu"])]
        self.table.setRowCount(len(rows))
        for r, (k, v) in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(k))
            self.table.setItem(r, 1, QTableWidgetItem("—" if np.isnan(v) else f"{v:.4f}"))
        self.table.resizeColumnToContents(0)
        self.scores = scores

    # ---- jobs ---------------------------------------------------------------------------------------------
    def _run(self, job: Job) -> None:
        if self.job is not None and not self.job.done:
            raise ValueError("wait for the running prediction or fine-tune to finish, or press Stop")
        self.job = job.start()


__all__ = ["PAINTED", "SegNetWidget"]
