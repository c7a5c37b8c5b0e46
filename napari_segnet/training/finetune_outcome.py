"""The end of a fine-tune: the run recorded as a new version, the guard's decision, its scores and the message."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..io.metadata import Version
from ..progress import Outcome
from . import ddp
from .guard import accepts, verdict
from .loop import TrainResult
from .settings import TrainSettings


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


def record_run(model, steps: Iterator, config: TrainSettings, guard: str, judge: Callable[[], dict | None],
               accept_worse: bool, run: dict, details: dict) -> Iterator:
    """Run ``steps`` (a fine-tune of ``model``, a :class:`~napari_segnet.segmenter.Segmenter`), passing its
    progress on; record the new version (``run``: its ``images`` and ``reviewed_pixels``; ``details``: the rest);
    make it active if ``judge()`` (the guard set's scores of the active model, None without a guard set) says it
    is not worse than its parent (or ``accept_worse``); last, yield its :class:`FinetuneFinished`."""
    parent = model.active_version
    before = judge()
    result: TrainResult | None = None
    for update in steps:
        if isinstance(update, TrainResult):
            result = update
        else:
            yield update
    version = model.metadata.next_version()
    config = replace(config, steps=result.steps)  # what ran: ``auto_max_seconds`` may have shortened the run
    model.metadata = model.metadata.with_version(Version(
        version, parent, settings=asdict(config), final_loss=result.final_loss, seconds=round(result.seconds, 2),
        details={"guard": guard, **ddp.world_record(), **details}, **run))
    model.add_weights(version, result.state_dict)
    model.rollback(version)
    after = judge()
    if after is not None:
        model.annotate(version, parent_scores=plain_scores(before))
        model.metadata = model.metadata.with_changes(version, scores=plain_scores(after))
    accepted = accept_worse or after is None or accepts(before, after)
    if not accepted:
        model.rollback(parent)
    message = verdict(version, parent, accepted, before, after, guard) + forest_note(details.get("distillation"))
    yield FinetuneFinished(version, accepted, before, after, message, guard)
