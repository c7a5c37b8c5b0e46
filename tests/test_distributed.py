"""Block-wise prediction on a dask LocalCluster (2 workers, 1 thread each) equals Segmenter.predict on the whole
image; instance ids merge across block borders; a scheduler that does not answer fails fast."""

import contextlib
import os
import socket
import threading
import time

import numpy as np
import pytest
import tifffile
import torch
from cli_helpers import one_thread  # noqa: F401
from conftest import CountingArray, smooth_image, tiny_segmenter
from scipy import ndimage

from napari_segnet.distributed import block_input, close, connect, plan_blocks, predict_distributed
from napari_segnet.inference.blockinstances import block_objects, merge_table, relabel
from napari_segnet.inference.tile_plan import DEFAULT_MAX_CONTEXT
from napari_segnet.io.imagefiles import read_image, write_array
from napari_segnet.numerics.images import ImagePlanes
from napari_segnet.numerics.instances import label_instances

distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")


@pytest.fixture(scope="module")
def client():
    c = connect("local:2")  # what --cluster local:2 starts
    yield c
    close(c)


def test_local_workers_keep_glibc_from_mmapping_every_activation(client):
    """dask's MALLOC_TRIM_THRESHOLD_ alone made every activation a fresh mmap (blocks 1.3–1.8× slower)."""
    envs = client.run(lambda: (os.environ.get("MALLOC_MMAP_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS")))
    assert len(envs) == 2 and set(envs.values()) == {(str(32 * 2**20), "1")}


def test_local_workers_run_without_the_statistical_profiler_and_with_a_slow_tick(client):
    """No dashboard, so nobody reads the profile (2 % of a worker's CPU) nor the 20 ms tick (the event loops'
    CPU fell 3×): the running servers — workers and the scheduler in this process — use the quiet settings."""
    import dask

    assert set(client.run(lambda: dask.config.get("distributed.worker.profile.enabled")).values()) == {False}
    assert set(client.run(lambda dask_worker: dask_worker._tick_interval).values()) == {1.0}
    assert client.run_on_scheduler(lambda dask_scheduler: dask_scheduler._tick_interval) == 1.0
    assert set(client.run(lambda: dask.config.get("distributed.admin.system-monitor.interval")).values()) == {"2s"}


@pytest.mark.usefixtures("one_thread")
def test_a_blocks_tiles_read_only_its_window_and_predict_as_from_the_whole_image():
    seg = sharp(tiny_segmenter(padding="valid", batch_norm=False))
    image = smooth_image((150, 133))
    whole = seg.predict(image, tile_shape=24)
    assert 0.05 < (whole == 1).mean() < 0.95
    steps, norm = (24, 24), seg.normalization.parameters(ImagePlanes(image, 1))  # as the client computes it
    for block in plan_blocks(1, image.shape, steps, 48):
        source = CountingArray(image)
        window = block_input(seg, source, block, steps, None, DEFAULT_MAX_CONTEXT)
        region = seg.predict_steps(window, steps, region=block, norm_parameters=norm)
        result = [u for u in region if hasattr(u, "labels")][-1]
        assert source.reads == 1, block  # every tile read came from the window
        np.testing.assert_array_equal(result.labels.reshape(block.shape[1:]), whole[slice(*block.rows),
                                                                                   slice(*block.cols)])


def sharp(seg):
    """The tiny net's head scaled up so that its labels vary across the image (a non-trivial comparison)."""
    with torch.no_grad():
        seg.net.head.bias.zero_()
        seg.net.head.weight.mul_(50)
    return seg


@pytest.mark.usefixtures("one_thread")
def test_a_version_with_a_pixel_forest_predicts_on_the_cluster_as_in_one_pass(client, tmp_path):
    from napari_segnet.inference.forest_blend import ForestBlend
    from napari_segnet.numerics.normalization import Normalization
    from napari_segnet.numerics.pixel_features import pixel_features
    from napari_segnet.progress import run
    from napari_segnet.training.pixel_forest import PixelForest

    seg = sharp(tiny_segmenter(padding="valid", batch_norm=False))
    image = smooth_image((150, 133))
    normalised = Normalization.apply(image[None].astype(np.float32), *seg.normalization.parameters(
        ImagePlanes(image, 1)))
    truth = np.digitize(ndimage.gaussian_filter(normalised[0], 3), [0.4, 0.6]).astype(np.uint8)
    forest = PixelForest([pixel_features(normalised)], [truth], [np.ones(truth.shape, bool)], 3)
    seg.forest = ForestBlend(forest.ensemble(), 0.75)
    write_array(tmp_path / "in.zarr", image, "zarr", "yx")
    predict_distributed(seg, tmp_path / "in.zarr", tmp_path / "labels.zarr", client=client, tile_shape=24, block=48)
    whole = seg.predict(image, tile_shape=24)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "labels.zarr"), mode="r"), whole)
    assert (run(seg.predict_steps(image, 24, network_only=True)).labels != whole).mean() > 0.05


