"""The Fine-tune tab: corrections and reviewed regions, the settings, the run, and the guard's verdict."""

from __future__ import annotations

import textwrap
from dataclasses import asdict, replace

import numpy as np
from napari.layers import Image
from napari.utils.notifications import show_info

from ..big_image import full_resolution, is_big, reviewed_crops
from ..segmenter import FinetuneFinished
from ..session import Session
from ..training.loop import TrainProgress
from ..training.recommend import DISTILL_WEIGHT
from ..training.regions import plane_shape, view_region
from ..training.settings import TrainSettings
from .layers import prediction_name
from .review import add_regions, layer_regions, reviewed_bits, reviewed_layer, reviewed_name, sliced_axis
from .runner import Job, guarded, notify
from .sections import REVIEW


class FinetuneTab:
    """The fine-tune section of a :class:`~napari_segnet._widgets.dock.SegNetWidget` (``dock``): what the person
    reviewed, the settings over the model's recommendation, and the run with its loss plot and guard status."""

    def __init__(self, dock):
        self.dock = dock
        self.kept_inactive: int | None = None  # the version the guard did not activate ('Use it anyway')
        self.predict_after = False  # predict again once the run has ended (the new version was activated)

    def separate_objects(self, *_) -> None:
        """'separate touching objects' picks the loss: border-weighted CE when on, class-balanced CE when off."""
        self.dock.loss.value = "border_ce" if self.dock.separate.value else "balanced_ce"

    def show_recommendation(self) -> None:
        """Fill the Fine-tune fields with the active model's recommended settings: a new model's classes are most
        often regions, so 'separate touching objects' is on only where it recommends a border loss."""
        dock = self.dock
        rec = dock.segmenter.recommended_settings
        dock.separate.value = rec.loss in ("border_ce", "border_ce_dice")  # sets the loss: the model's one next
        dock.loss.value, dock.w0.value, dock.sigma.value, dock.lr.value = rec.loss, rec.w0, rec.sigma, rec.lr
        dock.steps.value, dock.forest.value = 0 if rec.steps == "auto" else rec.steps, rec.distill > 0
        dock.blend.value = rec.forest_blend

    def prediction_layer(self, image: Image):
        """The prediction layer of ``image`` (``ValueError`` if it was not predicted yet)."""
        name, layers = prediction_name(image), self.dock.viewer.layers
        if name not in layers:
            raise ValueError(f"predict '{image.name}' first, then correct the '{name}' layer")
        return layers[name]

    def corrections(self, image: Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image, labels, reviewed mask) from the image's prediction layer as the user corrected it."""
        dock = self.dock
        layer = self.prediction_layer(image)
        labels = np.asarray(layer.data)
        if dock.review.value == REVIEW[1]:
            reviewed = np.ones(labels.shape, bool)
        else:
            reviewed = reviewed_bits(dock.viewer, image, labels.shape)
        if not reviewed.any():
            raise ValueError(f"no region of '{image.name}' is marked as reviewed yet: paint your corrections (each "
                             f"stroke marks the 128-pixel square around it), press 'Mark what I see as reviewed', "
                             f"or choose 'learn from: whole image' if you corrected every pixel")
        if labels.max() >= dock.model().num_classes:
            raise ValueError(f"'{layer.name}' holds class {labels.max()}, but the model has classes 0…"
                             f"{dock.model().num_classes - 1}; paint only with those label values")
        return np.asarray(image.data), labels, reviewed

    def voxel_sizes(self, entries: dict) -> list:
        """The voxel size (z, y, x) of each training-set entry that is a one-channel volume open in the viewer (its
        layer's ``scale``: side-view corrections train as 3 views predict), else None."""
        layers = self.dock.viewer.layers
        return [tuple(layers[n].scale[-3:]) if n in layers and isinstance(layers[n], Image) and not layers[n].rgb
                and np.ndim(entry[0]) == 3 else None for n, entry in entries.items()]

    def big_corrections(self, image: Image) -> list[tuple]:
        """(name, image crop, labels crop, reviewed crop) for each group of reviewed regions of a big image (read
        crop by crop: :func:`napari_segnet.big_image.reviewed_crops`)."""
        dock, layers = self.dock, self.dock.viewer.layers
        layer = self.prediction_layer(image)
        if dock.review.value == REVIEW[1]:
            raise ValueError(f"'{image.name}' is too big to learn from as a whole: choose 'learn from: regions I "
                             "reviewed' and mark the regions you corrected")
        name = reviewed_name(image)
        regions = layer_regions(layers[name]) if name in layers else []
        if not regions:
            raise ValueError(f"no region of '{image.name}' is marked as reviewed yet: paint your corrections (each "
                             f"stroke marks the 128-pixel square around it) or press 'Mark what I see as reviewed'")
        crops = reviewed_crops(full_resolution(image.data, image.multiscale), layer.data, regions,
                               dock.model().in_channels, dock.predict_tab.channel_axis())
        top = max(int(c[2].max()) for c in crops)
        if top >= dock.model().num_classes:
            raise ValueError(f"'{layer.name}' holds class {top}, but the model has classes 0…"
                             f"{dock.model().num_classes - 1}; paint only with those label values")
        return [(f"{image.name} {n}", *rest) for n, *rest in crops]

    def settings(self) -> TrainSettings:
        """The fine-tune settings of the Fine-tune section over the active model's recommendation (which gives those
        the section does not show); the forest box switches distillation on at the recommended weight, the blend box
        the pixel forest in the version's predictions."""
        dock = self.dock
        rec = dock.model().recommended_settings
        shown = {"loss": dock.loss.value, "w0": dock.w0.value, "sigma": dock.sigma.value, "lr": dock.lr.value,
                 "steps": dock.steps.value or "auto", "distill": dock.forest.value * (rec.distill or DISTILL_WEIGHT),
                 "forest_blend": dock.blend.value}
        return TrainSettings.of(**{**asdict(rec), **shown})

    @guarded
    def finetune(self, *_) -> None:
        """Add the image's corrections to the training set (and the project folder) and fine-tune on all of
        them in a worker; the new version becomes active only if the guard accepts it."""
        dock = self.dock
        image = dock.current_image()
        dock.live_mode.accept_shown_tile(image)  # the tile Next shows was looked at: it counts as reviewed
        big = is_big(image.data, image.multiscale)
        for name, data, labels, reviewed in self.big_corrections(image) if big else [(None, *self.corrections(image))]:
            dock.session.training_set[name or image.name] = (data, labels, reviewed)
            dock.project_tab.save_correction(image, data, labels, reviewed, name)
        learnable = dock.session.learnable()
        images, labels, masks = (list(t) for t in zip(*learnable.values()))
        gen = dock.model().finetune(images, labels, masks, channel_axis=dock.predict_tab.channel_axis(),
                                    diameter=dock.predict_tab.diameter(), spacing=self.voxel_sizes(learnable),
                                    **asdict(self.settings()))
        dock.loss_plot.clear()
        dock.train_button.enabled, dock.stop_button.enabled = False, True
        self.show_guard(None)
        session = dock.session  # a dock closed meanwhile hands the outcome to the one open then (or to none)
        dock.run_job(Job(gen, "Fine-tuning", lambda u: session.dock and session.dock.finetune_tab.on_update(u),
                         lambda done: finished(session, done),
                         lambda: session.dock and session.dock.finetune_tab.on_end()))

    @guarded
    def mark_view(self, *_) -> None:
        """Mark the part of the image in view (its current slice for a stack) as reviewed."""
        viewer = self.dock.viewer
        image = self.dock.current_image()
        layer = self.prediction_layer(image)
        axis = sliced_axis(viewer, layer)
        shown = [a for a in range(layer.data.ndim) if layer.data.ndim == 2 or a != axis]  # (rows, cols) axes
        plane = int(viewer.dims.current_step[axis]) if layer.data.ndim == 3 else 0
        cam = viewer.scene.camera
        region = view_region(cam.center, viewer.window._qt_viewer.canvas.size, cam.zoom, layer.scale[shown],
                             layer.translate[shown], plane_shape(layer.data.shape, axis), plane)
        region = None if region is None else replace(region, axis=axis)
        if region is None:
            raise ValueError(f"'{image.name}' is out of view: move it into view first")
        add_regions(reviewed_layer(viewer, image, layer.data.ndim), [region])

    @guarded
    def unmark_last(self, *_) -> None:
        """Remove the reviewed box added last (also: select boxes in the '<image> reviewed' layer and delete)."""
        layers = self.dock.viewer.layers
        image = self.dock.current_image()
        name = reviewed_name(image)
        if name not in layers or len(layers[name].data) == 0:
            raise ValueError(f"'{image.name}' has no reviewed box to remove")
        layer = layers[name]
        layer.selected_data = {len(layer.data) - 1}
        layer.remove_selected()

    def on_update(self, update) -> None:
        """A step of the run: its loss joins the plot."""
        if isinstance(update, TrainProgress):
            self.dock.loss_plot.add(update.loss)

    def on_trained(self, finished: FinetuneFinished) -> None:
        """The run completed: versions, the guard's verdict; predict again if the new version became active."""
        self.dock.model_tab.refresh_versions()
        self.show_guard(finished)
        if finished.accepted:
            show_info(finished.message)
        self.predict_after = finished.accepted

    def show_guard(self, finished: FinetuneFinished | None) -> None:
        """The guard's last word stays in the Fine-tune tab: both scores, and 'Use it anyway' when it kept the old
        version (None: clear it)."""
        self.dock.guard_status.value = "" if finished is None else wrap(finished.message)
        self.dock.use_anyway_button.visible = finished is not None and not finished.accepted
        self.kept_inactive = None if finished is None or finished.accepted else finished.version

    def use_anyway(self, *_) -> None:
        """Activate the version the guard kept inactive, and predict again with it."""
        if self.kept_inactive is not None:
            self.dock.model_tab.activate(self.kept_inactive)
            self.show_guard(None)

    def on_end(self) -> None:
        """The run ended (completed, stopped or failed): the buttons are back."""
        self.dock.train_button.enabled, self.dock.stop_button.enabled = True, False
        if self.predict_after:  # refresh the prediction, keeping painted pixels and reviewed regions
            self.predict_after = False
            self.dock.predict()

    def stop(self, *_) -> None:
        """Stop the running prediction or fine-tune; the model and the layers stay as they were."""
        if self.dock.job is not None:
            self.dock.job.stop()

    @guarded
    def show_weight_map(self, *_) -> None:
        """Show the per-pixel weights the selected loss trains with on the corrected labels (reviewed pixels)."""
        viewer = self.dock.viewer
        image = self.dock.current_image()
        _, labels, reviewed = self.corrections(image)
        region = self.dock.predict_tab.region(image) if labels.ndim > 2 else ()
        if labels[region].ndim != 2:
            raise ValueError("tick 'current slice only' to see the weight map of one slice of a stack")
        weights = self.settings().weight_map(labels[region], reviewed[region])
        name = f"{image.name} weight map"
        if name in viewer.layers:
            viewer.layers[name].data = weights
        else:
            viewer.add_image(weights, name=name, colormap="inferno", opacity=0.7)


def finished(session: Session, outcome: FinetuneFinished) -> None:
    """A fine-tune completed: its model is saved whether or not a dock is open, then the open dock shows it."""
    try:
        session.save_model()
    except OSError as e:
        notify(e)
    if session.dock is not None:
        session.dock.finetune_tab.on_trained(outcome)


def wrap(text: str, width: int = 60) -> str:
    """``text`` broken into lines of at most ``width`` characters (a status label in a narrow dock)."""
    return "\n".join(textwrap.wrap(text, width))
