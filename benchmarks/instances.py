"""Instance post-processing choices scored on the nuclei sample with the shipped default model.

Predicts the 6 held-out 256² slices (and, as a check that the choices are not tuned to 6 slices, the 28
training slices) once, turns class ids into instances with ``label_instances`` under each setting and scores
them against the sample's true instances (slice by slice) with ``object_scores``. The "training targets" rows
score the targets themselves (true instances with the U-Net gap cut between touching nuclei): what grow-back
restores when the network is perfect. A last table splits the 4-class synthetic targets (cells, elongated
rods, vesicles) with and without the waist criterion. Stores the rows in ``benchmarks/results/instances.json``
(docs/benchmarks.md's tables are generated from it). Run: python -m benchmarks.instances
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_segnet.numerics import instances
from napari_segnet.numerics.instances import instance_classes, label_instances, typical_area
from napari_segnet.numerics.metrics import object_scores

from . import records


def settings(area: float) -> list[tuple[str, dict]]:
    """(name of the min_size, options) for the predicted slices; ``area``: the typical nucleus area (px)."""
    radius = np.sqrt(area / np.pi)
    frac = {f: (f"{f:g}·A = {round(f * area)}", round(f * area)) for f in (0.05, 0.15, 0.3)}
    none = {"split": False, "grow": 0}
    rows = [("0", {"min_size": 0, **none})] + [(frac[f][0], {"min_size": frac[f][1], **none}) for f in frac]
    rows += [(frac[0.15][0], {"min_size": "auto", "split": True, "min_distance": round(f * radius), "grow": 0})
             for f in (1.0, 1.5)]
    rows += [(frac[0.15][0], {"min_size": "auto", "split": True, "grow": g, "grow_into": into})
             for g, into in ((1, "gaps"), (2, "gaps"), (1, "background"), (2, "background"))]
    return rows


def row(source: str, size: str, labels: np.ndarray, truth: np.ndarray, options: dict) -> dict:
    t = time.perf_counter()
    pred = label_instances(labels, **options)
    ms = (time.perf_counter() - t) * 1000 / len(labels)
    s50, s75, _ = object_scores(pred, truth, true_is_semantic=False)
    split = f"yes ({options.get('min_distance', 'auto')})" if options.get("split", True) else "no"
    grow = options.get("grow", 1)
    grown = f"{grow} px, {options.get('grow_into', 'gaps')}" if grow else "none"
    return {"class_ids": source, "min_size": size, "split": split, "grow_back": grown, "pred": s50.n_pred,
            "true": s50.n_true, "f1": round(s50.f1, 4), "ap50": round(s50.average_precision, 4),
            "ap75": round(s75.average_precision, 4), "matched_iou": round(s50.mean_matched_iou, 4),
            "ms_per_slice": round(ms, 1)}


def table(title: str, slices: list[int], segmenter, image, targets, instances) -> dict:
    t = time.perf_counter()
    predicted = segmenter.predict(image[slices])
    area = typical_area(predicted == 1)
    section = {"title": title, "slices": len(slices), "predict_seconds": round(time.perf_counter() - t, 1),
               "typical_area": round(float(area)), "rows": []}
    truth = instances[slices]
    for grow, into in ((0, "gaps"), (1, "gaps"), (2, "gaps"), (1, "background")):
        section["rows"].append(row("training targets", "0", targets[slices], truth,
                                   {"min_size": 0, "split": False, "grow": grow, "grow_into": into}))
    for size, options in settings(area):
        section["rows"].append(row("default model", size, predicted, truth, options))
    print(section, flush=True)
    return section


def synthetic_table(seeds=(0, 1, 2)) -> dict:
    """Split or not on the synthetic targets (true gaps): a split of every object cuts the rods."""
    from napari_segnet.data.synthetic import synthetic_image

    data = [synthetic_image((256, 256), seed=s)[1:] for s in seeds]
    truth = instances.unique_per_slice(np.stack([ids for _, ids in data]))
    section = {"seeds": list(seeds), "solidity": instances.SPLIT_SOLIDITY, "rows": []}
    labels = np.stack([lab for lab, _ in data])
    true_rods = sum(c == 2 for c in instance_classes(truth, labels).values())
    for name, split, solidity in (("no", False, None), ("every object", True, 1.01),
                                  ("objects with a waist (default)", True, instances.SPLIT_SOLIDITY)):
        default, instances.SPLIT_SOLIDITY = instances.SPLIT_SOLIDITY, solidity or instances.SPLIT_SOLIDITY
        try:
            pred = label_instances(labels, split=split)
        finally:
            instances.SPLIT_SOLIDITY = default
        rods = sum(c == 2 for c in instance_classes(pred, labels).values())
        s = object_scores(pred, truth, true_is_semantic=False)[0]
        section["rows"].append({"split": name, "pred": s.n_pred, "true": s.n_true, "rods": rods,
                                "true_rods": int(true_rods), "f1": round(s.f1, 4),
                                "matched_iou": round(s.mean_matched_iou, 4)})
    return section


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    from napari_segnet.sample_data import HELD_OUT, TRAIN, nuclei, nuclei_instances

    from napari_segnet.segmenter import Segmenter

    image, targets = nuclei()
    true_ids, segmenter = nuclei_instances(), Segmenter.default()
    record = {"benchmark": "instances",
              "tables": [table("Held-out slices", list(HELD_OUT), segmenter, image, targets, true_ids),
                         table("Training slices (seen by the model)", list(TRAIN), segmenter, image, targets,
                               true_ids)],
              "synthetic": synthetic_table()}
    print(f"wrote {records.write('instances', record)}")


if __name__ == "__main__":
    main()
