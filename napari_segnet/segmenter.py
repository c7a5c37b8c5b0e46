"""Segmenter: a network with its metadata (classes, normalisation, versions); predict, fine-tune, save, load."""

from __future__ import annotations

import os
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from ._validation import check_labels_out
from .inference.devices import pick_device
from .inference.forest_blend import ForestBlend, split_state
from .inference.scale import recorded_diameter, spatial_shape, zoom_factor, zoom_image, zoom_training_set, zoomed_back
from .inference.tile_plan import DEFAULT_MAX_CONTEXT
from .inference.tiling import PredictionResult, Region, TileProgress, predict_tiled
from .inference.views import check_views, three_views
from .io.checkpoint import CheckpointError, load_network, save_checkpoint
from .io.metadata import ModelMetadata, Version
from .model_versions import VersionedWeights
from .models import SegmentationNet, build_model, model_options
from .models.base import fold_batchnorm
from .models.pretrained import load_encoder_into, new_model_options, pick_start, start_details
from .numerics.images import ImagePlanes
from .numerics.instances import label_instances
from .numerics.metrics import confusion_matrix, scores_from_confusion
from .numerics.normalization import Normalization
from .progress import run
from .training.blend import choose_blend
from .training.distillation import REACH, distill, fit_reviewed_forest
from .training.finetune_outcome import FinetuneFinished, record_run
from .training.guard import guard_scores
from .training.loop import TrainProgress, finetune_net, patch_sizes, usable_items
from .training.patches import TrainingImage, prepare_planes
from .training.recommend import NEW_MODEL, TrainRecommendation
from .training.settings import TrainSettings
from .training.training_set import check_validation, crop_to_reviewed, split_held_out, training_planes


