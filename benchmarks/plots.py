"""The benchmarks' one kind of figure: scores per round of the loop (PNG, matplotlib without a display)."""

from __future__ import annotations

from collections.abc import Sequence


def round_plot(curves: Sequence[tuple], rounds: Sequence, xlabel: str, ylabel: str, path: str) -> None:
    """A PNG at ``path`` of ``curves`` — (x, y, matplotlib format, label) each, optionally a dict of more keyword
    arguments fifth — against ``rounds`` (the x ticks), scores from 0 to 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for x, y, fmt, label, *more in curves:
        ax.plot(x, y, fmt, label=label, **(more[0] if more else {}))
    ax.set_xticks(rounds)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
