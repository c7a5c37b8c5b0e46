"""The end of a fine-tune: the run recorded as a new version, the guard's decision, its scores and the message."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..io.metadata import Version
from ..progress import Outcome
from . import ddp
from .distillation import Distillation
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


def forest_note(record: Distillation | None) -> str:
    """What the message adds about the pixel forest (a version's ``details["distillation"]``, read with
    :meth:`Distillation.from_dict`), "" without one."""
    if record is None:
        return ""
    if record.why is not None:
        return f"; no pixel forest: {record.why}"
    if np.isnan(record.forest_cv_mean_iu):
        return "; too few reviewed pixels to score the pixel forest, so it learnt from the reviewed pixels only"
    scores = f"(mean IU on the reviewed pixels: forest {record.forest_cv_mean_iu:.3f}, network " \
             f"{record.network_mean_iu:.3f} before this run)"
    if record.distilled:
        return f"; it also learnt the pixel forest's guesses on unreviewed pixels {scores}"
    return f"; it did not learn the pixel forest's guesses: the network was ahead of it {scores}"


def plain_scores(scores: dict) -> dict:
    """Scores as JSON-friendly floats and lists (NaN → None)."""
    def conv(v):
        arr = np.asarray(v, dtype=float)
        return [None if np.isnan(x) else float(x) for x in arr.ravel()] if arr.ndim else (
            None if np.isnan(arr) else float(arr))
    return {k: conv(v) for k, v in scores.items() if k != "confusion"}


def record_run(model, steps: Iterator, config: TrainSettings, guard: str, judge: Callable[[], dict | None],
               accept_worse: bool, run: dict, details: dict, blend: Callable[[], tuple] | None = None) -> Iterator:
    """Run ``steps`` (a fine-tune of ``model``, a :class:`~napari_segnet.segmenter.Segmenter`), passing its
    progress on; record the new version (``run``: its ``images`` and ``reviewed_pixels``; ``details``: the rest);
    make it active if ``judge()`` (the guard set's scores of the active model, None without a guard set) says it
    is not worse than its parent (or ``accept_worse``); last, yield its :class:`FinetuneFinished`. ``blend()``:
    (forest, choice) for the new version, its network active (:mod:`~napari_segnet.training.blend`); None: the
    new version keeps its parent's forest, if any."""
    parent = model.active_version
    before = judge()
    result: TrainResult | None = None
    for update in steps:
        if isinstance(update, TrainResult):
            result = update
        else:
            yield update
    config = replace(config, steps=result.steps)  # what ran: ``auto_max_seconds`` may have shortened the run
    record = Version(model.metadata.next_version(), parent, settings=asdict(config), final_loss=result.final_loss,
                     seconds=round(result.seconds, 2), details={"guard": guard, **ddp.world_record(), **details},
                     **run)
    note = forest_note(Distillation.from_dict(details["distillation"]) if "distillation" in details else None)
    kept = {} if blend or model.forest is None else model.forest.to_tensors()  # the parent's forest, kept
    weights = {**result.state_dict, **kept}
    yield commit_version(model, record, weights, lambda: (before, judge()), guard, accept_worse, note, blend)


def commit_version(model, record: Version, weights: dict, judge: Callable[[], tuple[dict | None, dict | None]],
                   guard: str, accept_worse: bool = False, note: str = "", blend: Callable[[], tuple] | None = None
                   ) -> FinetuneFinished:
    """Commit a new version of ``model`` (a :class:`~napari_segnet.segmenter.Segmenter`) — the one way a fine-tune,
    a live session or the CLI adds one: add ``record`` (numbered ``model.metadata.next_version()``, its
    ``parent`` the version it was trained from) with ``weights`` (its state dict), make it active, then
    ``judge()`` → (the parent's scores, the new version's scores) on the guard set (``guard`` names it; None,
    None: no guard set, then "none"); store both scores in the record; keep it active unless the guard rejects it
    (:func:`~napari_segnet.training.guard.accepts`, overridden by ``accept_worse``), else make the parent active
    again. ``blend()``, called once the new version is active: (its pixel forest or None, the
    :class:`~napari_segnet.training.blend.BlendChoice` or None). Returns its :class:`FinetuneFinished`, whose
    message is the guard's verdict followed by ``note``."""
    number = record.version
    model.metadata = model.metadata.with_version(record)
    model.add_weights(number, weights)
    model.rollback(number)
    if blend is not None:
        model.forest, choice = blend()
        if choice is not None:
            model.annotate(number, forest_blend=choice.to_dict())
            note = choice.note() + note
    before, after = judge()
    if after is not None:
        model.annotate(number, parent_scores=plain_scores(before))
        model.metadata = model.metadata.with_changes(number, scores=plain_scores(after))
    guard = guard if after is not None else "none"
    accepted = accept_worse or before is None or after is None or accepts(before, after)
    if not accepted:
        model.rollback(record.parent)
    message = verdict(number, record.parent, accepted, before, after, guard) + note
    return FinetuneFinished(number, accepted, before, after, message, guard)
