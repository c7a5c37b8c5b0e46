"""Benchmark results as JSON records in ``benchmarks/results/``: each with the benchmark's name, date and machine."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    """{cpu, cores, torch, threads, load} of this machine (cpu: the model name and its widest vector extension;
    load: the 1-minute load average when the record is made — timings on shared cores)."""
    import torch

    model, flags = platform.machine(), ""
    if Path("/proc/cpuinfo").exists():  # Linux; elsewhere the architecture alone
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name") and model == platform.machine():
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = "AVX-512 BF16" if "avx512_bf16" in line else "AVX2" if "avx2" in line else ""
                    break
    return {"cpu": f"{model} {flags}".strip(), "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "load": round(os.getloadavg()[0], 2)}


def now() -> str:
    """The UTC date and time of a record, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write(name: str, record: dict, out: Path | None = None) -> Path:
    """Store ``record`` as ``RESULTS/<name>.json`` (or ``out``), with ``date`` and ``machine`` added when
    missing; returns the path."""
    record = {"date": now(), "machine": machine(), **record}
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def read(pattern: str) -> list[dict]:
    """The stored records whose file names match ``pattern`` (e.g. ``dock_loop_*.json``), in name order."""
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob(pattern))]
