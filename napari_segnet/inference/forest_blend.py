"""A version's pixel forest, blended into what the network predicts.

A new model's round may find that a pixel forest (ilastik's method, fitted on the reviewed pixels) predicts the
held-out reviewed squares better than the network, or that their average does: the version then keeps the forest
as arrays (:class:`~napari_segnet.numerics.tree_ensemble.TreeEnsemble`) with the weight its probabilities get,
and every prediction of that version is ``(1 - weight) · network + weight · forest``, per pixel, before the
argmax. The forest's features of a pixel read :data:`~napari_segnet.numerics.pixel_features.MARGIN` px of real
image around it (mirrored at the image's edges only), so a tile, a block or a region gets exactly what the whole
image gets: the dock, the CLI, distributed and live prediction agree. The arrays travel in the version's
state dict under :data:`~napari_segnet.io.checkpoint.FOREST_PREFIX` (a checkpoint, a project folder, a dask
worker's copy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..io.checkpoint import FOREST_PREFIX
from ..numerics.pixel_features import window_features
from ..numerics.tree_ensemble import TreeEnsemble


@dataclass(frozen=True, eq=False)
class ForestBlend:
    """A pixel forest and the weight (0 < weight ≤ 1) of its probabilities beside the network's."""

    ensemble: TreeEnsemble
    weight: float

    def __post_init__(self):
        if not 0.0 < self.weight <= 1.0:
            raise ValueError(f"a forest's weight lies in (0, 1], got {self.weight}")

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """The forest's tensors for a state dict (names start with ``FOREST_PREFIX``)."""
        weight = torch.tensor([self.weight], dtype=torch.float64)
        return {**self.ensemble.to_tensors(FOREST_PREFIX), FOREST_PREFIX + "weight": weight}

    def forest_probabilities(self, read: Callable[[np.ndarray, np.ndarray], np.ndarray], shape: tuple[int, int],
                             rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """float32 (K, y1 - y0, x1 - x0): the forest's probabilities for image rows [y0, y1) and columns [x0, x1).
        ``read(ys, xs)`` gives the normalised image (C, len(ys), len(xs)) at those indices; ``shape``: the
        image's (Y, X)."""
        return np.moveaxis(self.ensemble.probabilities(window_features(read, shape, rows, cols)), -1, 0)

    def mix(self, proba: np.ndarray, forest: np.ndarray) -> np.ndarray:
        """(K, …) the network's ``proba`` and the forest's, weighted."""
        return ((1.0 - self.weight) * proba + self.weight * forest).astype(np.float32, copy=False)


def split_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], ForestBlend | None]:
    """(the network's state dict, the version's forest or None) of a version's state dict; ``ValueError`` for
    forest tensors that do not describe one."""
    network = {k: v for k, v in state.items() if not k.startswith(FOREST_PREFIX)}
    if len(network) == len(state):
        return network, None
    if FOREST_PREFIX + "weight" not in state:
        raise ValueError(f"the pixel forest's tensors lack {FOREST_PREFIX}weight")
    ensemble = TreeEnsemble.from_tensors(state, FOREST_PREFIX)
    return network, ForestBlend(ensemble, float(state[FOREST_PREFIX + "weight"].reshape(-1)[0]))
