"""A small live plot of the training loss, drawn with QPainter (no plotting library needed)."""

from __future__ import annotations

from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import QWidget


class LossPlot(QWidget):
    """Loss per step as a line, autoscaled; ``add`` a value per step, ``clear`` for a new run."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.values: list[float] = []
        self.setMinimumHeight(90)
        self.setToolTip("training loss per step")

    def clear(self) -> None:
        self.values = []
        self.update()

    def add(self, value: float) -> None:
        self.values.append(float(value))
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        w, h, m = self.width(), self.height(), 6
        painter.fillRect(self.rect(), QColor(38, 41, 48))
        painter.setPen(QColor(160, 160, 160))
        if not self.values:
            painter.drawText(self.rect(), Qt.AlignCenter, "loss appears here during fine-tuning")
            return
        lo, hi = min(self.values), max(self.values)
        span = (hi - lo) or 1.0
        n = max(len(self.values) - 1, 1)
        points = [QPointF(m + (w - 2 * m) * i / n, h - m - (h - 2 * m) * (v - lo) / span)
                  for i, v in enumerate(self.values)]
        painter.setPen(QPen(QColor(90, 170, 255), 1.5))
        painter.drawPolyline(points)
        painter.setPen(QColor(200, 200, 200))
        painter.drawText(m + 2, 14, f"loss {self.values[-1]:.3f}  (min {lo:.3f}, step {len(self.values)})")
