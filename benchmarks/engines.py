"""Inference engines on this CPU: eager PyTorch (what napari-segnet runs), torch.compile and ONNX Runtime.

Per network and tile: the forward pass + argmax of the prepared network (``Segmenter._inference_net``: BatchNorm
folded, channels_last) over one (1, 1, T, T) tile, T = the tile the cost planner picks for a 512² and a 2048²
image. Engines: eager fp32; eager with bf16 autocast (the default where the CPU has AVX-512 BF16 / AMX);
``torch.compile`` (inductor) in fp32 and bf16, whose first call (compilation) is reported apart; ONNX Runtime
(CPU execution provider, graph optimisations on, intra-op threads = torch's) on a model exported from the same
weights. Columns: best-of-n ms per tile, speed-up over napari-segnet's engine, share of labels equal to eager
fp32's, first-call seconds. Every engine runs in a fresh subprocess (compile caches and thread pools apart); the
engines of one tile run interleaved, ``--rounds`` times (this VM's speed drifts by ±30 % between processes), and
the best round counts. Round 1 compiles with an empty inductor cache (its first call is the cold one reported);
later rounds reuse that cache, as a second session on the same machine would.

Run: python -m benchmarks.engines [--only NAME] [--repeats N] [--rounds N]
(ONNX rows need ``pip install onnx onnxruntime``)
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

ROOT = Path(__file__).resolve().parents[1]
CASES = [  # name, architecture, options
    ("U-Net default (d3, 8)", "default", {}),
    ("U-Net (d4, 32)", "unet", {"base_filters": 32, "depth": 4}),
    ("FCN-8s (width 1/8)", "fcn8s", {"width": 0.125}),
    ("FC-DenseNet56", "fc_densenet56", {}),
]
ENGINES = ("eager fp32", "eager bf16", "compile fp32", "compile bf16", "onnxruntime fp32")


def tile_for(seg, image_side: int) -> int:
    """The input side of the tiles the cost planner picks for an image_side² image (CPU)."""
    import torch

    from napari_segnet.inference.tiling import plan_tiles

    py, _ = plan_tiles(seg._inference_net(torch.device("cpu")), None, (image_side, image_side), torch.device("cpu"))
    return py.tile_in


def onnx_session(net, x):
    """An ONNX Runtime session of ``net`` exported for inputs shaped like ``x`` (1, C, T, T)."""
    import onnxruntime as ort
    import torch

    path = os.path.join(tempfile.mkdtemp(), "net.onnx")
    torch.onnx.export(net.to(memory_format=torch.contiguous_format), (x.contiguous(),), path, input_names=["x"],
                      output_names=["logits"], dynamo=True, external_data=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def engine_call(engine: str, net, x):
    """A function running ``engine`` on tile ``x`` and returning class ids (T', T') as a NumPy array."""
    import torch

    bf16 = engine.endswith("bf16")
    if engine.startswith("onnxruntime"):
        session, feed = onnx_session(net, x), x.contiguous().numpy()
        return lambda: session.run(None, {"x": feed})[0][0].argmax(0)
    model = torch.compile(net) if engine.startswith("compile") else net

    def run():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)  # the argmax as the engine takes it: over the class axis innermost (tiling.py)
            return logits.contiguous(memory_format=torch.channels_last).argmax(1)[0].numpy()
    return run


def one_run(spec: dict) -> dict:
    """Inside a subprocess: labels and timings of one engine on one network and tile."""
    import numpy as np
    import torch

    from napari_segnet.segmenter import Segmenter

    torch.manual_seed(0)
    seg = Segmenter.default() if spec["arch"] == "default" else Segmenter.create(spec["arch"], 1, 2, **spec["options"])
    net = seg._inference_net(torch.device("cpu"))
    side = tile_for(seg, spec["image"])
    image = np.random.default_rng(0).random((1, 1, side, side), dtype=np.float32)
    if spec["arch"] == "default":  # real structure for the trained model, so that labels mean something
        from napari_segnet.sample_data import nuclei  # the installed name of sample_data/

        plane = nuclei()[0][30].astype(np.float32)
        plane = np.pad(plane, [(0, max(0, side - s)) for s in plane.shape], mode="reflect")[:side, :side]
        image[0, 0] = (plane - plane.mean()) / plane.std()
    x = torch.from_numpy(image).contiguous(memory_format=torch.channels_last)
    t = time.perf_counter()
    run = engine_call(spec["engine"], net, x)
    labels = run()
    first = time.perf_counter() - t
    best = float("inf")
    for _ in range(spec["repeats"]):
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
    return {"tile": side, "ms": 1000 * best, "first_s": first, "labels": labels.astype(np.uint8).tobytes().hex()}


def spawn(spec: dict, cache: str) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    out = subprocess.run([sys.executable, "-m", __spec__.name, "--one", json.dumps(spec)], capture_output=True,
                         text=True, env=env, cwd=ROOT)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1][:120]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def best_of_rounds(rounds: int, spec: dict) -> dict[str, dict]:
    """{engine: result} with the fastest ms over ``rounds`` interleaved rounds and round 1's (cold) first call."""
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as cache:
        for _ in range(rounds):
            for engine in ENGINES:
                r = spawn({**spec, "engine": engine}, cache)
                if engine not in results or "error" in results[engine]:
                    results[engine] = r
                elif "error" not in r:
                    results[engine]["ms"] = min(results[engine]["ms"], r["ms"])
    return results


def agreement(a: dict, b: dict) -> float:
    return sum(p == q for p, q in zip(bytes.fromhex(a["labels"]), bytes.fromhex(b["labels"]))) / (len(a["labels"]) / 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--only", help="only networks whose name contains this")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(json.loads(args.one))))
        return
    import torch

    from napari_segnet.inference.devices import autocast_dtype

    ours = "eager bf16" if autocast_dtype(torch.device("cpu"), inference=True) == torch.bfloat16 else "eager fp32"
    print(f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; napari-segnet's "
          f"engine here: {ours}\n")
    print("| network | image → tile | engine | ms / tile | speed-up over ours | labels = eager fp32 | first call (s) |")
    print("|---|---|---|---|---|---|---|")
    for label, arch, options in CASES:
        if args.only and args.only not in label:
            continue
        for image in (512, 2048):
            results = best_of_rounds(args.rounds, {"arch": arch, "options": options, "image": image,
                                                   "repeats": args.repeats})
            for engine, r in results.items():
                if "error" in r:
                    print(f"| {label} | {image}² | {engine} | failed: {r['error']} | | | |", flush=True)
                    continue
                print(f"| {label} | {image}² → {r['tile']}² | {engine} | {r['ms']:.0f} | "
                      f"{results[ours]['ms'] / r['ms']:.2f}× | {100 * agreement(r, results['eager fp32']):.2f} % | "
                      f"{r['first_s']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
