"""The docs' benchmark numbers, generated from the stored records so that they never drift from what was measured.

Every Markdown file of the repository (README.md, docs/*.md) may hold blocks

    <!-- generated: NAME -->
    …
    <!-- end generated -->

whose body is :data:`RENDERERS`\\ [NAME] applied to the records in ``benchmarks/results/``. ``python -m
benchmarks.tables`` rewrites every block; ``--check`` only says which files differ (exit status 1), as the test
of the docs does.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import records
from .guard_judgement import TIES, WORKING, guard_right

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)
#: What each dock_loop record shows in the summary: (case, mode) → the row's label.
LOOP_CASES = {("nuclei", "finetune"): "shipped default, images from another microscope",
              ("nuclei", "live"): "same, live mode instead of Fine-tune",
              ("scratch", "finetune"): "new 3-class U-Net, real scratch-assay frames"}


def markdown_files() -> list[Path]:
    """README.md and every Markdown file in docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _machine(record: dict) -> str:
    m = record["machine"]
    return f"{m['cpu']} × {m['cores']} cores, torch {m['torch']}"


def _spread(values: list[float]) -> str:
    v = np.array(values)
    return f"{v.mean():.3f} ± {v.std():.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def loop_table(record: dict) -> str:
    """A Markdown table of one dock_loop record: per round, the held-out scores (mean ± spread over the seeds), the
    pixel forest's on the same pixels (new models), the seconds per round, how often the new version became active
    and how often the guard was right; then a summary."""
    runs = [r["rows"] for r in record["runs"]]
    keys = [k for k in ("iou", "f1", "mean_iu") if k in runs[0][0]]
    forest = "forest" in runs[0][-1]
    head = ["round", *[f"held-out {k.replace('_', ' ')}" for k in keys], *(["forest, same pixels"] if forest else []),
            "s per round (max)", "new version active", f"guard right (ties ±{TIES[0]} / ±{TIES[1]})"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in range(len(runs[0])):
        rows = [run[r] for run in runs]
        cells = [str(r), *(_spread([row[k] for row in rows]) for k in keys)]
        if forest:
            cells.append(_spread([row["forest"]["mean_iu"] for row in rows]) if r else "—")
        if r == 0:
            cells += ["—", "—", "—"]
        else:
            secs = [row["seconds"] for row in rows]
            cells += [f"{np.mean(secs):.1f} ({max(secs):.1f})", f"{sum(row['accepted'] for row in rows)} of "
                      f"{len(rows)}", f"{right(rows, TIES[0])} / {right(rows, TIES[1])} of {len(rows)}"]
        lines.append("| " + " | ".join(cells) + " |")
    load, seeds = record["machine"].get("load"), [r["seed"] for r in record["runs"]]
    note = f"\n\n{record['note']}" if record.get("note") else ""
    return (f"**{record['case']}**, {record['mode']}, region: {record['region']} — {len(runs)} seeds "
            f"({min(seeds)}–{max(seeds)}), {record['date'][:10]}, {_machine(record)}"
            + ("" if load is None else f", load {load} at the end") + note + "\n\n" + "\n".join(lines) + "\n\n"
            + _loop_totals(runs, keys[0]) + "\n")


def right(rows: list[dict], tie: float, key: str = "delta_new_minus_old") -> int:
    """How many of ``rows`` (rounds) the guard was right in, differences ≤ ``tie`` counting as ties."""
    return sum(guard_right(row["accepted"], row[key], tie) for row in rows if key in row)


def _loop_totals(runs: list[list[dict]], key: str) -> str:
    """How often the guard was right (held-out images; the person's own working images outside the reviewed
    regions), the largest drop from one round to the next and the gain after round 3."""
    decisions = [row for run in runs for row in run[1:]]
    n = len(decisions)
    text = "Guard right against the held-out images in " + " and ".join(
        f"{right(decisions, tie)} of {n} rounds ({100 * right(decisions, tie) / n:.0f} %) with ties ≤ {tie}"
        for tie in TIES)
    mine = [row for row in decisions if WORKING in row]
    if mine:
        text += "; against the person's own working images outside the reviewed regions (mean IU) in " + " and ".join(
            f"{right(mine, tie, WORKING)} of {len(mine)} ({100 * right(mine, tie, WORKING) / len(mine):.0f} %) "
            f"with ties ≤ {tie}" for tie in TIES)
    drops = [run[i][key] - run[i + 1][key] for run in runs for i in range(len(run) - 1)]
    gains = [run[min(3, len(run) - 1)][key] - run[0][key] for run in runs]
    return (text + f". Largest drop of held-out {key.replace('_', ' ')} from one round to the next "
            f"{max(drops):.3f}; gain after round {min(3, len(runs[0]) - 1)}: {np.mean(gains):+.3f} (runs: "
            f"{', '.join(f'{g:+.3f}' for g in gains)}).")


def loop_tables() -> str:
    """docs/loop.md's tables: one per stored dock_loop record."""
    return "\n".join(loop_table(r) for r in records.read("dock_loop_*.json"))


def _mean_at(runs: list[list[dict]], key: str, r: int) -> float:
    return float(np.mean([run[min(r, len(run) - 1)][key] for run in runs]))


def loop_summary() -> str:
    """The README's table of the loop: per case (the runs of its dock_loop records pooled), the held-out score at
    rounds 0, 1, 3 (and the last), the pixel forest's on the same pixels, object F1 at rounds 0 and 3, the range
    of seconds per round and the guard's record."""
    found = records.read("dock_loop_*.json")
    pooled: dict[tuple, list] = {}  # runs of the same case, region and mode (several records: more seeds)
    for record in found:
        pooled.setdefault((record["case"], record["region"], record["mode"]), []).extend(record["runs"])
    head = ["case", "seeds", "held-out score, round 0 → 1 → 3", "pixel forest, same pixels, round 1 → 3",
            "object F1, round 0 → 3", "s per round", f"guard right: held-out images (ties ±{TIES[0]} / ±{TIES[1]})",
            f"guard right: your own images (±{TIES[0]})"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (case, _, mode), pooled_runs in pooled.items():
        runs = [r["rows"] for r in pooled_runs]
        key, name = ("iou", "nucleus IoU") if "iou" in runs[0][0] else ("mean_iu", "mean IU")
        last = len(runs[0]) - 1
        score = " → ".join(f"{_mean_at(runs, key, r):.3f}" for r in (0, 1, 3))
        if last > 3:
            score += f" ({_mean_at(runs, key, last):.3f} at round {last})"
        f1 = f"{_mean_at(runs, 'f1', 0):.3f} → {_mean_at(runs, 'f1', 3):.3f}" if "f1" in runs[0][0] else "—"
        forest = "—"
        if "forest" in runs[0][-1]:
            forest = " → ".join(f"{np.mean([run[r]['forest']['mean_iu'] for run in runs]):.3f}" for r in (1, 3))
            forest += f" ({np.mean([run[last]['forest']['mean_iu'] for run in runs]):.3f} at round {last})" \
                if last > 3 else ""
        secs = [row["seconds"] for run in runs for row in run[1:]]
        decisions = [row for run in runs for row in run[1:]]
        mine = [row for row in decisions if WORKING in row]
        own = f"{right(mine, TIES[0], WORKING)} of {len(mine)}" if mine else "—"
        label = LOOP_CASES.get((case, mode), f"{case}, {mode}")
        lines.append(f"| {label} | {len(runs)} | {name} {score} | {forest} | {f1} | {min(secs):.1f}–{max(secs):.1f} | "
                     f"{right(decisions, TIES[0])} / {right(decisions, TIES[1])} of {len(decisions)} | {own} |")
    dates = sorted({r["date"][:10] for r in found})
    return (f"From the stored records (`benchmarks/results/dock_loop_*.json`, the runs of each case pooled), "
            f"{', '.join(dates)}, {_machine(found[0])}.\n\n" + "\n".join(lines) + "\n")


def views_table() -> str:
    """docs/python-api.md's table of slice-wise against three-view prediction (views_cells3d.json)."""
    record = records.read("views_cells3d.json")[0]
    lines = ["| views | held-out slices: nucleus IoU | all 36 slices: nucleus IoU | seconds |", "|---|---|---|---|"]
    for row in record["rows"]:
        views = "1 (slice by slice)" if row["views"] == 1 else str(row["views"])
        if row["spacing"]:
            views += ", voxel size " + " × ".join(f"{s:g}" for s in row["spacing"]) + " µm"
        lines.append(f"| {views} | {row['held_out_iou']:.3f} | {row['all_slices_iou']:.3f} | {row['seconds']:.1f} |")
    return (f"Measured {record['date'][:10]} (`python -m benchmarks.views`, shipped default, cells3d nuclei "
            f"(36, 256, 256), torch {record['torch']}, {record['threads']} threads):\n\n" + "\n".join(lines) + "\n")


def big_image_summary() -> str:
    """docs/user-guide.md's numbers of a big image in the dock (big_image_*.json, the largest size stored)."""
    r = max(records.read("big_image_*.json"), key=lambda rec: rec["size"])
    return (f"Measured {r['date'][:10]} (`python -m benchmarks.big_image --size {r['size']} --blocks "
            f"{r['blocks_written']}`, {_machine(r)}, load {r['machine'].get('load')}): a {r['size']}² image "
            f"({r['levels']} pyramid levels); napari with the dock {r['napari_rss_mb']} MB; predicting, "
            f"{r['predict_peak_over_napari_mb']} MB at most above that; the first block shown after "
            f"{r['seconds_to_first_block']} s, the {r['visible_blocks']} blocks of the visible region after "
            f"{r['seconds_to_visible_region']} s, {r['seconds_per_block']} s a block; a fine-tune of "
            f"{r['finetune_steps']} steps with its refresh {r['finetune_seconds']} s, "
            f"{r['finetune_peak_over_napari_mb']} MB above napari"
            + ("" if "next_seconds" not in r else f"; Next ranked the {r['next_ranked_pixels']:,} pixels in view in "
               f"{r['next_seconds']} s ({r['next_peak_over_napari_mb']} MB above napari)") + ".\n")


def _domain_rows(keep: Callable[[dict], bool], with_size: bool) -> list[str]:
    """Markdown rows of domain_shift.json's rows that ``keep`` accepts; the shipped default as is in bold."""
    record = records.read("domain_shift.json")[0]
    head = ["model", *(["object size"] if with_size else []), "data", "objects", "pixel IoU", "object F1@0.5",
            "AP@0.5"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in filter(keep, record["rows"]):
        strong = row["model"] == "shipped default" and row["object_size"] == "as is"
        scores = [f"{row[k]:.3f}" for k in ("iou", "f1", "ap")]
        if strong and row["data"] == "all":
            scores = [f"**{s}**" for s in scores]
        cells = [f"**{row['model']}**" if strong else row["model"], *([row["object_size"]] if with_size else []),
                 row["data"], str(row["objects"]), *scores]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def domain_shift_table() -> str:
    """docs/benchmarks.md's zero-shot table: every row of domain_shift.json (seconds left out: a busy machine's)."""
    record = records.read("domain_shift.json")[0]
    return (f"Measured {record['date'][:10]} on {_machine(record)} (`benchmarks/results/domain_shift.json`):\n\n"
            + "\n".join(_domain_rows(lambda row: True, with_size=True)) + "\n")


def domain_shift_summary() -> str:
    """The README's zero-shot table: the previous default on all images, the shipped default per subset, as is."""
    def keep(row):
        return row["object_size"] == "as is" and (row["model"] == "shipped default" or row["data"] == "all")

    return "\n".join(_domain_rows(keep, with_size=False)) + "\n"


def model_scores() -> str:
    """The README model card's scores of the shipped default: same microscope (views_cells3d.json, slice by slice)
    and zero-shot on the domain-shift set (domain_shift.json)."""
    views = next(r for r in records.read("views_cells3d.json")[0]["rows"] if r["views"] == 1)
    shift = {r["data"]: r for r in records.read("domain_shift.json")[0]["rows"]
             if r["model"] == "shipped default" and r["object_size"] == "as is"}
    everything, cells = shift["all"], shift["cells3d shifted"]
    return (f"Scores of the shipped default, from the stored records: on the held-out cells3d slices (same "
            f"microscope) mean IU {views['held_out_mean_iu']:.3f}, nucleus IoU **{views['held_out_iou']:.3f}**; "
            f"zero-shot on the domain-shift set (below) object F1@0.5 **{everything['f1']:.3f}** (goal ≥ 0.80), "
            f"AP@0.5 {everything['ap']:.3f}, nucleus IoU {everything['iou']:.3f}; its shifted cells3d slices alone: "
            f"F1 {cells['f1']:.3f}, IoU {cells['iou']:.3f}.\n")


def _markdown(head: list[str], rows: list[list]) -> str:
    """A Markdown table: a header, its rule and one line per row of cells (already formatted)."""
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                      *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)])