@pytest.mark.usefixtures("one_thread")
def test_valid_unet_blocks_equal_whole_image(client, tmp_path):
    seg = sharp(tiny_segmenter(padding="valid", batch_norm=False))
    image = smooth_image((150, 133))
    write_array(tmp_path / "in.zarr", image, "zarr", "yx")
    reports = predict_distributed(seg, tmp_path / "in.zarr", tmp_path / "labels.zarr", client=client, tile_shape=24,
                                  block=48, proba_output=tmp_path / "proba.zarr")
    labels = np.asarray(zarr.open_array(str(tmp_path / "labels.zarr"), mode="r"))
    whole = seg.predict(image, tile_shape=24)
    assert len(reports) == 4 * 3 and {r.worker for r in reports} == set(client.scheduler_info()["workers"])
    assert len({(r.block.rows, r.block.cols) for r in reports}) == 12  # one report per block, each its own
    assert all(r.seconds > 0 and r.torch_threads >= 1 and r.peak_rss_mb > 0 for r in reports)
    assert 0.05 < (whole == 1).mean() < 0.95
    np.testing.assert_array_equal(labels, whole)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "proba.zarr"), mode="r"),
                                  seg.predict_proba(image, tile_shape=24))
    predict_distributed(seg, tmp_path / "in.zarr", tmp_path / "tta.zarr", client=client, tile_shape=24, block=48,
                        tta=True)  # every tile averaged over its 8 flips and rotations, as in a whole-image pass
    tta = np.asarray(zarr.open_array(str(tmp_path / "tta.zarr"), mode="r"))
    np.testing.assert_array_equal(tta, seg.predict(image, tile_shape=24, tta=True))
    assert (tta != whole).any()


@pytest.mark.usefixtures("one_thread")
def test_padded_unet_stack_from_lazy_tiff_equals_whole_image(client, tmp_path):
    seg = tiny_segmenter()  # 'same' padding, BatchNorm; its receptive field makes tiles blend
    stack = smooth_image((2, 70, 90))
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    done = []
    predict_distributed(seg, tmp_path / "stack.tif", tmp_path / "s.ome.zarr", client=client, fmt="ome-zarr",
                        tile_shape=32, block=40, proba_output=tmp_path / "p.zarr",
                        progress=lambda d, t: done.append((d, t)))
    labels, axis = read_image(tmp_path / "s.ome.zarr")
    assert axis is None and labels.shape == stack.shape
    np.testing.assert_array_equal(np.asarray(labels), seg.predict(stack, tile_shape=32))
    (proba, c_axis), whole = read_image(tmp_path / "p.zarr"), seg.predict_proba(stack, 32)
    assert c_axis == 0 and proba.shape == (3, 2, 70, 90) and np.ptp(whole[1]) > 5e-4  # varies
    np.testing.assert_array_equal(np.asarray(proba), whole)
    assert done[-1] == (2 * 3 * 3, 2 * 3 * 3)  # 2 planes × 3 × 3 blocks of 32 px


@pytest.mark.usefixtures("one_thread")
def test_instances_across_block_borders_equal_whole_image_components(client, tmp_path):
    seg = sharp(tiny_segmenter(padding="valid", batch_norm=False))
    image = smooth_image((2, 100, 90), seed=3)
    zarr_path = tmp_path / "in.zarr"
    write_array(zarr_path, image, "zarr", "zyx")
    predict_distributed(seg, zarr_path, tmp_path / "l.zarr", instances_output=tmp_path / "i.zarr", client=client,
                        tile_shape=16, block=32)
    labels = np.asarray(zarr.open_array(str(tmp_path / "l.zarr"), mode="r"))
    ids = np.asarray(zarr.open_array(str(tmp_path / "i.zarr"), mode="r"))
    expected = label_instances(labels, split=False, grow=0)
    assert ids.dtype == np.int32 and expected.max() >= 100
    np.testing.assert_array_equal(ids, expected)  # id for id, so objects cut by a block border are one object


def test_merge_joins_an_object_cut_into_four_blocks_and_keeps_touching_classes_apart():
    labels = np.zeros((8, 8), np.uint8)
    labels[2:6, 2:6] = 1  # one square across all four 4×4 blocks
    labels[0, 3:5] = 2  # a class-2 bar touching the square's top face, across the vertical border
    labels[7, 7] = 1  # a 1-pixel speck
    blocks = plan_blocks(1, (8, 8), (4, 4), 4)
    summaries, locals_ = [], []
    for b in blocks:
        local, summary = block_objects(labels[slice(*b.rows), slice(*b.cols)], b, 8)
        summaries.append(summary)
        locals_.append(local)
    assert [len(s.classes) for s in summaries] == [2, 2, 1, 2]
    offsets, table = merge_table(summaries, min_size=2)
    out = np.zeros_like(labels, np.int32)
    for b, local, offset in zip(blocks, locals_, offsets):
        out[slice(*b.rows), slice(*b.cols)] = relabel(local, offset, table)
    # class 1 first (the square, 16 px: id 1; the speck removed by min_size=2), then the class-2 bar (id 2)
    assert (out[2:6, 2:6] == 1).all() and (out[0, 3:5] == 2).all() and out[7, 7] == 0 and out.max() == 2


