"""The loop as a person runs it: a simulated person acting only through the real dock, scored on held-out images.

The person opens napari, opens the dock from the plugin manifest (as the Plugins menu does), and for each round:
chooses the next working image in the dock's image list, presses Predict (first time), presses Next (or, with
``--region worst``, looks at the 128² tile with the most wrong pixels), paints every wrong patch of ≥ ``MIN_AREA``
pixels in that tile with the true class (brush of 3 px through the Labels layer's paint path: the strokes mark the
tile as reviewed), and presses Fine-tune with the dock's defaults. After each round every held-out image is chosen
and predicted through the dock (Predict) and scored against its truth. Nothing here calls the model directly except
to judge the guard: the held-out score of the version it kept inactive (or of its parent) is computed to say
whether its decision was right (right = it kept the version that scores higher on the held-out images, a tie of
≤ ``TIE`` counting as right either way; the tables also count with ``TIES[1]`` = 0.01, the issue's own "no drop >
0.01" for a round that is as good as the last).

Cases (no model ships trained on any of their images):
- ``nuclei``: the shipped default on the domain-shift set's six cells3d slices as another microscope records them
  (``napari_segnet.data.domain_shift.shifted_cells3d``): three working images, three held out; nucleus IoU and
  object F1 @ 0.5 (instances: ``label_instances`` of the prediction).
- ``scratch``: a new U-Net for background / cytoplasm / nucleus made in the dock ("Use this model"), on the
  ``ndev-sampledata`` scratch assay (real microscopy, 2 channels: H33342 and oblique light; 10 frames of 210×576):
  frames 0–2 to work on, frames 6–9 held out; mean IU.

The person's tile choice and painting are those of :mod:`.simulated_user` (``worst_tile``, ``wrong_patches``).

Run (needs a display; ``xvfb-run -a`` gives one): ``python -m benchmarks.dock_loop --case nuclei --rounds 3
--seeds 3`` — results go to ``benchmarks/results/dock_loop_<case>_<region>_<mode>.json`` with the machine and date;
``--tables`` regenerates the docs' tables from the stored records (:mod:`.tables`).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import records
from .forest_peer import ForestPeer
from .guard_judgement import TIES, guard_right
from .simulated_user import worst_tile, wrong_patches

#: The brush (px) the person paints with.
BRUSH = 3
#: Held-out scores this close count as a tie when judging the guard (the tables count with both of ``TIES``).
TIE = TIES[0]


@dataclass
class Case:
    """Working and held-out images (as the dock gets them) with their truths; how to score predictions."""

    name: str
    working: list
    working_truth: list
    held: list
    held_truth: list
    held_instances: list | None = None
    classes: str | None = None  # None: the shipped default; else the class names of a new model
    channel_axis: str = "auto"
    extra: dict = field(default_factory=dict)


def nuclei_case() -> Case:
    from napari_segnet.data.domain_shift import shifted_cells3d

    cases = shifted_cells3d()
    work, held = cases[:3], cases[3:]
    return Case("nuclei", [c.image for c in work], [c.labels for c in work], [c.image for c in held],
                [c.labels for c in held], [c.instances for c in held])


def scratch_case() -> Case:
    import importlib.util

    import tifffile

    spec = importlib.util.find_spec("ndev_sampledata")
    path = Path(spec.submodule_search_locations[0]) / "samples" / "scratch-assay-labeled-10T-2Ch.tiff"
    data = tifffile.imread(path)  # (C=4, T=10, Y, X): H33342, oblique, nuclei ids, cell ids
    images = [np.ascontiguousarray(data[:2, t]) for t in range(10)]
    truths = [np.where(data[2, t] > 0, 2, np.where(data[3, t] > 0, 1, 0)).astype(np.uint8) for t in range(10)]
    return Case("scratch", images[:3], truths[:3], images[6:], truths[6:], None,
                classes="background, cytoplasm, nucleus", channel_axis="0")


def wait(app, dock, timeout=600.0) -> None:
    """Process Qt events until the dock's job (and any job it starts when it ends) is done."""
    end, idle = time.perf_counter() + timeout, 0
    while time.perf_counter() < end:
        app.processEvents()
        job = dock.job
        idle = idle + 1 if job is None or job.done else 0
        if idle > 5:
            return
        time.sleep(0.005)
    raise TimeoutError("the dock's job did not finish")


def choose(dock, layer) -> None:
    dock.reset_choices()
    dock.image_layer.value = layer