def _measured(r: dict, extra: str = "") -> str:
    """"Measured <date> (<machine>, load <load><extra>)" of a record."""
    return f"Measured {r['date'][:10]} ({_machine(r)}, load {r['machine'].get('load')}{extra})"


def weightmap_table() -> str:
    """docs/benchmarks.md's border weight map table (weightmap.json)."""
    r = records.read("weightmap.json")[0]
    rows = [[x["implementation"], f"{x['seconds']:.3f}", f"{x['max_abs_difference']:.1e}"] for x in r["rows"]]
    table = _markdown(["implementation", "seconds", "max abs difference"], rows)
    return (f"{_measured(r, ', one thread')}: {r['shape'][0]}×{r['shape'][1]} labels, {r['objects']} objects.\n\n"
            + table + "\n")


def finetune_summary() -> str:
    """docs/benchmarks.md's fine-tune round (finetune_cpu.json)."""
    r = records.read("finetune_cpu.json")[0]
    return (f"{_measured(r)}: {r['steps']} steps (\"auto\" for {r['tiles']} × 128², batch 4), "
            f"**{r['ms_per_step']:.0f} ms a step, {r['round_seconds']:.1f} s a round** (goal ≤ 5 s) including the "
            f"weight maps, the guard's held-out quarter before and after (mean IU {r['mean_iu_before']:.3f} → "
            f"{r['mean_iu_after']:.3f}); the process's first optimizer cost {r['first_optimizer_seconds']:.1f} s once "
            f"before (the dock pays it in a background thread when it opens).\n")


