"""The simulated user from the shipped default on images from another microscope (``hitl.py --data shift``).

Data: the six held-out cells3d slices as a 20× widefield camera would record them
(``napari_segnet.data.domain_shift.shifted_cells3d``: zoomed 0.5–0.7×, blurred, noisy, 8-bit range in uint16; no model
trained on them). The first three are the user's working images, the last three are held out. Each round the
user corrects the unreviewed ``TILE``² tile with the most wrong pixels (the images are 128–180 px, so a 64² tile
is about the share of a 128² tile of a 256² image), the model is fine-tuned on all reviewed tiles (continuing
from the previous round's active version, guard on the reviewed pixels) and predicts again. Round 0 is the
shipped default zero-shot. Per round: nucleus pixel IoU, object F1 and AP at IoU 0.5 (instances:
``Segmenter.predict_instances``; true instances as drawn) on the held-out images and pixel IoU on the working
ones, and the seconds of the round (fine-tune + predicting the six images). The peer is the product's pixel forest
(:mod:`.forest_peer`), trained on the same pixels; its instances are the face-connected components of its
foreground.

Measured options (README, "Human in the loop from the shipped default"): ``replay=k`` adds k × (reviewed tiles)
crops of the default's own training data (``scripts/train_default.training_pool`` with another seed: 128² crops
whose central 64² is marked reviewed, so they weigh as much as a user tile) to every round, with the steps the
user's area alone would get; ``average=α`` keeps α · fine-tuned + (1 − α) · previous weights after each round
(weight-space ensembling).
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch
from skimage.measure import label

from napari_segnet.data.domain_shift import shifted_cells3d
from napari_segnet.numerics.instances import label_instances
from napari_segnet.numerics.metrics import ObjectScores, object_scores, segmentation_scores
from napari_segnet.segmenter import Segmenter

from .forest_peer import ForestPeer
from .plots import round_plot
from .simulated_user import correct_tile, worst_tile

TILE = 64


def scores(preds, instances, truths, cases) -> tuple[float, float, float]:
    """(pixel IoU of class 1 over all images, object F1@0.5, AP@0.5 with counts pooled over the images)."""
    iou = float(segmentation_scores(np.concatenate([p.ravel() for p in preds]),
                                    np.concatenate([t.ravel() for t in truths]), 2)["iu"][1])
    pooled = ObjectScores.pooled([object_scores(ids, case.instances, thresholds=(0.5,), true_is_semantic=False)[0]
                                  for ids, case in zip(instances, cases)])
    return iou, pooled.f1, pooled.average_precision


class Model:
    """The shipped default with optional prediction settings (test-time augmentation, object size)."""

    def __init__(self, tta: bool, diameter: float | None, path: str | None = None):
        self.seg = Segmenter.load(path) if path else Segmenter.default()
        self.tta, self.diameter = tta, diameter

    def predict(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(class ids, instance ids) of ``image`` (Y, X)."""
        pred = self.seg.predict(image, diameter=self.diameter, tta=self.tta)
        return pred, label_instances(pred)


