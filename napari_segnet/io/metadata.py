"""Typed model metadata: architecture, classes, normalisation and version history, immutable."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from ..numerics.normalization import Normalization

#: Names (lower case, without spaces, "-" or "_") that mark class 0 as background: napari draws label 0
#: transparent, which suits background but hides a real first class (e.g. "brick" of brick / grass / gravel).
BACKGROUND_NAMES = frozenset({"background", "bg", "back", "none", "nothing", "empty", "void", "other", "rest",
                              "unlabeled", "unlabelled", "unknown", "ignore", "0"})


def is_background_name(name: str) -> bool:
    """Whether a class called ``name`` is background (:data:`BACKGROUND_NAMES`, case, spaces, "-" and "_"
    ignored; also "background …", e.g. "background tissue")."""
    key = "".join(c for c in name.lower() if c not in " -_")
    return key in BACKGROUND_NAMES or key.startswith("background")


def now() -> str:
    """The current UTC time, ISO 8601 to the second (version timestamps)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Version:
    """One model version: where it came from and how it was made.

    ``settings``: the fine-tune settings that made it; ``scores``: its scores on the guard set (validation
    images, or the reviewed pixels it was trained on); ``details``: anything else (e.g. the default model's
    training card), JSON-friendly.
    """

    version: int
    parent: int | None = None
    created: str = field(default_factory=now)
    note: str = ""
    settings: dict | None = None
    images: int | None = None
    reviewed_pixels: int | None = None
    final_loss: float | None = None
    seconds: float | None = None
    scores: dict | None = None
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ModelMetadata:
    """Everything besides the weights that a model needs to be used on real images and to be rebuilt.

    Immutable: :class:`~napari_segnet.segmenter.Segmenter` replaces it when versions change; only
    :mod:`napari_segnet.io.checkpoint` turns it into JSON and back. ``recommendation``: how the model should be
    fine-tuned, ``{"name": …, "settings": {…}}`` (``TrainRecommendation.to_dict``); empty for a model that records
    none, which recommends the defaults (:mod:`napari_segnet.training.recommend`).
    """

    architecture: str
    in_channels: int
    num_classes: int
    class_names: tuple[str, ...]
    options: dict = field(default_factory=dict)
    normalization: Normalization = field(default_factory=Normalization)
    versions: tuple[Version, ...] = field(default_factory=lambda: (Version(0, note="created"),))
    active_version: int = 0
    recommendation: dict = field(default_factory=dict)

    def __post_init__(self):
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{self.num_classes} classes need {self.num_classes} class names, got "
                             f"{len(self.class_names)}: {list(self.class_names)}")
        if self.active_version not in self.version_ids:
            raise ValueError(f"active version {self.active_version} is not in the history {self.version_ids}")

    @property
    def version_ids(self) -> list[int]:
        return [v.version for v in self.versions]

    def version(self, number: int) -> Version:
        """The record of version ``number`` (``ValueError`` if it is not in the history)."""
        for v in self.versions:
            if v.version == number:
                return v
        raise ValueError(f"version {number} is not in this model's history {self.version_ids}")

    def next_version(self) -> int:
        return max(self.version_ids) + 1

    def with_version(self, record: Version) -> ModelMetadata:
        """A copy with ``record`` appended to the history."""
        return replace(self, versions=(*self.versions, record))

    def with_changes(self, number: int, **changes) -> ModelMetadata:
        """A copy whose record of version ``number`` has ``changes`` (fields of :class:`Version`)."""
        self.version(number)
        return replace(self, versions=tuple(replace(v, **changes) if v.version == number else v
                                            for v in self.versions))

    def activate(self, number: int) -> ModelMetadata:
        """A copy whose active version is ``number``."""
        self.version(number)
        return replace(self, active_version=number)