def instances_tables() -> str:
    """docs/benchmarks.md's instance post-processing tables (instances.json)."""
    r = records.read("instances.json")[0]
    out = [f"{_measured(r)}."]
    head = ["class ids", "min_size", "split (min_distance)", "grow-back", "objects (pred / true)", "F1 @ 0.5",
            "AP @ 0.5", "AP @ 0.75", "mean matched IoU @ 0.5", "ms / slice"]
    for t in r["tables"]:
        rows = [[x["class_ids"], x["min_size"], x["split"], x["grow_back"], f"{x['pred']} / {x['true']}",
                 f"{x['f1']:.3f}", f"{x['ap50']:.3f}", f"{x['ap75']:.3f}", f"{x['matched_iou']:.4f}",
                 f"{x['ms_per_slice']:.0f}"] for x in t["rows"]]
        out.append(f"**{t['title']}**: {t['slices']} slices predicted in {t['predict_seconds']} s; typical nucleus "
                   f"area A = {t['typical_area']} px.\n\n" + _markdown(head, rows))
    s = r["synthetic"]
    rows = [[x["split"], f"{x['pred']} / {x['true']}", f"{x['rods']} / {x['true_rods']}", f"{x['f1']:.3f}",
             f"{x['matched_iou']:.4f}"] for x in s["rows"]]
    out.append(f"**Synthetic targets** (seeds {', '.join(map(str, s['seeds']))}): a split of every object against "
               f"of objects with a waist (solidity < {s['solidity']}).\n\n"
               + _markdown(["split", "objects (pred / true)", "rods (pred / true)", "F1 @ 0.5",
                            "mean matched IoU @ 0.5"], rows))
    return "\n\n".join(out) + "\n"


