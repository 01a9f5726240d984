"""Comparison tables (:mod:`ssfbench.report.compare`) rendered as text: Markdown, LaTeX and CSV for
``ssfbench compare`` (the web page is :mod:`ssfbench.report.webpage`).

Per dataset: the leaderboard (one row per method configuration, seeds averaged, with its own
initialisation's average and the gain over it), then the ablations (the same methods with settings
of their own) and, when asked, the step-0 controls; rows marked ``†`` (faces not prepared the
paper's way) and ``‡`` (not pretrained by the paper's recipe, the differing settings in a footnote).
Scores are formatted by :func:`ssfbench.report.tables.score_text` (x100, one decimal).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from tabulate import tabulate

from ssfbench.errors import UserError
from ssfbench.report.compare import (
    INIT_AVG_HEADER,
    INIT_COLUMNS,
    INIT_HEADER,
    OFF_PROTOCOL_MARK,
    ORIGIN_COMMITTED,
    ORIGIN_OUT,
    RECIPE_MARK,
    STATISTICS_COLUMNS,
    STATISTICS_HEADER,
    TABLE_TITLES,
    TABLES,
    ComparisonTable,
    faces_note,
    faces_off_protocol,
    gain_cell,
    has_gains,
    has_statistics,
    part,
    recipe_off,
    statistics_cell,
    summary_frame,
)
from ssfbench.report.tables import blocks, score, score_text

TABLEFMT = {"md": "github", "latex": "latex_booktabs"}

BLOCK_TITLES = {
    "paper": "reported in the original work (*)",
    "paper-reproduced": "reproduced by the paper (Re.)",
    "paper-ours": "the paper's own (Lu et al. 2020)",
    ORIGIN_OUT: "ssfbench: your runs",
    ORIGIN_COMMITTED: "ssfbench: committed leaderboard (results/)",
}


def block_title(group: str, source: str, origin: str) -> str:
    """The sub-heading of a block of rows, e.g. ``Self-supervised: reproduced by the paper (Re.)``."""
    key = origin if origin in (ORIGIN_OUT, ORIGIN_COMMITTED) else source
    if group == "floors and ceilings":
        return "Floors and ceiling (ssfbench)" + (": committed leaderboard" if origin == ORIGIN_COMMITTED else "")
    return f"{group.capitalize()}: {BLOCK_TITLES.get(key, key)}"


def row_block(r: pd.Series) -> str:
    """:func:`block_title` of one row."""
    return block_title(r["group"], r["source"], r["origin"])


def summary_block(r: pd.Series) -> str:
    """The block title of a row of the summary across datasets: :func:`row_block`, after the part's
    title for ablations and controls."""
    which = r.get("table", "leaderboard")
    return row_block(r) if which == "leaderboard" else f"{TABLE_TITLES[which].split(':')[0].capitalize()}: {row_block(r)}"


def gain_headers(table: ComparisonTable) -> list[str]:
    """The headers of the gain columns ``table`` has (own init, Δ own init, Δ with statistics re-estimated)."""
    return ([INIT_AVG_HEADER, INIT_HEADER] if has_gains(table) else []) + \
        ([STATISTICS_HEADER] if has_statistics(table) else [])


def gain_cells(r: pd.Series, headers: Sequence[str]) -> list[str]:
    """The cells of the gain columns named in ``headers`` for row ``r``."""
    cells = {INIT_AVG_HEADER: lambda: score(r.get("init_avg")), INIT_HEADER: lambda: gain_cell(r),
             STATISTICS_HEADER: lambda: statistics_cell(r)}
    return [cells[h]() for h in headers]


def display_rows(table: ComparisonTable, *, gains: Sequence[str] = (), with_blocks: bool = True) -> list[list[str]]:
    """Cells of every row of ``table`` (a bold block title row before each new block when ``with_blocks``)."""
    out = []
    width = len(table.labels) + 3 + len(gains)
    for block, (_, r) in blocks(table.rows.iterrows(), lambda item: row_block(item[1])):
        if with_blocks and block is not None:
            out.append([f"**{block}**"] + [""] * (width - 1))
        out.append([r["name"], *(score_text(r[lab], r[f"{lab}_std"]) for lab in table.labels),
                    score_text(r["avg"], r["avg_std"]), *gain_cells(r, gains),
                    f"{int(r['coverage'])}/{len(table.labels)}"])
    return out


def caption(table: ComparisonTable) -> str:
    """One line saying what the numbers are."""
    text = (f"{table.dataset}: per-label {table.metric_name} x100; ssfbench rows mean ± std over folds "
            f"(or seeds); * = reported in the original work, (Re.) = reproduced by the paper; "
            f"coverage = labels with a value; no average over missing labels")
    off = table.rows[table.rows["faces"].map(faces_off_protocol).astype(bool)]
    if len(off):
        rows = "; ".join(f"{n.removesuffix(OFF_PROTOCOL_MARK)}: {faces_note(f)}" for n, f in zip(off["name"], off["faces"]))
        text += (f";{OFF_PROTOCOL_MARK} = faces not prepared the paper's way (crop=centre, or any frame "
                 f"centre-squared or cut to its box): not comparable with the paper's rows ({rows})")
    if "recipe" in table.rows and table.rows["recipe"].map(recipe_off).any():
        text += f";{RECIPE_MARK} = not pretrained by the paper's recipe (the settings that differ: below the table)"
    if has_gains(table):
        text += (f"; {INIT_AVG_HEADER} = the average of the row's own initialisation (its step-0 control: the "
                 f"same seeds at step 0, BatchNorm statistics re-estimated on pretraining frames, as the Random "
                 f"init floor); {INIT_HEADER} = the row's gain over it, mean over seeds, pooled over folds, paired "
                 "bootstrap over test subjects")
    if has_statistics(table):
        text += (f"; {STATISTICS_HEADER} = the same gain with the trained encoder's BatchNorm statistics "
                 "re-estimated as its control's were (its bn=data run)")
    return text


def footnotes(table: ComparisonTable) -> list[str]:
    """One line per row marked ``‡``: its name and the settings that differ from the paper's recipe."""
    if "recipe" not in table.rows:
        return []
    return [f"{RECIPE_MARK.strip()} {r['name'].removesuffix(RECIPE_MARK)}: {r['recipe']}"
            for _, r in table.rows.iterrows() if recipe_off(r["recipe"])]


