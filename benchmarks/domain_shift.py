"""Zero-shot scores of models on the domain-shift set (napari_segnet.data.domain_shift): data no model trained on.

Per model × subset: nucleus pixel IoU (summed confusion), object F1 and AP (TP / (TP + FP + FN)) at IoU 0.5,
and prediction seconds. Predicted instances are ``napari_segnet.numerics.instances.label_instances`` of the predicted
classes (its defaults: face-connected components, small objects dropped, split, 1 px grow-back), scored with
``napari_segnet.numerics.metrics.object_scores`` (stardist's one-to-one matching) against the true instances.

``--rescale`` adds rows with the "object size" option: each image is predicted with ``diameter=`` its median
nucleus diameter, measured on its ground truth as "estimate from this labels layer" would (a model without a
recorded size gets that of the cells3d training slices).

Writes ``benchmarks/results/domain_shift.json`` (the README's and docs' zero-shot tables: ``python -m
benchmarks.tables``). Run: python -m benchmarks.domain_shift [--old /tmp/old_default.safetensors] [--model path ...]
[--rescale]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from napari_segnet.data.domain_shift import domain_shift_set
from napari_segnet.inference.scale import estimate_diameter
from napari_segnet.numerics.instances import label_instances
from napari_segnet.numerics.metrics import ObjectScores, confusion_matrix, object_scores, scores_from_confusion
from napari_segnet.segmenter import Segmenter

from . import records


def match(pred: np.ndarray, true_ids: np.ndarray) -> ObjectScores:
    """Object scores at IoU 0.5 of the instances of class ids ``pred`` against instance ids ``true_ids``."""
    return object_scores(label_instances(pred), true_ids, thresholds=(0.5,), true_is_semantic=False)[0]


def evaluate(seg: Segmenter, cases, rescale: bool) -> dict[str, dict]:
    """{subset: {iou, f1, ap, seconds, objects}} of ``seg`` on ``cases``; with ``rescale``, each image is given
    its true object size (``diameter=estimate_diameter(instances)``: what "estimate from this labels layer" gives)."""
    rows: dict[str, dict] = {}
    seg.predict(cases[0].image)  # warm-up: the first call builds the inference network and measures memory
    for case in cases:
        diameter = estimate_diameter(case.instances) if rescale else None
        start = time.perf_counter()
        pred = seg.predict(case.image, diameter=diameter).astype(np.uint8)
        seconds = time.perf_counter() - start
        for subset in (case.subset, "all"):
            row = rows.setdefault(subset, {"n": np.zeros((2, 2), np.int64), "objects": [], "s": 0.0})
            row["n"] += confusion_matrix(pred, case.labels, 2)
            row["objects"].append(match(pred, case.instances))
            row["s"] += seconds
    out = {}
    for subset, row in sorted(rows.items(), key=lambda item: item[0] == "all"):
        pooled = ObjectScores.pooled(row["objects"])
        out[subset] = {"iou": float(scores_from_confusion(row["n"])["iu"][1]), "f1": pooled.f1,
                       "ap": pooled.average_precision, "seconds": row["s"], "objects": pooled.n_true}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", help="checkpoint of the previous default, e.g. /tmp/old_default.safetensors "
                                      "(git show main~N:napari_segnet/weights/default.safetensors > it)")
    parser.add_argument("--model", nargs="*", default=[], help="more checkpoints to compare")
    parser.add_argument("--rescale", action="store_true", help="also rows with the image zoomed to the model's "
                                                               "object size")
    args = parser.parse_args()
    from napari_segnet.sample_data import TRAIN, nuclei_instances

    torch.set_num_threads(2)
    models = {"shipped default": Segmenter.default()}
    if args.old:
        models = {"previous default": Segmenter.load(args.old), **models}
    models.update({path: Segmenter.load(path) for path in args.model})
    cases = domain_shift_set()
    print(f"{len(cases)} images, {sum(c.image.size for c in cases) / 1e6:.2f} MP, torch threads "
          f"{torch.get_num_threads()}\n")
    print("| model | object size | data | objects | pixel IoU | object F1@0.5 | AP@0.5 | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for name, seg in models.items():
        if args.rescale and seg.object_diameter is None:
            seg.annotate(object_diameter=estimate_diameter(nuclei_instances()[list(TRAIN)]))
        for rescale in (False, True)[:1 + args.rescale]:
            label_size = f"zoom to {seg.object_diameter:.0f} px" if rescale else "as is"
            for subset, r in evaluate(seg, cases, rescale).items():
                rows.append({"model": name, "object_size": label_size, "data": subset, "objects": r["objects"],
                             **{k: round(float(r[k]), 4) for k in ("iou", "f1", "ap")},
                             "seconds": round(r["seconds"], 2)})
                print(f"| {name} | {label_size} | {subset} | {r['objects']} | {r['iou']:.3f} | {r['f1']:.3f} | "
                      f"{r['ap']:.3f} | {r['seconds']:.2f} |", flush=True)
    print(f"wrote {records.write('domain_shift', {'benchmark': 'domain_shift', 'rows': rows})}")


if __name__ == "__main__":
    main()
