"""A simulated user on the real nuclei sample: correct the worst tile, fine-tune, re-predict; round by round.

Working set: 4 training slices (256² each, 16 tiles of 128²). Each round the user corrects the not yet reviewed
128×128 tile with the most wrong pixels (:mod:`.simulated_user`: that tile becomes reviewed, its labels the ground
truth), the model is fine-tuned on all reviewed tiles (continuing from the previous round) and predicts again.
IoU (foreground) is measured on the working slices and on the 6 held-out slices. The peer is the product's pixel
forest (:mod:`.forest_peer`, ilastik's method) trained on the same reviewed tiles each round. Needs
``pip install -e ".[bench]"``.

``--data shift`` starts from the shipped default on images from another microscope (:mod:`.hitl_shift`;
options ``--settings '{"lr": 1e-4}'`` for the fine-tune, ``--tta``, ``--diameter``, ``--model``).
``--data synthetic`` runs the same loop on 4-class synthetic images (cells and rods of equal brightness, told
apart by shape and texture; 4 working images, 2 held out) and reports mean IU over the 4 classes.

``--data tissue|objects|textures``: new models for the user's own classes, pretrained start vs scratch vs the
forest with 64² tiles (:mod:`.multiclass`; ``--runs defaults,no_forest,scratch`` chooses the runs).

``--label-limit WORKING``: with ``--data tissue|objects|textures``, what the last round's labels of one working
image teach a fresh model trained as long as the ceiling (``multiclass.label_limit``).

``--compare-next``: the user follows the dock's Next suggestions (most uncertain unreviewed tile, no ground
truth) instead of the worst-tile oracle; both runs are printed side by side (U-Net only).

Run: python -m benchmarks.hitl [--rounds 5] [--plot hitl.png] [--data nuclei|synthetic|tissue|objects|textures|shift]
            [--compare-next]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from napari_segnet.data.synthetic import CLASS_NAMES, synthetic_image
from napari_segnet.numerics.metrics import segmentation_scores
from napari_segnet.segmenter import Segmenter

from . import multiclass
from .forest_peer import ForestPeer
from .plots import round_plot
from .simulated_user import correct_tile, next_tile, worst_tile

TILE = 128
#: loss and distill pinned: the models here are created, and would otherwise take the new-model recommendation
SETTINGS = {"steps": 120, "batch_size": 4, "patch_size": 96, "lr": 3e-3, "class_weights": "balanced",
            "loss": "border_ce", "distill": 0.0}


def fg_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Nucleus IoU for 2 classes, mean IU for more; ``pred``, ``truth``: class ids of the same shape."""
    n = max(int(truth.max()) + 1, 2)
    scores = segmentation_scores(pred, truth, n)
    return float(scores["iu"][1]) if n == 2 else scores["mean_iu"]


def load(data: str):
    """(working images, their truths, held-out images, their truths, class names); images (Y, X)."""
    if data == "synthetic":
        made = [synthetic_image((256, 256), n_objects=45, seed=s)[:2] for s in (10, 11, 12, 13, 20, 21)]
        images, truths = [m[0] for m in made], [m[1] for m in made]
        return images[:4], truths[:4], images[4:], truths[4:], CLASS_NAMES
    from napari_segnet.sample_data import HELD_OUT, TRAIN, nuclei

    stack, truth = nuclei()
    working = TRAIN[6:26:5]  # 4 slices spread through the stack
    return ([stack[z] for z in working], [truth[z] for z in working], [stack[z] for z in HELD_OUT],
            [truth[z] for z in HELD_OUT], ["background", "nucleus"])


def new_unet(names) -> Segmenter:
    """The small U-Net (depth 3, 8 filters) these runs start from scratch."""
    return Segmenter.create("unet", 1, len(names), class_names=list(names), base_filters=8, depth=3)


def compare_next(rounds: int, data: str) -> None:
    """The simulated user following the Next suggestions against the worst-tile oracle (U-Net only): held-out
    IoU per round, and how many wrong pixels the chosen tile had compared with the oracle's tile."""
    images, truths, held_images, held_truths, names = load(data)
    results = {}
    for user in ("oracle", "next"):
        torch.manual_seed(0)
        seg = new_unet(names)
        reviewed = [np.zeros(t.shape, bool) for t in truths]
        preds, rows = [seg.predict(im) for im in images], []
        for rnd in range(1, rounds + 1):
            oracle = worst_tile(preds, truths, reviewed, TILE)
            chosen = oracle if user == "oracle" else next_tile(seg, images, reviewed, TILE)
            wrong = [int((preds[i][box] != truths[i][box]).sum()) for i, box in (chosen, oracle)]
            labels = correct_tile(truths, reviewed, chosen)
            for _ in seg.finetune(images, labels, reviewed, seed=rnd, **SETTINGS):
                pass
            preds = [seg.predict(im) for im in images]
            held = np.stack([seg.predict(im) for im in held_images])
            rows.append((fg_iou(held, np.stack(held_truths)), *wrong))
        results[user] = rows
    print("| round | oracle IoU (held-out) | Next IoU (held-out) | wrong px in Next's tile | in the oracle's tile |")
    print("|---|---|---|---|---|")
    for rnd, (o, n) in enumerate(zip(results["oracle"], results["next"]), start=1):
        print(f"| {rnd} | {o[0]:.3f} | {n[0]:.3f} | {n[1]} | {n[2]} |", flush=True)


