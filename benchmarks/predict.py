"""Prediction throughput, compute efficiency and peak memory: napari-segnet next to MONAI and a naive forward.

Per network × image size: ms per image, megapixels/s, achieved GFLOP/s (FLOPs of the tiles actually run, from
torch's FlopCounterMode on the meta device) and its share of a torch matmul's GFLOP/s measured in the same run;
the compute efficiency (FLOPs of one forward pass over an input of the image's size / FLOPs run); the time
ratio to MONAI's ``sliding_window_inference`` run as its users run it (roi 512, overlap 0.25, reflect padding,
argmax) and with our tile and context; the gain over a naive eager fp32 forward of the same network (the
unfolded net, contiguous memory, no autocast; over 512² inputs for images beyond 2048²); peak RSS added.
Every measurement runs in a fresh subprocess (peak memory is its own); engines are interleaved.

Run: python -m benchmarks.predict [--quick] [--device cuda]     (MONAI columns need ``pip install monai``)
The rows go into ``benchmarks/results/predict_<device>.json`` (``--out`` elsewhere); docs/benchmarks.md's table
and the README's headline are generated from it (``python -m benchmarks.tables``).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from . import records

ROOT = Path(__file__).resolve().parents[1]
CASES = [  # name, architecture, options, sizes
    ("U-Net default (d3, 8)", "unet", {"base_filters": 8, "depth": 3}, (512, 2048, 8192)),
    ("U-Net (d4, 32)", "unet", {"base_filters": 32, "depth": 4}, (512, 2048)),
    ("FCN-8s (width 1/8)", "fcn8s", {"width": 0.125}, (512, 2048)),
    ("FC-DenseNet56", "fc_densenet56", {}, (512, 2048)),
]
ENGINES = ("napari-segnet", "monai", "monai-ours", "naive")


def meta_flops(net, size: tuple[int, int]) -> int:
    """FLOPs of one forward pass of ``net`` over an input of ``size``, counted on the meta device (no compute)."""
    import copy

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    meta = copy.deepcopy(net).to("meta").eval()
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        meta(torch.zeros(1, net.in_channels, *size, device="meta"))
    return counter.get_total_flops()


def runner(spec: dict, seg, image, device):
    """(function running one prediction, FLOPs it runs, tile description) for ``spec['engine']``."""
    import numpy as np
    import torch

    from napari_segnet.inference.tiling import plan_tiles

    size, engine = spec["size"], spec["engine"]
    py, px = plan_tiles(seg._inference_net(device), None, (size, size), device)
    ours = meta_flops(seg.net, (py.tile_in, px.tile_in)) * len(py.starts) * len(px.starts)
    if engine == "napari-segnet":
        tiles = f"{py.tile_in}×{px.tile_in} ×{len(py.starts) * len(px.starts)}"
        return (lambda: seg.predict(image, device=device)), ours, tiles
    if engine == "naive":
        side = min(size, 2048)
        net = seg.net.to(device).eval()
        x = torch.rand(1, 1, side, side, device=device)

        def naive():
            with torch.inference_mode():
                for _ in range((size // side) ** 2):
                    net(x).argmax(1).cpu()
        return naive, meta_flops(seg.net, (side, side)) * (size // side) ** 2, f"{side}² eager"
    from monai.inferers import sliding_window_inference

    roi, overlap = (512, 0.25) if engine == "monai" else (py.tile_in, 1 - py.step / py.tile_in)
    roi = min(roi, seg.net.valid_size(size))
    net = seg._inference_net(device)

    def monai():
        offset, hi = np.percentile(image[::4, ::4], [1, 99.8])
        tensor = torch.from_numpy(((image - offset) / (hi - offset)).astype(np.float32))[None, None].to(device)
        with torch.inference_mode():
            out = sliding_window_inference(tensor, (roi, roi), 1, net, overlap=overlap, mode="constant",
                                           padding_mode="reflect")
        return out[0].argmax(0).cpu().numpy().astype(np.uint8)
    n = max(1, int(np.ceil((size - roi) / (roi * (1 - overlap))) + 1)) ** 2 if size > roi else 1
    return monai, meta_flops(seg.net, (roi, roi)) * n, f"{roi}² ov {overlap:.2f}"


def one_run(spec: dict) -> dict:
    """Inside a subprocess: build the net, make the image, time one prediction after a warm-up."""
    import numpy as np
    import psutil
    import torch

    from napari_segnet.inference.devices import peak_rss_mb, pick_device
    from napari_segnet.segmenter import Segmenter

    torch.manual_seed(0)
    device = pick_device(spec["device"])
    seg = Segmenter.default() if spec["arch"] == "default" else Segmenter.create(spec["arch"], 1, 2, **spec["options"])
    size = spec["size"]
    image = np.random.default_rng(0).integers(0, 4000, (size, size)).astype(np.uint16)
    run, flops, tiles = runner(spec, seg, image, device)
    if spec["warmup"]:
        run()
    base = psutil.Process().memory_info().rss / 2**20
    seconds = float("inf")
    for _ in range(spec["repeats"]):  # best of n: this shared machine's speed varies from run to run
        t = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = min(seconds, time.perf_counter() - t)
    one_pass = meta_flops(seg.net, (seg.net.valid_size(size),) * 2) * (size / seg.net.valid_size(size)) ** 2
    gpu_mb = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else 0
    return {"seconds": seconds, "gflops": flops / seconds / 1e9, "efficiency": one_pass / flops, "tiles": tiles,
            "peak_mb": peak_rss_mb() - base, "gpu_mb": gpu_mb, "input_mb": image.nbytes / 2**20}


def matmul_gflops(device: str) -> float:
    import torch

    a, b = torch.randn(2048, 2048, device=device), torch.randn(2048, 2048, device=device)
    a @ b
    t = time.perf_counter()
    for _ in range(5):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 5 * 2 * 2048**3 / (time.perf_counter() - t) / 1e9


def spawn(spec: dict) -> dict:
    out = subprocess.run([sys.executable, "-m", __spec__.name, "--one", json.dumps(spec)], capture_output=True,
                         text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def row(label: str, size: int, engine: str, r: dict, matmul: float, ours: dict | None) -> dict:
    """One stored row: the measurement ``r`` of ``engine`` and its time ÷ ours (None for ours)."""
    ratio = round(r["seconds"] / ours["seconds"], 2) if ours and engine != "napari-segnet" else None
    return {"network": label, "size": size, "engine": engine, "tiles": r["tiles"],
            "ms": round(1000 * r["seconds"], 1), "mp_per_s": round(size * size / r["seconds"] / 1e6, 2),
            "gflops": round(r["gflops"], 1), "of_matmul": round(r["gflops"] / matmul, 3),
            "efficiency": round(r["efficiency"], 2), "time_over_ours": ratio, "peak_mb": round(r["peak_mb"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="only 512² images")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", help="only networks whose name contains this")
    parser.add_argument("--out", type=Path, help="the record (default benchmarks/results/predict_<device>.json)")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(json.loads(args.one))))
        return
    import torch

    try:
        import monai  # noqa: F401
        engines = ENGINES
    except ImportError:
        engines = ("napari-segnet", "naive")
    matmul = matmul_gflops(args.device)
    print(f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, {args.device}; "
          f"torch matmul: {matmul:.0f} GFLOP/s")
    rows = []
    for label, arch, options, sizes in CASES:
        if args.only and args.only not in label:
            continue
        arch = "default" if label.startswith("U-Net default") else arch
        for size in (512,) if args.quick else sizes:
            ours = None
            for engine in engines if size <= 2048 else ("napari-segnet", "naive"):
                spec = {"arch": arch, "options": options, "size": size, "engine": engine, "device": args.device,
                        "warmup": size <= 512, "repeats": 3 if size <= 512 else 1}
                r = spawn(spec)
                ours = r if engine == "napari-segnet" else ours
                rows.append(row(label, size, engine, r, matmul, ours))
                print(rows[-1], flush=True)
    record = {"benchmark": "predict", "device": args.device, "matmul_gflops": round(matmul), "quick": args.quick,
              "rows": rows}
    print(f"wrote {records.write(f'predict_{args.device}', record, args.out)}")


if __name__ == "__main__":
    main()
