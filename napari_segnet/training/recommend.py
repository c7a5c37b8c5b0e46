"""How a model should be fine-tuned: the settings it recommends, decided when it is made and kept in its metadata.

The decision. A model made by ``Segmenter.create`` (a new head for the user's own classes) recommends
:data:`NEW_MODEL`; a model that was trained already — the shipped default, and any checkpoint that records no
recommendation — recommends :data:`TRAINED_MODEL`, the :class:`TrainSettings` defaults (measured by fine-tuning
the shipped default, docs/benchmarks.md "Human in the loop from the shipped default"). A model keeps its
recommendation through its versions and through save/load (the new-model settings were measured over several
rounds of the loop). Every frontend resolves a run the same way, :meth:`TrainRecommendation.with_given`: the
recommendation, with each setting given explicitly replacing its own — ``Segmenter.finetune`` (so live mode,
``napari-segnet train`` and torchrun too), and the dock, whose Fine-tune fields show the active model's
recommendation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .settings import TrainSettings

#: The forest's loss weight when it is switched on for a model whose recommendation has none (the dock's box).
DISTILL_WEIGHT = 0.25


@dataclass(frozen=True)
class TrainRecommendation:
    """The fine-tune settings a model recommends, with a name that says where they come from."""

    name: str
    settings: TrainSettings

    def with_given(self, **given) -> TrainSettings:
        """The recommended settings with those in ``given`` (names of :class:`TrainSettings`) replacing theirs one by
        one; ``ValueError`` naming the valid ones for an unknown name (:meth:`TrainSettings.of`: steps given as a
        number run in full)."""
        return TrainSettings.of(**{**asdict(self.settings), **given})

    def to_dict(self) -> dict:
        """JSON-friendly, for ``ModelMetadata.recommendation``: ``{"name": …, "settings": {every setting}}``."""
        return {"name": self.name, "settings": asdict(self.settings)}

    @classmethod
    def from_dict(cls, record: dict | None) -> TrainRecommendation:
        """The recommendation :meth:`to_dict` wrote; :data:`TRAINED_MODEL` for an empty record (a checkpoint
        from before recommendations, e.g. the shipped default). Settings this version does not know are left
        out, and those the record lacks take the defaults; ``ValueError`` for values that are not valid."""
        if not record:
            return TRAINED_MODEL
        known = {f.name for f in fields(TrainSettings)}
        settings = {k: v for k, v in dict(record.get("settings") or {}).items() if k in known}
        return cls(str(record.get("name", "recorded")), TrainSettings(**settings))


#: A new model of the user's own classes (picked by measurement with ``benchmarks/hitl.py --data tissue|objects``,
#: docs/benchmarks.md "New models for your own classes"): class-balanced CE (region classes; the border term hurt
#: there), 64² patches in batches of 4, lr 1e-3, the pixel forest's labels on unreviewed pixels at a quarter of the
#: weight while the forest is ahead, and "auto" steps (100 to 400: a new model needs more than fine-tuning the
#: default) of 100 per reviewed 64² tile — 50 in a round that learns the forest's labels too, whose errors longer
#: runs learn as well (tissue: 0.909 instead of 0.924 after 3 rounds at 100). At most 15 s of training
#: (``auto_max_seconds``), so that a round with the forest, the guard and the re-prediction stays ≤ 20 s on 2
#: cores: 400 steps took 19 s on an AVX2-only EPYC (47 ms a step), 14 s on an AVX-512 one. Each version may keep
#: the round's pixel forest blended into its predictions (``forest_blend``, training/blend.py): on the real
#: 3-class benchmark the network alone fell behind the forest after 5 rounds (README, "New models").
NEW_MODEL = TrainRecommendation("new model", TrainSettings(
    loss="balanced_ce", lr=1e-3, batch_size=4, patch_size=64, distill=DISTILL_WEIGHT, forest_blend=True,
    auto_per_patch=100.0,
    auto_per_patch_distilled=50.0, auto_min_steps=100, auto_max_seconds=15.0))

#: A model trained already (the shipped default, a loaded checkpoint without a recommendation): the defaults.
TRAINED_MODEL = TrainRecommendation("trained model", TrainSettings())
