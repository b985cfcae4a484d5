"""Cost-against-size plots for the benchmarks' curves (a PNG beside the JSON in bench/results/).

matplotlib is the `bench` extra of pyproject.toml, not a dependency of the product: without it a
curve is still printed as a table and written as JSON, and `plot_panels` says so by returning None.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

Series = Mapping[str, Sequence[float | None]]
"""label -> one y value per x (None: not measured at that size, left out of the line)."""


def plot_panels(path: Path, xs: Sequence[float], xlabel: str,
                panels: Sequence[tuple[str, Series]], *, log_x: bool = False) -> Path | None:
    """One panel per (title, series) side by side, every line against the same sizes `xs`,
    y from 0; `log_x` for sizes that double (1, 2, 4 … 64 stay apart); returns `path`, or None
    when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.8), squeeze=False)
    for ax, (title, series) in zip(axes[0], panels, strict=True):
        for label, ys in series.items():
            points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
            ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=label)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        if log_x:
            ax.set_xscale("log", base=2)
            ax.set_xticks(list(xs), [f"{x:g}" for x in xs])
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
