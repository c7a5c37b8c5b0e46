"""The SegNet dock: model → image → predict → correct → fine-tune → evaluate; every action calls the core.

The dock composes one small controller per tab (:mod:`.model_tab`, :mod:`.predict_tab`, :mod:`.finetune_tab`,
:mod:`.evaluate_tab`, :mod:`.project_tab`, and :mod:`.live` for Live mode); the widgets of every section are
attributes of the dock, each declared in the class, and its methods (``predict``, ``finetune``, …) are those of
the tab that owns them.
"""

from __future__ import annotations

import weakref

from magicgui.widgets import CheckBox, ComboBox, FileEdit, FloatSpinBox, Label, LineEdit, PushButton, SpinBox
from qtpy.QtWidgets import QTableWidget, QVBoxLayout, QWidget

from ..inference.devices import describe, pick_device
from ..session import Session
from ..training.loop import warm_up_in_background
from . import sections
from .evaluate_tab import EvaluateTab
from .finetune_tab import FinetuneTab
from .legend import ClassLegend
from .live import LiveMode
from .loss_plot import LossPlot
from .model_tab import ModelTab
from .pages import add_to_page, adopt, build_tabs
from .predict_tab import PredictTab
from .project_tab import ProjectTab
from .runner import Job

#: The session of each viewer (:class:`napari_segnet.session.Session`): it outlives the dock, so closing and
#: reopening the dock (or opening it again from the Plugins menu) brings the model, its versions and the
#: corrections back.
SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_for(viewer) -> Session:
    """The viewer's session, created the first time."""
    if viewer not in SESSIONS:
        SESSIONS[viewer] = Session()
    return SESSIONS[viewer]