def paint_corrections(layer, truth: np.ndarray, box: tuple[slice, slice]) -> int:
    """Paint the simulated user's dabs (:func:`.simulated_user.wrong_patches`) inside ``box`` of the Labels
    ``layer`` with a BRUSH-px brush through ``layer.paint``; ``truth``: (Y, X). Returns the number of dabs."""
    layer.brush_size = BRUSH
    layer.mode = "paint"
    dabs = 0
    for y, x, cls in list(wrong_patches(np.asarray(layer.data), truth, box)):
        layer.paint((y, x), cls, refresh=False)
        dabs += 1
    layer.refresh()
    return dabs


def scores(case: Case, preds: list) -> dict:
    from napari_segnet.numerics.instances import label_instances
    from napari_segnet.numerics.metrics import ObjectScores, object_scores, segmentation_scores

    n = 2 if case.classes is None else len(case.classes.split(","))
    flat = segmentation_scores(np.concatenate([p.ravel() for p in preds]),
                               np.concatenate([t.ravel() for t in case.held_truth]), n)
    out = {"mean_iu": round(flat["mean_iu"], 4)}
    if case.held_instances is not None:
        pooled = ObjectScores.pooled([object_scores(label_instances(p), ids, thresholds=(0.5,),
                                                    true_is_semantic=False)[0]
                                      for p, ids in zip(preds, case.held_instances)])
        out.update(iou=round(float(flat["iu"][1]), 4), f1=round(pooled.f1, 4))
    return out


def headline(case: Case, s: dict) -> float:
    return s["iou"] if case.held_instances is not None else s["mean_iu"]


def held_out_through_dock(app, dock, viewer, case: Case) -> list:
    preds = []
    for i in range(len(case.held)):
        choose(dock, viewer.layers[f"held {i}"])
        dock.predict_button.native.click()
        wait(app, dock)
        preds.append(np.asarray(viewer.layers[f"held {i} prediction"].data).copy())
    return preds


def _axis(case: Case) -> int | None:
    return None if case.channel_axis == "auto" else int(case.channel_axis)


def _at_version(seg, version: int):
    """A copy of the model with ``version`` active (to judge the guard; the person never sees this)."""
    import copy

    other = copy.deepcopy(seg)
    other.rollback(version)
    return other


def version_scores(case: Case, seg, version: int) -> dict:
    """Held-out scores of ``version``."""
    other = _at_version(seg, version)
    return scores(case, [other.predict(im, channel_axis=_axis(case)) for im in case.held])


def working_delta(case: Case, seg, new: int, old: int, reviewed: list) -> float:
    """Mean IU of version ``new`` minus version ``old`` on the person's own working images, on the pixels outside
    every reviewed region (``reviewed``: a bool mask per working image): the rest of the user's data, which no
    version trained on and whose truth the guard never saw."""
    from napari_segnet.numerics.metrics import segmentation_scores

    truth = np.concatenate([t[~r] for t, r in zip(case.working_truth, reviewed)])
    out = []
    for version in (new, old):
        other = _at_version(seg, version)
        pred = np.concatenate([other.predict(im, channel_axis=_axis(case))[~r]
                               for im, r in zip(case.working, reviewed)])
        out.append(segmentation_scores(pred, truth, seg.num_classes)["mean_iu"])
    return float(out[0] - out[1])


def wait_for_bursts(app, dock, timeout=300.0) -> None:
    """Live mode: process Qt events until the session has trained on every stroke and run its idle bursts."""
    session, end = dock.live_mode.session, time.perf_counter() + timeout
    while time.perf_counter() < end:
        app.processEvents()
        if session.strokes == session._trained_strokes and session._idle >= session.settings.idle_bursts:
            return
        time.sleep(0.01)
    raise TimeoutError("live mode did not settle")


