"""A volume predicted from three views on a dask cluster, equal to ``Segmenter.predict(volume, views=3)``.

The slice-wise path (:mod:`napari_segnet.distributed`) cuts the output into blocks of one plane. Three views cannot
be cut so: a (Z, X) plane crosses every slice, so a Z-block would need the side planes of the whole volume. The
work is cut by whole planes of each view instead: a task predicts a slab of consecutive planes of one view — the
(Y, X) planes of some slices, the (Z, X) planes of some rows or the (Z, Y) planes of some columns (the side views
resampled along Z to the Y/X voxel size and back inside the slab, which holds whole columns along Z, so that the
result is the whole volume's) — with the whole volume's normalisation, and writes that view's probabilities
(C, Z, Y, X) into a temporary zarr store of its own. Then one task per slab of slices averages the three stores,
in the order ``three_views`` adds them, takes the argmax and writes the outputs. Slabs follow the chunks of the
temporary stores, so no two tasks write one chunk. The temporary stores (3 × C float32 per voxel on disk) live
beside the output and are removed at the end; memory per task is bounded by :data:`SLAB_VOXELS`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from .distributed import _checkpoint_bytes, _gather, close, connect, recomputable, worker_segmenter
from .inference.devices import peak_rss_mb
from .inference.tile_plan import DEFAULT_MAX_CONTEXT
from .inference.views import check_views, side_depth
from .io.imagefiles import atomic_directory, create_zarr, read_image, stem
from .numerics.images import ImagePlanes

#: Voxels of one view's planes per task (its input and C float32 probabilities per voxel are held in memory).
SLAB_VOXELS = 1 << 22


def slab_planes(shape: tuple[int, int, int], depth: int) -> tuple[int, int, int]:
    """Planes per task along each axis of a (Z, Y, X) volume whose side views have ``depth`` rows: as many as fit
    :data:`SLAB_VOXELS`, at least one."""
    z, y, x = shape
    voxels = (y * x, depth * x, depth * y)  # one (Y, X), (Z, X), (Z, Y) plane
    return tuple(max(1, min(n, SLAB_VOXELS // v)) for n, v in zip(shape, voxels))


def predict_views_distributed(model, source: str | os.PathLike, output: str | os.PathLike | None, *, client=None,
                              cluster: str | None = None, proba_output: str | os.PathLike | None = None,
                              fmt: str = "zarr", spacing=None, tile_shape=None, device=None,
                              max_context: int = DEFAULT_MAX_CONTEXT, tta: bool = False,
                              progress: Callable[[int, int], object] | None = None) -> list[dict]:
    """Predict the single-channel (Z, Y, X) volume at ``source`` from its three views on a dask cluster; write
    class ids (Z, Y, X) to the zarr / OME-Zarr ``output`` and, if given, probabilities float32 (C, Z, Y, X) to
    ``proba_output`` — what ``Segmenter.predict(volume, views=3, spacing=…)`` returns (with the same
    ``tile_shape``). Arguments as :func:`napari_segnet.distributed.predict_distributed`; ``spacing`` (z, y, x):
    the voxel size (None: isotropic). progress(done, total) after each task. Returns one dict per slab task (view,
    planes, worker, seconds, peak_rss_mb)."""
    if client is None and cluster is None:
        raise ValueError("give a client or a cluster ('local:N' or a scheduler address)")
    if output is None and proba_output is None:
        raise ValueError("give an output for the labels or the probabilities")
    from .segmenter import Segmenter

    seg = model if isinstance(model, Segmenter) else Segmenter.load(model)
    spacing = check_views(3, spacing)
    image, channel_axis = read_image(source, lazy=True)
    if channel_axis is not None or image.ndim != 3 or seg.in_channels != 1:
        raise ValueError(f"views=3 predicts a single-channel (Z, Y, X) volume with a one-channel model; "
                         f"{Path(source).name} has shape {tuple(image.shape)}")
    shape, classes = tuple(image.shape), seg.num_classes
    depth = side_depth(shape[0], spacing)
    planes = slab_planes(shape, depth)
    norm = seg.normalization.parameters(ImagePlanes(image, 1, None))  # once, for the whole volume
    targets = {k: Path(v) for k, v in (("labels", output), ("proba", proba_output)) if v is not None}
    with ExitStack() as stack:
        if client is None:
            client = connect(cluster)
            stack.callback(close, client)
        chunks = (planes[0], *(min(n, 1024) for n in shape[1:]))
        paths = {}
        for kind, target in targets.items():
            folder = stack.enter_context(atomic_directory(target))
            dtype = np.float32 if kind == "proba" else np.uint8 if classes <= 256 else np.uint16
            full = (classes, *shape) if kind == "proba" else shape
            create_zarr(folder, full, dtype, fmt, ("c" if kind == "proba" else "") + "zyx",
                        (classes, *chunks) if kind == "proba" else chunks, stem(target))
            paths[kind] = str(folder / "0") if fmt == "ome-zarr" else str(folder)
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix=".napari-segnet-views-", dir=next(iter(targets.values())).parent)))
        views = [str(scratch / f"view{v}.zarr") for v in range(3)]
        for path in views:
            create_zarr(Path(path), (classes, *shape), np.float32, "zarr", "czyx", (classes, *planes))
        data = _checkpoint_bytes(seg)
        digest = hashlib.sha256(data).hexdigest()
        shared = recomputable(client, data, f"napari-segnet-model-{digest}")
        slabs = [(v, p, min(p + planes[v], shape[v])) for v in range(3) for p in range(0, shape[v], planes[v])]
        averages = [(z, min(z + planes[0], shape[0])) for z in range(0, shape[0], planes[0])]
        total = len(slabs) + len(averages)
        futures = client.map(_predict_slab, slabs, model=shared, digest=digest, source=str(source), norm=norm,
                             depth=depth, views=views, tile_shape=tile_shape, device=device,
                             max_context=max_context, tta=tta, pure=False)
        reports = _gather(client, futures, progress, 0, total)
        futures = client.map(_average_slab, averages, views=views, paths=paths, pure=False)
        _gather(client, futures, progress, len(slabs), total)
        return reports


def _predict_slab(slab: tuple[int, int, int], *, model: bytes, digest: str, source: str, norm, depth: int,
                  views: list[str], tile_shape, device, max_context: int, tta: bool) -> dict:
    """(On a worker.) Planes [p0, p1) of view ``v`` (0: (Y, X), 1: (Z, X), 2: (Z, Y)) of the volume: their
    probabilities (C, Z, Y, X) at those planes, written into view ``v``'s temporary store."""
    import zarr
    from distributed import get_worker
    from skimage.transform import resize

    from .progress import run

    start = time.perf_counter()
    view, p0, p1 = slab
    seg = worker_segmenter(digest, model)
    index = [slice(None)] * 3
    index[view] = slice(p0, p1)
    block = np.asarray(read_image(source, lazy=True)[0][tuple(index)])  # (Z, Y, X) with whole columns along Z
    n_slices = block.shape[0]
    if view and depth != n_slices:  # as three_views: the side views at the Y/X voxel size
        block = resize(block.astype(np.float32), (depth, *block.shape[1:]), order=1, preserve_range=True,
                       anti_aliasing=False)
    planes = np.ascontiguousarray(np.moveaxis(block, view, 0))
    proba = run(seg.predict_steps(planes, tile_shape, device, want_labels=False, want_proba=True,
                                  max_context=max_context, norm_parameters=norm, tta=tta)).proba
    proba = np.moveaxis(proba, 1, view + 1)  # (C, Z or depth, Y, X) of the slab
    if proba.shape[1] != n_slices:
        proba = resize(proba, (proba.shape[0], n_slices, *proba.shape[2:]), order=1, preserve_range=True,
                       anti_aliasing=False)
    zarr.open_array(views[view], mode="r+")[(slice(None), *index)] = proba
    return {"view": view, "planes": (p0, p1), "worker": get_worker().address,
            "seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}


def _average_slab(slices: tuple[int, int], *, views: list[str], paths: dict[str, str]) -> None:
    """(On a worker.) Slices [z0, z1): the three views' probabilities averaged, their argmax, written out."""
    import zarr

    z = slice(*slices)
    total = None
    for path in views:
        proba = zarr.open_array(path, mode="r")[:, z]
        total = proba if total is None else total + proba
    proba = (total / 3).astype(np.float32)
    if "proba" in paths:
        zarr.open_array(paths["proba"], mode="r+")[:, z] = proba
    if "labels" in paths:
        array = zarr.open_array(paths["labels"], mode="r+")
        array[z] = proba.argmax(axis=0).astype(array.dtype)
