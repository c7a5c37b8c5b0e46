"""The SegNet dock: model → image → predict → correct → fine-tune → evaluate; every action calls the core."""

from __future__ import annotations

import weakref
from dataclasses import asdict

import numpy as np
from napari.layers import Image
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QFileDialog, QTableWidgetItem, QVBoxLayout, QWidget

from ..inference.devices import describe, pick_device
from ..inference.scale import estimate_diameter
from ..models.pretrained import new_model_options
from ..numerics.instances import label_instances
from ..numerics.metrics import object_score_rows, object_scores, pixel_score_rows, segmentation_scores
from ..segmenter import FinetuneFinished, Segmenter
from ..session import Session
from ..training.loop import TrainProgress, warm_up_in_background
from ..training.recommend import DISTILL_WEIGHT
from ..training.regions import view_region
from ..training.settings import TrainSettings
from . import sections
from .layers import PAINTED, prediction_name, show_instances, show_prediction
from .legend import label_colours
from .live import LiveMode
from .loss_plot import LossPlot
from .pages import add_to_page, adopt, build_tabs
from .review import add_regions, layer_regions, reviewed_layer, reviewed_mask, reviewed_name
from .runner import Job, guarded, notify, warn
from .sections import DEFAULT, REVIEW, STARTS

#: The session of each viewer (:class:`napari_segnet.session.Session`): it outlives the dock, so closing and
#: reopening the dock (or opening it again from the Plugins menu) brings the model, its versions and the
#: corrections back.
SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_for(viewer) -> Session:
    """The viewer's session, created the first time."""
    if viewer not in SESSIONS:
        SESSIONS[viewer] = Session()
    return SESSIONS[viewer]