def run(case: Case, rounds: int, seed: int, region: str, live: bool = False, viewer=None) -> dict:
    """One person's session of ``rounds`` rounds; ``viewer``: a napari viewer to use (tests pass their fixture's),
    else one is made and closed here."""
    import napari
    import torch

    from napari_segnet._widgets.review import reviewed_mask

    torch.manual_seed(seed)
    peer = None if case.classes is None else ForestPeer(case.working, len(case.classes.split(",")), _axis(case))
    own = viewer is None
    viewer = napari.Viewer(show=False) if own else viewer
    app = napari.qt.get_qapp()
    _, dock = viewer.window.add_plugin_dock_widget("napari-segnet", "SegNet (predict, correct, fine-tune)")
    for i, im in enumerate(case.working):
        viewer.add_image(im, name=f"work {i}")
    for i, im in enumerate(case.held):
        viewer.add_image(im, name=f"held {i}")
    dock.reset_choices()
    dock.channel_axis.value = case.channel_axis
    choose(dock, viewer.layers["work 0"])
    if case.classes is not None:
        dock.architecture.value = "unet"
        dock.class_names.value = case.classes
        dock.new_button.native.click()
    start = scores(case, held_out_through_dock(app, dock, viewer, case))
    rows = [{"round": 0, **start, "seconds": None}]
    for r in range(1, rounds + 1):
        i = (r - 1) % len(case.working)
        layer_name = f"work {i}"
        choose(dock, viewer.layers[layer_name])
        if f"{layer_name} prediction" not in viewer.layers:
            dock.predict_button.native.click()
            wait(app, dock)
        labels = viewer.layers[f"{layer_name} prediction"]
        if region == "next":
            dock.next_button.native.click()
            app.processEvents()
            _, _, _, rows_, cols_ = dock.live_mode.suggested
            box = (rows_, cols_)
        else:
            _, box = worst_tile([np.asarray(labels.data)], [case.working_truth[i]],
                                [reviewed_mask(viewer, viewer.layers[layer_name], labels.data.shape)])
        viewer.layers.selection.active = labels
        seg = dock.segmenter
        parent = seg.active_version
        if live:
            dock.live_toggle.value = True  # then paint: every stroke is learnt in bursts
        dabs = paint_corrections(labels, case.working_truth[i], box)
        t0 = time.perf_counter()
        if live:
            wait_for_bursts(app, dock)
            dock.live_toggle.value = False  # the kept bursts become one version
            dock.predict_button.native.click()
            wait(app, dock)
        else:
            dock.train_button.native.click()
            wait(app, dock)
        seconds = time.perf_counter() - t0
        newest = max(seg.metadata.version_ids)
        accepted = seg.active_version == newest and newest != parent
        now = scores(case, held_out_through_dock(app, dock, viewer, case))
        other = version_scores(case, seg, parent if accepted else newest)
        new, old = (now, other) if accepted else (other, now)
        delta = headline(case, new) - headline(case, old)
        right = guard_right(accepted, delta, TIE)
        reviewed = [reviewed_mask(viewer, viewer.layers[f"work {j}"], t.shape)
                    for j, t in enumerate(case.working_truth)]
        rows.append({"round": r, **now, "seconds": round(seconds, 2), "dabs": dabs, "accepted": accepted,
                     "guard_right": bool(right), "delta_new_minus_old": round(delta, 4),
                     "working_delta_new_minus_old": round(working_delta(case, seg, newest, parent, reviewed), 4),
                     "guard": seg.versions[-1].details.get("guard"),
                     "guard_scores": [(seg.versions[-1].details.get("parent_scores") or {}).get("mean_iu"),
                                      (seg.versions[-1].scores or {}).get("mean_iu")]})
        if peer is not None:  # a new model: the forest on the same pixels the person gave is the peer to beat
            given = [np.asarray(viewer.layers[f"work {j} prediction"].data) if f"work {j} prediction" in viewer.layers
                     else np.zeros(t.shape, np.uint8) for j, t in enumerate(case.working_truth)]  # unreviewed: unused
            _, held = peer.fit_predict(given, reviewed, case.held)
            rows[-1]["forest"] = scores(case, held)
        print(case.name, seed, rows[-1], flush=True)
    if own:
        viewer.close()
    return {"seed": seed, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("nuclei", "scratch"), default="nuclei")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed … first-seed + seeds − 1")
    parser.add_argument("--region", choices=("next", "worst"), default="next")
    parser.add_argument("--live", action="store_true", help="live mode instead of Fine-tune")
    parser.add_argument("--out", default=None)
    parser.add_argument("--tables", action="store_true",
                        help="only regenerate the docs' tables from the stored records (python -m benchmarks.tables)")
    args = parser.parse_args()
    if args.tables:
        from . import tables

        return tables.main([])
    case = {"nuclei": nuclei_case, "scratch": scratch_case}[args.case]()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    runs = [run(case, args.rounds, seed, args.region, args.live) for seed in seeds]
    mode = "live" if args.live else "finetune"
    record = {"benchmark": "dock_loop", "case": args.case, "region": args.region, "mode": mode, "rounds": args.rounds,
              "runs": runs}
    out = records.write(f"dock_loop_{args.case}_{args.region}_{mode}", record, Path(args.out) if args.out else None)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