def replay_crops(count: int, rng: np.random.Generator) -> tuple[list, list, list]:
    """``count`` 128² crops of the default's training data: (images, labels, reviewed = the central 64²)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "train_default.py"  # a script, not a package
    spec = importlib.util.spec_from_file_location("train_default", path)
    train_default = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_default)
    images, labels, _ = train_default.training_pool(max(count, 1), seed=1)
    out = ([], [], [])
    for image, lab in zip(images, labels, strict=True):
        y, x = (rng.integers(0, max(n - 128, 0) + 1) for n in image.shape)
        mask = np.zeros((min(128, image.shape[0]), min(128, image.shape[1])), bool)
        mask[32:96, 32:96] = True
        for part, item in zip(out, (image[y:y + 128, x:x + 128], lab[y:y + 128, x:x + 128], mask)):
            part.append(item)
    return out


def finetune_round(model: Model, work, truths, reviewed, rnd: int, settings: dict, diameter, replay: int,
                   average: float) -> bool:
    """One fine-tune of ``model`` on the reviewed tiles (+ replay, then weight averaging); True if accepted."""
    from napari_segnet.training.settings import TrainSettings

    images, labels, masks = [c.image for c in work], [np.where(r, t, 0) for t, r in zip(truths, reviewed)], reviewed
    if replay:
        area = int(sum(r.sum() for r in reviewed))
        settings = {"steps": TrainSettings.of(**settings).resolved(area).steps} | settings
        more = replay_crops(replay * area // TILE**2, np.random.default_rng(rnd))
        images, labels, masks = images + more[0], labels + more[1], list(masks) + more[2]
    before = {k: v.clone() for k, v in model.seg.net.state_dict().items()}
    update = list(model.seg.finetune(images, labels, masks, seed=rnd, diameter=diameter, **settings))[-1]
    if update.accepted and average < 1:
        after = model.seg.net.state_dict()
        model.seg.net.load_state_dict({k: average * after[k] + (1 - average) * before[k]
                                       if after[k].is_floating_point() else after[k] for k in after})
    return update.accepted


def run_shift(rounds: int, settings: dict, tta: bool = False, diameter: float | None = None, forest: bool = True,
              model_path: str | None = None, replay: int = 0, average: float = 1.0) -> list[tuple]:
    """Print and return the table rows (round, tiles, U-Net held-out IoU/F1/AP, working IoU, RF …, seconds)."""
    cases = shifted_cells3d()
    work, held = cases[:3], cases[3:]
    truths = [c.labels for c in work]
    model = Model(tta, diameter, model_path)
    peer = ForestPeer([c.image for c in work], 2) if forest else None
    reviewed = [np.zeros(t.shape, bool) for t in truths]
    print(f"domain shift: 3 working + 3 held-out shifted cells3d slices, {TILE}² tiles; CPU, "
          f"{torch.get_num_threads()} threads; shipped default; fine-tune {json.dumps(settings)}; tta={tta}; "
          f"diameter={diameter}; replay={replay}; average={average}\n")
    print("| round | tiles | U-Net IoU | U-Net F1@0.5 | U-Net AP@0.5 | U-Net IoU (working) | RF IoU | RF F1@0.5 "
          "| RF AP@0.5 | RF IoU (working) | U-Net s | RF s | active |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows, t0, preds = [], time.perf_counter(), []
    for rnd in range(rounds + 1):
        accepted = "—"
        if rnd:
            correct_tile(truths, reviewed, worst_tile(preds, truths, reviewed, TILE))
            t0 = time.perf_counter()
            accepted = "yes" if finetune_round(model, work, truths, reviewed, rnd, settings, diameter, replay,
                                               average) else "no"
        out = [model.predict(c.image) for c in cases]
        seconds = time.perf_counter() - t0
        preds = [o[0] for o in out[:3]]
        ours = scores([o[0] for o in out[3:]], [o[1] for o in out[3:]], [c.labels for c in held], held)
        work_iou = scores(preds, [o[1] for o in out[:3]], truths, work)[0]
        rf, rf_s = ("—",) * 4, "—"
        if rnd and peer is not None:
            t1 = time.perf_counter()
            rf_work, rf_held = peer.fit_predict(truths, reviewed, [c.image for c in held])
            rf_s = f"{time.perf_counter() - t1:.1f}"
            rf_scores = scores(rf_held, [label(p == 1, connectivity=1) for p in rf_held], [c.labels for c in held],
                               held)
            rf_w = scores(rf_work, [label(p == 1, connectivity=1) for p in rf_work], truths, work)[0]
            rf = tuple(f"{v:.3f}" for v in (*rf_scores, rf_w))
        row = (rnd, sum(int(r.sum()) for r in reviewed) / TILE**2, *ours, work_iou, *rf, seconds, rf_s, accepted)
        rows.append(row)
        print("| {} | {:.1f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {} | {} | {} | {} | {:.1f} | {} | {} |".format(
            *row), flush=True)
    return rows


def plot(rows: list[tuple], path: str) -> None:
    """PNG of held-out object F1 and pixel IoU per round, U-Net against the forest."""
    r = [row[0] for row in rows]
    rf = [(row[0], float(row[7]), float(row[6])) for row in rows if row[6] != "—"]
    round_plot([(r, [row[3] for row in rows], "o-", "U-Net (shipped default) object F1@0.5"),
                (r, [row[2] for row in rows], "o:", "U-Net pixel IoU"),
                ([x[0] for x in rf], [x[1] for x in rf], "s--", "random forest object F1@0.5"),
                ([x[0] for x in rf], [x[2] for x in rf], "s:", "random forest pixel IoU")],
               r, f"round (one {TILE}² tile corrected per round; 0 = zero-shot)", "held-out score (domain shift)", path)
