"""The versions of a model: the active one's weights in the network (with its pixel forest, if it keeps one), every
other version made or loaded in this session on the CPU, ready for :meth:`VersionedWeights.rollback`."""

from __future__ import annotations

import torch

from .inference.forest_blend import split_state
from .io.metadata import Version
from .models.base import cpu_state


class VersionedWeights:
    """The version half of :class:`~napari_segnet.segmenter.Segmenter` (a base class): it uses the segmenter's
    ``net``, ``metadata`` (frozen: each change replaces it), ``forest`` and ``_states`` (inactive versions' weights)."""

    @property
    def active_version(self) -> int:
        return self.metadata.active_version

    @property
    def versions(self) -> tuple[Version, ...]:
        """The version records (:class:`~napari_segnet.io.metadata.Version`: version, parent, created, note,
        settings, scores, …, ``details``), oldest first."""
        return self.metadata.versions

    @property
    def available_versions(self) -> list[int]:
        """Versions whose weights this session holds (those :meth:`rollback` can activate)."""
        return sorted({*self._states, self.active_version})

    def weights(self, version: int | None = None) -> dict[str, torch.Tensor]:
        """CPU weights of ``version`` (its pixel forest's tensors too, if it keeps one); the active one (default) as
        the network holds them now."""
        if version is None or version == self.active_version:
            return {**cpu_state(self.net), **(self.forest.to_tensors() if self.forest else {})}
        if version not in self._states:
            raise ValueError(f"the weights of version {version} are not available; available versions: "
                             f"{self.available_versions}")
        return self._states[version]

    def add_weights(self, version: int, state: dict[str, torch.Tensor]) -> None:
        """Make the weights of a recorded ``version`` (e.g. read back from a project folder) available."""
        self.metadata.version(version)
        self._states[version] = state

    def annotate(self, version: int | None = None, note: str | None = None, **details) -> None:
        """Set the note of ``version`` (default: the active one) and add ``details`` (JSON-friendly) to it."""
        number = self.active_version if version is None else version
        record = self.metadata.version(number)
        self.metadata = self.metadata.with_changes(number, note=record.note if note is None else note,
                                                   details={**record.details, **details})

    def rollback(self, version: int) -> None:
        """Make ``version`` the active model (any version whose weights this session holds); the weights the
        network holds now are kept as those of the version that was active."""
        if version == self.active_version:
            return
        network, forest = split_state(self.weights(version))
        self._states[self.active_version] = self.weights()
        self.net.load_state_dict(network)
        self.forest = forest
        del self._states[version]
        self.metadata = self.metadata.activate(version)
