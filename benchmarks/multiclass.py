"""New models for the user's own classes: the worst-64²-tile user, pretrained start vs scratch vs the forest.

One working image (256²) per data set; each round the user corrects the not yet reviewed 64×64 tile where the
network's prediction has the most wrong pixels (the tile becomes reviewed, its labels the truth); the network is
fine-tuned on all reviewed pixels (continuing from the previous round) and predicts the working image again.
Held-out mean IU is measured on 3 other images of the same kind. The random forest (``ForestPeer`` of hitl.py,
the ilastik method) is trained on exactly the pixels the network's user reviewed. "Ceiling": the same network
and the forest trained on every pixel of the working image. Seconds per round = fine-tune + predicting the
working image (what the user waits for). "(kept)": the guard kept the previous version (the new one scored a
lower mean IU on the reviewed pixels).

Data sets (code-generated, never in the encoder's pretraining data):
- ``tissue``: :func:`napari_segnet.synthetic.tissue_image`, 3 region classes told apart by intensity, grain
  and shape (thin curved strands); seeds 0 (working), 1–3 (held out).
- ``objects``: :func:`napari_segnet.synthetic.synthetic_image`, 4 classes (background, cells, rods, vesicles of
  equal brightness, told apart by shape and texture); seeds 10 (working), 20–22 (held out).

Run: python benchmarks/hitl.py --data tissue|objects [--rounds 5] [--start both|pretrained|scratch]
"""

from __future__ import annotations

import time

import numpy as np
import torch
from simulated_user import worst_tile

from napari_segnet.metrics import segmentation_scores
from napari_segnet.segmenter import Segmenter
from napari_segnet.synthetic import CLASS_NAMES, TISSUE_CLASS_NAMES, synthetic_image, tissue_image

TILE = 64
DATASETS = ("tissue", "objects")
#: Fine-tune settings per round (picked by measurement, README "Pretrained start"); steps grow with the
#: reviewed area up to MAX_STEPS.
SETTINGS = {"batch_size": 4, "patch_size": 64, "lr": 2e-3}
STEPS_PER_TILE, MIN_STEPS, MAX_STEPS = 10, 20, 40


def load(data: str):
    """(working image, its truth, held-out images, their truths, class names)."""
    if data == "tissue":
        made = [tissue_image((256, 256), seed=s) for s in (0, 1, 2, 3)]
        names = TISSUE_CLASS_NAMES
    else:
        made = [synthetic_image((256, 256), n_objects=45, seed=s)[:2] for s in (10, 20, 21, 22)]
        names = CLASS_NAMES
    return made[0][0], made[0][1], [m[0] for m in made[1:]], [m[1] for m in made[1:]], list(names)


def mean_iu(preds: list[np.ndarray], truths: list[np.ndarray], n: int) -> float:
    """Mean IU over ``n`` classes of all images together."""
    return float(segmentation_scores(np.stack(preds), np.stack(truths), n)["mean_iu"])


def round_settings(tiles: int, loss: str, seed: int) -> dict:
    """Fine-tune settings for a round with ``tiles`` reviewed tiles."""
    steps = int(np.clip(STEPS_PER_TILE * tiles, MIN_STEPS, MAX_STEPS))
    return {**SETTINGS, "steps": steps, "loss": loss, "seed": seed}


def new_model(names: list[str], start: str) -> Segmenter:
    """The model a new user gets (the dock's defaults), starting pretrained or from scratch."""
    torch.manual_seed(0)
    return Segmenter.create("unet", 1, len(names), class_names=names, start=start)


def user_rounds(data, start: str, rounds: int, loss: str) -> tuple[list[dict], list[np.ndarray]]:
    """Rounds of the worst-tile user on a new model: per round held-out mean IU, seconds; and the reviewed
    masks after each round (the forest gets the same pixels)."""
    image, truth, held, held_truths, names = data
    seg, reviewed = new_model(names, start), np.zeros(truth.shape, bool)
    pred, rows, masks = seg.predict(image), [], []
    for rnd in range(1, rounds + 1):
        _, y, x = worst_tile([pred], [truth], [reviewed], TILE)
        reviewed[y:y + TILE, x:x + TILE] = True
        t0 = time.perf_counter()
        *_, outcome = seg.finetune([image], [np.where(reviewed, truth, 0)], [reviewed],
                                   **round_settings(rnd, loss, rnd))
        pred = seg.predict(image)
        seconds = time.perf_counter() - t0
        held_iu = mean_iu([seg.predict(im) for im in held], held_truths, len(names))
        rows.append({"round": rnd, "held": held_iu, "seconds": seconds, "kept": "" if outcome.accepted else " (kept)"})
        masks.append(reviewed.copy())
    return rows, masks


def forest_rounds(data, masks: list[np.ndarray]) -> list[dict]:
    """The forest trained on each round's reviewed pixels: held-out mean IU and seconds."""
    from hitl import ForestPeer

    image, truth, held, held_truths, names = data
    peer, rows = ForestPeer([image]), []
    for reviewed in masks:
        t0 = time.perf_counter()
        _, held_pred = peer.fit_predict([truth], [reviewed], held)
        rows.append({"held": mean_iu(held_pred, held_truths, len(names)), "seconds": time.perf_counter() - t0})
    return rows


def ceilings(data, steps: int, loss: str) -> tuple[float, float]:
    """(network, forest) held-out mean IU when trained on every pixel of the working image."""
    from hitl import ForestPeer

    image, truth, held, held_truths, names = data
    seg = new_model(names, "pretrained")
    for _ in seg.finetune([image], [truth], None, **{**SETTINGS, "steps": steps, "loss": loss, "seed": 0}):
        pass
    net = mean_iu([seg.predict(im) for im in held], held_truths, len(names))
    _, forest = ForestPeer([image]).fit_predict([truth], [np.ones(truth.shape, bool)], held)
    return net, mean_iu(forest, held_truths, len(names))


def main(data_name: str, rounds: int = 5, starts: tuple[str, ...] = ("pretrained", "scratch"),
         loss: str = "balanced_ce", ceiling_steps: int = 200) -> None:
    """Print the table of README "Pretrained start" for one data set."""
    torch.set_num_threads(2)
    data = load(data_name)
    print(f"{data_name}: {len(data[4])} classes; CPU, {torch.get_num_threads()} threads; U-Net d3/16; loss {loss}; "
          f"{SETTINGS}, steps {STEPS_PER_TILE}/tile in [{MIN_STEPS}, {MAX_STEPS}]; forest: 50 trees\n")
    runs = {start: user_rounds(data, start, rounds, loss) for start in starts}
    forest = forest_rounds(data, runs[starts[0]][1])
    print("| round | " + " | ".join(f"U-Net {s} (held-out) | s/round" for s in starts) + " | forest (held-out) "
          "| forest s |")
    print("|---" * (2 * len(starts) + 3) + "|")
    for r in range(rounds):
        cells = " | ".join(f"{runs[s][0][r]['held']:.3f}{runs[s][0][r]['kept']} | {runs[s][0][r]['seconds']:.1f}"
                           for s in starts)
        print(f"| {r + 1} | {cells} | {forest[r]['held']:.3f} | {forest[r]['seconds']:.1f} |", flush=True)
    if ceiling_steps:
        net, rf = ceilings(data, ceiling_steps, loss)
        print(f"\nceiling (every pixel of the working image): U-Net {net:.3f} ({ceiling_steps} steps), forest {rf:.3f}")
