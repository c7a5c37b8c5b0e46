"""Fine-tune round time: the default model on three reviewed 128² tiles (the simulated user's round 3).

Stores ms per step and seconds per round with the default TrainSettings (steps, batch, patch size), and the
guard's mean IU before and after, in ``benchmarks/results/finetune_<device>.json`` (docs/benchmarks.md's numbers
are generated from it). The round is timed as a user meets round 3: in a process that has fine-tuned before (the
dock warms it when it opens); the one-time cost of the process's first optimizer is stored apart.
Run: python -m benchmarks.finetune [--device cuda] [--steps N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from . import records


def three_tiles():
    """Three 128² tiles of the nuclei sample with their labels (all pixels reviewed)."""
    from napari_segnet._sample_data import nuclei_sample

    layers = nuclei_sample()
    image, labels = layers[0][0], next(data for data, _, *kind in layers if kind and kind[0] == "labels")
    corners = [(0, 0), (0, 128), (128, 64)]
    return ([image[y : y + 128, x : x + 128] for y, x in corners],
            [np.asarray(labels[y : y + 128, x : x + 128]) for y, x in corners])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=None, help="override the default number of steps")
    args = parser.parse_args()
    from napari_segnet.segmenter import FinetuneFinished, Segmenter
    from napari_segnet.training.loop import TrainProgress, warm_up_in_background

    images, labels = three_tiles()
    start = time.perf_counter()
    warm_up_in_background().join()
    first_call = time.perf_counter() - start
    settings = {"seed": 0} | ({"steps": args.steps} if args.steps else {})
    seg = Segmenter.default()
    start, stamps, result = time.perf_counter(), [], None
    for update in seg.finetune(images, labels, device=args.device, **settings):
        if isinstance(update, FinetuneFinished):
            result = update
        elif isinstance(update, TrainProgress):
            stamps.append(time.perf_counter())
    total = time.perf_counter() - start
    steps = len(stamps)  # the default is steps="auto": as many as the reviewed area asks for
    per_step = np.diff(stamps)
    record = {"benchmark": "finetune", "device": args.device, "tiles": len(images), "steps": steps,
              "ms_per_step": round(1000 * float(np.median(per_step)), 1), "round_seconds": round(total, 2),
              "guard": result.guard, "mean_iu_before": round(result.scores_before["mean_iu"], 4),
              "mean_iu_after": round(result.scores_after["mean_iu"], 4),
              "first_optimizer_seconds": round(first_call, 2)}
    print(f"{torch.get_num_threads()} threads: {record}")
    print(f"wrote {records.write(f'finetune_{args.device}', record)}")


if __name__ == "__main__":
    main()