def run_rounds(data: str, rounds: int) -> list[tuple]:
    """The worst-tile user's rounds on a new U-Net against the forest on the same tiles; prints and returns the
    table rows (round, reviewed tiles, U-Net IoU working / held-out, forest IoU working / held-out, seconds)."""
    images, truths, held_images, held_truths, names = load(data)
    seg, peer = new_unet(names), ForestPeer(images, len(names))
    reviewed = [np.zeros(t.shape, bool) for t in truths]
    preds, rows = [seg.predict(im) for im in images], []
    metric = "nucleus IoU" if len(names) == 2 else f"mean IU over {len(names)} classes"
    print(f"{data} data, {metric}; CPU, {torch.get_num_threads()} threads; U-Net (depth 3, 8 filters) from scratch; "
          f"fine-tune {SETTINGS}; forest: napari_segnet.training.pixel_forest\n")
    print("| round | reviewed tiles | U-Net IoU (working) | U-Net IoU (held-out) | RF IoU (working) "
          "| RF IoU (held-out) | U-Net s/round | RF s/round |")
    print("|---|---|---|---|---|---|---|---|")
    for rnd in range(1, rounds + 1):
        labels = correct_tile(truths, reviewed, worst_tile(preds, truths, reviewed, TILE))
        t0 = time.perf_counter()
        for _ in seg.finetune(images, labels, reviewed, seed=rnd, **SETTINGS):
            pass
        preds = [seg.predict(im) for im in images]
        held = [seg.predict(im) for im in held_images]
        ours_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rf_work, rf_held = peer.fit_predict(truths, reviewed, held_images)
        rf_s = time.perf_counter() - t0
        row = (rnd, sum(int(r.sum()) // TILE**2 for r in reviewed),
               fg_iou(np.stack(preds), np.stack(truths)), fg_iou(np.stack(held), np.stack(held_truths)),
               fg_iou(np.stack(rf_work), np.stack(truths)), fg_iou(np.stack(rf_held), np.stack(held_truths)),
               ours_s, rf_s)
        rows.append(row)
        print("| {} | {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.1f} | {:.1f} |".format(*row), flush=True)
    return rows


def plot(rows: list[tuple], path: str) -> None:
    """PNG of held-out IoU per round of :func:`run_rounds`'s rows, U-Net against the forest."""
    r = np.array(rows)
    round_plot([(r[:, 0], r[:, 3], "o-", "U-Net + border-weighted CE (held-out)"),
                (r[:, 0], r[:, 5], "s--", "pixel forest, ilastik's method (held-out)"),
                (r[:, 0], r[:, 2], "o:", "U-Net (working slices)", {"alpha": 0.5})],
               r[:, 0], "round (one 128² tile corrected per round)", "nucleus IoU", path)


def parser() -> argparse.ArgumentParser:
    """The command line of this benchmark."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--plot", default=None, help="write a PNG plot of IoU per round")
    p.add_argument("--data", default="nuclei", choices=("nuclei", "synthetic", "shift", *multiclass.DATASETS))
    p.add_argument("--settings", default="{}", help="--data shift: fine-tune settings as JSON")
    p.add_argument("--tta", action="store_true", help="--data shift: predict with the 8 flips / rotations "
                   "averaged; tissue|objects|textures: score with them too")
    p.add_argument("--diameter", type=float, default=None, help="--data shift: object size option")
    p.add_argument("--model", default=None, help="--data shift: a checkpoint instead of the shipped default")
    p.add_argument("--replay", type=int, default=0, help="--data shift: replay crops per reviewed tile")
    p.add_argument("--average", type=float, default=1.0, help="--data shift: keep α·new + (1-α)·old weights")
    p.add_argument("--runs", default="defaults,no_forest,scratch",
                   help="--data tissue|objects|textures: which new-model runs (benchmarks/multiclass.py RUNS)")
    p.add_argument("--label-limit", type=int, default=None, metavar="WORKING",
                   help="--data tissue|objects|textures: train round 5's labels of one working image long "
                        "(multiclass.py)")
    p.add_argument("--encoder", default=None, metavar="SAFETENSORS",
                   help="--data tissue|objects|textures: a leave-out encoder instead of the shipped one")
    p.add_argument("--compare-next", action="store_true",
                   help="the user follows the dock's Next suggestions; compare with the worst-tile oracle")
    return p


def main() -> None:
    args = parser().parse_args()
    if args.data in multiclass.DATASETS:
        options = multiclass.Options(encoder=args.encoder, tta=args.tta)
        if args.label_limit is not None:
            return multiclass.label_limit(args.data, args.label_limit, args.rounds, options)
        return multiclass.main(args.data, args.rounds, tuple(args.runs.split(",")), options)
    if args.compare_next:
        return compare_next(args.rounds, args.data)
    torch.manual_seed(0)
    if args.data == "shift":
        from . import hitl_shift

        rows = hitl_shift.run_shift(args.rounds, json.loads(args.settings), args.tta, args.diameter, True,
                                    args.model, args.replay, args.average)
        if args.plot:
            hitl_shift.plot(rows, args.plot)
        return
    rows = run_rounds(args.data, args.rounds)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
