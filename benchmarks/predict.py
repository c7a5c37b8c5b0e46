"""Prediction throughput and peak memory: napari-segnet's overlap-tile engine next to MONAI's sliding window.

For each network × image size (× device): ms per image, megapixels/s, achieved GFLOP/s (FLOPs of the tiles
actually run, counted by torch's FlopCounterMode) next to a torch matmul's GFLOP/s measured in the same run,
and the peak RSS each run adds. The peer is ``monai.inferers.sliding_window_inference`` with the same network,
tile (roi) size and overlap, reflect padding, and argmax on its output (pip install monai).
Every measurement runs in a fresh subprocess so that peak memory is its own.

Run: python benchmarks/predict.py [--quick] [--big]   (--big adds the 8192² uint16 memory check)
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

CASES = [  # name, architecture, options
    ("U-Net small (d3, 8)", "unet", {"base_filters": 8, "depth": 3}),
    ("U-Net (d4, 32)", "unet", {"base_filters": 32, "depth": 4}),
    ("U-Net paper (valid)", "unet_paper", {}),
    ("FCN-8s (width 1/8)", "fcn8s", {"width": 0.125}),
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def one_run(spec: dict) -> dict:
    """Inside a subprocess: build the net, make the image, time one prediction after a warm-up."""
    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from napari_segnet.segmenter import Segmenter
    from napari_segnet.tiling import plan_axis

    torch.manual_seed(0)
    seg = Segmenter.create(spec["arch"], 1, 2, **spec["options"])
    size, step = spec["size"], spec["tile"]
    image = np.random.default_rng(0).integers(0, 4000, (size, size)).astype(np.uint16)
    plan = plan_axis(seg.net, size, step)
    n_tiles = len(plan.starts) ** 2
    x = torch.zeros(1, 1, plan.tile_in, plan.tile_in)
    seg.net.eval()
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        seg.net(x)
    flops = counter.get_total_flops() * n_tiles
    if spec["engine"] == "monai":
        from monai.inferers import sliding_window_inference

        def run():
            offset, hi = np.percentile(image[::4, ::4], [1, 99.8])
            tensor = torch.from_numpy(((image - offset) / (hi - offset)).astype(np.float32))[None, None]
            net = seg.net.to(memory_format=torch.channels_last).eval()
            with torch.inference_mode():
                out = sliding_window_inference(
                    tensor, (plan.tile_in,) * 2, 1, net, overlap=1 - plan.step / plan.tile_in,
                    mode="constant", padding_mode="reflect")
            return out[0].argmax(0).numpy().astype(np.uint8)
    else:
        def run():
            return seg.predict(image, tile_shape=step)
    if spec["warmup"]:
        run()
    base = current_rss_mb()
    seconds = float("inf")
    for _ in range(spec["repeats"]):  # best of n: this shared machine's speed varies from run to run
        t = time.perf_counter()
        run()
        seconds = min(seconds, time.perf_counter() - t)
    return {"seconds": seconds, "gflops": flops / seconds / 1e9, "peak_mb": peak_rss_mb() - base,
            "input_mb": image.nbytes / 2**20, "tile_in": plan.tile_in, "tiles": n_tiles}


def matmul_gflops() -> float:
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    t = time.perf_counter()
    for _ in range(5):
        a @ b
    return 5 * 2 * 2048**3 / (time.perf_counter() - t) / 1e9


def spawn(spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="only 512² images")
    parser.add_argument("--big", action="store_true", help="add the 8192² uint16 memory check")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(json.loads(args.one))))
        return
    import torch

    try:
        import monai  # noqa: F401
        engines = ("napari-segnet", "monai")
    except ImportError:
        engines = ("napari-segnet",)
    print(f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, CPU; "
          f"torch matmul: {matmul_gflops():.0f} GFLOP/s\n")
    print("| network | image | tile (in) | engine | ms / image | MP/s | GFLOP/s | peak RSS added (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    sizes = (512,) if args.quick else (512, 2048)
    for label, arch, options in CASES:
        for size in sizes:
            for engine in engines:
                spec = {"arch": arch, "options": options, "size": size, "tile": 512, "engine": engine,
                        "warmup": size <= 512, "repeats": 3 if size <= 512 else 1}
                r = spawn(spec)
                print(f"| {label} | {size}² | {r['tile_in']}² ×{r['tiles']} | {engine} | {1000 * r['seconds']:.0f} "
                      f"| {size * size / r['seconds'] / 1e6:.2f} | {r['gflops']:.0f} | {r['peak_mb']:.0f} |",
                      flush=True)
    if args.big:
        r = spawn({"arch": "unet", "options": {"base_filters": 8, "depth": 3}, "size": 8192, "tile": 1024,
                   "engine": "napari-segnet", "warmup": False, "repeats": 1})
        print(f"\n8192² uint16 ({r['input_mb']:.0f} MB input), U-Net small, 1024-px tiles: "
              f"{r['seconds']:.1f} s, peak RSS added during prediction {r['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
