"""``ssfbench.leaderboard(dataset)``: the rows ``ssfbench compare`` shows for a dataset, as a DataFrame
(for notebooks: your runs beside the committed rows and, on request, the paper's)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ssfbench.report.compare import ORIGIN_PAPER, comparison_table


def leaderboard(dataset: str, *, out: str | Path | None = "ssfbench-out", committed: bool = True,
                paper: bool = False) -> pd.DataFrame:
    """The rows ``ssfbench compare --datasets DATASET --out OUT`` shows for ``dataset``, as a
    ``pandas.DataFrame``: the user's rows under ``out`` (rebuilt from its result files; ``None``: none),
    the committed leaderboard's rows (``committed``; one with a configuration the user also ran is
    dropped) and, with ``paper``, the paper's own rows. Columns as compare reads them: ``name`` (the
    row's shown name), ``method``, ``variant``, ``backbone``, ``source``, ``origin``, ``group``, one
    score column per label and its ``<label>_std``, ``avg``, ``avg_std`` (fractions in [0, 1]),
    ``coverage``, ``config_hash``, ``run_id``, ... in compare's display order."""
    table = comparison_table(dataset, out=Path(out) if out is not None else None, committed=committed)
    rows = table.rows
    if not paper:
        rows = rows[rows["origin"] != ORIGIN_PAPER].reset_index(drop=True)
    return rows


__all__ = ["leaderboard"]
