"""What the benchmark scripts' PNGs share: bars of several series side by side, each labelled with its value."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def side_by_side(
    ax: Any, labels: Sequence[str], series: dict[str, Sequence[float]], fmt: str, *, horizontal: bool = False
) -> None:
    """One group of bars per label, one bar per series in it; the legend names the series."""
    width = 0.76 / len(series)
    for k, (name, values) in enumerate(series.items()):
        positions = [i + (k - (len(series) - 1) / 2) * width for i in range(len(labels))]
        if horizontal:
            bars = ax.barh(positions, values, height=width, label=name)
        else:
            bars = ax.bar(positions, values, width, label=name)
        ax.bar_label(bars, fmt=fmt)
    (ax.set_yticks if horizontal else ax.set_xticks)(range(len(labels)), labels)
    ax.legend()


def horizontal_bars(
    path: Path, labels: Sequence[str], series: dict[str, Sequence[float]], fmt: str, *, xlabel: str, title: str
) -> None:
    """A small PNG of `side_by_side` bars lying down, the first label on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.8))
    side_by_side(ax, labels, series, fmt, horizontal=True)
    ax.set(xlabel=xlabel, title=title)
    ax.legend(loc="lower right")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
