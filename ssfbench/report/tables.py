"""Formatting tables for the terminal and for papers (markdown, CSV, LaTeX) with tabulate."""

from __future__ import annotations

import math

import pandas as pd
from tabulate import tabulate

METRIC_NAMES = {"f1": "F1", "auc": "AUC"}


def _pct(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


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
        spread = "" if pd.isna(r["avg_std"]) else f"±{100 * r['avg_std']:.1f}"
        rows.append([name, *(_pct(r[lab]) for lab in labels), _pct(r["avg"]), spread, int(r["n_runs"])])
    headers = ["method", *labels, "avg", "±", "runs"]
    return tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True)
