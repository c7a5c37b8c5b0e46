"""A simulated user on the real nuclei sample: correct the worst tile, fine-tune, re-predict; round by round.

Working set: 4 training slices (256² each, 16 tiles of 128²). Each round the user corrects the not yet reviewed
128×128 tile with the most wrong pixels (that tile becomes reviewed, its labels the ground truth), the model is
fine-tuned on all reviewed tiles (continuing from the previous round) and predicts again. IoU (foreground)
is measured on the working slices and on the 6 held-out slices. The peer is scikit-image's random-forest
pixel classifier (``skimage.future.fit_segmenter`` on ``multiscale_basic_features``: the ilastik method)
trained on the same reviewed tiles each round. Needs ``pip install scikit-learn matplotlib``.

``--data shift`` starts from the shipped default on images from another microscope (``hitl_shift.py``;
options ``--settings '{"lr": 1e-4}'`` for the fine-tune, ``--tta``, ``--diameter``, ``--model``).
``--data synthetic`` runs the same loop on 4-class synthetic images (cells and rods of equal brightness, told
apart by shape and texture; 4 working images, 2 held out) and reports mean IU over the 4 classes.

``--data tissue|objects|textures``: new models for the user's own classes, pretrained start vs scratch vs the
forest with 64² tiles (see benchmarks/multiclass.py; ``--runs defaults,no_forest,scratch`` chooses the runs).

``--label-limit WORKING``: with ``--data tissue|objects|textures``, what the last round's labels of one working
image teach a fresh model trained as long as the ceiling (``multiclass.label_limit``).

``--compare-next``: the user follows the dock's Next suggestions (most uncertain unreviewed tile, no ground
truth) instead of the worst-tile oracle; both runs are printed side by side (U-Net only).

Run: python benchmarks/hitl.py [--rounds 5] [--plot hitl.png] [--data nuclei|synthetic|tissue|objects|textures|shift]
            [--compare-next]
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial

import multiclass
import numpy as np
import torch
from napari_segnet.sample_data import HELD_OUT, TRAIN, nuclei
from simulated_user import worst_tile

from napari_segnet.data.synthetic import CLASS_NAMES, synthetic_image
from napari_segnet.inference.suggest import suggest_tiles, uncertainty
from napari_segnet.numerics.metrics import segmentation_scores
from napari_segnet.segmenter import Segmenter

TILE = 128
WORKING = TRAIN[6:26:5]  # 4 slices spread through the stack
#: loss and distill pinned: the models here are created, and would otherwise take the new-model recommendation
SETTINGS = {"steps": 120, "batch_size": 4, "patch_size": 96, "lr": 3e-3, "class_weights": "balanced",
            "loss": "border_ce", "distill": 0.0}


def fg_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Nucleus IoU for 2 classes, mean IU for more."""
    n = max(int(truth.max()) + 1, 2)
    scores = segmentation_scores(pred, truth, n)
    return float(scores["iu"][1]) if n == 2 else scores["mean_iu"]


def load(data: str):
    """(working images, their truths, held-out images, their truths, class names)."""
    if data == "synthetic":
        made = [synthetic_image((256, 256), n_objects=45, seed=s)[:2] for s in (10, 11, 12, 13, 20, 21)]
        images, truths = [m[0] for m in made], [m[1] for m in made]
        return images[:4], truths[:4], images[4:], truths[4:], CLASS_NAMES
    stack, truth = nuclei()
    return ([stack[z] for z in WORKING], [truth[z] for z in WORKING], [stack[z] for z in HELD_OUT],
            [truth[z] for z in HELD_OUT], ["background", "nucleus"])