def _predict_record() -> dict:
    return records.read("predict_cpu.json")[0]


def predict_table() -> str:
    """docs/benchmarks.md's prediction table (predict_cpu.json): every network, size and engine."""
    r = _predict_record()
    head = ["network", "image", "engine", "tiles (input)", "ms / image", "MP/s", "GFLOP/s", "of matmul",
            "compute eff.", "time ÷ ours", "peak RSS added (MB)"]
    rows = [[x["network"], f"{x['size']}²", x["engine"], x["tiles"], f"{x['ms']:.0f}", f"{x['mp_per_s']:.2f}",
             f"{x['gflops']:.1f}", f"{100 * x['of_matmul']:.0f} %", f"{x['efficiency']:.2f}",
             "" if x["time_over_ours"] is None else f"{x['time_over_ours']:.2f}", x["peak_mb"]] for x in r["rows"]]
    matmul = f"; torch fp32 matmul {r['matmul_gflops']} GFLOP/s in this run"
    return f"{_measured(r, matmul)}:\n\n" + _markdown(head, rows) + "\n\n" + _predict_goals(r["rows"])


def _predict_goals(rows: list[dict]) -> str:
    """The prediction goals, checked against the rows: compute efficiency of one-tile images, MONAI, 8192²."""
    ours = [x for x in rows if x["engine"] == "napari-segnet"]
    one_tile = [x["efficiency"] for x in ours if x["tiles"].endswith("×1")]
    monai = [x["time_over_ours"] for x in rows if x["engine"] == "monai"]
    text = (f"Against the goals: compute efficiency of images that fit one tile {min(one_tile):.2f}–"
            f"{max(one_tile):.2f} (goal ≥ 0.85); MONAI as its users run it {min(monai):.2f}–{max(monai):.2f}× our "
            f"time, ≥ 1.2× in {sum(m >= 1.2 for m in monai)} of {len(monai)} rows (goal: all)")
    big = {x["engine"]: x for x in rows if x["size"] == 8192 and "default" in x["network"]}
    if {"napari-segnet", "naive"} <= set(big):
        text += (f"; the default at 8192² {big['napari-segnet']['mp_per_s']:.2f} MP/s against the naive forward's "
                 f"{big['naive']['mp_per_s']:.2f} ({big['naive']['time_over_ours']:.1f}×, goal ≥ 1.5×) with "
                 f"{big['napari-segnet']['peak_mb']} MB added for a 128 MB input (goal ≤ input + 512 MB)")
    return text + ".\n"


