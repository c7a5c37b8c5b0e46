"""The dock's tabs: which sections (see :mod:`.sections`) each holds, laid out as scrollable pages."""

from __future__ import annotations

from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QTabWidget, QVBoxLayout, QWidget

from . import sections

#: The dock's tabs: (title, section builders); each builder is one section of :mod:`.sections`.
PAGES = (
    ("Model", (sections.model_section, sections.export_section)),
    ("Predict", (sections.image_section, sections.predict_section)),  # image and predict
    ("Fine-tune", (sections.finetune_section,)),
    ("Evaluate", (sections.evaluate_section,)),
    ("Project", (sections.project_section,)),
)


def adopt(owner, section):
    """Make the widgets of a section attributes of ``owner`` (the dock), each one declared in ``owner``'s class
    (an annotation: readers and tools see every widget); the section's ``box`` stays its own. Returns the section;
    ``TypeError`` for a widget the class does not declare."""
    declared = type(owner).__annotations__
    for name, widget in vars(section).items():
        if name == "box":
            continue
        if name not in declared:
            raise TypeError(f"{type(owner).__name__} does not declare the section widget {name!r}")
        setattr(owner, name, widget)
    return section


class Page(QScrollArea):
    """A tab's page: scrolls vertically if it must, never horizontally (the dock takes the width it needs, as
    measured once napari's style sheet has sized its widgets)."""

    def __init__(self, content: QWidget):
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setWidget(content)

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        width = self.widget().minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width()
        return QSize(max(hint.width(), width), hint.height())


def build_tabs(owner, loss_plot: QWidget) -> QTabWidget:
    """The tabs of :data:`PAGES`, their sections' widgets made attributes of ``owner``; the loss plot goes under
    the fine-tune section, the metrics table under the evaluate section (taking the height left)."""
    tabs = QTabWidget()
    tabs.tabBar().setUsesScrollButtons(False)  # every tab title in sight: the dock takes the width they need
    for title, builders in PAGES:
        page = QWidget()
        page.setLayout(QVBoxLayout())
        stretch = True
        for section in (adopt(owner, build()) for build in builders):
            page.layout().addWidget(section.box.native)
            if hasattr(section, "train_button"):
                page.layout().addWidget(loss_plot)
            if hasattr(section, "table"):
                page.layout().addWidget(section.table, 1)
                stretch = False
        if stretch:
            page.layout().addStretch()
        tabs.addTab(Page(page), title)
    return tabs


def add_to_page(tabs: QTabWidget, title: str, widget: QWidget) -> None:
    """Put ``widget`` at the end of the sections of tab ``title`` (above the page's closing stretch)."""
    index = [tabs.tabText(i) for i in range(tabs.count())].index(title)
    layout = tabs.widget(index).widget().layout()
    last = layout.count() - 1
    layout.insertWidget(last if layout.itemAt(last).spacerItem() is not None else last + 1, widget)
