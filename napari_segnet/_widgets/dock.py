"""The SegNet dock: model → image → predict → correct → fine-tune → evaluate; every action calls the core."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
from napari.layers import Image
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QFileDialog, QTableWidgetItem, QVBoxLayout, QWidget

from ..engine.devices import describe, pick_device
from ..engine.scale import estimate_diameter
from ..engine.training import NEW_MODEL_SETTINGS, TrainProgress, TrainSettings, warm_up_in_background
from ..models.pretrained import new_model_options
from ..numerics.instances import label_instances
from ..numerics.metrics import object_score_rows, object_scores, pixel_score_rows, segmentation_scores
from ..project import Project
from ..segmenter import FinetuneFinished, Segmenter
from . import sections
from .layers import PAINTED, colour_classes, prediction_name, show_instances, show_prediction, track_paint
from .legend import label_colours
from .live import LiveMode
from .loss_plot import LossPlot
from .pages import add_to_page, adopt, build_tabs
from .runner import Job, guarded, notify, warn
from .sections import DEFAULT, REVIEW, STARTS


class SegNetWidget(QWidget):
    """The dock. ``segmenter`` is the active model; ``training_set`` maps image layer names to the
    (image, corrected labels, reviewed mask) used by every fine-tune — 2-D or stacks, as the layers hold them —
    so corrections of several images add up. Widgets of every section are attributes (``steps``, ``lr``, …)."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.segmenter: Segmenter | None = None
        self.project: Project | None = None
        self.training_set: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.job: Job | None = None
        self.setLayout(QVBoxLayout())
        self.layout().setContentsMargins(2, 2, 2, 2)
        self.loss_plot = LossPlot()
        adopt(self, sections.legend_section())
        self.tabs = build_tabs(self, self.loss_plot)
        self.tabs.setCurrentIndex(1)  # image & predict: where a session starts
        self.layout().addWidget(self.legend)
        self.layout().addWidget(self.tabs)
        self.live_mode = LiveMode(self)  # the Live section (learn while painting, Next)
        self.layout().removeWidget(self.live_mode.ui.box.native)  # into the Predict tab, under Predict
        add_to_page(self.tabs, "Predict", self.live_mode.ui.box.native)
        self._connect()
        self.device_label.value = f"device: {describe(pick_device())}"
        warm_up_in_background()  # the first fine-tune round then starts at once

    def _connect(self) -> None:
        """Each button and field calls its action."""
        for widget, action in ((self.project_dir, self.open_project), (self.architecture, self._show_options),
                               (self.separate, self._separate_objects),
                               (self.new_button, self.use_model), (self.load_file, self.load_model),
                               (self.save_button, self.save_model), (self.rollback_button, self.rollback),
                               (self.open_file, self.open_image), (self.predict_button, self.predict),
                               (self.weights_button, self.show_weight_map), (self.train_button, self.finetune),
                               (self.stop_button, self.stop), (self.eval_button, self.evaluate),
                               (self.estimate_button, self.estimate_size),
                               (self.export_button, self.export_model)):
            widget.changed.connect(action)

    def reset_choices(self, event=None) -> None:
        """Refresh the layer pickers (napari calls this when layers are added or removed)."""
        self.image_layer.reset_choices()
        self.truth_layer.reset_choices()
        self.size_layer.reset_choices()

    # ---- model --------------------------------------------------------------------------------------------
    def model(self) -> Segmenter:
        """The active model, created from the Model section on first use."""
        if self.segmenter is None:
            self.use_model()
        return self.segmenter

    @guarded
    def use_model(self, *_) -> None:
        """Make the architecture, options and class names of the Model section the active model (the shipped
        default for 'default'); corrections for other classes are dropped from the training set."""
        if self.architecture.value == DEFAULT:
            self.set_model(Segmenter.default())
            return
        names = [n.strip() for n in self.class_names.value.split(",") if n.strip()]
        if len(names) < 2:
            raise ValueError("give at least two class names, e.g. 'background, nucleus'")
        image = self.image_layer.value
        channels = 3 if image is not None and image.rgb else 1
        start = "scratch" if self.start.value == STARTS[1] else None  # pretrained where an encoder fits
        self.set_model(Segmenter.create(self.architecture.value, channels, len(names), class_names=names,
                                        start=start, **self.parse_options()))

    def _show_options(self, *_) -> None:
        """Fill the options field with the chosen architecture's defaults for a new model, and the Fine-tune
        section with the settings measured for it: a new model's classes are most often regions, so 'separate
        touching objects' is on only for the nuclei default; a new model learns with NEW_MODEL_SETTINGS."""
        name = self.architecture.value
        defaults = {} if name == DEFAULT else new_model_options(name)
        self.options.value = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
        self.separate.value = name == DEFAULT
        self.lr.value = TrainSettings.lr if name == DEFAULT else NEW_MODEL_SETTINGS["lr"]
        self.forest.value = name != DEFAULT

    def _separate_objects(self, *_) -> None:
        """'separate touching objects' picks the loss: border-weighted CE when on, class-balanced CE when off."""
        self.loss.value = "border_ce" if self.separate.value else "balanced_ce"

    def parse_options(self) -> dict:
        """The Model section's options field as a dict (:func:`sections.parse_options`)."""
        return sections.parse_options(self.options.value)

    def set_model(self, segmenter: Segmenter) -> None:
        """Make ``segmenter`` the dock's model."""
        previous, self.segmenter = self.segmenter, segmenter
        if previous is not None and previous.num_classes != segmenter.num_classes:
            self.training_set.clear()  # corrections made for other classes cannot train this model
        self._refresh_versions()
        self.update_legend()
        start = segmenter.start
        origin = {"pretrained": f", started from the pretrained encoder {start.get('encoder')}",
                  "scratch": ", started from random weights"}.get(start.get("start"), "")
        show_info(f"model: {segmenter.metadata.architecture}, classes {segmenter.class_names}{origin}")

    def update_legend(self, layer=None) -> None:
        """Show the model's classes with the colours of ``layer`` (a prediction layer) or napari's defaults."""
        names = self.segmenter.class_names
        self.legend.set_classes(names, label_colours(names, layer))

    @guarded
    def export_model(self, *_) -> None:
        """Write the active model as a bioimage.io package to 'export as' (asks where when it is empty), with the
        current image (its current slice) as the test input when one is open."""
        path = str(self.export_file.value or "")
        if path in ("", ".") and not (path := QFileDialog.getSaveFileName(self, "Export", "model.zip", "*.zip")[0]):
            return
        image = self.image_layer.value
        data = None if image is None else np.asarray(image.data[self._region(image, always=True)])
        authors = [a.strip() for a in self.authors.value.split(",") if a.strip()] or None
        written = self.model().export_bioimageio(path, data, authors=authors, license=self.licence.value.strip())
        show_info(f"exported {written}")

    @guarded
    def load_model(self, *_) -> None:
        """Load the checkpoint chosen in 'load' (refuses anything that is not a napari-segnet checkpoint)."""
        self.set_model(Segmenter.load(self.load_file.value))

    @guarded
    def save_model(self, *_) -> None:
        """Save the active model to 'save as' (atomically)."""
        path = self.model().save(self.save_file.value)
        show_info(f"saved {path}")

    @guarded
    def rollback(self, *_) -> None:
        """Make the version chosen in 'version' the active one (any version made or loaded here)."""
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
        """Open (or start) the project folder and restore its images, corrections and model; problems met
        (a damaged log or model file) are shown as warnings."""
        self.project = Project(self.project_dir.value)
        for problem in self.project.problems:
            warn(problem)
        restored = []
        for name in self.project.names:
            image = self.project.image(name)
            if name not in self.viewer.layers:
                self.viewer.add_image(image, name=name)
            saved = self.project.correction(name)
            if saved is not None:
                labels, reviewed = saved
                layer_name = prediction_name(self.viewer.layers[name])
                if layer_name not in self.viewer.layers:
                    restored.append(self.viewer.add_labels(labels, name=layer_name, opacity=0.5))
                self.training_set[name] = (image, labels, reviewed)
        model = self.project.load_model()
        if model is not None:
            self.set_model(model)
        for layer in restored:
            colour_classes(layer, self.segmenter.class_names)
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
        """Open the file chosen in 'open file' in the viewer."""
        self.viewer.open(str(self.open_file.value))

    def current_image(self) -> Image:
        """The chosen image layer (``ValueError`` if there is none)."""
        image = self.image_layer.value
        if image is None:
            raise ValueError("open an image first (File › Open, or File › Open Sample › napari SegNet)")
        return image

    def _channel_axis(self):
        return None if self.channel_axis.value == "auto" else int(self.channel_axis.value)

    def _region(self, image: Image, always: bool = False) -> tuple:
        """The current slice's index for stacks when 'current slice only' is on (or ``always``), else ()."""
        stack_dims = image.data.ndim - (3 if image.rgb else 2)
        if not (self.slice_only.value or always) or stack_dims <= 0:
            return ()
        return tuple(int(self.viewer.dims.current_step[i]) for i in range(stack_dims))

    @guarded
    def predict(self, *_) -> None:
        """Predict the image (or its current slice) into its prediction layer, keeping painted pixels."""
        image, seg = self.current_image(), self.model()
        region = self._region(image)
        data = image.data[region] if region else image.data
        want_proba = self.uncertainty.value
        steps = seg.predict_steps(data, channel_axis=self._channel_axis(), want_proba=want_proba,
                                  diameter=self.diameter(), tta=self.tta.value)
        self._run(Job(steps, f"Predicting {image.name}", lambda u: None,
                      lambda result: self._show(image, region, result.labels, result.proba)))

    def _show(self, image: Image, region: tuple, labels, proba) -> None:
        layer = show_prediction(self.viewer, image, labels, self.segmenter.class_names, region)
        self.update_legend(layer)
        if self.instances.value:
            show_instances(self.viewer, image, label_instances(np.asarray(layer.data)[region]), region)
        if proba is not None:
            uncertainty = 1 - proba.max(axis=0)
            name = f"{image.name} uncertainty"
            if name in self.viewer.layers and not region:
                self.viewer.layers[name].data = uncertainty
            else:
                self.viewer.add_image(uncertainty, name=name, colormap="magma", blending="additive",
                                      opacity=0.6, visible=True)

    def diameter(self) -> float | None:
        """The 'object size' field: None when 0 (the image is used as it is)."""
        return self.object_size.value or None

    @guarded
    def estimate_size(self, *_) -> None:
        """Fill 'object size' with the median object diameter of the 'size from' labels layer."""
        layer = self.size_layer.value
        if layer is None:
            raise ValueError("pick a Labels layer with a few objects drawn (or predicted) in 'size from'")
        self.object_size.value = round(estimate_diameter(np.asarray(layer.data)), 1)
        show_info(f"object size {self.object_size.value} px (the model was trained on "
                  f"{self.model().object_diameter or 'an unrecorded size'})")

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

    def settings(self) -> TrainSettings:
        """The fine-tune settings of the Fine-tune section."""
        new = {k: v for k, v in NEW_MODEL_SETTINGS.items() if k not in ("loss", "lr", "distill")
               and self.architecture.value != DEFAULT}
        return TrainSettings(loss=self.loss.value, w0=self.w0.value, sigma=self.sigma.value, lr=self.lr.value,
                             steps=self.steps.value or "auto",
                             distill=self.forest.value * NEW_MODEL_SETTINGS["distill"], **new)

    @guarded
    def finetune(self, *_) -> None:
        """Add the image's corrections to the training set (and the project folder) and fine-tune on all of
        them in a worker; the new version becomes active only if the guard accepts it."""
        image = self.current_image()
        self.training_set[image.name] = self.corrections(image)
        if self.project is not None:
            self._save_to_project(image, *self.training_set[image.name][1:])
        images, labels, masks = (list(t) for t in zip(*self.training_set.values()))
        gen = self.model().finetune(images, labels, masks, channel_axis=self._channel_axis(), diameter=self.diameter(),
                                    **asdict(self.settings()))
        self.loss_plot.clear()
        self.train_button.enabled, self.stop_button.enabled = False, True
        self._run(Job(gen, "Fine-tuning", self._on_train_update, self._on_trained, self._on_train_end))

    def _on_train_update(self, update) -> None:
        if isinstance(update, TrainProgress):
            self.loss_plot.add(update.loss)

    def _on_trained(self, finished: FinetuneFinished) -> None:
        self._refresh_versions()
        if finished.accepted:
            show_info(finished.message)
        else:
            warn(finished.message, ("Activate anyway", lambda *_: self.activate(finished.version)))
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

    def activate(self, version: int) -> None:
        """Make ``version`` active (the 'Activate anyway' action of a fine-tune the guard kept inactive)."""
        self.model().rollback(version)
        self._refresh_versions()
        show_info(f"version {version} is active")

    def stop(self, *_) -> None:
        """Stop the running prediction or fine-tune; the model and the layers stay as they were."""
        if self.job is not None:
            self.job.stop()

    @guarded
    def show_weight_map(self, *_) -> None:
        """Show the per-pixel weights the selected loss trains with on the corrected labels (reviewed pixels)."""
        image = self.current_image()
        _, labels, reviewed = self.corrections(image)
        region = self._region(image) if labels.ndim > 2 else ()
        if labels[region].ndim != 2:
            raise ValueError("tick 'current slice only' to see the weight map of one slice of a stack")
        weights = self.settings().weight_map(labels[region], reviewed[region])
        name = f"{image.name} weight map"
        if name in self.viewer.layers:
            self.viewer.layers[name].data = weights
        else:
            self.viewer.add_image(weights, name=name, colormap="inferno", opacity=0.7)

    # ---- evaluation ---------------------------------------------------------------------------------------
    @guarded
    def evaluate(self, *_) -> None:
        """Score the prediction layer against the chosen ground-truth layer in the table: FCN metrics, then
        object metrics (precision, recall, F1, AP, matched IoU at IoU 0.5 and 0.75)."""
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
        # object metrics: the prediction's instances against the truth's objects (its instance ids, or the
        # components of its classes: object_scores tells them apart)
        objects = object_scores(label_instances(pred), target, (0.5, 0.75))
        self.show_scores(segmentation_scores(pred, target, n), objects)

    def show_scores(self, scores: dict, objects: list[dict] | None = None) -> None:
        """Fill the metrics table with ``scores`` (as :func:`segmentation_scores` returns them), then the object
        metrics ``objects`` (as :func:`object_scores` returns them)."""
        rows = pixel_score_rows(scores, self.model().class_names) + object_score_rows(objects or [])
        self.table.setRowCount(len(rows))
        for r, (k, v) in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(k))
            text = str(v) if isinstance(v, (int, np.integer)) else "—" if np.isnan(v) else f"{v:.4f}"  # counts
            self.table.setItem(r, 1, QTableWidgetItem(text))
        self.table.resizeColumnToContents(0)
        self.scores, self.object_scores = scores, objects

    # ---- jobs ---------------------------------------------------------------------------------------------
    def _run(self, job: Job) -> None:
        if self.job is not None and not self.job.done:
            raise ValueError("wait for the running prediction or fine-tune to finish, or press Stop")
        self.job = job.start()


__all__ = ["PAINTED", "SegNetWidget"]
