"""The Evaluate tab: score the prediction against a ground-truth layer (FCN pixel metrics, object metrics)."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QTableWidgetItem

from ..numerics.instances import label_instances
from ..numerics.metrics import object_score_rows, object_scores, pixel_score_rows, segmentation_scores
from .layers import PAINTED, prediction_name
from .review import reviewed_mask
from .runner import guarded


class EvaluateTab:
    """The evaluate section of a :class:`~napari_segnet._widgets.dock.SegNetWidget` (``dock``); the last scores
    shown are ``dock.scores`` and ``dock.object_scores``."""

    def __init__(self, dock):
        self.dock = dock

    @guarded
    def evaluate(self, *_) -> None:
        """Score the prediction layer against the chosen ground-truth layer in the table: FCN metrics, then
        object metrics (precision, recall, F1, AP, matched IoU at IoU 0.5 and 0.75)."""
        dock, layers = self.dock, self.dock.viewer.layers
        image, truth = dock.current_image(), dock.truth_layer.value
        name = prediction_name(image)
        if truth is None or name not in layers:
            raise ValueError("predict first, and pick a ground-truth Labels layer")
        if truth.name == name:
            raise ValueError("pick a ground-truth layer other than the prediction itself")
        pred = np.asarray(layers[name].data)
        target = np.asarray(truth.data)
        if pred.shape != target.shape:
            raise ValueError(f"the ground truth has shape {target.shape}, the prediction {pred.shape}")
        n = max(dock.model().num_classes, int(target.max()) + 1)
        # object metrics: the prediction's instances against the truth's objects (its instance ids, or the
        # components of its classes: object_scores tells them apart)
        objects = object_scores(label_instances(pred), target, (0.5, 0.75))
        painted = layers[name].metadata.get(PAINTED)
        theirs = reviewed_mask(dock.viewer, image, pred.shape)
        if painted is not None and painted.shape == pred.shape:
            theirs |= painted
        if theirs.all():
            raise ValueError("every pixel of the prediction was painted or lies in a reviewed region: those are your "
                             "labels, not the model's prediction; remove reviewed boxes and predict again to score "
                             "the model there")
        # pixel scores leave out the person's pixels (painted, or accepted in a reviewed region): they are the
        # person's labels, which re-prediction keeps, not the model's
        model = ~theirs
        self.show_scores(segmentation_scores(pred[model], target[model], n), objects)
        dock.eval_note.value = (f"pixel scores on the {int(model.sum())} pixels the model predicted "
                                f"({int(theirs.sum())} painted or in reviewed regions left out); object scores on "
                                f"the whole image")

    def show_scores(self, scores: dict, objects: list[dict] | None = None) -> None:
        """Fill the metrics table with ``scores`` (as :func:`segmentation_scores` returns them), then the object
        metrics ``objects`` (as :func:`object_scores` returns them)."""
        dock = self.dock
        rows = pixel_score_rows(scores, dock.model().class_names) + object_score_rows(objects or [])
        dock.table.setRowCount(len(rows))
        for r, (k, v) in enumerate(rows):
            dock.table.setItem(r, 0, QTableWidgetItem(k))
            text = str(v) if isinstance(v, (int, np.integer)) else "—" if np.isnan(v) else f"{v:.4f}"  # counts
            dock.table.setItem(r, 1, QTableWidgetItem(text))
        dock.table.resizeColumnToContents(0)
        dock.scores, dock.object_scores = scores, objects