class SegNetWidget(QWidget):
    """The dock: it shows and drives the viewer's :class:`~napari_segnet.session.Session` (the active model, earlier
    models, the training set — image layer name → (image, corrected labels, reviewed mask), 2-D or stacks — and the
    project folder). Widgets of every section are attributes (``steps``, ``lr``, …)."""

    segmenter = property(lambda self: self.session.segmenter)
    training_set = property(lambda self: self.session.training_set)
    project = property(lambda self: self.session.project)
    job = property(lambda self: self.session.job)

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.session.dock = self  # a job started by an earlier dock reports here now
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
        if self.segmenter is not None:  # reopened: show the session as it is
            self._show_model()
        if self.job is not None and not self.job.done:
            self.train_button.enabled, self.stop_button.enabled = False, True

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
                               (self.export_button, self.export_model), (self.models, self.switch_model),
                               (self.mark_view_button, self.mark_view), (self.unmark_button, self.unmark_last),
                               (self.use_anyway_button, self.use_anyway)):
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
        image, axis = self.image_layer.value, self._channel_axis()
        channels = 1 if image is None else 3 if image.rgb else image.data.shape[axis] if axis is not None else 1
        start = "scratch" if self.start.value == STARTS[1] else None  # pretrained where an encoder fits
        self.set_model(Segmenter.create(self.architecture.value, channels, len(names), class_names=names,
                                        start=start, **self.parse_options()))

    def _show_options(self, *_) -> None:
        """Fill the options field with the chosen architecture's defaults for a new model (the Fine-tune fields
        follow the model once it is made: :meth:`_show_recommendation`)."""
        name = self.architecture.value
        defaults = {} if name == DEFAULT else new_model_options(name)
        self.options.value = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
        for field in (self.options, self.class_names, self.start):  # the shipped model has its own classes
            field.enabled = name != DEFAULT

    def _separate_objects(self, *_) -> None:
        """'separate touching objects' picks the loss: border-weighted CE when on, class-balanced CE when off."""
        self.loss.value = "border_ce" if self.separate.value else "balanced_ce"

    def parse_options(self) -> dict:
        """The Model section's options field as a dict (:func:`sections.parse_options`)."""
        return sections.parse_options(self.options.value)

    def set_model(self, segmenter: Segmenter) -> None:
        """Make ``segmenter`` the session's model; the previous one stays in the model list with its versions (and
        in its project folder: a new model is saved to a new folder, never over another model's files)."""
        previous = self.segmenter
        if previous is not None and self.project is not None and segmenter is not previous:
            self.session.project = None  # the next save starts a folder of this model's own
        self.session.use(segmenter)
        self._show_model()
        kept = "; the previous model stays in the model list" if previous is not None else ""
        show_info(f"model: {describe_model(segmenter)}{kept}")

    def _show_model(self) -> None:
        """Model list, versions and legend of the session's active model."""
        with self.models.changed.blocked():
            self.models.choices = [(self.session.model_label(m), m) for m in self.session.models]
            self.models.value = self.segmenter
        self._refresh_versions()
        self.update_legend()
        self._show_recommendation()

    def _show_recommendation(self) -> None:
        """Fill the Fine-tune fields with the active model's recommended settings: a new model's classes are most
        often regions, so 'separate touching objects' is on only where it recommends a border loss."""
        rec = self.segmenter.recommended_settings
        self.separate.value = rec.loss in ("border_ce", "border_ce_dice")  # sets the loss: the model's one next
        self.loss.value, self.w0.value, self.sigma.value, self.lr.value = rec.loss, rec.w0, rec.sigma, rec.lr
        self.steps.value, self.forest.value = 0 if rec.steps == "auto" else rec.steps, rec.distill > 0

    def switch_model(self, *_) -> None:
        """Make the model chosen in the model list active again (as it was left, with its versions)."""
        chosen = self.models.value
        if chosen is not None and chosen is not self.segmenter:
            self.set_model(chosen)

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
        """Make the version chosen in 'version' the active one (older or newer: any version made or loaded here),
        and predict the image again with it."""
        if self.versions.value is None:
            raise ValueError("there is no other version yet")
        self.activate(int(self.versions.value))

    def _refresh_versions(self) -> None:
        seg = self.segmenter
        with self.versions.changed.blocked():
            self.versions.choices = [(version_label(seg, v), v) for v in seg.available_versions]
            self.versions.value = seg.active_version

    # ---- project folder -----------------------------------------------------------------------------------
    @guarded
    def open_project(self, *_) -> None:
        """Open (or start) the project folder and restore its images, corrections and model; problems met
        (a damaged log or model file) are shown as warnings."""
        project = self.session.open_project(self.project_dir.value)
        for problem in project.problems:
            warn(problem)
        model = project.load_model()
        if model is not None:
            self.session.use(model)
            self._show_model()
        names = self.model().class_names
        for name in project.names:
            image = project.image(name)
            if name not in self.viewer.layers:
                self.viewer.add_image(image, name=name)
            saved = project.correction(name)
            if saved is not None:
                labels, reviewed = saved
                image_layer = self.viewer.layers[name]
                if prediction_name(image_layer) not in self.viewer.layers:
                    show_prediction(self.viewer, image_layer, labels, names)
                add_regions(reviewed_layer(self.viewer, image_layer, labels.ndim), project.regions(name))
                self.training_set[name] = (image, labels, reviewed)
        n = len(project.names)
        show_info(f"project {project.folder}: {n} image{'' if n == 1 else 's'}, "
                  f"{'model version ' + str(model.active_version) if model else 'no model yet'}")

    def _save_correction(self, image: Image, data: np.ndarray, labels: np.ndarray, reviewed: np.ndarray) -> None:
        """Keep a correction in the session and its folder (the project, or the automatic one); a failed save is
        said, and the correction stays in the session."""
        layer = self.viewer.layers[reviewed_name(image)] if reviewed_name(image) in self.viewer.layers else None
        try:
            self.session.save_correction(image.name, data, labels, reviewed,
                                         layer_regions(layer) if layer is not None else [])
        except OSError as e:
            notify(e)

    def _save_model(self) -> None:
        try:
            self.session.save_model()
        except OSError as e:
            notify(e)

    # ---- image and prediction -----------------------------------------------------------------------------
    @guarded
    def open_image(self, *_) -> None:
        """Open the file chosen in 'open file' in the viewer, choose it as the image to work on, and fit the view."""
        layers = self.viewer.open(str(self.open_file.value))
        images = [layer for layer in layers if isinstance(layer, Image)]
        if images:
            self.reset_choices()
            self.image_layer.value = images[0]
            self.viewer.reset_view()

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
        if image.rgb and seg.in_channels == 1:
            warn(f"'{image.name}' is a colour image and this model reads one channel. Convert it to grayscale "
                 f"(a new layer) and predict that, or make a new model with this image chosen (Model tab): it will "
                 f"read the three colours.", ("Convert to grayscale", lambda *_: self.to_grayscale(image)))
            return
        region = self._region(image)
        data = image.data[region] if region else image.data
        want_proba = self.uncertainty.value
        steps = seg.predict_steps(data, channel_axis=self._channel_axis(), want_proba=want_proba,
                                  diameter=self.diameter(), tta=self.tta.value)
        self.predict_button.enabled = False
        self._run(Job(steps, f"Predicting {image.name}", lambda u: None,
                      lambda result: self._show(image, region, result.labels, result.proba),
                      lambda: setattr(self.predict_button, "enabled", True)))

    def to_grayscale(self, image: Image) -> Image:
        """A grayscale copy of a colour image as a new layer ('<name> gray'), chosen and predicted."""
        from skimage.color import rgb2gray

        gray = self.viewer.add_image(rgb2gray(np.asarray(image.data)[..., :3]).astype(np.float32),
                                     name=f"{image.name} gray", scale=image.scale[:-1] if image.data.ndim > 3
                                     else image.scale, translate=image.translate)
        self.reset_choices()
        self.image_layer.value = gray
        self.predict()
        return gray

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
        layer = self._prediction_layer(image)
        name = layer.name
        labels = np.asarray(layer.data)
        if self.review.value == REVIEW[1]:
            reviewed = np.ones(labels.shape, bool)
        else:
            reviewed = reviewed_mask(self.viewer, image, labels.shape)
        if not reviewed.any():
            raise ValueError(f"no region of '{image.name}' is marked as reviewed yet: paint your corrections (each "
                             f"stroke marks the 128-pixel square around it), press 'Mark what I see as reviewed', "
                             f"or choose 'learn from: whole image' if you corrected every pixel")
        if labels.max() >= self.model().num_classes:
            raise ValueError(f"'{name}' holds class {labels.max()}, but the model has classes 0…"
                             f"{self.model().num_classes - 1}; paint only with those label values")
        return np.asarray(image.data), labels, reviewed

    def settings(self) -> TrainSettings:
        """The fine-tune settings of the Fine-tune section over the active model's recommendation (which gives those
        the section does not show); the forest box switches distillation on at the recommended weight."""
        rec = self.model().recommended_settings
        shown = {"loss": self.loss.value, "w0": self.w0.value, "sigma": self.sigma.value, "lr": self.lr.value,
                 "steps": self.steps.value or "auto", "distill": self.forest.value * (rec.distill or DISTILL_WEIGHT)}
        return TrainSettings.of(**{**asdict(rec), **shown})

    @guarded
    def finetune(self, *_) -> None:
        """Add the image's corrections to the training set (and the project folder) and fine-tune on all of
        them in a worker; the new version becomes active only if the guard accepts it."""
        image = self.current_image()
        self.live_mode.accept_shown_tile(image)  # the tile Next shows was looked at: it counts as reviewed
        data, labels, reviewed = self.corrections(image)
        self.session.training_set[image.name] = (data, labels, reviewed)
        self._save_correction(image, data, labels, reviewed)
        images, labels, masks = (list(t) for t in zip(*self.session.learnable().values()))
        gen = self.model().finetune(images, labels, masks, channel_axis=self._channel_axis(), diameter=self.diameter(),
                                    **asdict(self.settings()))
        self.loss_plot.clear()
        self.train_button.enabled, self.stop_button.enabled = False, True
        self._show_guard(None)
        session = self.session  # a dock closed meanwhile hands the outcome to the one open then (or to none)
        self._run(Job(gen, "Fine-tuning", lambda u: session.dock and session.dock._on_train_update(u),
                      lambda done: _finished(session, done), lambda: session.dock and session.dock._on_train_end()))

    @guarded
    def mark_view(self, *_) -> None:
        """Mark the part of the image in view (its current slice for a stack) as reviewed."""
        image = self.current_image()
        layer = self._prediction_layer(image)
        z = int(self.viewer.dims.current_step[0]) if layer.data.ndim == 3 else 0
        cam = self.viewer.camera
        region = view_region(cam.center, self.viewer.window._qt_viewer.canvas.size, cam.zoom, layer.scale,
                             layer.translate, layer.data.shape[-2:], z)
        if region is None:
            raise ValueError(f"'{image.name}' is out of view: move it into view first")
        add_regions(reviewed_layer(self.viewer, image, layer.data.ndim), [region])

    @guarded
    def unmark_last(self, *_) -> None:
        """Remove the reviewed box added last (also: select boxes in the '<image> reviewed' layer and delete)."""
        image = self.current_image()
        name = reviewed_name(image)
        if name not in self.viewer.layers or len(self.viewer.layers[name].data) == 0:
            raise ValueError(f"'{image.name}' has no reviewed box to remove")
        layer = self.viewer.layers[name]
        layer.selected_data = {len(layer.data) - 1}
        layer.remove_selected()

    def _prediction_layer(self, image: Image):
        name = prediction_name(image)
        if name not in self.viewer.layers:
            raise ValueError(f"predict '{image.name}' first, then correct the '{name}' layer")
        return self.viewer.layers[name]

    def _on_train_update(self, update) -> None:
        if isinstance(update, TrainProgress):
            self.loss_plot.add(update.loss)

    def _on_trained(self, finished: FinetuneFinished) -> None:
        self._refresh_versions()
        self._show_guard(finished)
        if finished.accepted:
            show_info(finished.message)
        self._predict_after = finished.accepted

    def _show_guard(self, finished: FinetuneFinished | None) -> None:
        """The guard's last word stays in the Fine-tune tab: both scores, and 'Use it anyway' when it kept the old
        version (None: clear it)."""
        self.guard_status.value = "" if finished is None else wrap(finished.message)
        self.use_anyway_button.visible = finished is not None and not finished.accepted
        self._kept_inactive = None if finished is None or finished.accepted else finished.version

    def use_anyway(self, *_) -> None:
        """Activate the version the guard kept inactive, and predict again with it."""
        if getattr(self, "_kept_inactive", None) is not None:
            self.activate(self._kept_inactive)
            self._show_guard(None)

    def _on_train_end(self) -> None:
        self.train_button.enabled, self.stop_button.enabled = True, False
        if getattr(self, "_predict_after", False):  # refresh the prediction, keeping painted pixels
            self._predict_after = False
            self.predict()

    @guarded
    def activate(self, version: int) -> None:
        """Make ``version`` active ('Use this version', 'Use it anyway'), save that choice, predict again with it."""
        self.model().rollback(version)
        self._refresh_versions()
        self._save_model()
        show_info(f"version {version} is active")
        if self.image_layer.value is not None and prediction_name(self.image_layer.value) in self.viewer.layers:
            self.predict()

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
        painted = self.viewer.layers[name].metadata.get(PAINTED)
        unpainted = np.ones(pred.shape, bool) if painted is None or painted.shape != pred.shape else ~painted
        # pixel scores leave out the pixels the person painted: they are right by construction
        self.show_scores(segmentation_scores(pred[unpainted], target[unpainted], n), objects)
        self.eval_note.value = (f"pixel scores on the {int(unpainted.sum())} pixels you did not paint "
                                f"({int((~unpainted).sum())} painted); object scores on the whole image")

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
            raise ValueError("wait for the running prediction or fine-tune to finish, or press Stop (Fine-tune tab)")
        self.session.job = job
        job.start()