def suggested_tile(seg: Segmenter, images, reviewed) -> tuple[int, int, int]:
    """(image index, y, x) of the tile the dock's Next button would show first: the unreviewed tile with the
    highest mean uncertainty (1 − max p) over all working images; no ground truth needed."""
    best, where = -1.0, None
    for i, (im, r) in enumerate(zip(images, reviewed)):
        u = uncertainty(seg.predict_proba(im))
        tiles = suggest_tiles(u, r, TILE, max_reviewed=0.0)
        if tiles and u[tiles[0]].mean() > best:
            best, where = float(u[tiles[0]].mean()), (i, tiles[0][0].start, tiles[0][1].start)
    return where


def compare_next(rounds: int, data: str, arch: str) -> None:
    """The simulated user following the Next suggestions against the worst-tile oracle (U-Net only): held-out
    IoU per round, and how many wrong pixels the chosen tile had compared with the oracle's tile."""
    images, truths, held_images, held_truths, names = load(data)
    results = {}
    for user in ("oracle", "next"):
        torch.manual_seed(0)
        seg = Segmenter.create(arch, 1, len(names), class_names=names, base_filters=8, depth=3)
        reviewed = [np.zeros(t.shape, bool) for t in truths]
        preds, rows = [seg.predict(im) for im in images], []
        for rnd in range(1, rounds + 1):
            oi, oy, ox = worst_tile(preds, truths, reviewed, TILE)
            i, y, x = (oi, oy, ox) if user == "oracle" else suggested_tile(seg, images, reviewed)
            wrong = [int((p[b, c] != t[b, c]).sum()) for p, t, b, c in (
                (preds[j], truths[j], slice(v, v + TILE), slice(h, h + TILE)) for j, v, h in ((i, y, x), (oi, oy, ox)))]
            reviewed[i][y : y + TILE, x : x + TILE] = True
            labels = [np.where(r, t, 0) for t, r in zip(truths, reviewed)]
            for _ in seg.finetune(images, labels, reviewed, seed=rnd, **SETTINGS):
                pass
            preds = [seg.predict(im) for im in images]
            held = np.stack([seg.predict(im) for im in held_images])
            rows.append((fg_iou(held, np.stack(held_truths)), wrong[0], wrong[1]))
        results[user] = rows
    print("| round | oracle IoU (held-out) | Next IoU (held-out) | wrong px in Next's tile | in the oracle's tile |")
    print("|---|---|---|---|---|")
    for rnd, (o, n) in enumerate(zip(results["oracle"], results["next"]), start=1):
        print(f"| {rnd} | {o[0]:.3f} | {n[0]:.3f} | {n[1]} | {n[2]} |", flush=True)


