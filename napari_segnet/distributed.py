"""Block-wise prediction on a dask.distributed cluster, identical to ``Segmenter.predict`` on the whole image.

The output is cut into blocks of whole tiles of the whole-image tiling (``tile_plan.explicit_plan``; block sides are
multiples of the tile step and start on tile starts), one block per output zarr chunk. Each task predicts one
block with ``Segmenter.predict_steps(region=…)``: the very tiles a whole-image pass runs there, each reading its
mirrored context from the input, normalised with the whole image's parameters (computed once, on the client).
So the result is identical, and workers never write the same chunk. The model travels as the result of a task
whose input is its checkpoint bytes (not ``client.scatter``: scattered data dies with the worker that holds it
and dask cannot make it again, so a killed worker lost the whole job); each worker process loads it once into a
module-level cache. Every task input can so be recomputed, and when a worker dies dask reruns its tasks on
another (or on the one its nanny restarts). Nothing is gathered on the client but a few numbers per block.
Outputs go to a temporary folder that replaces the target only when every block is written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .inference.blockinstances import block_objects, merge_table, relabel
from .inference.devices import peak_rss_mb
from .inference.tile_plan import DEFAULT_MAX_CONTEXT, explicit_plan
from .inference.tiling import Region, tile_step
from .io.imagefiles import atomic_directory, create_zarr, read_image, stem
from .numerics.images import ImagePlanes, WindowedArray
from .numerics.pixel_features import MARGIN as FEATURE_MARGIN

_CACHE: dict[str, object] = {}  # checkpoint digest → Segmenter, one per worker process
_LOCK = threading.Lock()

#: Environment of the workers of a LocalCluster started here. dask's nanny sets MALLOC_TRIM_THRESHOLD_, and setting
#: any malloc threshold switches off glibc's dynamic mmap threshold: every buffer > 128 KiB (each activation of a
#: tile) is then a fresh mmap whose pages fault in on every forward pass — a block ran 1.3–1.8× slower than in a
#: plain process (README, "Distributed prediction"). A 32 MiB mmap threshold (glibc's largest) lets activations
#: reuse the heap again while dask's trimming stays. glibc reads it when a process starts, so it goes into dask's
#: ``distributed.nanny.pre-spawn-environ`` (set it there in the dask config of a real cluster's workers too).
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20)}


#: dask settings of a LocalCluster started here, which has no dashboard: nobody reads the workers' statistical
#: profiler (it sampled the task thread every 10 ms, 2 % of a worker's CPU), and the 20 ms "tick" that times each
#: server's event loop and the 500 ms system monitor only feed the dashboard and blocked-loop warnings — with them,
#: the client's event loop (scheduler, nannies, client) used 0.58 s and each worker's 0.27 s CPU of a 13 s run on
#: 2 cores, 0.18 s and 0.09 s without (README, "Distributed prediction"). Memory monitoring is left as it is.
QUIET_CONFIG = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s",
                "distributed.admin.system-monitor.interval": "2s"}


@dataclass(frozen=True)
class BlockReport:
    """What one block's task reports to the client.

    block: the output region it predicted; worker: the address of the dask worker that ran it; seconds: the
    task's wall time (s); torch_threads: torch's thread count in that worker; peak_rss_mb: the worker process's
    peak resident memory so far (MiB, VmHWM).
    """

    block: Region
    worker: str
    seconds: float
    torch_threads: int
    peak_rss_mb: float


def local_cluster(n_workers: int):
    """A ``distributed.LocalCluster`` of ``n_workers`` processes with one thread each, :data:`WORKER_ENV` and
    :data:`QUIET_CONFIG`."""
    import dask
    from distributed import LocalCluster

    environ = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_ENV.items()}
    with dask.config.set({**environ, **QUIET_CONFIG}):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                            silence_logs=logging.ERROR, preload=[__name__])  # dask_setup below, in each worker


def dask_setup(worker) -> None:
    """(Preload of the local workers, run in each worker process as it starts, restarts included.) Ignore
    Ctrl-C: a terminal sends it to every process of the command, and each worker printed a KeyboardInterrupt
    traceback; the command itself stops the work and closes the cluster, which ends the workers."""
    import signal

    if threading.current_thread() is threading.main_thread():  # the worker's event loop runs there
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def connect(spec: str, timeout: float = 10.0):
    """A ``distributed.Client``: ``local:N`` starts a LocalCluster of N worker processes with one thread each;
    anything else is the address of a running scheduler (``tcp://HOST:PORT`` or ``HOST:PORT``). Raises
    ``ConnectionError`` if no scheduler answers within ``timeout`` seconds, ``ValueError`` for a bad spec. Close
    it with :func:`close`."""
    from distributed import Client

    if spec.startswith("local:"):
        n = spec.split(":", 1)[1]
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"--cluster local:N needs a positive number of workers, got {spec!r}")
        return Client(local_cluster(int(n)))
    address = spec if "://" in spec else f"tcp://{spec}"
    try:
        probe(address, timeout)
        return Client(address, timeout=timeout)
    except NotAScheduler:
        raise
    except OSError as e:  # includes TimeoutError
        raise ConnectionError(f"no dask scheduler answered at {address} within {timeout:g} s ({e or 'silence'}); "
                              "start one (`dask scheduler`, dask-jobqueue, dask-kubernetes) or use local:N") from e


class NotAScheduler(ConnectionError):
    """Something answered at the address, but not dask's protocol."""


def probe(address: str, timeout: float) -> None:
    """Connect to ``address`` and exchange dask's handshake, all within ``timeout`` seconds (dask bounds only
    the connection: a server that accepts and never answers held ``Client`` for minutes). ``TimeoutError`` or
    ``OSError`` if nothing answers in time, :class:`NotAScheduler` if something answers that is not a dask
    scheduler (its garbage once made dask allocate 3 EiB)."""
    import asyncio

    from distributed.comm import connect as comm_connect

    async def handshake():
        comm = await comm_connect(address, timeout=timeout)
        await comm.close()

    try:
        asyncio.run(asyncio.wait_for(handshake(), timeout))
    except (OSError, asyncio.TimeoutError):
        raise
    except Exception as e:  # noqa: BLE001 - whatever dask's protocol makes of garbage (ValueError, MemoryError…)
        raise NotAScheduler(f"{address} answered, but not as a dask scheduler ({type(e).__name__}: {e}); "
                              "check the address and port") from e


def close(client) -> None:
    """Close ``client`` and, if :func:`connect` started it, its LocalCluster."""
    from distributed import LocalCluster

    cluster = client.cluster
    client.close()
    if isinstance(cluster, LocalCluster):
        cluster.close()


def plan_blocks(n_planes: int, shape: tuple[int, int], steps: tuple[int, int], block: int) -> list[Region]:
    """Blocks of whole tiles: sides ``block`` rounded down to a multiple of each axis's tile step (at least one
    tile), one plane each, in raster order."""
    (h, w), (by, bx) = shape, (max(1, block // s) * s for s in steps)
    return [Region((p, p + 1), (y, min(y + by, h)), (x, min(x + bx, w)))
            for p in range(n_planes) for y in range(0, h, by) for x in range(0, w, bx)]


def predict_distributed(model, source: str | os.PathLike, output: str | os.PathLike | None, *, client=None,
                        cluster: str | None = None, proba_output: str | os.PathLike | None = None,
                        instances_output: str | os.PathLike | None = None, fmt: str = "zarr", tile_shape=None,
                        block: int = 2048, channel_axis: int | None = None, device=None,
                        max_context: int = DEFAULT_MAX_CONTEXT, tta: bool = False,
                        progress: Callable[[int, int], object] | None = None) -> list[BlockReport]:
    """Predict the image at ``source`` block by block on a dask cluster; write class ids to the zarr (``fmt``
    ``"zarr"``) or OME-Zarr (``"ome-zarr"``) ``output`` and, if given, probabilities float32 (C, *spatial) to
    ``proba_output``, instance ids int32 to ``instances_output`` (see ``blockinstances``: ``label_instances(
    labels, split=False, grow=0)`` of the whole image). Labels have the image's spatial shape ((Y, X) or
    (Z|T, Y, X)), as ``Segmenter.predict``.

    model: a Segmenter or a checkpoint path. source: a zarr array, an OME-Zarr group or a TIFF (read lazily).
    client: a ``distributed.Client``, else ``cluster`` (see :func:`connect`). tile_shape: as ``predict`` (None:
    from this machine's free memory); block: output pixels per block side; tta: as ``predict`` (8 flips and
    rotations averaged per tile). progress(done, total) after each
    block. Returns one :class:`BlockReport` per block, in block order.
    """
    if instances_output is not None and output is None:
        raise ValueError("block-wise instances are made from the labels: give an output for them too")
    if client is None and cluster is None:
        raise ValueError("give a client or a cluster ('local:N' or a scheduler address)")
    from .segmenter import Segmenter

    seg = model if isinstance(model, Segmenter) else Segmenter.load(model)
    job = _Job(seg, Path(source), channel_axis, tile_shape, block, device, max_context, tta)
    targets = {k: Path(v) for k, v in (("labels", output), ("proba", proba_output), ("instances", instances_output))
               if v is not None}
    with ExitStack() as stack:
        if client is None:
            client = connect(cluster)
            stack.callback(close, client)
        paths = {k: job.create(stack.enter_context(atomic_directory(t)), k, fmt, stem(t))
                 for k, t in targets.items()}
        return job.submit(client, paths, progress)


class _Job:
    """One distributed prediction: the whole image's tiling, normalisation and blocks, computed on the client."""

    def __init__(self, seg, source: Path, channel_axis, tile_shape, block: int, device, max_context: int,
                 tta: bool = False):
        from .inference.devices import pick_device

        image, axis = read_image(source, lazy=True)
        self.seg, self.source, self.device, self.max_context, self.tta = seg, source, device, max_context, tta
        self.channel_axis = channel_axis if channel_axis is not None else axis
        planes = ImagePlanes(image, seg.in_channels, self.channel_axis)
        self.norm = seg.normalization.parameters(planes)  # once, for the whole image
        step = tile_step(seg.net, tile_shape, planes.shape, pick_device(device))
        self.steps = tuple(explicit_plan(seg.net, n, k, max_context).step for n, k in zip(planes.shape, step))
        self.blocks = plan_blocks(planes.n_planes, planes.shape, self.steps, block)
        self.stacked = planes.plane_axis is not None
        self.spatial = ((planes.n_planes,) if self.stacked else ()) + planes.shape
        first = self.blocks[0].shape
        self.chunks = ((1,) if self.stacked else ()) + first[1:]

    def create(self, folder: Path, kind: str, fmt: str, name: str) -> str:
        """Create the empty ``kind`` output in ``folder``; the path of its array, for the workers."""
        axes = "zyx"[-len(self.spatial):]
        if kind in ("labels", "instances"):
            dtype = np.int32 if kind == "instances" else np.uint8 if self.seg.num_classes <= 256 else np.uint16
            create_zarr(folder, self.spatial, dtype, fmt, axes, self.chunks, name)
        else:
            create_zarr(folder, (self.seg.num_classes, *self.spatial), np.float32, fmt, "c" + axes,
                        (self.seg.num_classes, *self.chunks), name)
        return str(folder / "0") if fmt == "ome-zarr" else str(folder)

    def submit(self, client, paths: dict[str, str], progress) -> list[BlockReport]:
        """Run every block on the cluster (then, for instances, the merge and a relabelling pass); raise the
        first block's error (after cancelling the rest). Returns one report per block, in block order."""
        data = _checkpoint_bytes(self.seg)
        digest = hashlib.sha256(data).hexdigest()
        model = recomputable(client, data, f"napari-segnet-model-{digest}")
        total = len(self.blocks) * (2 if "instances" in paths else 1)
        futures = client.map(_predict_block, self.blocks, model=model, digest=digest,
                             source=str(self.source), channel_axis=self.channel_axis, norm=self.norm,
                             steps=self.steps, paths=paths, stacked=self.stacked, device=self.device,
                             max_context=self.max_context, width=self.spatial[-1], tta=self.tta, pure=False)
        reports, objects = zip(*_gather(client, futures, progress, 0, total))
        if "instances" in paths:
            offsets, table = merge_table(list(objects))
            shared = recomputable(client, table, f"napari-segnet-table-{hashlib.sha256(table).hexdigest()}")
            futures = client.map(_relabel_block, self.blocks, offsets, table=shared, path=paths["instances"],
                                 stacked=self.stacked, pure=False)
            _gather(client, futures, progress, len(self.blocks), total)
        return list(reports)


def recomputable(client, value, key: str):
    """A future of ``value`` that dask can make again: the result of a task that returns it, the value being
    part of the task (kept by the scheduler). Tasks that take it fetch it from a worker that holds it; if that
    worker dies, the scheduler reruns the task. ``key`` names it (the same key: the same task, sent once)."""
    with warnings.catch_warnings():  # a big model is a big task: "Sending large graph" says nothing to a user
        warnings.filterwarnings("ignore", message=".*large graph", category=UserWarning)
        return client.submit(_itself, value, key=key, pure=False)


def _itself(value):
    """(On a worker.) ``value`` as it came: the task behind :func:`recomputable`."""
    return value


def _gather(client, futures: list, progress, done: int, total: int) -> list:
    """The futures' results in their order, reporting ``progress(done + finished, total)`` as each finishes;
    on any error (or Ctrl-C) the unfinished ones are cancelled and the error raised."""
    from distributed import as_completed

    results = {}
    index = {f.key: i for i, f in enumerate(futures)}
    try:
        for future in as_completed(futures):
            results[index[future.key]] = future.result()
            if progress is not None:
                progress(done + len(results), total)
    except BaseException:
        _stop(client, futures)
        raise
    return [results[i] for i in range(len(futures))]


def _stop(client, futures: list, wait: float = 60.0) -> None:
    """Cancel ``futures`` and wait (at most ``wait`` s) until no worker still runs one: dask cannot stop a
    running task, and the temporary output it writes into must outlive it (after Ctrl-C a block that went on
    wrote into the removed folder, and its worker logged the FileNotFoundError with a traceback)."""
    keys = {f.key for f in futures}
    client.cancel(futures)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            running = client.run(_running_keys)
        except Exception:  # noqa: BLE001 - a cluster that is gone runs nothing
            return
        if not keys.intersection(*running.values()):
            return
        time.sleep(0.1)


def _running_keys(dask_worker) -> list:
    """(On a worker.) The keys of the tasks it is running, cancelled ones included."""
    return [ts.key for ts in dask_worker.state.tasks.values() if ts.state in ("executing", "long-running", "cancelled")]


def _checkpoint_bytes(seg) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return seg.save(Path(folder) / "model.safetensors").read_bytes()


def worker_segmenter(digest: str, data: bytes):
    """The Segmenter of checkpoint ``data``, loaded once per process (cached by its sha256 ``digest``)."""
    from .segmenter import Segmenter

    with _LOCK:
        if digest not in _CACHE:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "model.safetensors"
                path.write_bytes(data)
                _CACHE[digest] = Segmenter.load(path)
        return _CACHE[digest]


def _index(block: Region, stacked: bool) -> tuple[slice, ...]:
    """Where ``block`` lies in an output array: (planes,) rows, columns."""
    return ((slice(*block.planes),) if stacked else ()) + (slice(*block.rows), slice(*block.cols))


def _predict_block(block: Region, *, model: bytes, digest: str, source: str, channel_axis, norm, steps,
                   paths: dict[str, str], stacked: bool, device, max_context: int, width: int,
                   tta: bool = False) -> tuple[BlockReport, object]:
    """(On a worker.) Predict one block and write it into the output zarr arrays at ``paths`` (instances: the
    block's own component ids, see ``blockinstances``). Returns its report and, with instances, what
    ``block_objects`` found at its edges for the merge (else None)."""
    import torch
    import zarr
    from distributed import get_worker

    from .progress import run

    start = time.perf_counter()
    seg = worker_segmenter(digest, model)
    image = block_input(seg, read_image(source, lazy=True)[0], block, steps, channel_axis, max_context)
    result = run(seg.predict_steps(image, steps, device, channel_axis, want_proba="proba" in paths,
                                   max_context=max_context, norm_parameters=norm, region=block, tta=tta))
    index, objects = _index(block, stacked), None
    if "labels" in paths:
        zarr.open_array(paths["labels"], mode="r+")[index] = result.labels
    if "proba" in paths:
        zarr.open_array(paths["proba"], mode="r+")[(slice(None), *index)] = result.proba
    if "instances" in paths:
        local, objects = block_objects(result.labels.reshape(block.shape[1:]), block, width)
        zarr.open_array(paths["instances"], mode="r+")[index] = local.reshape(result.labels.shape)
    report = BlockReport(block, get_worker().address, time.perf_counter() - start, torch.get_num_threads(),
                         peak_rss_mb())
    return report, objects


def block_input(seg, image, block: Region, steps: tuple[int, int], channel_axis, max_context: int) -> WindowedArray:
    """``image`` with the input that ``block``'s tiles read (their windows with context, one plane) in memory:
    each chunk of it is decompressed once, not once per tile (and tile row) that reads it."""
    planes = ImagePlanes(image, seg.in_channels, channel_axis)
    spans = [explicit_plan(seg.net, n, min(step, n), max_context).input_span(bounds)
             for n, step, bounds in zip(planes.shape, steps, (block.rows, block.cols))]
    if seg.forest is not None:  # and what the forest's features read (forest_blend.py)
        spans = [(min(lo, max(b0 - FEATURE_MARGIN, 0)), max(hi, min(b1 + FEATURE_MARGIN, n)))
                 for (lo, hi), (b0, b1), n in zip(spans, (block.rows, block.cols), planes.shape)]
    return planes.windowed(block.planes[0], *spans).image


def _relabel_block(block: Region, offset: int, *, table: np.ndarray, path: str, stacked: bool) -> None:
    """(On a worker.) Replace one block's local instance ids by their final ids."""
    import zarr

    array = zarr.open_array(path, mode="r+")
    index = _index(block, stacked)
    array[index] = relabel(array[index], offset, table)
