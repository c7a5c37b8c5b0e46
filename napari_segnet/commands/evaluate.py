"""``napari-segnet evaluate``: score predictions against ground truth, per file and in total, as a table.

Pixel metrics (FCN paper: pixel accuracy, mean accuracy, mean IU, frequency-weighted IU, IU per class) compare
class ids. Object metrics (precision, recall, F1 and AP at IoU 0.5) compare the objects of the prediction
(``instances.label_instances``: face-connected components of each class, the same as ``predict --instances``)
with the ground truth's objects (its instance ids, or the components of its classes if it holds class ids).
The total row sums the confusion matrices and the object counts over all files.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np

from ..io.fileio import atomic_write
from ..io.imagefiles import find_images, pair_by_stem, read_image, stem
from ..numerics.metrics import Evaluation, ObjectScores, evaluate, scores_from_confusion
from .common import MAX_GUESSED_CLASSES, OK, UsageError, say

COLUMNS = ("pixel_accuracy", "mean_accuracy", "mean_iu", "frequency_weighted_iu")
OBJECT_COLUMNS = ("precision", "recall", "f1", "average_precision")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="napari-segnet evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pred", metavar="PRED", help="predicted labels: a file or a folder (x_labels.tif pairs with x.tif; "
                   "in a folder with *_labels files only those count)")
    p.add_argument("gt", metavar="GT", help="ground-truth labels: a file or a folder")
    p.add_argument("--csv", help="also write the table as CSV to this file")
    p.add_argument("--classes", type=int, help="number of classes (default: largest id in GT or PRED + 1)")
    p.add_argument("--no-objects", action="store_true", help="pixel metrics only")
    p.add_argument("--iou", type=float, default=0.5, help="IoU threshold of a matched object (default 0.5)")
    return p


def run(args: argparse.Namespace) -> int:
    if not 0 < args.iou <= 1:
        raise UsageError(f"--iou must be an IoU in (0, 1], got {args.iou:g}")
    pairs = _pairs(args.pred, args.gt)
    rows, scored = [], []
    arrays = [(_read(p, "PRED"), _read(g, "GT")) for p, g in pairs]
    classes = args.classes or max(2, max(int(max(a.max(), b.max())) for a, b in arrays) + 1)
    if not args.classes and classes > MAX_GUESSED_CLASSES:
        raise UsageError(f"the labels hold ids up to {classes - 1}, which as class ids would be {classes} classes "
                         "(instance ids?); give class ids, or --classes N if there are that many classes")
    for (pred_path, _), (pred, gt) in zip(pairs, arrays):
        row, scores = _score(pred, gt, classes, args, pred_path.name)
        rows.append(row)
        scored.append(scores)
    if len(rows) > 1:
        rows.append(_total(scored, args))
    table = _table(rows)
    print(table)
    if args.csv:
        _write_csv(Path(args.csv), rows)
    return OK


def _pairs(pred: str, gt: str) -> list[tuple[Path, Path]]:
    try:
        preds, gts = find_images([pred]), find_images([gt])
        labels = [p for p in preds if stem(p).endswith("_labels")]
        preds = labels or preds  # a folder `predict` wrote: its labels, not its _proba and _instances
        if len(preds) == len(gts) == 1 and Path(pred).is_file() and Path(gt).is_file():
            return [(preds[0], gts[0])]
        return pair_by_stem(preds, gts, ("predictions", "ground truths"))
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from e


def _read(path: Path, what: str) -> np.ndarray:
    try:
        array = np.asarray(read_image(path)[0])
    except ValueError as e:
        raise UsageError(f"{what}: {e}") from e
    if not np.issubdtype(array.dtype, np.integer) and array.dtype != bool:
        raise UsageError(f"{what} {path.name} holds {array.dtype} values, not integer labels")
    return array


def _score(pred, gt, classes: int, args, name: str) -> tuple[dict, Evaluation]:
    """One file's table row and its scores (:func:`~napari_segnet.numerics.metrics.evaluate`, as the dock's)."""
    if pred.shape != gt.shape:
        raise UsageError(f"{name}: the prediction's shape {pred.shape} differs from the ground truth's {gt.shape}")
    try:
        scored = evaluate(pred, gt, classes, () if args.no_objects else (args.iou,))
    except ValueError as e:
        raise UsageError(f"{name}: {e} (give --classes)") from e
    return _row(name, scored.pixels, scored.objects, args), scored


def _total(scored: list[Evaluation], args) -> dict:
    """The total row: confusion matrices and object counts summed over the files."""
    pixels = scores_from_confusion(sum(s.pixels["confusion"] for s in scored))
    objects = [] if args.no_objects else [ObjectScores.pooled([s.objects[0] for s in scored])]
    return _row("total", pixels, objects, args)


def _row(name: str, pixels: dict, objects: list[ObjectScores], args) -> dict:
    row = {"file": name, **{k: pixels[k] for k in COLUMNS}, **{f"iu_{i}": v for i, v in enumerate(pixels["iu"])}}
    for s in objects:
        row.update({f"{k}@{args.iou:g}": getattr(s, k) for k in OBJECT_COLUMNS})
    return row


def _table(rows: list[dict]) -> str:
    """Rows as an aligned plain-text table (floats to 4 decimals; NaN: a class absent from both)."""
    columns = list(rows[0])
    cells = [columns] + [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths)))
                     for row in cells)


def _fmt(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "nan" if np.isnan(value) else f"{value:.4f}"
    return str(value)


def _write_csv(path: Path, rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows({k: _fmt(v) for k, v in r.items()} for r in rows)
    try:
        atomic_write(path, lambda tmp: Path(tmp).write_text(text.getvalue()))
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from e
    say(f"wrote {path}")