def shown_tables(controls: bool) -> tuple[str, ...]:
    """The parts of a dataset's table that are shown: leaderboard, ablations, and controls when asked."""
    return TABLES if controls else tuple(t for t in TABLES if t != "controls")


def render_table(table: ComparisonTable, fmt: str = "md", *, controls: bool = False) -> str:
    """The table as Markdown (``md``), LaTeX (``latex``) or CSV (``csv``: numbers x100, one row per
    configuration, the part and the block in columns). The leaderboard first, then the ablations and,
    with ``controls``, the step-0 controls, each under its title; then the ``‡`` footnotes."""
    if fmt == "csv":
        return table_frame(table, controls=controls).to_csv(index=False, float_format="%.2f")
    if fmt not in TABLEFMT:
        raise UserError(f"--format: expected md, csv or latex, got {fmt!r}")
    gains = gain_headers(table)
    headers = ["method", *table.labels, "avg", *gains, "coverage"]
    texts = []
    for which in shown_tables(controls):
        sub = part(table, which)
        if not len(sub.rows):
            continue
        if texts:  # the leaderboard needs no title: the caption above it is the table's
            title = f"{table.dataset} {TABLE_TITLES[which]}"
            texts.append(f"\n{title}\n" if fmt == "md" else f"% {title}")
        rows = display_rows(sub, gains=gains)
        if fmt == "latex":
            rows = [[c.replace("**", "") for c in r] for r in rows]
        texts.append(tabulate(rows, headers=headers, tablefmt=TABLEFMT[fmt], disable_numparse=True))
    notes = footnotes(table)
    if notes:
        texts.append("\n" + "\n".join(notes) if fmt == "md" else "\n".join(f"% {n}" for n in notes))
    return "\n".join(texts)


def table_frame(table: ComparisonTable, *, controls: bool = True) -> pd.DataFrame:
    """The table as a plain frame for CSV: identity, part (``table``), block, scores and stds x100,
    the gain columns, coverage, the ``faces`` and ``recipe`` marks; controls included unless ``controls``
    is False."""
    r = table.rows[table.rows["table"].isin(shown_tables(controls))] if "table" in table.rows else table.rows
    frame = pd.DataFrame({"dataset": table.dataset, "table": r.get("table", "leaderboard"),
                          "block": [row_block(x) for _, x in r.iterrows()],
                          "name": r["name"], "method": r["method"], "variant": r["variant"],
                          "backbone": r["backbone"], "source": r["source"], "origin": r["origin"]})
    for lab in [*table.labels, "avg"]:
        frame[lab] = 100 * r[lab].astype(float)
    for lab in [*table.labels, "avg"]:
        frame[f"{lab}_std"] = 100 * r[f"{lab}_std"].astype(float)
    for col in (*INIT_COLUMNS, *STATISTICS_COLUMNS):
        if col in r:
            frame[col] = r[col].astype(float) * (1 if col == "init_seeds" else 100)
    frame["coverage"] = r["coverage"].astype(int)
    frame["n_labels"] = len(table.labels)
    frame["faces"] = r["faces"]
    frame["recipe"] = r["recipe"] if "recipe" in r else ""
    frame["run_id"] = r["run_id"]
    return frame


def render_summary(tables: Sequence[ComparisonTable], fmt: str = "md", *, controls: bool = False) -> str:
    """The summary across datasets (their leaderboards, then ablations and, with ``controls``, the
    step-0 controls) as Markdown, LaTeX or CSV."""
    frame = summary_frame(tables, shown_tables(controls))
    names = [t.dataset for t in tables]
    has_mean = "mean" in frame
    if fmt == "csv":
        cols = ["name", "table", "group", "source", "origin", "method", "variant", "backbone", *names,
                *(f"{n}_std" for n in names), *(["mean"] if has_mean else []), "coverage"]
        out = frame[cols].copy()
        for c in [*names, *(f"{n}_std" for n in names), *(["mean"] if has_mean else [])]:
            out[c] = 100 * out[c].astype(float)
        return out.to_csv(index=False, float_format="%.2f")
    if fmt not in TABLEFMT:
        raise UserError(f"--format: expected md, csv or latex, got {fmt!r}")
    rows = []
    metrics = {t.dataset: t.metric_name for t in tables}
    for block, (_, r) in blocks(frame.iterrows(), lambda item: summary_block(item[1])):
        if block is not None:
            rows.append([block if fmt == "latex" else f"**{block}**"] + [""] * (len(names) + 1 + has_mean))
        rows.append([r["name"], *(score_text(r[n], r[f"{n}_std"]) for n in names),
                     *([score(r["mean"])] if has_mean else []), f"{int(r['coverage'])}/{len(names)}"])
    headers = ["method", *(f"{n} ({metrics[n]})" for n in names), *(["mean"] if has_mean else []), "datasets"]
    return tabulate(rows, headers=headers, tablefmt=TABLEFMT[fmt], disable_numparse=True)


__all__ = ["render_table", "render_summary", "table_frame", "caption", "footnotes", "block_title", "display_rows",
           "TABLEFMT"]