class Segmenter(VersionedWeights):
    """A segmentation network plus what it needs to be used on real images.

    ``metadata`` is a frozen :class:`~napari_segnet.io.metadata.ModelMetadata` (architecture, options, classes,
    normalisation, versions, active version). The active version's weights are the network's, and ``forest`` its
    pixel forest if it keeps one (:mod:`~napari_segnet.inference.forest_blend`: every prediction mixes it in);
    those of every other version made or loaded in this session are kept on the CPU for :meth:`rollback`.
    """

    def __init__(self, net: SegmentationNet, metadata: ModelMetadata, forest: ForestBlend | None = None):
        self.net, self.metadata, self.forest = net, metadata, forest
        self._states: dict[int, dict[str, torch.Tensor]] = {}  # inactive versions only
        self._folded: tuple[tuple, SegmentationNet] | None = None

    # ---- construction -------------------------------------------------------------------------------------
    @classmethod
    def create(cls, architecture: str = "unet", in_channels: int = 1, num_classes: int = 2,
               class_names: Sequence[str] | None = None, normalization: Normalization | dict | None = None,
               start: str | None = None, **options) -> Segmenter:
        """A new model; ``options`` go to :func:`napari_segnet.models.build_model` (for a U-Net, those not given
        are the pretrained configuration: depth 3, 16 base filters). At least two classes (background +
        object): a softmax over one class could only ever answer class 0.

        ``start``: ``"pretrained"`` — every layer but the 1×1 head starts from the general encoder shipped in
        the wheel (:mod:`napari_segnet.models.pretrained`; any classes, any channels); ``"scratch"`` — random
        weights; None (default) — pretrained where an encoder fits the architecture and options, else scratch.
        Version 0's record says which (``start``, ``encoder``); it recommends new-model :attr:`recommended_settings`.
        """
        if isinstance(num_classes, int) and not isinstance(num_classes, bool) and num_classes == 1:
            raise ValueError("num_classes=1 cannot work (a softmax over one class always answers class 0); "
                             "use num_classes=2: background and your object")
        encoder = pick_start(architecture, options, start)
        defaults = model_options(architecture)  # recorded: the options given and where new models differ
        options = {k: v for k, v in new_model_options(architecture, options).items()
                   if k in options or v != defaults[k]}
        net = build_model(architecture, in_channels, num_classes, **options)
        if encoder is not None:
            load_encoder_into(net, encoder)
        names = tuple(class_names) if class_names is not None else ("background", *(
            f"class {i}" for i in range(1, num_classes)))
        norm = normalization if isinstance(normalization, Normalization) else Normalization.from_dict(
            normalization or {})
        created = Version(0, note="created", details=start_details(encoder))
        return cls(net, ModelMetadata(architecture, in_channels, num_classes, names, dict(options), norm,
                                      versions=(created,), recommendation=NEW_MODEL.to_dict()))

    @property
    def start(self) -> dict:
        """Where this model started: ``{"start": "pretrained", "encoder": name, …}`` or ``{"start": "scratch"}``
        (models from before pretrained starts: ``{}``)."""
        first = self.metadata.versions[0]
        return {k: v for k, v in first.details.items() if k in ("start", "encoder", "encoder_card")}

    @classmethod
    def default(cls) -> Segmenter:
        """The pretrained model shipped in the wheel (U-Net for nuclei; see the model card in README)."""
        from importlib.resources import as_file, files

        with as_file(files("napari_segnet") / "weights" / "default.safetensors") as path:
            return cls.load(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Segmenter:
        """A model saved by :meth:`save`, or a bioimage.io package written by :meth:`export_bioimageio` (a .zip);
        ``CheckpointError`` (a ``ValueError``) for any other file, saying what is supported."""
        if zipfile.is_zipfile(path):
            from .bioimageio import package_checkpoint

            with package_checkpoint(path) as checkpoint:
                return cls.load(checkpoint)
        net, metadata, extra = load_network(path)  # the file's tensors checked against its metadata first
        try:
            return cls(net, metadata, split_state(extra)[1])
        except ValueError as e:
            raise CheckpointError(f"{Path(path).name} has a damaged pixel forest ({e})") from e

    def save(self, path: str | os.PathLike, version: int | None = None) -> Path:
        """Write the weights of ``version`` (default: the active one) and the metadata to ``path`` (a
        ``.safetensors`` file) atomically; the file's active version is ``version``. Returns the path."""
        version = self.active_version if version is None else version
        return save_checkpoint(path, self.weights(version), self.metadata.activate(version))

    def export_bioimageio(self, path: str | os.PathLike, image=None, **details) -> Path:
        """Write the active model as a bioimage.io model package (.zip) to ``path``; ``image`` (optional) gives
        the test input; ``details``: name, description, authors, license, tags. See
        :func:`napari_segnet.bioimageio.export_bioimageio`. Returns the path."""
        from .bioimageio import export_bioimageio

        return export_bioimageio(self, path, image, **details)

    # ---- properties ---------------------------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return list(self.metadata.class_names)

    @property
    def num_classes(self) -> int:
        return self.metadata.num_classes

    @property
    def in_channels(self) -> int:
        return self.metadata.in_channels

    @property
    def normalization(self) -> Normalization:
        return self.metadata.normalization

    @property
    def object_diameter(self) -> float | None:
        """The object size (median diameter, px) this model was trained on: the latest ``object_diameter``
        recorded in a version (or its training card); None if none was recorded."""
        return recorded_diameter([v.details for v in self.versions])

    @property
    def recommended_settings(self) -> TrainSettings:
        """How to fine-tune this model, for every setting not given to :meth:`finetune`
        (:mod:`~napari_segnet.training.recommend`)."""
        return TrainRecommendation.from_dict(self.metadata.recommendation).settings

    # ---- fine-tuning --------------------------------------------------------------------------------------
    def finetune(self, images: Sequence, labels: Sequence, masks: Sequence | None = None, *,
                 validation: tuple[Sequence, Sequence] | None = None, accept_worse: bool = False, device=None,
                 channel_axis: int | None = None, diameter: float | None = None, spacing: Sequence | None = None,
                 **settings) -> Iterator[TrainProgress | FinetuneFinished]:
        """Check the inputs, then return a generator that fine-tunes: it yields :class:`TrainProgress` per step,
        then one :class:`FinetuneFinished`.

        images: 2-D images or stacks (see :meth:`predict` for axes); labels: (Y, X) class ids per image, or
        (Z|T, Y, X) for a stack; masks: bool of the labels' shape, True where the user reviewed the labels, or a
        stack's view bits (:func:`~napari_segnet.training.training_set.training_planes`; None: every pixel);
        ``spacing``: a voxel size (z, y, x) or None per image (side views resampled as ``views=3`` sees them).
        ``settings``: those of :class:`napari_segnet.training.settings.TrainSettings` (loss, w0, sigma, steps, lr,
        …); each one not given is the model's :attr:`recommended_settings`.

        The model changes only when the run completes; closing the generator (Stop) or a diverging loss
        (``TrainingAborted``) leaves it exactly as it was. A completed run becomes a new version, made active
        only if it is not worse than the active version on the guard set (:mod:`napari_segnet.training.guard`):
        ``validation`` = (images, labels) when given, else a held-out quarter of the reviewed pixels that it is not
        trained on. The pixel forest (settings that distil), the training and the guard run in the generator (a
        GUI's worker); ``auto_max_seconds`` counts from this call. ``accept_worse`` activates it
        regardless; otherwise :meth:`rollback` to it later. ``diameter``: the size (px) of the objects in these
        images; they are zoomed to the model's :attr:`object_diameter` first (a model that records none is
        trained as is and records ``diameter``).
        """
        start = time.perf_counter()
        config = TrainRecommendation.from_dict(self.metadata.recommendation).with_given(**settings)
        zoom = (self.object_diameter, self.in_channels, channel_axis)
        images, labels, masks, size = zoom_training_set(images, labels, masks, diameter, *zoom)
        if validation is not None and len(validation) == 2 and size is None and diameter is not None:
            validation = zoom_training_set(*validation, None, diameter, *zoom)[:2]
        planes = training_planes(images, labels, masks, in_channels=self.in_channels,
                                 num_classes=self.num_classes, channel_axis=channel_axis, spacing=spacing)
        planes = crop_to_reviewed(planes, self._context(config))
        if validation is not None:
            check_validation(validation, in_channels=self.in_channels, num_classes=self.num_classes,
                             channel_axis=channel_axis)
            train, held = planes, []
        else:
            train, held = split_held_out(planes)
        items, judged = (prepare_planes(part, self.normalization, config) for part in (train, held))
        usable_items(items)  # ValueError now, not in the worker, when nothing is left to learn from
        reviewed = int(sum(p.reviewed.sum() for p in planes))  # what the person reviewed, held-out pixels too
        run_record = {"images": len({(id(p.image), p.index) for p in planes}), "reviewed_pixels": reviewed}
        guard, judge = self._guard(validation, judged, device, channel_axis)
        details = {"held_out_pixels": reviewed - int(sum(it.reviewed.sum() for it in items)),
                   **({} if size is None else {"object_diameter": size})}

        def round_() -> Iterator[TrainProgress | FinetuneFinished]:  # the slow part, in the caller's worker
            taught, record, forest = self._with_forest(items, config, device)
            resolved = config.resolved(reviewed, record is not None and record.distilled)  # recorded as recommended
            steps = finetune_net(self.net, taught, resolved.after_spending(time.perf_counter() - start), device)
            blend = (lambda: choose_blend(forest, judged, self.num_classes, lambda it: self._predict_prepared(
                it, device, network_only=True).proba)) if config.forest_blend else None
            yield from record_run(self, steps, resolved, guard, judge, accept_worse, run_record,
                                  {**details, **({} if record is None else {"distillation": record.to_dict()})}, blend)
        return round_()

    def _guard(self, validation, judged: list[TrainingImage], device, channel_axis) -> tuple[str, Callable]:
        """(name, judge) of a fine-tune's guard: ``judge()`` gives the active version's scores on the guard set
        (``validation`` images, else the held-out reviewed pixels ``judged``; None without either)."""
        if validation is not None:
            return "validation", lambda: self.score(*validation, device=device, channel_axis=channel_axis)
        if judged:
            return "held-out reviewed pixels", lambda: self._reviewed_scores(judged, device, held_out=True)
        return "none", lambda: None

    def _with_forest(self, items: list[TrainingImage], config: TrainSettings, device) -> tuple[list, object, object]:
        """(the planes to learn from, the ``Distillation`` record or None, the round's ``PixelForest`` or None): one
        forest for distillation and the blend, fitted on the training pixels before the training starts (within the
        time budget)."""
        if not (config.distill or config.forest_blend):
            return items, None, None
        fitted = fit_reviewed_forest(items, self.num_classes, config.seed or 0)
        if not config.distill:
            return items, None, fitted.forest
        network = self._reviewed_scores(items, device)
        return *distill(items, config, self.num_classes, network["mean_iu"], fitted), fitted.forest

    def _predict_prepared(self, item: TrainingImage, device=None, network_only: bool = False) -> PredictionResult:
        """Labels and probabilities (K, Y, X) of the active version for a prepared (already normalised) plane."""
        dev = pick_device(device)
        planes = ImagePlanes(item.image, self.in_channels, channel_axis=0)
        return run(predict_tiled(self._inference_net(dev), planes, lambda t: t, dev, want_proba=True,
                                 forest=None if network_only else self.forest))

    def _context(self, config: TrainSettings) -> int:
        """Pixels of image kept around the reviewed ones when a round crops to them: half a training patch (so
        patches see real context, not mirrored), and the pixel forest's reach when the round distils or blends."""
        forest = config.distill or config.forest_blend
        return max(patch_sizes(self.net, config.patch_size)[0] // 2 + 8, REACH if forest else 0)

    def _reviewed_scores(self, items: Sequence[TrainingImage], device=None, held_out: bool = False) -> dict:
        """FCN metrics of the active model on the reviewed pixels of prepared training planes (``held_out``: the
        guard's scores, means over the classes present in the labels)."""
        n = 0
        for it in items:
            labels = self._predict_prepared(it, device).labels
            n = n + confusion_matrix(labels[it.reviewed], it.labels[it.reviewed], self.num_classes)
        return guard_scores(n) if held_out else scores_from_confusion(n)

    def held_out_scores(self, images: Sequence, labels: Sequence, masks: Sequence, device=None,
                        channel_axis: int | None = None, spacing: Sequence | None = None) -> dict | None:
        """The guard's scores of the active version on the held-out pixels of reviewed ``masks`` (arguments as
        :meth:`finetune`; :mod:`napari_segnet.training.guard`); None when too few pixels are held out to judge."""
        planes = training_planes(images, labels, masks, in_channels=self.in_channels, num_classes=self.num_classes,
                                 channel_axis=channel_axis, spacing=spacing)
        config = TrainSettings()
        _, held = split_held_out(crop_to_reviewed(planes, self._context(config)))
        if not held:
            return None
        return self._reviewed_scores(prepare_planes(held, self.normalization, config), device, held_out=True)

    def score(self, images: Sequence, labels: Sequence, device=None, channel_axis: int | None = None) -> dict:
        """FCN metrics of the active model's predictions over ``images`` against ``labels`` (summed confusion)."""
        n = sum(confusion_matrix(self.predict(im, device=device, channel_axis=channel_axis), lb, self.num_classes)
                for im, lb in zip(images, labels, strict=True))
        return scores_from_confusion(n)

    # ---- prediction ---------------------------------------------------------------------------------------
    def predict(self, image, tile_shape: int | tuple[int, int] | None = None, device=None,
                progress: Callable[[int, int], bool | None] | None = None, channel_axis: int | None = None,
                out=None, batch_size: int = 1, diameter: float | None = None, tta: bool = False, views: int = 1,
                spacing=None) -> np.ndarray:
        """Class ids for ``image``: an integer array of the image's spatial shape ((Y, X) or (Z|T, Y, X)).

        image: (Y, X), (Y, X, 3|4), (C, Y, X) or (Z|T, Y, X) NumPy/dask/zarr array, any int or float dtype.
        tile_shape: output pixels per tile (rounded to the net's stride); None picks it from free memory; a
        shape larger than the image means one whole-image pass. progress(done, total) is called after every
        batch of tiles; returning ``False`` cancels (:class:`~napari_segnet.progress.Cancelled`). ``out``: a
        preallocated array of the spatial shape (e.g. a memory-mapped or zarr one) to write into. ``diameter``:
        the size (px) of the objects in ``image``; it is then zoomed to the model's :attr:`object_diameter`
        for prediction and the labels zoomed back (nearest neighbour) to the image's exact shape. ``tta``: test-time
        augmentation, probabilities averaged over the 8 flips and rotations of every tile (8× the time;
        :mod:`napari_segnet.inference.tta`). ``views=3``: a (Z, Y, X) volume predicted from its YX, ZX and ZY planes,
        probabilities averaged (:mod:`napari_segnet.inference.views`; ``spacing`` (z, y, x): its voxel size).
        """
        steps = self.predict_steps(image, tile_shape, device, channel_axis, labels_out=out, batch_size=batch_size,
                                   diameter=diameter, tta=tta, views=views, spacing=spacing)
        return run(steps, progress).labels

    def predict_proba(self, image, tile_shape: int | tuple[int, int] | None = None, device=None,
                      progress: Callable[[int, int], bool | None] | None = None, channel_axis: int | None = None,
                      batch_size: int = 1, diameter: float | None = None, tta: bool = False, views: int = 1,
                      spacing=None) -> np.ndarray:
        """Class probabilities, float32 (C, *spatial); arguments as :meth:`predict`."""
        steps = self.predict_steps(image, tile_shape, device, channel_axis, want_labels=False, want_proba=True,
                                   batch_size=batch_size, diameter=diameter, tta=tta, views=views, spacing=spacing)
        return run(steps, progress).proba

    def predict_instances(self, image, tile_shape: int | tuple[int, int] | None = None, device=None,
                          progress: Callable[[int, int], bool | None] | None = None,
                          channel_axis: int | None = None, diameter: float | None = None, tta: bool = False,
                          **options) -> np.ndarray:
        """Instance ids, int32 of the image's spatial shape (0 = background): the tiled class prediction
        (arguments as :meth:`predict`) turned into objects by :func:`napari_segnet.numerics.instances.label_instances`
        (``options``: min_size, split, min_distance, grow, grow_into); stacks slice by slice."""
        return label_instances(self.predict(image, tile_shape, device, progress, channel_axis, diameter=diameter,
                                            tta=tta), **options)

    def predict_steps(self, image, tile_shape=None, device=None, channel_axis: int | None = None, *,
                      want_labels: bool = True, want_proba: bool = False, labels_out=None, batch_size: int = 1,
                      max_context: int = DEFAULT_MAX_CONTEXT, norm_parameters: tuple | None = None,
                      region: Region | None = None, diameter: float | None = None, tta: bool = False,
                      views: int = 1, spacing=None, network_only: bool = False
                      ) -> Iterator[TileProgress | PredictionResult]:
        """Check the inputs, then return the prediction as a generator (for thread workers): it yields
        :class:`TileProgress` and finally a :class:`PredictionResult` (labels or None, proba or None).
        Closing it stops between tiles; outputs are then incomplete. ``norm_parameters``: (offset, scale) of
        the whole image when computed elsewhere; ``region``: predict only that part (``tiling.Region``; the
        outputs have its shape), exactly as in a whole-image pass — the blocks of ``napari_segnet.distributed``.
        ``diameter``, ``tta``, ``views``, ``spacing``: see :meth:`predict` (``diameter`` not with ``region``).
        ``network_only``: leave the version's pixel forest out (what a bioimage.io package predicts)."""
        if labels_out is not None:
            check_labels_out(labels_out, self.num_classes)
        spacing = check_views(views, spacing)
        if views == 3:
            if region is not None or diameter is not None or self.in_channels != 1:
                raise ValueError("views=3 predicts a whole single-channel (Z, Y, X) volume at its own scale: no "
                                 "region, no object size, and a one-channel model")
            volume = np.asarray(image)
            params = self.normalization.parameters(ImagePlanes(volume, 1, None))
            return three_views(lambda planes: self.predict_steps(
                planes, tile_shape, device, want_labels=False, want_proba=True, batch_size=batch_size,
                max_context=max_context, norm_parameters=params, tta=tta, network_only=network_only), volume, spacing,
                want_labels, want_proba,
                labels_out)
        factor = zoom_factor(diameter, self.object_diameter)
        if factor != 1.0:
            if region is not None:
                raise ValueError("diameter= and region= cannot be combined: zoom the whole image instead")
            shape = spatial_shape(image, self.in_channels, channel_axis)
            zoomed = zoom_image(image, factor, self.in_channels, channel_axis)
            inner = self.predict_steps(zoomed, tile_shape, device, channel_axis, want_labels=want_labels,
                                       want_proba=want_proba, batch_size=batch_size, max_context=max_context,
                                       tta=tta, network_only=network_only)
            return zoomed_back(inner, shape, labels_out)
        planes = ImagePlanes(image, self.in_channels, channel_axis)
        offset, scale = norm_parameters if norm_parameters is not None else self.normalization.parameters(planes)
        dev = pick_device(device)
        return predict_tiled(self._inference_net(dev), planes, lambda t: Normalization.apply(t, offset, scale), dev,
                             tile_shape=tile_shape, want_labels=want_labels, want_proba=want_proba,
                             labels_out=labels_out, batch_size=batch_size, max_context=max_context, region=region,
                             tta=tta, forest=None if network_only else self.forest)

    def _inference_net(self, device: torch.device) -> SegmentationNet:
        """The active weights with BatchNorm folded into the convolutions, channels_last, on ``device``;
        rebuilt whenever a weight changes (load_state_dict, rollback, in-place edits bump tensor versions)."""
        key = (device, tuple((t.data_ptr(), t._version) for t in self.net.state_dict().values()))
        if self._folded is None or self._folded[0] != key:
            # channels_last: 1.3–2× faster convolutions on the CPU here (benchmarks/predict.py), and on GPUs
            net = fold_batchnorm(self.net).to(device, memory_format=torch.channels_last)
            self._folded = (key, net)
        return self._folded[1]
