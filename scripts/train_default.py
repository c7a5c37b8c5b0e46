"""Train the default model shipped in the wheel: reproducible (seeded), on the nuclei training slices only.

U-Net, padded convs with BN, depth 3, 8 base filters (see the model card in README for why), border-weighted
cross-entropy (w0 = 10, σ = 5, balanced classes), Adam with cosine decay from lr 1e-3 over 1200 steps. Scores on
the held-out slices go into the model's metadata and the README. Takes ~15 min on 2 CPU cores.

Run: python scripts/train_default.py [--out napari_segnet/weights/default.safetensors]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from napari_segnet.sample_data import HELD_OUT, TRAIN, nuclei

from napari_segnet.segmenter import Segmenter
from napari_segnet.training import TrainProgress

ARCH = {"architecture": "unet", "base_filters": 8, "depth": 3}
PHASES = [(1e-3, 1200)]  # (learning rate, steps); each run decays its rate along a cosine to 5 %
COMMON = {"loss": "border_ce", "w0": 10.0, "sigma": 5.0, "batch_size": 8, "patch_size": 128}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "napari_segnet" / "weights"
                                             / "default.safetensors"))
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True, warn_only=True)
    stack, truth = nuclei()
    images, labels = [stack[z] for z in TRAIN], [truth[z] for z in TRAIN]
    held_images, held_labels = [stack[z] for z in HELD_OUT], [truth[z] for z in HELD_OUT]
    options = {k: v for k, v in ARCH.items() if k != "architecture"}
    seg = Segmenter.create(ARCH["architecture"], 1, 2, class_names=["background", "nucleus"], **options)
    start = time.perf_counter()
    for phase, (lr, steps) in enumerate(PHASES):
        for update in seg.finetune(images, labels, lr=lr, steps=steps, seed=phase, **COMMON):
            if isinstance(update, TrainProgress) and update.step % 100 == 0:
                print(f"phase {phase} step {update.step}/{steps} loss {update.mean_loss:.4f}", flush=True)
    minutes = (time.perf_counter() - start) / 60
    scores = seg.score(held_images, held_labels)
    card = {"pixel_accuracy": scores["pixel_accuracy"], "mean_iu": scores["mean_iu"],
            "foreground_iou": float(scores["iu"][1]), "held_out_slices": list(HELD_OUT),
            "train_slices": list(TRAIN), "phases": PHASES, **COMMON, "minutes": round(minutes, 1)}
    shipped = Segmenter.create(ARCH["architecture"], 1, 2, class_names=["background", "nucleus"], **options)
    shipped.net.load_state_dict(seg.net.state_dict())
    shipped.annotate(note="default model, scripts/train_default.py", training=card)
    path = shipped.save(args.out)
    print(json.dumps(card, indent=1))
    print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