def predict_summary() -> str:
    """The README's headline on prediction speed: time ÷ ours of MONAI's sliding window as its users run it."""
    r = _predict_record()
    monai = [row for row in r["rows"] if row["engine"] == "monai"]
    low, high = min(monai, key=lambda x: x["time_over_ours"]), max(monai, key=lambda x: x["time_over_ours"])
    fastest = max(x["mp_per_s"] for x in r["rows"] if x["engine"] == "napari-segnet" and "default" in x["network"])
    return (f"On {_machine(r)} ({r['date'][:10]}), MONAI's `sliding_window_inference` as its users run it (roi 512, "
            f"overlap 0.25) took {low['time_over_ours']:.2f}–{high['time_over_ours']:.2f}× our time over "
            f"{len(monai)} network × image cases (least: {low['network']} {low['size']}², most: {high['network']} "
            f"{high['size']}²); the shipped default predicts {fastest:.1f} megapixels a second at best. "
            "All rows: [docs/benchmarks.md](docs/benchmarks.md#prediction).\n")


RENDERERS: dict[str, Callable[[], str]] = {
    "loop": loop_tables, "loop-summary": loop_summary, "views": views_table,
    "big-image": big_image_summary, "domain-shift": domain_shift_table,
    "domain-shift-summary": domain_shift_summary, "model-scores": model_scores, "predict": predict_table,
    "weightmap": weightmap_table, "finetune": finetune_summary, "instances": instances_tables,
    "predict-summary": predict_summary,
}


def generate(text: str) -> str:
    """``text`` with the body of every generated block replaced by its renderer's output; an unknown name raises
    ``KeyError`` with the known ones."""
    def body(match: re.Match) -> str:
        name = match["name"]
        if name not in RENDERERS:
            raise KeyError(f"no renderer {name!r}; known: {', '.join(RENDERERS)}")
        return match[1] + RENDERERS[name]() + match[4]

    return BLOCK.sub(body, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report the files that differ (exit status 1)")
    args = parser.parse_args(argv)
    stale = []
    for path in markdown_files():
        text = path.read_text(encoding="utf-8")
        new = generate(text)
        if new != text:
            stale.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    verb = "differ from the records" if args.check else "rewritten"
    print(f"{verb}: {', '.join(str(p.relative_to(ROOT)) for p in stale) or 'none'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
