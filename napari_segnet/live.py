"""The live fine-tuning session: strokes become reviewed pixels, short guarded bursts train on them, one version.

A :class:`LiveSession` works on a copy of the active model. The GUI thread records strokes with :meth:`paint`
(cheap, under a lock, never waits for training); a worker drives :meth:`LiveSession.steps`, which fine-tunes the
copy in short bursts on every reviewed pixel of the session (a stroke made during a burst joins the next one),
keeps a burst only if the reviewed-pixel guard of :meth:`Segmenter.finetune` accepts it, and re-predicts the
visible region first and whole planes when idle. :meth:`finish` turns the session into ONE new version of the
original model (parent: the version active when the session began, which stays available for rollback).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .inference.suggest import uncertainty
from .inference.views import check_views
from .io.metadata import Version
from .numerics.images import ImagePlanes
from .numerics.normalization import Normalization
from .numerics.pixel_features import MARGIN as FEATURE_MARGIN
from .segmenter import Segmenter
from .training.finetune_outcome import FinetuneFinished, commit_version, plain_scores
from .training.loop import TrainingAborted, TrainProgress
from .training.regions import tiles_touched
from .training.settings import TrainSettings

#: Pixels of context kept around the reviewed pixels (training crops) and the visible region (refreshes): at least
#: what a pixel forest's features read (a version may blend one in), so a refresh equals a whole-image prediction.
MARGIN = max(48, FEATURE_MARGIN)


@dataclass(frozen=True)
class LiveSettings:
    """A burst: ``burst_steps`` optimisation steps at ``lr`` (10 at 3e-4: the most bursts kept by the guard and a
    median stroke → refresh latency under 5 s on 512² in benchmarks/live.py, see README); whole planes are
    re-predicted at most every ``refresh_s`` seconds; ``idle_bursts`` more bursts run after the last stroke.
    ``loss`` None: the model's recommended one (:attr:`Segmenter.recommended_settings`; :class:`LiveSession` fills
    it in); its other settings too, but never the forest (a burst is too short to train one: its version keeps the
    forest of the version the session started from, if any)."""

    burst_steps: int = 10
    lr: float = 3e-4
    refresh_s: float = 2.0
    idle_bursts: int = 2
    batch_size: int = 4
    patch_size: int = 96
    loss: str | None = None

    def __post_init__(self):
        TrainSettings.of(steps=self.burst_steps, lr=self.lr, batch_size=self.batch_size, patch_size=self.patch_size,
                         **({} if self.loss is None else {"loss": self.loss}))  # the same checks as a fine-tune
        if not (self.refresh_s >= 0 and self.idle_bursts >= 0):
            raise ValueError(f"refresh_s and idle_bursts must be ≥ 0, got {self.refresh_s}, {self.idle_bursts}")

    def train_settings(self, seed: int) -> dict:
        """Keyword arguments of ``Segmenter.finetune`` for one burst."""
        return {"steps": self.burst_steps, "lr": self.lr, "batch_size": self.batch_size, "distill": 0.0,
                "forest_blend": False, "patch_size": self.patch_size, "seed": seed,
                **({} if self.loss is None else {"loss": self.loss})}


@dataclass(frozen=True)
class BurstDone:
    """A burst ended: whether the guard kept it, on how many strokes and reviewed pixels, and why."""

    number: int
    accepted: bool
    strokes: int
    reviewed_pixels: int
    seconds: float
    message: str
    scores_after: dict | None = field(default=None, repr=False)
    final_loss: float = float("nan")


@dataclass(frozen=True)
class Refreshed:
    """A new prediction of plane ``key`` at ``region`` (a (rows, cols) pair of slices): labels (h, w)."""

    key: tuple
    region: tuple[slice, slice]
    labels: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class Waiting:
    """Nothing to do until a new stroke arrives (the driver sleeps a little, then asks again)."""


@dataclass
class _Plane:
    normalised: np.ndarray  # (C, Y, X) float32, normalised with the whole image's parameters
    labels: np.ndarray      # (Y, X) the corrected labels as the user painted them
    reviewed: np.ndarray    # (Y, X) bool
    volume: np.ndarray | None = None  # views=3: the whole volume (Z, Y, X) normalised (shared by its planes)
    axis: int = 0           # the axis of the volume the plane is cut along, and its index there
    index: int = 0


class LiveSession:
    """Live fine-tuning of a copy of ``segmenter``; see the module docstring. Planes are named by any hashable
    ``key`` (the dock uses (layer name, axis, plane index)). ``views=3``: planes of a single-channel (Z, Y, X)
    volume are refreshed from its three views (``Segmenter.predict(views=3, spacing=spacing)`` of the part of the
    volume around the region, :data:`MARGIN` voxels of context along every axis), as the dock predicted them."""

    def __init__(self, segmenter: Segmenter, settings: LiveSettings | None = None, views: int = 1, spacing=None):
        self.views, self.spacing = views, check_views(views, spacing)
        settings = settings or LiveSettings()
        if settings.loss is None:  # the model's recommendation, recorded with the version the session makes
            settings = replace(settings, loss=segmenter.recommended_settings.loss)
        self.segmenter, self.settings = segmenter, settings
        self.base_version = segmenter.active_version
        # the copy takes inputs normalised with each whole image's parameters (planes are cropped for speed)
        self.model = Segmenter(copy.deepcopy(segmenter.net), replace(
            segmenter.metadata, normalization=Normalization("none")), segmenter.forest)  # bursts keep its forest
        self.base = Segmenter(copy.deepcopy(segmenter.net), self.model.metadata, segmenter.forest)  # judges at end
        #: The session's outcome once :meth:`finish` made a version: kept active or not, both guard scores.
        self.outcome: FinetuneFinished | None = None
        self.planes: dict = {}
        self._volumes: dict[int, tuple] = {}  # id(image) → (image, its normalised volume) for views=3
        self.bursts: list[BurstDone] = []
        self.strokes = 0
        self.view: tuple | None = None  # (key, (rows, cols)) of the visible region, set by the GUI
        self.closed = False
        self.version: int | None = None
        self._trained_strokes, self._idle, self._stale, self._last_full = 0, 0, set(), 0.0
        self._data_lock, self._model_lock = threading.Lock(), threading.RLock()

    # ---- strokes (GUI thread) -----------------------------------------------------------------------------
    def add_plane(self, key, image, labels: np.ndarray, reviewed: np.ndarray | None = None, plane: int = 0,
                  channel_axis: int | None = None, axis: int = 0) -> None:
        """Register plane ``plane`` of ``image`` (any layout ``Segmenter.predict`` takes) cut along ``axis`` (a
        stack's 0: (Y, X) planes, 1: (Z, X), 2: (Z, Y)) with its current labels (rows, cols) and reviewed mask
        (rows, cols) bool (None: nothing reviewed yet). Normalised once, here, as the whole image."""
        planes = ImagePlanes(image, self.segmenter.in_channels, channel_axis).along(axis)
        offset, scale = self.segmenter.normalization.parameters(planes)
        raw = planes.block(plane, slice(None), slice(None)).astype(np.float32)
        labels = np.array(labels, copy=True)
        if labels.shape != raw.shape[1:]:
            raise ValueError(f"labels of shape {labels.shape} do not match the plane's {raw.shape[1:]}")
        reviewed = np.zeros(labels.shape, bool) if reviewed is None else np.array(reviewed, bool)
        volume = None
        if self.views == 3 and planes.whole.plane_axis is not None and planes.channel_axis is None:
            if id(image) not in self._volumes:  # normalised once per volume (the image is kept: its id stays its)
                whole = Normalization.apply(np.asarray(image, np.float32)[:, None], offset, scale)[:, 0]
                self._volumes[id(image)] = (image, whole)
            volume = self._volumes[id(image)][1]
        with self._data_lock:
            self.planes[key] = _Plane(Normalization.apply(raw, offset, scale), labels, reviewed, volume, axis, plane)

    def paint(self, key, stroke: np.ndarray, labels: np.ndarray) -> None:
        """Record a stroke: ``stroke`` (Y, X) bool marks the pixels it changed, ``labels`` (Y, X) holds their
        new values. The grid tiles the stroke touches become reviewed (:mod:`napari_segnet.training.regions`): the
        person fixed what was wrong there and accepts the rest. Takes only a short lock: never waits for a burst."""
        if key not in self.planes:
            raise ValueError(f"no plane {key!r} in this live session; add it first")
        if self.closed:
            raise ValueError("this live session has ended")
        rows, cols = np.nonzero(stroke.any(axis=1))[0], np.nonzero(stroke.any(axis=0))[0]
        with self._data_lock:
            plane = self.planes[key]
            plane.labels[stroke] = np.asarray(labels)[stroke]
            if len(rows):
                for tile in tiles_touched((rows[0], rows[-1] + 1), (cols[0], cols[-1] + 1), stroke.shape):
                    plane.reviewed[tile.slices] = True
            self.strokes += 1

    @property
    def reviewed_pixels(self) -> int:
        return int(sum(p.reviewed.sum() for p in self.planes.values()))

    # ---- the worker's loop --------------------------------------------------------------------------------
    def steps(self) -> Iterator[TrainProgress | BurstDone | Refreshed | Waiting]:
        """The session's work, until :meth:`finish`: bursts (their progress, then :class:`BurstDone`), the
        visible region after each accepted burst, whole stale planes when idle, :class:`Waiting` otherwise."""
        while not self.closed:
            if self._wants_burst():
                accepted = yield from self._burst()
                if accepted and self.view is not None and self.view[0] in self.planes:
                    yield self.refresh(*self.view)
            elif self._stale and time.perf_counter() - self._last_full >= self.settings.refresh_s:
                key = self._stale.pop()
                self._last_full = time.perf_counter()
                yield self.refresh(key, (slice(None), slice(None)))
            else:
                yield Waiting()

    def _wants_burst(self) -> bool:
        if self.strokes == 0 or not any(p.reviewed.any() for p in self.planes.values()):
            return False
        return self.strokes > self._trained_strokes or self._idle < self.settings.idle_bursts

    def _snapshot(self) -> tuple[list, list, list, int]:
        """Every plane with reviewed pixels: (images, labels, masks, strokes so far). Whole planes: the fine-tune
        crops them to the reviewed regions itself, with the guard's squares anchored to the plane."""
        with self._data_lock:
            strokes = self.strokes
            planes = [(p.normalised, p.labels.copy(), p.reviewed.copy()) for p in self.planes.values()
                      if p.reviewed.any()]
        return (*([c[i] for c in planes] for i in range(3)), strokes)

    def _burst(self):
        """One burst on a snapshot; yields its progress and a :class:`BurstDone`; returns whether it was kept."""
        images, labels, masks, strokes = self._snapshot()
        self._idle = 0 if strokes > self._trained_strokes else self._idle + 1
        self._trained_strokes = strokes
        start, number = time.perf_counter(), len(self.bursts) + 1
        try:
            finished = yield from self._train(images, labels, masks, number)
        except TrainingAborted as e:
            finished = e
        if finished is None:  # the session ended mid-burst: the copy is as it was
            return False
        pixels = int(sum(m.sum() for m in masks))
        if isinstance(finished, TrainingAborted):
            done = BurstDone(number, False, strokes, pixels, time.perf_counter() - start, str(finished))
        else:
            done = BurstDone(number, finished.accepted, strokes, pixels, time.perf_counter() - start,
                             finished.message, finished.scores_after,
                             self.model.metadata.version(finished.version).final_loss)
        self.bursts.append(done)
        if done.accepted:
            self._stale = set(self.planes)
        yield done
        return done.accepted

    def _train(self, images, labels, masks, number):
        """Step the copy's fine-tune under the model lock (so :meth:`finish` never sees half a burst); stops
        between steps once the session ends. Returns the FinetuneFinished, or None if stopped."""
        gen = self.model.finetune(images, labels, masks, channel_axis=0, **self.settings.train_settings(number))
        try:
            while True:
                with self._model_lock:
                    if self.closed:
                        return None
                    item = next(gen, None)
                if item is None or isinstance(item, FinetuneFinished):
                    return item
                yield item
        finally:
            gen.close()

    def refresh(self, key, region: tuple[slice, slice]) -> Refreshed:
        """The copy's prediction of plane ``key`` at ``region`` (a (rows, cols) pair of slices, clipped to the
        plane), predicted with :data:`MARGIN` pixels of context around it."""
        plane = self.planes[key]
        h, w = plane.labels.shape
        rows, cols = (slice(*s.indices(n)[:2]) for s, n in zip(region, (h, w)))
        outer = (slice(max(rows.start - MARGIN, 0), min(rows.stop + MARGIN, h)),
                 slice(max(cols.start - MARGIN, 0), min(cols.stop + MARGIN, w)))
        inner = (slice(rows.start - outer[0].start, rows.stop - outer[0].start),
                 slice(cols.start - outer[1].start, cols.stop - outer[1].start))
        if plane.volume is not None:
            return Refreshed(key, (rows, cols), self._three_views(plane, outer)[inner])
        with self._model_lock:
            labels = self.model.predict(plane.normalised[(slice(None), *outer)], channel_axis=0)
        return Refreshed(key, (rows, cols), labels[inner])

    def _three_views(self, plane: _Plane, outer: tuple[slice, slice]) -> np.ndarray:
        """Labels (h, w) of ``plane`` at ``outer`` (rows, cols) from the three views of the part of its volume
        around it: ``outer`` across the plane, :data:`MARGIN` planes either side of it."""
        n = plane.volume.shape[plane.axis]
        across = slice(max(plane.index - MARGIN, 0), min(plane.index + MARGIN + 1, n))
        box = list(outer)
        box.insert(plane.axis, across)
        with self._model_lock:
            labels = self.model.predict(plane.volume[tuple(box)], views=3, spacing=self.spacing)
        return np.take(labels, plane.index - across.start, axis=plane.axis)

    def uncertainty(self, key) -> np.ndarray:
        """1 − max p (Y, X) of the copy on plane ``key`` (for Next while live)."""
        with self._model_lock:
            return uncertainty(self.model.predict_proba(self.planes[key].normalised, channel_axis=0))

    # ---- the end --------------------------------------------------------------------------------------------
    def finish(self) -> int | None:
        """End the session (a burst in flight is abandoned; the strokes stay in :attr:`planes`). If any burst
        was kept, the copy's weights become ONE new version of the original model, whose parent is the version
        active when the session began; it becomes active if the guard finds it not worse than that version on the
        held-out pixels of every region reviewed in the session (each burst was judged only against the one before:
        small losses within the tolerance could add up). Returns its number, or None when no burst was kept;
        :attr:`outcome` says whether it became active."""
        self.closed = True
        with self._model_lock:
            if self.version is not None or not any(b.accepted for b in self.bursts):
                return self.version
            self.version = self._add_version()
        return self.version

    def _judge(self) -> tuple[dict | None, dict | None]:
        """(scores of the base version, scores of the live copy) on the held-out pixels of the session's planes."""
        images, labels, masks, _ = self._snapshot()
        if not images:
            return None, None
        return (self.base.held_out_scores(images, labels, masks, channel_axis=0),
                self.model.held_out_scores(images, labels, masks, channel_axis=0))

    def _add_version(self) -> int:
        seg, kept = self.segmenter, [b for b in self.bursts if b.accepted]
        number = seg.metadata.next_version()
        record = Version(
            number, self.base_version, note=f"live session: {len(kept)} of {len(self.bursts)} bursts kept, "
                                            f"{self.strokes} strokes",
            settings=asdict(self.settings), images=len(self.planes), reviewed_pixels=self.reviewed_pixels,
            final_loss=kept[-1].final_loss, seconds=round(sum(b.seconds for b in self.bursts), 2),
            scores=plain_scores(kept[-1].scores_after) if kept[-1].scores_after else None,
            details={"guard": "held-out reviewed pixels", "live": {
                "bursts": len(self.bursts), "kept": len(kept), "strokes": self.strokes}})
        self.outcome = commit_version(seg, record, self.model.weights(), self._judge, "held-out reviewed pixels")
        return number