def test_unanswering_scheduler_fails_within_timeout():
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match="no dask scheduler answered at tcp://127.0.0.1:9"):
        connect("tcp://127.0.0.1:9", timeout=2)
    assert time.perf_counter() - start < 15


@contextlib.contextmanager
def fake_scheduler(answer: bytes, lifetime: float = 30):
    """A TCP server on 127.0.0.1 that accepts connections and sends ``answer`` (b"": never answers); it stops
    itself after ``lifetime`` seconds, or when the block ends. Yields its address."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop, held = threading.Event(), []

    def serve():
        end = time.monotonic() + lifetime
        while not stop.is_set() and time.monotonic() < end:
            with contextlib.suppress(OSError):
                conn, _ = server.accept()
                held.append(conn)
                conn.sendall(answer)
        for conn in held:
            conn.close()
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()


def test_a_scheduler_that_accepts_and_never_answers_fails_within_the_timeout():
    """dask bounds the connection but not its handshake: --timeout 3 took 90 s."""
    with fake_scheduler(b"") as address:
        start = time.perf_counter()
        with pytest.raises(ConnectionError, match=f"no dask scheduler answered at {address} within 2 s"):
            connect(address, timeout=2)
        assert time.perf_counter() - start < 4


@pytest.mark.parametrize("answer", [b"\xff" * 64, b"HTTP/1.1 400 Bad Request\r\n\r\n", b"\x00" * 7])
def test_a_server_that_answers_garbage_is_named_not_a_scheduler(answer):
    """A frame count of 0xffff… made numpy try to allocate 3 EiB; now one clear message."""
    with fake_scheduler(answer) as address:
        start = time.perf_counter()
        with pytest.raises(ConnectionError, match=f"{address} (answered, but not as a dask scheduler|.*within 2 s)"):
            connect(address, timeout=2)
        assert time.perf_counter() - start < 4


@pytest.mark.parametrize("spec, message", [("local:0", "positive number"), ("local:x", "positive number")])
def test_bad_cluster_spec(spec, message):
    with pytest.raises(ValueError, match=message):
        connect(spec)


def test_instances_need_labels(tmp_path):
    with pytest.raises(ValueError, match="give an output for them too"):
        predict_distributed(tiny_segmenter(), tmp_path / "x.zarr", None, cluster="local:1",
                            instances_output=tmp_path / "i.zarr")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux's VmHWM")
def test_worker_peak_memory_is_its_own_not_its_parents():
    """Linux carries ru_maxrss over fork + exec: a worker started by a process that once held 1 GiB reported
    1 GiB. peak_rss_mb reads VmHWM, which exec resets."""
    import subprocess
    import sys

    child = ("import resource; from napari_segnet.inference.devices import peak_rss_mb; "
             "print(peak_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    parent = (f"import numpy as np, subprocess, sys; a = np.ones(2**27); "  # 1 GiB, touched
              f"print(subprocess.run([sys.executable, '-c', {child!r}], capture_output=True, text=True, "
              f"check=True).stdout)")
    out = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, check=True).stdout
    own, inherited = map(float, out.split())
    assert inherited > 1024 and own < 900


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_a_worker_killed_mid_run_is_replaced_and_the_result_is_whole(tmp_path):
    """Every task input can be recomputed (the model's bytes are a task, not scattered data): when the only worker
    is killed after its first block, its nanny starts a new one, dask reruns the lost tasks there, and the labels
    equal Segmenter.predict's. With client.scatter the model was lost with the worker ('already forgotten')."""
    import signal

    seg = sharp(tiny_segmenter(padding="valid", batch_norm=False))
    image = smooth_image((150, 133))
    write_array(tmp_path / "in.zarr", image, "zarr", "yx")
    c = connect("local:1")
    try:
        (pid,) = c.run(os.getpid).values()
        killed = []

        def kill_once(done, total):
            if not killed:
                os.kill(pid, signal.SIGKILL)
                killed.append(done)

        reports = predict_distributed(seg, tmp_path / "in.zarr", tmp_path / "labels.zarr", client=c, tile_shape=24,
                                      block=48, progress=kill_once)
        (new_pid,) = c.run(os.getpid).values()
    finally:
        close(c)
    assert killed == [1] and new_pid != pid and len(reports) == 12
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "labels.zarr"), mode="r"),
                                  seg.predict(image, tile_shape=24))
