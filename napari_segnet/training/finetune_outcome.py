"""The outcome of a fine-tune: the new version, whether the guard accepted it, its scores and the message."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..progress import Outcome


@dataclass(frozen=True)
class FinetuneFinished(Outcome):
    """The outcome of a completed fine-tune: the new version, whether it became active, and why.

    ``guard`` names what the before/after scores were measured on: ``"validation"`` (the images given as
    ``validation``), ``"held-out reviewed pixels"`` (:mod:`napari_segnet.training.guard`) or ``"none"`` (too few
    reviewed pixels to hold any out: accepted, scores None).
    """

    version: int
    accepted: bool
    scores_before: dict | None
    scores_after: dict | None
    message: str
    guard: str = "held-out reviewed pixels"


def forest_note(record: dict | None) -> str:
    """What the message adds about the pixel forest (``details["distillation"]`` of the version), "" without
    one."""
    if not record:
        return ""
    if "why" in record:
        return f"; no pixel forest: {record['why']}"
    if np.isnan(record["forest_cv_mean_iu"]):
        return "; too few reviewed pixels to score the pixel forest, so it learnt from the reviewed pixels only"
    scores = f"(mean IU on the reviewed pixels: forest {record['forest_cv_mean_iu']:.3f}, network " \
             f"{record['network_mean_iu']:.3f} before this run)"
    if record.get("distilled"):
        return f"; it also learnt the pixel forest's labels on unreviewed pixels {scores}"
    return f"; the network is ahead of the pixel forest, so it learnt from the reviewed pixels only {scores}"


def plain_scores(scores: dict) -> dict:
    """Scores as JSON-friendly floats and lists (NaN → None)."""
    def conv(v):
        arr = np.asarray(v, dtype=float)
        return [None if np.isnan(x) else float(x) for x in arr.ravel()] if arr.ndim else (
            None if np.isnan(arr) else float(arr))
    return {k: conv(v) for k, v in scores.items() if k != "confusion"}
