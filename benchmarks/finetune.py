"""Fine-tune round time: the default model on three reviewed 128² tiles (the simulated user's round 3).

Prints ms per step and seconds per round with the default TrainSettings (steps, batch, patch size), and the mean
IU on the reviewed pixels before and after. The round is timed as a user meets round 3: in a process that has
fine-tuned before (the dock warms it when it opens); the one-time cost of the process's first optimizer is
printed apart.
Run: python -m benchmarks.finetune [--device cuda] [--steps N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


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
    print(f"{torch.get_num_threads()} threads, {args.device}: {steps} steps, {1000 * np.median(per_step):.0f} ms/step "
          f"(median), round {total:.1f} s (incl. weight maps and the before/after guard), mean IU on reviewed "
          f"pixels {result.scores_before['mean_iu']:.3f} → {result.scores_after['mean_iu']:.3f}; the process's first "
          f"optimizer cost {first_call:.1f} s once before it")


if __name__ == "__main__":
    main()