def _of(tab: str, name: str):
    """A method of the dock that is method ``name`` of its controller ``tab``."""
    def method(self, *args, **kwargs):
        return getattr(getattr(self, tab), name)(*args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"See :meth:`{tab}.{name}`."
    return method


class SegNetWidget(QWidget):
    """The dock: it shows and drives the viewer's :class:`~napari_segnet.session.Session` (the active model, earlier
    models, the training set — image layer name → (image, corrected labels, reviewed mask), 2-D or stacks — and the
    project folder). The widgets of every section are its attributes, declared below (:func:`.pages.adopt` refuses
    a section widget that is not)."""

    # the widgets of the sections (sections.py), by tab; each section's ``box`` stays the section's own
    legend: ClassLegend
    project_dir: FileEdit
    architecture: ComboBox
    options: LineEdit
    class_names: LineEdit
    start: ComboBox
    new_button: PushButton
    models: ComboBox
    load_file: FileEdit
    save_file: FileEdit
    save_button: PushButton
    versions: ComboBox
    rollback_button: PushButton
    device_label: Label
    export_file: FileEdit
    authors: LineEdit
    licence: LineEdit
    export_button: PushButton
    image_layer: ComboBox
    open_file: FileEdit
    channel_axis: ComboBox
    slice_only: CheckBox
    uncertainty: CheckBox
    tta: CheckBox
    views: CheckBox
    instances: CheckBox
    object_size: FloatSpinBox
    size_layer: ComboBox
    estimate_button: PushButton
    predict_button: PushButton
    separate: CheckBox
    forest: CheckBox
    blend: CheckBox
    loss: ComboBox
    w0: FloatSpinBox
    sigma: FloatSpinBox
    steps: SpinBox
    lr: FloatSpinBox
    review: ComboBox
    mark_view_button: PushButton
    unmark_button: PushButton
    weights_button: PushButton
    train_button: PushButton
    stop_button: PushButton
    guard_status: Label
    use_anyway_button: PushButton
    truth_layer: ComboBox
    eval_button: PushButton
    eval_note: Label
    table: QTableWidget
    live_toggle: CheckBox
    burst_steps: SpinBox
    live_lr: FloatSpinBox
    refresh_s: FloatSpinBox
    next_button: PushButton
    live_status: Label

    segmenter = property(lambda self: self.session.segmenter)
    training_set = property(lambda self: self.session.training_set)
    project = property(lambda self: self.session.project)
    job = property(lambda self: self.session.job)

    # the actions, each that of the tab that owns it
    # the Model tab
    model = _of("model_tab", "model")
    use_model = _of("model_tab", "use_model")
    set_model = _of("model_tab", "set_model")
    parse_options = _of("model_tab", "parse_options")
    update_legend = _of("model_tab", "update_legend")
    load_model = _of("model_tab", "load_model")
    save_model = _of("model_tab", "save_model")
    export_model = _of("model_tab", "export_model")
    switch_model = _of("model_tab", "switch_model")
    rollback = _of("model_tab", "rollback")
    activate = _of("model_tab", "activate")
    # the Predict tab
    open_image = _of("predict_tab", "open_image")
    current_image = _of("predict_tab", "current_image")
    predict = _of("predict_tab", "predict")
    to_grayscale = _of("predict_tab", "to_grayscale")
    diameter = _of("predict_tab", "diameter")
    estimate_size = _of("predict_tab", "estimate_size")
    # the Fine-tune tab
    corrections = _of("finetune_tab", "corrections")
    settings = _of("finetune_tab", "settings")
    finetune = _of("finetune_tab", "finetune")
    stop = _of("finetune_tab", "stop")
    mark_view = _of("finetune_tab", "mark_view")
    unmark_last = _of("finetune_tab", "unmark_last")
    show_weight_map = _of("finetune_tab", "show_weight_map")
    use_anyway = _of("finetune_tab", "use_anyway")
    # the Evaluate tab
    evaluate = _of("evaluate_tab", "evaluate")
    show_scores = _of("evaluate_tab", "show_scores")
    # the Project tab
    open_project = _of("project_tab", "open_project")

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.session.dock = self  # a job started by an earlier dock reports here now
        self.model_tab, self.predict_tab = ModelTab(self), PredictTab(self)
        self.finetune_tab, self.evaluate_tab, self.project_tab = FinetuneTab(self), EvaluateTab(self), ProjectTab(self)
        self.scores = self.object_scores = None  # the last evaluation (EvaluateTab.show_scores)
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
            self.model_tab.show_model()
        if self.job is not None and not self.job.done:
            self.train_button.enabled, self.stop_button.enabled = False, True

    def _connect(self) -> None:
        """Each button and field calls its action."""
        model, predict, tune = self.model_tab, self.predict_tab, self.finetune_tab
        for widget, action in ((self.project_dir, self.project_tab.open_project),
                               (self.architecture, model.show_options), (self.separate, tune.separate_objects),
                               (self.new_button, model.use_model), (self.load_file, model.load_model),
                               (self.save_button, model.save_model), (self.rollback_button, model.rollback),
                               (self.open_file, predict.open_image), (self.predict_button, predict.predict),
                               (self.weights_button, tune.show_weight_map), (self.train_button, tune.finetune),
                               (self.stop_button, tune.stop), (self.eval_button, self.evaluate_tab.evaluate),
                               (self.estimate_button, predict.estimate_size),
                               (self.export_button, model.export_model), (self.models, model.switch_model),
                               (self.mark_view_button, tune.mark_view), (self.unmark_button, tune.unmark_last),
                               (self.use_anyway_button, tune.use_anyway)):
            widget.changed.connect(action)

    def reset_choices(self, event=None) -> None:
        """Refresh the layer pickers (napari calls this when layers are added or removed)."""
        self.image_layer.reset_choices()
        self.truth_layer.reset_choices()
        self.size_layer.reset_choices()

    def run_job(self, job: Job) -> None:
        """Start ``job`` as the session's one running job (``ValueError`` while another runs)."""
        if self.job is not None and not self.job.done:
            raise ValueError("wait for the running prediction or fine-tune to finish, or press Stop (Fine-tune tab)")
        self.session.job = job
        job.start()


__all__ = ["SegNetWidget"]
