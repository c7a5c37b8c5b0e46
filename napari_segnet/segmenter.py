"""Segmenter: a network with its metadata (classes, normalisation, versions); predict, save, load."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .devices import pick_device
from .images import ImagePlanes
from .metrics import confusion_matrix, scores_from_confusion
from .models import SegmentationNet, build_model
from .models.base import cpu_state, fold_batchnorm
from .normalization import Normalization
from .patches import TrainingImage
from .tiling import (
    DEFAULT_MAX_CONTEXT,
    TiledPredictor,
    TileProgress,
    activation_bytes_per_pixel,
    auto_step,
    run_with_oom_retry,
)
from .training import TrainProgress, TrainResult, TrainSettings, finetune_net


class PredictionCancelled(RuntimeError):
    """Raised by :meth:`Segmenter.predict` when its progress callback returns ``False``."""


@dataclass(frozen=True)
class FinetuneFinished:
    """The last update of a completed fine-tune: the new version, whether it became active, and why."""

    version: int
    accepted: bool
    scores_before: dict | None
    scores_after: dict | None
    message: str


class _Planes:
    """Index an output with or without a plane axis as (plane, ...): ``out[p, ...]`` → ``out[...]``."""

    def __init__(self, array, has_planes: bool):
        self.array, self.has_planes = array, has_planes

    def __setitem__(self, key, value):
        self.array[key if self.has_planes else key[1:]] = value


class Segmenter:
    """A segmentation network plus what it needs to be used on real images.

    ``metadata`` holds: architecture, options, in_channels, num_classes, class_names, normalization, versions
    (one entry per model version: its parent, settings, scores) and active_version. The active version's weights
    are the network's; those of every other version made or loaded in this session are kept on the CPU for
    :meth:`rollback`.
    """

    def __init__(self, net: SegmentationNet, metadata: dict):
        self.net = net
        self.metadata = metadata
        self.metadata.setdefault("versions", [{"version": 0, "parent": None, "created": _now(), "note": "created"}])
        self.metadata.setdefault("active_version", 0)
        self._states: dict[int, dict[str, torch.Tensor]] = {}  # inactive versions only
        self._bytes_per_pixel: float | None = None
        self._folded: tuple[tuple, SegmentationNet] | None = None

    # ---- construction -------------------------------------------------------------------------------------
    @classmethod
    def create(cls, architecture: str = "unet", in_channels: int = 1, num_classes: int = 2,
               class_names: list[str] | None = None, normalization: Normalization | dict | None = None,
               **options) -> Segmenter:
        """A new, untrained model; ``options`` go to :func:`napari_segnet.models.build_model`."""
        net = build_model(architecture, in_channels, num_classes, **options)
        names = list(class_names) if class_names is not None else ["background"] + [
            f"class {i}" for i in range(1, num_classes)]
        if len(names) != num_classes:
            raise ValueError(f"{num_classes} classes need {num_classes} class names, got {len(names)}: {names}")
        norm = normalization if isinstance(normalization, Normalization) else Normalization.from_dict(
            normalization or {})
        metadata = {"architecture": architecture, "options": options, "in_channels": in_channels,
                    "num_classes": num_classes, "class_names": names, "normalization": norm.to_dict()}
        return cls(net, metadata)

    @classmethod
    def default(cls) -> Segmenter:
        """The pretrained model shipped in the wheel (U-Net for nuclei; see the model card in README)."""
        from importlib.resources import as_file, files

        with as_file(files("napari_segnet") / "weights" / "default.safetensors") as path:
            return cls.load(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Segmenter:
        """A model saved by :meth:`save`; ``CheckpointError`` (a ``ValueError``) for any other file."""
        state, meta = load_checkpoint(path)
        try:
            seg = cls.create(meta["architecture"], meta["in_channels"], meta["num_classes"], meta["class_names"],
                             meta["normalization"], **meta["options"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{Path(path).name} describes a model this version cannot build: {e}") from e
        expected = seg.net.state_dict()
        wrong = sorted(k for k in expected if k not in state or state[k].shape != expected[k].shape)
        extra = sorted(set(state) - set(expected))
        if wrong or extra:
            raise CheckpointError(f"{Path(path).name} does not fit a {meta['architecture']} network: "
                                  f"missing or misshapen {wrong[:3]}, unexpected {extra[:3]}")
        seg.net.load_state_dict(state)
        seg.metadata = {**seg.metadata, **meta}
        return seg

    def save(self, path: str | os.PathLike) -> Path:
        """Write weights and metadata to ``path`` (a ``.safetensors`` file) atomically; returns the path."""
        return save_checkpoint(path, self.net.state_dict(), self.metadata)

    # ---- properties ---------------------------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return list(self.metadata["class_names"])

    @property
    def num_classes(self) -> int:
        return int(self.metadata["num_classes"])

    @property
    def normalization(self) -> Normalization:
        return Normalization.from_dict(self.metadata["normalization"])

    @property
    def active_version(self) -> int:
        return int(self.metadata["active_version"])

    @property
    def versions(self) -> list[dict]:
        """One dict per version (version, parent, created, settings, scores, …), oldest first."""
        return copy.deepcopy(self.metadata["versions"])

    @property
    def available_versions(self) -> list[int]:
        """Versions whose weights this session holds (those :meth:`rollback` can activate)."""
        return sorted({*self._states, self.active_version})

    def weights(self, version: int | None = None) -> dict[str, torch.Tensor]:
        """CPU weights of ``version``; the active one (default) as the network holds them now."""
        if version is None or version == self.active_version:
            return cpu_state(self.net)
        if version not in self._states:
            raise ValueError(f"the weights of version {version} are not available; available versions: "
                             f"{self.available_versions}")
        return self._states[version]

    def add_weights(self, version: int, state: dict[str, torch.Tensor]) -> None:
        """Make the weights of a recorded ``version`` (e.g. read back from a project folder) available."""
        if version not in {v["version"] for v in self.metadata["versions"]}:
            raise ValueError(f"version {version} is not in this model's history")
        self._states[version] = state

    def rollback(self, version: int) -> None:
        """Make ``version`` the active model (any version whose weights this session holds); the weights the
        network holds now are kept as those of the version that was active."""
        if version == self.active_version:
            return
        state = self.weights(version)
        self._states[self.active_version] = cpu_state(self.net)
        self.net.load_state_dict(state)
        del self._states[version]
        self.metadata["active_version"] = version

    # ---- fine-tuning --------------------------------------------------------------------------------------
    def finetune(self, images: Sequence, labels: Sequence, masks: Sequence | None = None, *,
                 validation: tuple[Sequence, Sequence] | None = None, accept_worse: bool = False, device=None,
                 channel_axis: int | None = None, **settings,
                 ) -> Generator[TrainProgress | FinetuneFinished, None, None]:
        """Fine-tune on (image, labels, mask) triples; a generator of :class:`TrainProgress` per step, then one
        :class:`FinetuneFinished`.

        images: 2-D images (any size; see :meth:`predict` for axes); labels: (Y, X) class ids each; masks:
        bool (Y, X), True where the user reviewed the labels (None: every pixel). ``settings`` are those of
        :class:`napari_segnet.training.TrainSettings` (loss, w0, sigma, class_weights, steps, lr, batch_size,
        patch_size, augment, seed). The model changes only when the run completes; closing the generator (Stop)
        or a diverging loss leaves it exactly as it was. A completed run becomes a new version; with
        ``validation`` = (images, labels), a version that scores a lower mean IU than the active one is kept
        but not made active unless ``accept_worse``. Inputs are checked before the generator is returned.
        """
        config = TrainSettings(**settings)
        items = self._training_items(images, labels, masks, config, channel_axis)
        if validation is not None and len(validation) != 2:
            raise ValueError("validation must be a pair (images, labels)")
        return self._finetune_run(items, config, validation, accept_worse, device, channel_axis)

    def _training_items(self, images, labels, masks, config: TrainSettings, channel_axis) -> list[TrainingImage]:
        images, labels = list(images), list(labels)
        masks = [None] * len(images) if masks is None else list(masks)
        if not images or not (len(images) == len(labels) == len(masks)):
            raise ValueError(f"need as many labels and masks as images (at least one), got {len(images)} images, "
                             f"{len(labels)} labels, {len(masks)} masks")
        return [TrainingImage.prepare(im, lb, mk, self.metadata["in_channels"], self.num_classes,
                                      self.normalization, channel_axis=channel_axis, **config.weight_map_args())
                for im, lb, mk in zip(images, labels, masks)]

    def _finetune_run(self, items, config, validation, accept_worse, device, channel_axis):
        parent = self.active_version
        before = self.score(*validation, device=device, channel_axis=channel_axis) if validation else None
        result = None
        for update in finetune_net(self.net, items, config, device):
            if isinstance(update, TrainResult):
                result = update
            else:
                yield update
        version = max(v["version"] for v in self.metadata["versions"]) + 1
        self._states[version] = result.state_dict
        self.rollback(version)
        after = self.score(*validation, device=device, channel_axis=channel_axis) if validation else None
        accepted = accept_worse or before is None or after["mean_iu"] >= before["mean_iu"]
        if not accepted:
            self.rollback(parent)
        self.metadata["versions"].append({
            "version": version, "parent": parent, "created": _now(), "settings": asdict(config),
            "images": len(items), "reviewed_pixels": int(sum(it.reviewed.sum() for it in items)),
            "final_loss": result.final_loss, "seconds": round(result.seconds, 2),
            "scores": _plain(after) if after else None,
        })
        if accepted:
            message = f"version {version} is active (trained from version {parent})"
        else:
            message = (f"version {version} scores a lower mean IU ({after['mean_iu']:.3f}) than version {parent} "
                       f"({before['mean_iu']:.3f}) on the validation set, so version {parent} stays active; "
                       f"use rollback({version}) to use it anyway")
        yield FinetuneFinished(version, accepted, before, after, message)

    def score(self, images: Sequence, labels: Sequence, device=None, channel_axis: int | None = None) -> dict:
        """FCN metrics of the active model's predictions over ``images`` against ``labels`` (summed confusion)."""
        n = sum(confusion_matrix(self.predict(im, device=device, channel_axis=channel_axis), lb, self.num_classes)
                for im, lb in zip(images, labels, strict=True))
        return scores_from_confusion(n)

    # ---- prediction ---------------------------------------------------------------------------------------
    def predict(self, image, tile_shape: int | tuple[int, int] | None = None, device=None,
                progress: Callable[[int, int], bool | None] | None = None, channel_axis: int | None = None,
                out=None, batch_size: int = 1) -> np.ndarray:
        """Class ids for ``image``: an integer array of the image's spatial shape ((Y, X) or (Z|T, Y, X)).

        image: (Y, X), (Y, X, 3|4), (C, Y, X) or (Z|T, Y, X) NumPy/dask/zarr array, any int or float dtype.
        tile_shape: output pixels per tile (rounded to the net's stride); None picks it from free memory; a
        shape larger than the image means one whole-image pass. progress(done, total) is called after every
        batch of tiles; returning ``False`` cancels (``PredictionCancelled``). ``out``: a preallocated array of
        the spatial shape (e.g. a memory-mapped or zarr one) to write into.
        """
        gen = self.predict_steps(image, tile_shape, device, channel_axis, labels_out=out, batch_size=batch_size)
        return _drive(gen, progress)[0]

    def predict_proba(self, image, tile_shape: int | tuple[int, int] | None = None, device=None,
                      progress: Callable[[int, int], bool | None] | None = None, channel_axis: int | None = None,
                      batch_size: int = 1) -> np.ndarray:
        """Class probabilities, float32 (C, *spatial); arguments as :meth:`predict`."""
        gen = self.predict_steps(image, tile_shape, device, channel_axis, want_labels=False, want_proba=True,
                                 batch_size=batch_size)
        return _drive(gen, progress)[1]

    def predict_steps(self, image, tile_shape=None, device=None, channel_axis: int | None = None, *,
                      want_labels: bool = True, want_proba: bool = False, labels_out=None, batch_size: int = 1,
                      max_context: int = DEFAULT_MAX_CONTEXT,
                      ) -> Generator[TileProgress, None, tuple[np.ndarray | None, np.ndarray | None]]:
        """The prediction as a generator (for thread workers): yields :class:`TileProgress`, returns
        (labels or None, proba or None). Closing it stops between tiles; outputs are then incomplete."""
        planes = ImagePlanes(image, self.metadata["in_channels"], channel_axis)
        offset, scale = self.normalization.parameters(planes)
        dev = pick_device(device)
        net = self._inference_net(dev)
        spatial = ((planes.n_planes,) if planes.plane_axis is not None else ()) + planes.shape
        stacked = planes.plane_axis is not None
        labels = proba = None
        if want_labels or labels_out is not None:
            labels = labels_out if labels_out is not None else np.zeros(spatial, self._label_dtype())
            if tuple(labels.shape) != spatial:
                raise ValueError(f"out must have the image's spatial shape {spatial}, got {tuple(labels.shape)}")
        if want_proba:
            proba = np.zeros((self.num_classes, *spatial), np.float32)
        step = self._tile_step(tile_shape, planes.shape, dev)
        predictor = TiledPredictor(net, dev, lambda t: Normalization.apply(t, offset, scale), batch_size,
                                   max_context)
        proba_view = None if proba is None else (np.moveaxis(proba, 0, 1) if stacked else proba[None])
        labels_view = None if labels is None else _Planes(labels, stacked)
        yield from run_with_oom_retry(lambda s: predictor.run(planes, s, labels_view, proba_view), step,
                                      self.net.total_stride)
        return labels, proba

    def _inference_net(self, device: torch.device) -> SegmentationNet:
        """The active weights with BatchNorm folded into the convolutions, channels_last, on ``device``;
        rebuilt whenever a weight changes (load_state_dict, rollback, in-place edits bump tensor versions)."""
        key = (device, tuple((t.data_ptr(), t._version) for t in self.net.state_dict().values()))
        if self._folded is None or self._folded[0] != key:
            # channels_last: 1.3–2× faster convolutions on the CPU here (benchmarks/predict.py), and on GPUs
            net = fold_batchnorm(self.net).to(device, memory_format=torch.channels_last)
            self._folded = (key, net)
        return self._folded[1]

    def _label_dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.num_classes <= 256 else np.uint16)

    def _tile_step(self, tile_shape, image_shape: tuple[int, int], device: torch.device) -> tuple[int, int]:
        if tile_shape is None:
            if self._bytes_per_pixel is None:
                self._bytes_per_pixel = activation_bytes_per_pixel(self.net)
            return (auto_step(self.net, device, self._bytes_per_pixel),) * 2
        shape = (tile_shape,) * 2 if np.isscalar(tile_shape) else tuple(tile_shape)
        if len(shape) != 2 or not all(isinstance(k, (int, np.integer)) and k >= 1 for k in shape):
            raise ValueError(f"tile_shape must be a positive int or a (Y, X) pair of them, got {tile_shape!r}")
        return tuple(min(int(k), n) for k, n in zip(shape, image_shape))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _plain(scores: dict) -> dict:
    """Scores as JSON-friendly floats and lists (NaN → None)."""
    def conv(v):
        arr = np.asarray(v, dtype=float)
        return [None if np.isnan(x) else float(x) for x in arr.ravel()] if arr.ndim else (
            None if np.isnan(arr) else float(arr))
    return {k: conv(v) for k, v in scores.items() if k != "confusion"}


def _drive(gen: Generator, progress: Callable[[int, int], bool | None] | None):
    """Run a prediction generator to its return value, reporting to ``progress`` (False from it cancels)."""
    try:
        while True:
            update = next(gen)
            if progress is not None and progress(update.done, update.total) is False:
                gen.close()
                raise PredictionCancelled(f"prediction cancelled after {update.done} of {update.total} tiles")
    except StopIteration as stop:
        return stop.value
