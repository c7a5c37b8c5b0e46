"""The class legend: a colour swatch and the class name for every class the model predicts."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QGridLayout, QLabel, QWidget


def label_colours(names: list[str], layer=None) -> np.ndarray:
    """RGBA floats (n, 4) of label values 0…n−1 in ``layer``'s colormap, or in the colours a prediction layer
    gets for these class names (:func:`~napari_segnet._widgets.layers.colour_classes`)."""
    n = len(names)
    if layer is None:
        from napari.layers import Labels

        from .layers import colour_classes

        layer = Labels(np.zeros((1, 1), np.uint8))
        colour_classes(layer, names)
    return np.asarray(layer.colormap.map(np.arange(n)), float).reshape(n, 4)


class ClassLegend(QWidget):
    """Colour → class name, two columns; a transparent label (class 0 when it is background) shows as such."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setLayout(QGridLayout())
        self.layout().setContentsMargins(4, 0, 4, 0)
        self.layout().setVerticalSpacing(2)
        self.names: list[str] = []

    def set_classes(self, names: list[str], colours: np.ndarray) -> None:
        """Show ``names`` (one per class) with ``colours`` (RGBA floats (len(names), 4))."""
        grid = self.layout()
        while grid.count():
            old = grid.takeAt(0).widget()
            old.hide()  # at once: deleteLater waits for the event loop, and the old entry would show under the new
            old.deleteLater()
        self.names = list(names)
        for i, (name, rgba) in enumerate(zip(names, colours)):
            swatch = QLabel()
            swatch.setFixedSize(14, 14)
            r, g, b, a = (int(round(255 * c)) for c in rgba)
            fill = "transparent" if a == 0 else f"rgb({r},{g},{b})"
            swatch.setStyleSheet(f"background-color: {fill}; border: 1px solid gray;")
            swatch.setToolTip(f"label value {i}")
            text = QLabel(f"{i}  {name}")
            row, col = divmod(i, 2)
            grid.addWidget(swatch, row, 2 * col)
            grid.addWidget(text, row, 2 * col + 1)
