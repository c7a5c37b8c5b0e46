"""Distributed prediction throughput: MP/s with 1 and 2 local dask workers (1 thread each) against one process.

The default model predicts a SIZE² uint16 zarr image in tiles of TILE px, on a LocalCluster of N worker
processes with one thread each (dask sets OMP_NUM_THREADS=1 in its workers; the report checks torch's thread
count), blocks of BLOCK px. A warm-up run on a small image first makes every worker load torch and the model,
so the timings are steady-state prediction (cluster start-up is printed apart). The baseline is
``Segmenter.predict`` on the same image in a fresh process with one thread, and with two. Each worker count runs
REPEAT times, interleaved (1, 2, 1, 2, …: this VM's speed drifts by up to ±15 % between minutes), and the median
run is reported. Memory: the peak RSS (VmHWM) of each worker process (from the block reports) and of the
baseline process.

Run: python -m benchmarks.distributed_predict [--size 8192] [--tile 512] [--block 2048] [--workers 1 2] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_image(path: Path, size: int) -> None:
    from scipy import ndimage

    from napari_segnet.io.imagefiles import write_array

    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.random((size, size), dtype=np.float32), 3) * 40000
    write_array(path, image.astype(np.uint16), "zarr", "yx")


def baseline(path: str, tile: int) -> dict:
    """In a fresh process: one whole-image Segmenter.predict (after a small warm-up)."""
    import torch

    from napari_segnet.inference.devices import peak_rss_mb
    from napari_segnet.io.imagefiles import read_image
    from napari_segnet.segmenter import Segmenter

    seg = Segmenter.default()
    image, _ = read_image(path)
    seg.predict(np.zeros((256, 256), np.uint16), tile_shape=tile)
    start = time.perf_counter()
    seg.predict(image, tile_shape=tile)
    return {"seconds": time.perf_counter() - start, "threads": torch.get_num_threads(),
            "peak_rss_mb": peak_rss_mb()}


def run_baseline(path: Path, tile: int, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-m", __spec__.name, "--baseline", str(path), "--tile", str(tile)],
                         env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_cluster(path: Path, folder: Path, workers: int, tile: int, block: int) -> dict:
    """Start a LocalCluster, warm it up, time one distributed prediction; the measurements."""
    import logging

    from distributed import Client, LocalCluster

    from napari_segnet.distributed import local_cluster, predict_distributed
    from napari_segnet.segmenter import Segmenter

    seg = Segmenter.default()
    start = time.perf_counter()
    if os.environ.get("BENCH_DASK_MALLOC") == "dask":  # dask's own worker environment, for comparison
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
    else:
        cluster = local_cluster(workers)
    with cluster, Client(cluster) as client:
        startup = time.perf_counter() - start
        make_image(folder / "warm.zarr", 256 * workers)
        predict_distributed(seg, folder / "warm.zarr", folder / f"warm{workers}.zarr", client=client,
                            tile_shape=tile, block=256)
        start = time.perf_counter()
        reports = predict_distributed(seg, path, folder / f"out{workers}.zarr", client=client, tile_shape=tile,
                                      block=block)
        seconds = time.perf_counter() - start
    per_worker = {}
    for r in reports:
        per_worker[r.worker] = max(per_worker.get(r.worker, 0), r.peak_rss_mb)
    return {"workers": workers, "seconds": seconds, "startup": startup, "blocks": len(reports),
            "threads": sorted({r.torch_threads for r in reports}), "peak_rss_mb": sorted(per_worker.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--block", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per worker count (median reported)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--baseline", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        print(json.dumps(baseline(args.baseline, args.tile)))
        return
    mp = args.size**2 / 1e6
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; image {args.size}² uint16 "
          f"({mp:.1f} MP), tile {args.tile}, block {args.block}; default model")
    print("| run | threads | seconds | MP/s | peak RSS per process (MB) | cluster start-up (s) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        make_image(folder / "image.zarr", args.size)
        for threads in (1, 2):
            b = run_baseline(folder / "image.zarr", args.tile, threads)
            print(f"| one process, Segmenter.predict | {b['threads']} | {b['seconds']:.1f} | "
                  f"{mp / b['seconds']:.2f} | {b['peak_rss_mb']:.0f} | – |", flush=True)
        runs: dict[int, list[dict]] = {n: [] for n in args.workers}
        for _ in range(args.repeat):  # interleaved, so the VM's speed drift touches every worker count alike
            for n in args.workers:
                runs[n].append(run_cluster(folder / "image.zarr", folder, n, args.tile, args.block))
        rates = {}
        for n, rs in runs.items():
            r = sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2]  # the median run
            rates[n] = mp / r["seconds"]
            print(f"| {n} worker{'s' * (n > 1)} × 1 thread, {r['blocks']} blocks | {r['threads']} | "
                  f"{r['seconds']:.1f} | {rates[n]:.2f} | {', '.join(f'{m:.0f}' for m in r['peak_rss_mb'])} | "
                  f"{r['startup']:.1f} |", flush=True)
    if 1 in rates and 2 in rates:
        pairs = ", ".join(f"{a['seconds'] / (2 * b['seconds']):.2f}" for a, b in zip(runs[1], runs[2]))
        print(f"\nscaling 1 → 2 workers (median of {args.repeat} runs each): {rates[2] / rates[1]:.2f}× "
              f"(linear: 2×; ratio to linear {rates[2] / (2 * rates[1]):.2f}); ratio in each repetition: {pairs}")


if __name__ == "__main__":
    main()
