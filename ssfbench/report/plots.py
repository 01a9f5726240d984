"""Figures of comparison tables: a per-label grouped bar chart (matplotlib, Agg backend).

One panel per dataset; along x the labels and the average; one bar per row (method) of the
table, with error bars = std over folds (or seeds) where the row has one. The paper's rows are
hatched, so the eye separates published numbers from rows measured by this harness.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ssfbench.errors import UserError
from ssfbench.report.compare import ComparisonTable
from ssfbench.runtime.fileio import atomic_savefig

MAX_ROWS = 12
PAPER_HATCH = "///"


def _colours(n: int) -> list:
    """``n`` distinguishable colours (tab10, then Dark2)."""
    import matplotlib

    palette = list(matplotlib.colormaps["tab10"].colors) + list(matplotlib.colormaps["Dark2"].colors)
    return [palette[i % len(palette)] for i in range(n)]


def _row_keys(tables: Sequence[ComparisonTable]) -> list[tuple[str, str]]:
    """Every (origin, name) across the tables, in first-seen order (one colour each)."""
    seen: dict[tuple[str, str], None] = {}
    for t in tables:
        for origin, name in zip(t.rows["origin"], t.rows["name"]):
            seen.setdefault((origin, name), None)
    return list(seen)


def _ylim(table: ComparisonTable, values: np.ndarray) -> tuple[float, float]:
    """F1 from 0; AUC from a little below the lowest value (chance is 50), both to 100 at most."""
    finite = values[np.isfinite(values)]
    high = min(106.0, (finite.max() if finite.size else 100.0) + 8)
    if table.metric == "auc":
        low = max(0.0, np.floor(min(50.0, finite.min() if finite.size else 50.0) / 10) * 10 - 10)
        return low, max(high, low + 20)
    return 0.0, max(high, 10.0)


def _panel(ax, table: ComparisonTable, keys: list[tuple[str, str]], colours: list) -> None:
    """One dataset's bars."""
    rows = table.rows
    groups = [*table.labels, "avg"]
    n = max(len(rows), 1)
    width = 0.84 / n
    x = np.arange(len(groups)) + np.where(np.arange(len(groups)) == len(groups) - 1, 0.6, 0.0)
    values = 100 * rows[groups].astype(float).to_numpy() if len(rows) else np.zeros((0, len(groups)))
    for i, (_, r) in enumerate(rows.iterrows()):
        std = 100 * r[[f"{g}_std" for g in groups]].astype(float).to_numpy()
        paper = r["origin"] == "paper"
        colour = colours[keys.index((r["origin"], r["name"]))]
        ax.bar(x - 0.42 + (i + 0.5) * width, np.nan_to_num(values[i], nan=0.0), width,
               yerr=std if np.isfinite(std).any() else None, capsize=min(3.0, 40 * width), ecolor="#333333",
               error_kw={"elinewidth": 0.9}, color=colour, edgecolor="white" if not paper else "#444444",
               linewidth=0.4, hatch=PAPER_HATCH if paper else None, alpha=0.75 if paper else 1.0)
        if np.isfinite(values[i, -1]):
            top = values[i, -1] + (std[-1] if np.isfinite(std[-1]) else 0.0)
            ax.annotate(f"{values[i, -1]:.1f}", (x[-1] - 0.42 + (i + 0.5) * width, top),
                        xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                        fontsize=7, rotation=90 if n > 3 else 0)
    ax.set_xticks(x, groups)
    ax.get_xticklabels()[-1].set_fontweight("bold")
    ax.axvline(x[-1] - 0.8, color="#999999", linewidth=0.8, linestyle=":")
    low, high = _ylim(table, values)
    ax.set_ylim(low, high)
    ax.set_yticks(np.arange(low, min(high, 100.0) + 0.1, 10))
    if table.metric == "auc":
        ax.axhline(50, color="#777777", linewidth=0.8, linestyle="--")
        ax.annotate("chance", (ax.get_xlim()[0], 50), xytext=(2, 2), textcoords="offset points", fontsize=7,
                    color="#555555")
    ax.set_ylabel(f"{table.metric_name} x100")
    has_std = bool(len(rows)) and np.isfinite(rows[[f"{g}_std" for g in groups]].astype(float).to_numpy()).any()
    paper = rows["origin"] == "paper"
    if has_std:
        notes = ["error bars: std over folds (or seeds)"]
    else:
        notes = ["no error bars: " + ("a single fold" if (~paper).any() else "the paper reports no spread")]
    if paper.any():
        notes.append("hatched = the paper's numbers")
    ax.set_title(f"{table.dataset}: per-label {table.metric_name} x100 ({'; '.join(notes)})",
                 loc="left", fontsize=11, weight="bold")
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)


def grouped_bars(tables: Sequence[ComparisonTable], path: Path) -> Path:
    """Write the per-label grouped bar chart of ``tables`` (one panel each) to ``path`` (PNG, PDF or
    SVG by suffix); more than ``MAX_ROWS`` rows in a table is refused (filter with ``--methods``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    tables = [t for t in tables if len(t.rows)]
    if not tables:
        raise UserError("--plot: no rows to plot (no results and no paper rows for these datasets)")
    too_many = [t.dataset for t in tables if len(t.rows) > MAX_ROWS]
    if too_many:
        raise UserError(f"--plot: more than {MAX_ROWS} methods in {', '.join(too_many)}; choose some with --methods")
    keys = _row_keys(tables)
    colours = _colours(len(keys))
    n_groups = max(len(t.labels) + 1 for t in tables)
    n_rows = max(len(t.rows) for t in tables)
    width = float(np.clip(2.0 + n_groups * (0.35 + 0.13 * n_rows), 9, 28))
    fig, axes = plt.subplots(len(tables), 1, figsize=(width, 3.6 * len(tables) + 0.5 + 0.25 * len(keys) / 3),
                             squeeze=False)
    for ax, table in zip(axes[:, 0], tables):
        _panel(ax, table, keys, colours)
    handles = [Patch(facecolor=c, hatch=PAPER_HATCH if origin == "paper" else None,
                     edgecolor="#444444" if origin == "paper" else c,
                     label=f"{name}" + (" (paper)" if origin == "paper" else "") +
                     (" (committed)" if origin == "committed" else ""))
               for (origin, name), c in zip(keys, colours)]
    ncol = min(len(handles), 4 if width < 14 else 6)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, fontsize=9)
    legend_rows = int(np.ceil(len(handles) / ncol))
    fig.tight_layout(rect=(0, 0.3 * legend_rows / (3.6 * len(tables) + 0.5), 1, 1))
    try:
        atomic_savefig(fig, Path(path), dpi=120)
    finally:
        plt.close(fig)
    return Path(path)


__all__ = ["grouped_bars"]
