"""The Model tab: make, load, save, switch and export models, and choose among their versions."""

from __future__ import annotations

import numpy as np
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QFileDialog

from ..models.pretrained import new_model_options
from ..segmenter import Segmenter
from .layers import prediction_name
from .legend import label_colours
from .runner import guarded, notify
from .sections import DEFAULT, STARTS, parse_options


class ModelTab:
    """The model section of a :class:`~napari_segnet._widgets.dock.SegNetWidget` (``dock``, whose attributes are
    the section's fields): which model is active, its versions and the legend of its classes."""

    def __init__(self, dock):
        self.dock = dock

    def model(self) -> Segmenter:
        """The active model, created from the Model section on first use."""
        if self.dock.segmenter is None:
            self.use_model()
        return self.dock.segmenter

    @guarded
    def use_model(self, *_) -> None:
        """Make the architecture, options and class names of the Model section the active model (the shipped
        default for 'default'); corrections for other classes are dropped from the training set."""
        dock = self.dock
        if dock.architecture.value == DEFAULT:
            self.set_model(Segmenter.default())
            return
        names = [n.strip() for n in dock.class_names.value.split(",") if n.strip()]
        if len(names) < 2:
            raise ValueError("give at least two class names, e.g. 'background, nucleus'")
        image, axis = dock.image_layer.value, dock.predict_tab.channel_axis()
        channels = 1 if image is None else 3 if image.rgb else image.data.shape[axis] if axis is not None else 1
        start = "scratch" if dock.start.value == STARTS[1] else None  # pretrained where an encoder fits
        self.set_model(Segmenter.create(dock.architecture.value, channels, len(names), class_names=names,
                                        start=start, **self.parse_options()))

    def show_options(self, *_) -> None:
        """Fill the options field with the chosen architecture's defaults for a new model (the Fine-tune fields
        follow the model once it is made: :meth:`FinetuneTab.show_recommendation`)."""
        dock = self.dock
        name = dock.architecture.value
        defaults = {} if name == DEFAULT else new_model_options(name)
        dock.options.value = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
        for field in (dock.options, dock.class_names, dock.start):  # the shipped model has its own classes
            field.enabled = name != DEFAULT

    def parse_options(self) -> dict:
        """The Model section's options field as a dict (:func:`sections.parse_options`)."""
        return parse_options(self.dock.options.value)

    def set_model(self, segmenter: Segmenter) -> None:
        """Make ``segmenter`` the session's model; the previous one stays in the model list with its versions (and
        in its project folder: a new model is saved to a new folder, never over another model's files)."""
        session = self.dock.session
        previous = session.segmenter
        if previous is not None and session.project is not None and segmenter is not previous:
            session.project = None  # the next save starts a folder of this model's own
        session.use(segmenter)
        self.show_model()
        kept = "; the previous model stays in the model list" if previous is not None else ""
        show_info(f"model: {describe_model(segmenter)}{kept}")

    def show_model(self) -> None:
        """Model list, versions and legend of the session's active model, and its recommended settings."""
        self.refresh_versions()
        self.update_legend()
        self.dock.finetune_tab.show_recommendation()

    def switch_model(self, *_) -> None:
        """Make the model chosen in the model list active again (as it was left, with its versions)."""
        chosen = self.dock.models.value
        if chosen is not None and chosen is not self.dock.segmenter:
            self.set_model(chosen)

    def update_legend(self, layer=None) -> None:
        """Show the model's classes with the colours of ``layer`` (a prediction layer) or napari's defaults."""
        names = self.dock.segmenter.class_names
        self.dock.legend.set_classes(names, label_colours(names, layer))

    @guarded
    def export_model(self, *_) -> None:
        """Write the active model as a bioimage.io package to 'export as' (asks where when it is empty), with the
        current image (its current slice) as the test input when one is open."""
        dock = self.dock
        path = str(dock.export_file.value or "")
        if path in ("", ".") and not (path := QFileDialog.getSaveFileName(dock, "Export", "model.zip", "*.zip")[0]):
            return
        image = dock.image_layer.value
        data = None if image is None else np.asarray(image.data[dock.predict_tab.region(image, always=True)])
        authors = [a.strip() for a in dock.authors.value.split(",") if a.strip()] or None
        written = self.model().export_bioimageio(path, data, authors=authors, license=dock.licence.value.strip())
        show_info(f"exported {written}")

    @guarded
    def load_model(self, *_) -> None:
        """Load the checkpoint chosen in 'load' (refuses anything that is not a napari-segnet checkpoint)."""
        self.set_model(Segmenter.load(self.dock.load_file.value))

    @guarded
    def save_model(self, *_) -> None:
        """Save the active model to 'save as' (atomically)."""
        path = self.model().save(self.dock.save_file.value)
        show_info(f"saved {path}")

    def save_to_project(self) -> None:
        """Save the active model to the session's folder; a failed save is said, the model stays in memory."""
        try:
            self.dock.session.save_model()
        except OSError as e:
            notify(e)

    @guarded
    def rollback(self, *_) -> None:
        """Make the version chosen in 'version' the active one (older or newer: any version made or loaded here),
        and predict the image again with it."""
        if self.dock.versions.value is None:
            raise ValueError("there is no other version yet")
        self.activate(int(self.dock.versions.value))

    @guarded
    def activate(self, version: int) -> None:
        """Make ``version`` active ('Use this version', 'Use it anyway'), save that choice, predict again with it."""
        dock = self.dock
        self.model().rollback(version)
        self.refresh_versions()
        self.save_to_project()
        show_info(f"version {version} is active")
        if dock.image_layer.value is not None and prediction_name(dock.image_layer.value) in dock.viewer.layers:
            dock.predict()

    def refresh_versions(self) -> None:
        """The version list (every version this session holds of the active model, the active one chosen) and the
        model list, whose entries name each model's active version."""
        dock, session = self.dock, self.dock.session
        seg, versions = dock.segmenter, dock.versions
        with versions.changed.blocked():
            versions.choices = [(version_label(seg, v), v) for v in seg.available_versions]
            versions.value = seg.active_version
        with dock.models.changed.blocked():
            dock.models.choices = [(session.model_label(m), m) for m in session.models]
            dock.models.value = seg


def describe_model(seg: Segmenter) -> str:
    """The model in plain words, for the first message a person reads."""
    first, classes = seg.versions[0].details, ", ".join(seg.class_names)
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