def _finished(session: Session, finished: FinetuneFinished) -> None:
    """A fine-tune completed: its model is saved whether or not a dock is open, then the open dock shows it."""
    try:
        session.save_model()
    except OSError as e:
        notify(e)
    if session.dock is not None:
        session.dock._on_trained(finished)


def describe_model(seg: Segmenter) -> str:
    """The model in plain words, for the first message a person reads."""
    first, classes = seg.versions[0], ", ".join(seg.class_names)
    if "training" in first:
        return f"the shipped {seg.metadata.architecture} for {classes}, trained on nuclei images (version " \
               f"{seg.active_version})"
    if len(seg.versions) > 1 or first.get("start") is None:
        return f"{seg.metadata.architecture} for {classes}, version {seg.active_version}"
    start = {"pretrained": "its layers start from the general encoder shipped with the plugin and its last layer "
                           "learns your classes", "scratch": "it starts from random weights"}[first["start"]]
    return f"a new {seg.metadata.architecture} for {classes}: {start} — correct a prediction and press Fine-tune"


def version_label(seg: Segmenter, number: int) -> str:
    """A version list entry: number, time, its score and its parent's on the held-out pixels, whether active."""
    v = seg.metadata.version(number)
    when = v.created[11:16] if len(v.created) >= 16 else v.created
    parts = [f"{number}", when]
    if v.scores and v.scores.get("mean_iu") is not None:
        before = (v.details.get("parent_scores") or {}).get("mean_iu")
        parts.append(f"score {v.scores['mean_iu']:.3f}" + (f" (v{v.parent}: {before:.3f})" if before is not None
                                                            else ""))
    elif v.note:
        parts.append(v.note[:40])
    if number == seg.active_version:
        parts.append("active")
    return " · ".join(parts)


def wrap(text: str, width: int = 60) -> str:
    """``text`` broken into lines of at most ``width`` characters (a status label in a narrow dock)."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


__all__ = ["SegNetWidget"]
