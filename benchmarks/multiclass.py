"""New models for the user's own classes: the worst-64²-tile user, new network vs the forest on the same pixels.

Per data set, 3 working images (256²) in turn; each round the user corrects the not yet reviewed 64×64 tile where
the network's prediction has the most wrong pixels (the tile becomes reviewed, its labels the truth); the network
is fine-tuned on all reviewed pixels with the settings a new model recommends (``NEW_MODEL``: steps "auto" grow
with the reviewed area), continuing from the previous round, and predicts the working image again. Held-out mean
IU on 3 other images of the kind, averaged over the 3 working images. The forest (:mod:`.forest_peer`: the
product's pixel forest, ilastik's method) is trained on exactly the pixels the network's user reviewed. "Ceiling":
the same network and the forest trained on every pixel of the first working image (the network with CEILING).
Seconds per round = fine-tune (incl. the pixel forest) + predicting the working image (what the user waits for). Runs:
``defaults`` (pretrained start, forest labels while the forest is ahead), ``no forest labels`` (distill 0),
``scratch`` (random start, forest labels).

Data sets (made by code; no image of them is in the encoder's pretraining data, for ``textures`` with ``--encoder``):
- ``tissue``: :func:`napari_segnet.data.synthetic.tissue_image`, 3 region classes told apart by intensity, grain
  and shape (thin curved strands); working seeds 0, 4, 5; held out 1–3.
- ``objects``: :func:`napari_segnet.data.synthetic.synthetic_image`, 4 classes (background, cells, rods, vesicles of
  equal brightness, told apart by shape and texture); working seeds 10, 11, 12; held out 20–22.
- ``textures``: :func:`napari_segnet.data.synthetic.texture_mosaic`, real photographs (scikit-image's brick, grass and
  gravel) in random regions, told apart by texture alone; working seeds 0–2 from the photographs' top halves,
  held out 3–5 from their bottom halves (no pixel shared). The shipped encoder has seen these photographs
  (unlabelled), so this data set runs only with ``--encoder`` (a leave-out encoder made by the same recipe
  without them: ``scripts/pretrain_encoder.py --exclude skimage.brick,skimage.grass,skimage.gravel``): how the
  pretrained start does on a kind of image its encoder never saw.

Run: python -m benchmarks.hitl --data tissue|objects|textures [--rounds 5] [--runs defaults,no_forest,scratch]
     [--encoder leave_out.safetensors]
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from napari_segnet.data.synthetic import (
    CLASS_NAMES,
    TEXTURE_CLASS_NAMES,
    TISSUE_CLASS_NAMES,
    synthetic_image,
    texture_mosaic,
    tissue_image,
)
from napari_segnet.numerics.metrics import segmentation_scores
from napari_segnet.segmenter import Segmenter
from napari_segnet.training.recommend import NEW_MODEL

from .forest_peer import ForestPeer
from .simulated_user import correct_tile, worst_tile

TILE = 64
DATASETS = ("tissue", "objects", "textures")
WORKING = {"tissue": (0, 4, 5), "objects": (10, 11, 12), "textures": (0, 1, 2)}
HELD_OUT = {"tissue": (1, 2, 3), "objects": (20, 21, 22), "textures": (3, 4, 5)}
#: name → (start, settings over the new model's recommendation, NEW_MODEL)
RUNS = {"defaults": ("pretrained", {}), "no_forest": ("pretrained", {"distill": 0.0}),
        "scratch": ("scratch", {})}


@dataclass(frozen=True)
class Options:
    """How the runs start and are scored.

    encoder: a leave-out encoder file (``--encoder``) that replaces the shipped encoder's weights in pretrained
    starts (None: the shipped one). tta: also score every round and the ceiling with test-time augmentation
    (8 flips / rotations averaged).
    """

    encoder: str | None = None
    tta: bool = False


def load(data: str, working: int):
    """(working image, its truth, held-out images, their truths, class names)."""
    if data == "tissue":
        made = [tissue_image((256, 256), seed=s) for s in (working, *HELD_OUT[data])]
        names = TISSUE_CLASS_NAMES
    elif data == "textures":
        made = [texture_mosaic((256, 256), seed=working),
                *(texture_mosaic((256, 256), seed=s, half="bottom") for s in HELD_OUT[data])]
        names = TEXTURE_CLASS_NAMES
    else:
        made = [synthetic_image((256, 256), n_objects=45, seed=s)[:2] for s in (working, *HELD_OUT[data])]
        names = CLASS_NAMES
    return made[0][0], made[0][1], [m[0] for m in made[1:]], [m[1] for m in made[1:]], list(names)


def mean_iu(preds: list[np.ndarray], truths: list[np.ndarray], n: int) -> float:
    """Mean IU over ``n`` classes of all images together."""
    return float(segmentation_scores(np.stack(preds), np.stack(truths), n)["mean_iu"])


def new_model(names: list[str], start: str, options: Options) -> Segmenter:
    """The model a new user gets (the dock's defaults), starting pretrained (with ``options.encoder``) or from
    scratch."""
    torch.manual_seed(0)
    seg = Segmenter.create("unet", 1, len(names), class_names=names, start=start)
    if options.encoder is not None and start == "pretrained":
        from safetensors.torch import load_file

        from napari_segnet.models.pretrained import PRETRAINED_PREFIXES

        state = load_file(options.encoder)
        seg.net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()
                                 if k.startswith(PRETRAINED_PREFIXES)}, strict=False)
    return seg


def check_encoder(data_name: str, options: Options) -> None:
    """Refuse ``textures`` with the shipped encoder, which has seen its photographs."""
    if data_name == "textures" and options.encoder is None:
        raise SystemExit("--data textures needs --encoder: a leave-out encoder pretrained without brick, grass and "
                         "gravel (scripts/pretrain_encoder.py --exclude skimage.brick,skimage.grass,skimage.gravel)")


def user_rounds(data, run: str, rounds: int, options: Options) -> tuple[list[dict], list[np.ndarray]]:
    """Rounds of the worst-tile user on a new model: per round held-out mean IU, seconds, whether the forest's
    labels were used; and the reviewed masks after each round (the forest gets the same pixels)."""
    image, truth, held, held_truths, names = data
    start, changes = RUNS[run]
    seg, reviewed = new_model(names, start, options), [np.zeros(truth.shape, bool)]
    pred, rows, masks = seg.predict(image), [], []
    for rnd in range(1, rounds + 1):
        labels = correct_tile([truth], reviewed, worst_tile([pred], [truth], reviewed, TILE))
        t0 = time.perf_counter()
        *_, outcome = seg.finetune([image], labels, reviewed, **{**changes, "seed": rnd})
        pred = seg.predict(image)
        seconds = time.perf_counter() - t0
        held_iu = mean_iu([seg.predict(im) for im in held], held_truths, len(names))
        record = seg.metadata.versions[-1].details.get("distillation", {})
        rows.append({"held": held_iu, "seconds": seconds, "kept": not outcome.accepted,
                     "distilled": bool(record.get("distilled"))})
        if options.tta:
            rows[-1]["held_tta"] = mean_iu([seg.predict(im, tta=True) for im in held], held_truths, len(names))
        masks.append(reviewed[0].copy())
    return rows, masks


def forest_rounds(data, masks: list[np.ndarray]) -> list[dict]:
    """The forest trained on each round's reviewed pixels: held-out mean IU and seconds."""
    image, truth, held, held_truths, names = data
    peer, rows = ForestPeer([image], len(names)), []
    for reviewed in masks:
        t0 = time.perf_counter()
        _, held_pred = peer.fit_predict([truth], [reviewed], held)
        rows.append({"held": mean_iu(held_pred, held_truths, len(names)), "seconds": time.perf_counter() - t0})
    return rows


#: The network's ceiling run: every pixel of the working image, 1200 steps of 128² patches (measured on tissue:
#: 400 steps of 64² gave 0.918, 1200 of 64² 0.936, 1200 of 128² 0.946 held-out mean IU: training, not the
#: network, limited the shorter runs).
CEILING = {"steps": 1200, "patch_size": 128}


def ceilings(data, options: Options) -> tuple[float, float]:
    """(network, forest) held-out mean IU when trained on every pixel of the working image (the network from the
    pretrained start with CEILING; with ``options.tta`` the network's is a pair: plain, test-time augmented)."""
    image, truth, held, held_truths, names = data
    seg = new_model(names, "pretrained", options)
    for _ in seg.finetune([image], [truth], None, **{**CEILING, "distill": 0.0, "seed": 0}):
        pass
    net = mean_iu([seg.predict(im) for im in held], held_truths, len(names))
    if options.tta:
        net = (net, mean_iu([seg.predict(im, tta=True) for im in held], held_truths, len(names)))
    _, forest = ForestPeer([image], len(names)).fit_predict([truth], [np.ones(truth.shape, bool)], held)
    return net, mean_iu(forest, held_truths, len(names))


def _mean(runs: list[list[dict]], key: str) -> np.ndarray:
    return np.mean([[row[key] for row in rows] for rows in runs], axis=0)


def main(data_name: str, rounds: int = 5, run_names: tuple[str, ...] = tuple(RUNS),
         options: Options = Options()) -> None:
    """Print the table of docs/benchmarks.md "New models for your own classes" for one data set."""
    check_encoder(data_name, options)
    torch.set_num_threads(2)
    print(f"{data_name}: working images {WORKING[data_name]}, held out {HELD_OUT[data_name]}; CPU, "
          f"{torch.get_num_threads()} threads; U-Net d3/16; {NEW_MODEL.settings}; forest: 50 trees; encoder "
          f"{options.encoder or 'shipped'}\n")
    results = {name: [] for name in (*run_names, "forest")}
    for working in WORKING[data_name]:
        data = load(data_name, working)
        for name in run_names:
            rows, masks = user_rounds(data, name, rounds, options)
            results[name].append(rows)
            print(f"  working {working} {name}: " + " ".join(
                f"{r['held']:.3f}{'k' if r['kept'] else ''}{'d' if r['distilled'] else ''}/{r['seconds']:.1f}s"
                + (f" (tta {r['held_tta']:.3f})" if options.tta else "") for r in rows), flush=True)
            if name == run_names[0]:
                results["forest"].append(forest_rounds(data, masks))
    print("\n| round | " + " | ".join(f"U-Net {n} | s/round (max)" for n in run_names) + " | forest | forest s |")
    print("|---" * (2 * len(run_names) + 3) + "|")
    for r in range(rounds):
        cells = " | ".join(f"{_mean(results[n], 'held')[r]:.3f} | {max(x[r]['seconds'] for x in results[n]):.1f}"
                           for n in run_names)
        print(f"| {r + 1} | {cells} | {_mean(results['forest'], 'held')[r]:.3f} | "
              f"{_mean(results['forest'], 'seconds')[r]:.1f} |", flush=True)
    for n in run_names:
        held = np.array([[row["held"] for row in rows] for rows in results[n]])
        print(f"{n}: largest drop between rounds (any working image) {np.min(np.diff(held, axis=1)):+.3f}; rounds "
              f"with forest labels {sum(row['distilled'] for rows in results[n] for row in rows)} of {held.size}")
        if options.tta:
            print(f"{n} with 8 flips / rotations: " + ", ".join(f"{v:.3f}" for v in _mean(results[n], "held_tta")))
    print_ceiling(data_name, options)


def print_ceiling(data_name: str, options: Options) -> None:
    """The network's and the forest's held-out mean IU trained on every pixel of the first working image."""
    net, rf = ceilings(load(data_name, WORKING[data_name][0]), options)
    nets = f"{net[0]:.3f} (with 8 flips / rotations {net[1]:.3f})" if options.tta else f"{net:.3f}"
    print(f"\nceiling (every pixel of working image {WORKING[data_name][0]}): U-Net {nets} ({CEILING}), "
          f"forest {rf:.3f}")


def label_limit(data_name: str, working: int, rounds: int = 5, options: Options = Options()) -> None:
    """What the labels a user has after ``rounds`` can teach: the defaults' rounds on one working image, then a
    fresh model (pretrained start) trained on the last round's reviewed pixels for CEILING's 1200 steps of 128²,
    with the forest's labels where the last round learnt them too (else without: a fresh model is behind any
    forest, so distillation would always add them). If it ends near the rounds' result, the labels bound the
    rounds, not the training."""
    check_encoder(data_name, options)
    torch.set_num_threads(2)
    data = load(data_name, working)
    image, truth, held, held_truths, names = data
    rows, masks = user_rounds(data, "defaults", rounds, options)
    seg = new_model(names, "pretrained", options)
    distill = NEW_MODEL.settings.distill if rows[-1]["distilled"] else 0.0
    for _ in seg.finetune([image], [np.where(masks[-1], truth, 0)], [masks[-1]], accept_worse=True,
                          **{**CEILING, "distill": distill, "seed": rounds}):
        pass
    trained = mean_iu([seg.predict(im) for im in held], held_truths, len(names))
    print(f"{data_name} working image {working}: rounds " + ", ".join(f"{r['held']:.3f}" for r in rows)
          + f"; round {rounds}'s labels trained with {CEILING} (forest labels "
          f"{bool(seg.metadata.versions[-1].details.get('distillation', {}).get('distilled'))}): {trained:.3f}")
