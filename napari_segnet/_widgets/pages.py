"""The dock's tabs: which sections (see :mod:`.sections`) each holds, laid out as scrollable pages."""

from __future__ import annotations

from qtpy.QtWidgets import QFrame, QScrollArea, QTabWidget, QVBoxLayout, QWidget

from . import sections

#: The dock's tabs: (title, section builders); each builder is one section of :mod:`.sections`.
PAGES = (
    ("Model", (sections.model_section, sections.export_section)),
    ("Image && predict", (sections.image_section, sections.predict_section)),
    ("Fine-tune", (sections.finetune_section,)),
    ("Evaluate", (sections.evaluate_section,)),
    ("Project", (sections.project_section,)),
)


def adopt(owner, section):
    """Make the widgets of a section attributes of ``owner`` (the dock); returns the section."""
    for name, widget in vars(section).items():
        setattr(owner, name, widget)
    return section


def build_tabs(owner, loss_plot: QWidget) -> QTabWidget:
    """The tabs of :data:`PAGES`, their sections' widgets made attributes of ``owner``; the loss plot goes under
    the fine-tune section, the metrics table under the evaluate section."""
    tabs = QTabWidget()
    for title, builders in PAGES:
        page = QWidget()
        page.setLayout(QVBoxLayout())
        for section in (adopt(owner, build()) for build in builders):
            page.layout().addWidget(section.box.native)
            if hasattr(section, "train_button"):
                page.layout().addWidget(loss_plot)
            if hasattr(section, "table"):
                page.layout().addWidget(section.table)
        page.layout().addStretch()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setWidget(page)
        tabs.addTab(scroll, title)
    return tabs
