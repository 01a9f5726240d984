"""Formatting shared by every table of scores (terminal, papers, the web page): the one score
formatter (:func:`score`, :func:`score_text`), row names (:func:`row_name`), the "a block title when
the block changes" loop (:func:`blocks`) and ``ssfbench run``'s leaderboard table."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, TypeVar

import pandas as pd
from tabulate import tabulate

METRIC_NAMES = {"f1": "F1", "auc": "AUC"}

T = TypeVar("T")


def missing(value: Any) -> bool:
    """Whether a score is absent (None or NaN)."""
    return value is None or bool(pd.isna(value))


def score(value: Any, blank: str = "") -> str:
    """A score (a fraction) as printed everywhere: x100 with one decimal, ``43.1``; ``blank`` when missing."""
    return blank if missing(value) else f"{100 * float(value):.1f}"


def score_text(value: Any, std: Any = None, blank: str = "") -> str:
    """``43.1`` or, with a spread, ``43.1 ± 1.2`` (both by :func:`score`); ``blank`` when missing."""
    if missing(value):
        return blank
    return score(value) if missing(std) else f"{score(value)} ± {score(std)}"


def gain_text(gain: Any, low: Any, high: Any) -> str:
    """A difference with its interval, ``+3.1 [1.2, 4.9]`` (x100), or blank when missing."""
    if missing(gain):
        return ""
    return f"{100 * float(gain):+.1f} [{score(low)}, {score(high)}]"


def blocks(items: Iterable[T], title: Callable[[T], Hashable]) -> Iterator[tuple[Hashable | None, T]]:
    """``(title, item)`` for each item, the title only where it differs from the previous item's
    (None otherwise): the loop every table with block headings runs."""
    last: object = object()
    for item in items:
        current = title(item)
        yield (current if current != last else None), item
        last = current


def row_name(display_name: str, variant: str, backbone: str) -> str:
    """A leaderboard row's name in tables: the display name, the variant's settings it does not
    already show in parentheses, and a non-default backbone in brackets."""
    shown = set(display_name.split())
    extra = [part for part in variant.split() if part not in shown]
    name = display_name + (f" ({' '.join(extra)})" if extra else "")
    if backbone and backbone != "resnet18":
        name += f" [{backbone}]"
    return name


def leaderboard_table(board: pd.DataFrame, labels: list[str], *, highlight: str | None = None,
                      fmt: str = "github") -> str:
    """Paper-style table: one row per leaderboard row, one column per label plus the average and
    its spread (x100, one decimal). ``highlight`` (a config_hash) marks the row with ``*``."""
    rows = []
    for _, r in board.iterrows():
        name = row_name(r["display_name"], r["variant"], r["backbone"])
        if highlight is not None and r["config_hash"] == highlight:
            name = "* " + name
        spread = "" if missing(r["avg_std"]) else f"±{score(r['avg_std'])}"
        rows.append([name, *(score(r[lab], "-") for lab in labels), score(r["avg"], "-"), spread, int(r["n_runs"])])
    headers = ["method", *labels, "avg", "±", "runs"]
    return tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True)