class ForestPeer:
    """The random-forest pixel classifier of scikit-image, as ilastik does it."""

    def __init__(self, images):
        from skimage.feature import multiscale_basic_features

        features = partial(multiscale_basic_features, intensity=True, edges=True, texture=True,
                           sigma_min=1, sigma_max=16)
        self.features = features
        self.train_feats = [features(self._norm(im)) for im in images]

    @staticmethod
    def _norm(image):
        lo, hi = np.percentile(image, [1, 99.8])
        return (image.astype(np.float32) - lo) / (hi - lo)

    def fit_predict(self, truths, reviewed, test_images):
        from skimage.future import fit_segmenter, predict_segmenter
        from sklearn.ensemble import RandomForestClassifier

        clf = RandomForestClassifier(n_estimators=50, n_jobs=-1, max_depth=10, max_samples=0.05, random_state=0)
        # skimage's convention: 0 = unlabelled, classes 1…K → our labels + 1 on reviewed pixels
        sparse = np.concatenate([np.where(r, t + 1, 0) for t, r in zip(truths, reviewed)], axis=1)
        feats = np.concatenate(self.train_feats, axis=1)
        clf = fit_segmenter(sparse, feats, clf)
        return [predict_segmenter(f, clf) - 1 for f in self.train_feats], [
            predict_segmenter(self.features(self._norm(im)), clf) - 1 for im in test_images]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--arch", default="unet")
    parser.add_argument("--plot", default=None, help="write a PNG plot of IoU per round")
    parser.add_argument("--data", default="nuclei", choices=("nuclei", "synthetic", "shift", *multiclass.DATASETS))
    parser.add_argument("--settings", default="{}", help="--data shift: fine-tune settings as JSON")
    parser.add_argument("--tta", action="store_true", help="--data shift: predict with the 8 flips / rotations "
                        "averaged; tissue|objects|textures: score with them too")
    parser.add_argument("--diameter", type=float, default=None, help="--data shift: object size option")
    parser.add_argument("--model", default=None, help="--data shift: a checkpoint instead of the shipped default")
    parser.add_argument("--replay", type=int, default=0, help="--data shift: replay crops per reviewed tile")
    parser.add_argument("--average", type=float, default=1.0, help="--data shift: keep α·new + (1-α)·old weights")
    parser.add_argument("--runs", default="defaults,no_forest,scratch",
                        help="--data tissue|objects|textures: which new-model runs (benchmarks/multiclass.py RUNS)")
    parser.add_argument("--label-limit", type=int, default=None, metavar="WORKING",
                        help="--data tissue|objects|textures: train round 5's labels of one working image long "
                             "(multiclass.py)")
    parser.add_argument("--encoder", default=None, metavar="SAFETENSORS",
                        help="--data tissue|objects|textures: a leave-out encoder instead of the shipped one")
    parser.add_argument("--compare-next", action="store_true",
                        help="the user follows the dock's Next suggestions; compare with the worst-tile oracle")
    args = parser.parse_args()
    multiclass.ENCODER, multiclass.TTA = args.encoder, args.tta
    if args.data in multiclass.DATASETS and args.label_limit is not None:
        return multiclass.label_limit(args.data, args.label_limit, args.rounds)
    if args.data in multiclass.DATASETS:
        return multiclass.main(args.data, args.rounds, tuple(args.runs.split(",")))
    if args.compare_next:
        compare_next(args.rounds, args.data, args.arch)
        return
    torch.manual_seed(0)
    if args.data == "shift":
        from hitl_shift import run_shift

        rows = run_shift(args.rounds, json.loads(args.settings), args.tta, args.diameter, ForestPeer, args.model,
                         args.replay, args.average)
        if args.plot:
            from hitl_shift import plot

            plot(rows, args.plot)
        return
    images, truths, held_images, held_truths, names = load(args.data)
    seg = Segmenter.create(args.arch, 1, len(names), class_names=names, base_filters=8, depth=3)
    peer = ForestPeer(images)
    reviewed = [np.zeros(t.shape, bool) for t in truths]
    preds = [seg.predict(im) for im in images]
    rows = []
    metric = "nucleus IoU" if len(names) == 2 else f"mean IU over {len(names)} classes"
    print(f"{args.data} data, {metric}; CPU, {torch.get_num_threads()} threads; U-Net (depth 3, 8 filters) "
          f"from scratch; fine-tune {SETTINGS}; random forest: 50 trees\n")
    print("| round | reviewed tiles | U-Net IoU (working) | U-Net IoU (held-out) | RF IoU (working) "
          "| RF IoU (held-out) | U-Net s/round | RF s/round |")
    print("|---|---|---|---|---|---|---|---|")
    for rnd in range(1, args.rounds + 1):
        i, y, x = worst_tile(preds, truths, reviewed, TILE)
        reviewed[i][y : y + TILE, x : x + TILE] = True
        labels = [np.where(r, t, 0) for t, r in zip(truths, reviewed)]
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
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        r = np.array(rows)
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        ax.plot(r[:, 0], r[:, 3], "o-", label="U-Net + border-weighted CE (held-out)")
        ax.plot(r[:, 0], r[:, 5], "s--", label="random forest, ilastik-style (held-out)")
        ax.plot(r[:, 0], r[:, 2], "o:", alpha=0.5, label="U-Net (working slices)")
        ax.set_xticks(r[:, 0])
        ax.set_xlabel("round (one 128² tile corrected per round)")
        ax.set_ylabel("nucleus IoU")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot)


if __name__ == "__main__":
    main()
