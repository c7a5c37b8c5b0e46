"""Live mode, simulated: a user paints a stroke every 2 s while the model learns in bursts.

Working image: a 512² mosaic of 4 training slices of the nuclei sample (the hitl.py working set); the model
starts from scratch (U-Net, depth 3, 8 filters, seeded), so most objects are predicted wrongly. Every 2 s the
simulated user paints one stroke: the true labels on a 2-px band along the true boundary of the next wrongly
predicted nucleus (largest first). A worker thread drives ``LiveSession.steps`` exactly as the dock does (the
visible field of view is the whole image). Measured: the latency from a stroke to the first refreshed prediction
made by a kept burst that included it; nucleus IoU and object F1 (IoU 0.5) on the working image and on the 6
held-out slices after 30, 60 and 120 s, against pressing Fine-tune once at that moment on the same strokes
(the dock's defaults: 150 steps, lr 1e-3).

Run: python -m benchmarks.live [--seconds 120] [--burst-steps 10] [--lr 1e-3] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import threading
import time

import numpy as np
import torch

from napari_segnet.inference.devices import describe, pick_device
from napari_segnet.live import BurstDone, LiveSession, LiveSettings, Refreshed, Waiting
from napari_segnet.numerics.instances import label_instances
from napari_segnet.numerics.metrics import object_scores, segmentation_scores
from napari_segnet.segmenter import Segmenter

from .simulated_user import boundary_strokes

CHECKPOINTS = (30, 60, 120)
#: loss and distill pinned (as measured): a created model would otherwise take its new-model recommendation
FINETUNE = {"steps": 150, "lr": 1e-3, "batch_size": 4, "patch_size": 96, "loss": "border_ce", "distill": 0.0}


def data():
    """(512² working image, its truth, held-out slices, their truths)."""
    from napari_segnet.sample_data import HELD_OUT, TRAIN, nuclei

    stack, truth = nuclei()
    a, b, c, d = TRAIN[6:26:5]  # the hitl.py working set
    image = np.block([[stack[a], stack[b]], [stack[c], stack[d]]])
    labels = np.block([[truth[a], truth[b]], [truth[c], truth[d]]]).astype(np.uint8)
    return image, labels, stack[list(HELD_OUT)], truth[list(HELD_OUT)].astype(np.uint8)


def scores(seg: Segmenter, image, truth, held, held_truth) -> tuple[float, float, float, float]:
    """(IoU working, object F1 working, IoU held-out, object F1 held-out)."""
    out = []
    for ims, lbs in (([image], [truth]), (list(held), list(held_truth))):
        preds = np.stack([seg.predict(im) for im in ims])
        iou = float(segmentation_scores(preds, np.stack(lbs), 2)["iu"][1])
        f1 = object_scores(label_instances(preds), np.stack(lbs), (0.5,), true_is_semantic=True)[0].f1
        out += [iou, float(f1)]
    return tuple(out)


def simulate(start: Segmenter, image, truth, bands, settings: LiveSettings, seconds: float):
    """Paint a band every 2 s for ``seconds`` while a worker runs the session; returns (events, snapshots)."""
    session = LiveSession(start, settings)
    session.add_plane("w", image, start.predict(image))
    session.view = ("w", (slice(None), slice(None)))
    events: list[tuple[float, object]] = []

    def work():
        for item in session.steps():
            if isinstance(item, Waiting):
                time.sleep(0.05)
            elif isinstance(item, BurstDone | Refreshed):
                events.append((time.perf_counter(), item))

    worker = threading.Thread(target=work)
    t0 = time.perf_counter()
    worker.start()
    painted, snapshots, k = [], {}, 0
    for c in CHECKPOINTS:
        if c > seconds:
            break
        while time.perf_counter() - t0 < c:
            due = t0 + 2 * k
            if k < len(bands) and time.perf_counter() >= due:
                session.paint("w", bands[k], truth)
                painted.append(time.perf_counter())
                k += 1
            time.sleep(0.02)
        with session._model_lock:
            snapshots[c] = (session.model.weights(), k)
    session.finish()
    worker.join()
    return painted, events, snapshots, t0


def latencies(painted: list[float], events) -> list[float]:
    """Seconds from each stroke to the first refresh after a kept burst that included it (None: never)."""
    out, kept_strokes = [], 0
    refreshes = []
    for t, item in events:
        if isinstance(item, BurstDone):
            kept_strokes = max(kept_strokes, item.strokes) if item.accepted else kept_strokes
        elif isinstance(item, Refreshed) and item.labels.size == 512 * 512:
            refreshes.append((t, kept_strokes))
    for i, tp in enumerate(painted, start=1):
        hit = next((t for t, n in refreshes if n >= i and t >= tp), None)
        out.append(None if hit is None else hit - tp)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--burst-steps", type=int, default=LiveSettings.burst_steps)
    parser.add_argument("--lr", type=float, default=LiveSettings.lr)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-baseline", action="store_true", help="skip the one-Fine-tune comparison")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    image, truth, held, held_truth = data()
    start = Segmenter.create("unet", 1, 2, class_names=["background", "nucleus"], base_filters=8, depth=3)
    bands = boundary_strokes(start.predict(image), truth)
    initial = (copy.deepcopy(start.net), start.metadata)  # finish() makes the session a version of ``start``
    settings = LiveSettings(burst_steps=args.burst_steps, lr=args.lr, loss="border_ce")  # as measured
    print(f"512² nuclei mosaic, {len(bands)} wrongly predicted nuclei; live {settings}; "
          f"{torch.get_num_threads()} torch thread(s), device {describe(pick_device())}")
    painted, events, snapshots, t0 = simulate(start, image, truth, bands, settings, args.seconds)
    lat = [x for x in latencies(painted, events) if x is not None]
    bursts = [e for _, e in events if isinstance(e, BurstDone)]
    never = sum(x is None for x in latencies(painted, events))
    print(f"strokes {len(painted)}, bursts {len(bursts)} (kept {sum(b.accepted for b in bursts)}), "
          f"burst seconds median {np.median([b.seconds for b in bursts]):.2f}")
    print(f"latency stroke → refreshed prediction: median {np.median(lat):.2f} s, p90 {np.percentile(lat, 90):.2f} s, "
          f"max {max(lat):.2f} s ({never} strokes without a refresh before the end)")
    print("\n| after | strokes | live IoU (working) | live F1 | live IoU (held-out) | live F1 (held-out) "
          "| Fine-tune once: IoU (working) | F1 | IoU (held-out) | F1 (held-out) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c, (state, k) in snapshots.items():
        live = Segmenter(copy.deepcopy(initial[0]), initial[1])
        live.net.load_state_dict(state)
        live_scores = scores(live, image, truth, held, held_truth)
        base = ("—",) * 4
        if not args.no_baseline and k:
            once = Segmenter(copy.deepcopy(initial[0]), initial[1])
            mask = np.any([bands[i] for i in range(k)], axis=0)
            for _ in once.finetune([image], [truth], [mask], accept_worse=True, seed=0, **FINETUNE):
                pass
            base = tuple(f"{v:.3f}" for v in scores(once, image, truth, held, held_truth))
        print(f"| {c} s | {k} | " + " | ".join(f"{v:.3f}" for v in live_scores) + " | " + " | ".join(base) + " |",
              flush=True)


if __name__ == "__main__":
    main()
