"""The leaderboard as one self-contained web page: ``ssfbench compare --format html --output FILE.html``.

Per dataset, the paper-style table of :mod:`ssfbench.report.compare` (its groups as block rows, the paper's
rows marked, your rows and the committed ones, coverage, the gain over each row's own initialisation)
sortable by any column: the leaderboard (one row per method configuration, its step-0 control folded
into its provenance and its own-init and gain columns), then the ablations (the same methods with
settings of their own), the per-label chart that ``--plot`` draws (:func:`ssfbench.report.plots.grouped_bars`,
inlined as a PNG data URI), then the summary across datasets (the paper's Table 5) and, when asked
(``--vs A B``), the paired bootstrap intervals. Each row carries its provenance (hover for a summary,
click the row to open it): every run's command line, commit, seed, date, versions and preprocessing
for ssfbench rows, the table it comes from for the paper's. Rows whose faces were not prepared the
paper's way (:func:`ssfbench.results.store.off_protocol`) are marked ``†``, rows on the paper's data not
pretrained by the paper's recipe (:func:`ssfbench.results.store.recipe_deviation`) ``‡``.

The page needs no network: CSS and JavaScript (package data files, ``ssfbench/report/assets/``) are
inlined, the charts are data URIs. Sorting: a click
on a header sorts by that column (again: the other direction; a third time: back to the paper's
order, blocks shown); blank cells always sort last.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ssfbench.errors import UserError
from ssfbench.report.compare import (
    INIT_AVG_HEADER,
    INIT_HEADER,
    OFF_PROTOCOL_MARK,
    ORIGIN_COMMITTED,
    ORIGIN_OUT,
    ORIGIN_PAPER,
    RECIPE_MARK,
    STATISTICS_HEADER,
    TABLE_TITLES,
    ComparisonTable,
    faces_note,
    faces_off_protocol,
    gain_cell,
    part,
    recipe_off,
    statistics_cell,
    summary_frame,
)
from ssfbench.report.render import caption, footnotes, gain_headers, row_block, summary_block
from ssfbench.report.tables import blocks, gain_text, missing, score
from ssfbench.results.store import off_protocol, recipe_deviation
from ssfbench.runtime.fileio import atomic_write_bytes

#: what each row origin is called in its badge
BADGES = {ORIGIN_PAPER: "paper", ORIGIN_OUT: "your run", ORIGIN_COMMITTED: "committed"}
OFF_PROTOCOL_NOTE = ("faces not prepared the paper's way (crop=centre, or some frames centre-squared or cut to "
                     "their box: face_preprocessing.paper is false): not comparable with the paper's rows")
RECIPE_NOTE = "pretrained otherwise than by the paper's recipe (the settings that differ: in the row's provenance)"

#: the page's style sheet and script, package data files inlined into the page
ASSETS = "assets"


def asset(name: str) -> str:
    """The text of one of the page's package data files (``ssfbench/report/assets/NAME``)."""
    import importlib.resources

    return (importlib.resources.files("ssfbench.report") / ASSETS / name).read_text(encoding="utf-8")


def _e(text: Any) -> str:
    """HTML-escaped text."""
    return html.escape(str(text), quote=True)


def _score(value: Any, std: Any = None) -> str:
    """A score cell's HTML: ``43.1`` and, when there is one, its std in a smaller ``± 1.2``."""
    shown = score(value)
    if shown and not missing(std):
        shown += f'<span class="sd"> ± {score(std)}</span>'
    return shown


def _num(value: Any) -> str:
    """A sort key for a score cell: x100, or blank when missing."""
    return "" if missing(value) else f"{100 * float(value):.4f}"


# ---- provenance -------------------------------------------------------------------------------------


def row_results(row: pd.Series, dataset: str, sources: Mapping[str, tuple[Path, Sequence[Mapping]]]) -> list[Mapping]:
    """The result records behind an ssfbench row: its origin's results of the same configuration on
    ``dataset`` (none for the paper's rows, or when the results files are not at hand)."""
    if row["origin"] not in sources or not row["config_hash"]:
        return []
    _, results = sources[row["origin"]]
    runs = str(row.get("run_id") or "").split()
    found = [r for r in results if r["dataset"] == dataset and r["config_hash"] == row["config_hash"]]
    return sorted((r for r in found if not runs or r["run_id"] in runs), key=lambda r: r["run_id"])


def _preprocessing(result: Mapping) -> str:
    """What the faces and images went through, as recorded in a result."""
    parts = [f"{result['image_size']} px input"] if result.get("image_size") else []
    faces = result.get("face_preprocessing")
    parts.append("faces: " + (json.dumps(faces, sort_keys=True) if faces else "as the dataset adapter reads them "
                              "(no face_preprocessing recorded)"))
    return "; ".join(parts)


def _run_html(result: Mapping) -> str:
    """One run's provenance as an HTML list item."""
    rerun = result.get("rerun") or {}
    git = rerun.get("git") or {}
    commit = (git.get("commit") or "unknown")[:10] + (" (uncommitted changes)" if git.get("dirty") else "")
    command = " ".join(rerun.get("argv") or []) or "not recorded"
    control = f"; step-0 control <code>{_e(result['init_control'])}</code>" if result.get("init_control") else ""
    return (f"<li><code>{_e(result['run_id'])}</code>: seed {_e(result['seed'])}, commit <code>{_e(commit)}</code>, "
            f"{_e(result.get('date', ''))}, ssfbench {_e(result.get('ssfbench_version', ''))} protocol "
            f"{_e(result.get('protocol_version', ''))}{control}<br>command: <code>{_e(command)}</code><br>"
            f"preprocessing: {_e(_preprocessing(result))}"
            + (f"<br><b>{OFF_PROTOCOL_MARK.strip()} {_e(OFF_PROTOCOL_NOTE)}</b>" if off_protocol(result) else "")
            + (f"<br><b>{RECIPE_MARK.strip()} {_e(reason)}</b>" if (reason := recipe_deviation(result)) else "")
            + "</li>")


def control_results(row: pd.Series, dataset: str, sources: Mapping[str, tuple[Path, Sequence[Mapping]]]) -> list[Mapping]:
    """The result records of a row's step-0 control (its ``init_config``, same origin), for its provenance."""
    config = str(row.get("init_config") or "")
    if row["origin"] not in sources or not config:
        return []
    _, results = sources[row["origin"]]
    return sorted((r for r in results if r["dataset"] == dataset and r["config_hash"] == config),
                  key=lambda r: r["run_id"])


def _controls_html(row: pd.Series, controls: Sequence[Mapping] = ()) -> tuple[str, str]:
    """(hover text, HTML) of what the row's controls say: its own initialisation (the step-0 control's
    average, the gain over it and the control's runs) and the gain with statistics re-estimated (its
    bn=data run)."""
    if missing(row.get("init_gain")):
        return "", ""
    text = (f"own init {score(row.get('init_avg'))} (step-0 control, {int(row['init_seeds'])} seed(s)), "
            f"Δ own init {gain_cell(row)}")
    body = (f"<br>Own initialisation: step-0 control <code>{_e(str(row.get('init_config', ''))[:12])}</code>, "
            f"average {_e(score(row.get('init_avg')))} over {int(row['init_seeds'])} paired seed(s); "
            f"{_e(INIT_HEADER)} {_e(gain_cell(row))}"
            + (f"; its runs:<ul>{''.join(_run_html(r) for r in controls)}</ul>" if controls else ""))
    if not missing(row.get("bn_gain")):
        text += f"; BN re-estimated {statistics_cell(row)}"
        body += f"<br>{_e(STATISTICS_HEADER)} (its bn=data run): {_e(statistics_cell(row))}"
    return "; " + text, body


def provenance(row: pd.Series, results: Sequence[Mapping], controls: Sequence[Mapping] = ()) -> tuple[str, str]:
    """(hover text, HTML of the opened provenance) of one row: its runs and its folded controls
    (``controls``: the step-0 control's result records)."""
    block = row_block(row)
    if row["origin"] == ORIGIN_PAPER:
        text = f"{block}: the number the paper prints (results/paper/)"
        return text, _e(text)
    if not results:
        ids = str(row.get("run_id") or "")
        text = f"{block}: run(s) {ids or 'unknown'}; config {str(row['config_hash'])[:12]} (result files not at hand)"
        return text, _e(text)
    seeds = " ".join(str(r["seed"]) for r in results)
    commits = sorted({((r.get("rerun") or {}).get("git") or {}).get("commit", "")[:7] or "?" for r in results})
    controls_text, controls_body = _controls_html(row, controls)
    text = (f"{block}: {len(results)} run(s), seeds {seeds}, commit {', '.join(commits)}; "
            f"config {str(row['config_hash'])[:12]}{controls_text} (click for the commands)")
    body = (f"<b>{_e(block)}</b>, configuration <code>{_e(row['config_hash'])}</code>, "
            f"{len(results)} run(s):<ul>{''.join(_run_html(r) for r in results)}</ul>{controls_body}")
    return text, body


# ---- tables ---------------------------------------------------------------------------------------


def _header(cells: Sequence[tuple[str, str]]) -> str:
    """``<thead>`` from (label, type) pairs; type ``text`` or ``num`` decides the first sort direction."""
    return "<thead><tr>" + "".join(f'<th data-type="{t}" title="sort by {_e(h)}">{_e(h)}</th>' for h, t in cells) + \
        "</tr></thead>"


def dataset_table(table: ComparisonTable, sources: Mapping[str, tuple[Path, Sequence[Mapping]]], *,
                  which: str = "leaderboard", gains: Sequence[str] | None = None) -> str:
    """The sortable HTML table of one part of a dataset's table (``which``: leaderboard, ablations or
    controls): block rows, one entry per row with its provenance. The leaderboard's table carries
    ``data-dataset``, the others ``data-part`` as well."""
    gains = gain_headers(table) if gains is None else gains
    sub = part(table, which)
    heads = [("method", "text"), *((lab, "num") for lab in sub.labels), ("avg", "num"),
             *((h, "num") for h in gains), ("coverage", "num")]
    width = len(heads)
    parts, order = [], 0
    for block, (_, r) in blocks(sub.rows.iterrows(), lambda item: row_block(item[1])):
        if block is not None:
            parts.append(f'<tbody class="block" data-order="{order}"><tr><th colspan="{width}">{_e(block)}</th></tr>'
                         "</tbody>")
            order += 1
        results = row_results(r, table.dataset, sources)
        off = faces_off_protocol(r["faces"])
        off_recipe = recipe_off(r.get("recipe", ""))
        hover, body = provenance(r, results, control_results(r, table.dataset, sources))
        if off_recipe:
            hover += f"; {RECIPE_MARK.strip()} {r['recipe']}"
            body += f"<br><b>{RECIPE_MARK.strip()} {_e(r['recipe'])}</b>"
        badge = BADGES.get(r["origin"], r["origin"])
        classes = " ".join(c for c in ("row", "paper" if r["origin"] == ORIGIN_PAPER else "", "offprot" if off else "",
                                       "offrecipe" if off_recipe else "") if c)
        name = (_e(r["name"])
                + f'<span class="badge {badge.split()[0]}">{_e(badge)}</span>'
                + (f'<span class="badge off">{_e(faces_note(r["faces"]))}</span>' if off else "")
                + ('<span class="badge off">not the paper\'s recipe</span>' if off_recipe else ""))
        cells = [f'<td data-v="{_e(r["name"])}">{name}</td>']
        cells += [f'<td data-v="{_num(r[lab])}">{_score(r[lab], r[f"{lab}_std"])}</td>' for lab in sub.labels]
        cells.append(f'<td data-v="{_num(r["avg"])}"><b>{_score(r["avg"], r["avg_std"])}</b></td>')
        keys = {INIT_AVG_HEADER: ("init_avg", score(r.get("init_avg"))), INIT_HEADER: ("init_gain", gain_cell(r)),
                STATISTICS_HEADER: ("bn_gain", gain_text(r.get("bn_gain"), r.get("bn_low"), r.get("bn_high")))}
        for h in gains:
            col, shown = keys[h]
            cells.append(f'<td data-v="{_num(r.get(col))}">{_e(shown)}</td>')
        cells.append(f'<td data-v="{int(r["coverage"])}">{int(r["coverage"])}/{len(sub.labels)}</td>')
        parts.append(f'<tbody class="entry" data-order="{order}"><tr class="{classes}" title="{_e(hover)}" '
                     f'data-origin="{_e(r["origin"])}" data-config-hash="{_e(r["config_hash"])}" '
                     f'data-init-config="{_e(r.get("init_config", "") or "")}" '
                     f'data-off-protocol="{str(off).lower()}" data-off-recipe="{str(off_recipe).lower()}">'
                     f'{"".join(cells)}</tr>'
                     f'<tr class="prov" hidden><td colspan="{width}">{body}</td></tr></tbody>')
        order += 1
    which_attr = (f'data-dataset="{_e(table.dataset)}"' if which == "leaderboard" else
                  f'data-part="{_e(which)}" data-of="{_e(table.dataset)}"')
    return (f'<div class="scroll"><table class="board {_e(which)} sortable" {which_attr}>'
            f'{_header(heads)}{"".join(parts)}</table></div>')


def summary_table(tables: Sequence[ComparisonTable]) -> str:
    """The sortable summary across datasets (average per dataset, like the paper's Table 5)."""
    frame = summary_frame(tables)
    names = [t.dataset for t in tables]
    has_mean = "mean" in frame
    metrics = {t.dataset: t.metric_name for t in tables}
    heads = [("method", "text"), *((f"{n} ({metrics[n]})", "num") for n in names),
             *([("mean", "num")] if has_mean else []), ("datasets", "num")]
    parts, order = [], 0
    for block, (_, r) in blocks(frame.iterrows(), lambda item: summary_block(item[1])):
        if block is not None:
            parts.append(f'<tbody class="block" data-order="{order}"><tr><th colspan="{len(heads)}">{_e(block)}</th>'
                         "</tr></tbody>")
            order += 1
        badge = BADGES.get(r["origin"], r["origin"])
        cells = [f'<td data-v="{_e(r["name"])}">{_e(r["name"])}<span class="badge {badge.split()[0]}">'
                 f'{_e(badge)}</span></td>']
        cells += [f'<td data-v="{_num(r[n])}">{_score(r[n], r[f"{n}_std"])}</td>' for n in names]
        if has_mean:
            cells.append(f'<td data-v="{_num(r["mean"])}"><b>{_e(score(r["mean"]))}</b></td>')
        cells.append(f'<td data-v="{int(r["coverage"])}">{int(r["coverage"])}/{len(names)}</td>')
        row_class = "row paper" if r["origin"] == ORIGIN_PAPER else "row"
        parts.append(f'<tbody class="entry" data-order="{order}"><tr class="{row_class}">{"".join(cells)}</tr></tbody>')
        order += 1
    return (f'<div class="scroll"><table class="summary sortable">{_header(heads)}{"".join(parts)}</table></div>')


def frame_table(frame: pd.DataFrame, css_class: str) -> str:
    """A plain frame (e.g. the ``--vs`` bootstrap) as a sortable table; numbers with one decimal."""
    heads = [(str(c), "num" if pd.api.types.is_numeric_dtype(frame[c]) else "text") for c in frame.columns]
    rows = []
    for i, (_, r) in enumerate(frame.iterrows()):
        cells = []
        for (col, kind) in heads:
            value = r[col]
            shown = f"{value:.1f}" if kind == "num" and isinstance(value, float) else str(value)
            cells.append(f'<td data-v="{_e(value if kind == "text" else float(value))}">{_e(shown)}</td>')
        rows.append(f'<tbody class="entry" data-order="{i}"><tr>{"".join(cells)}</tr></tbody>')
    return f'<div class="scroll"><table class="{css_class} sortable">{_header(heads)}{"".join(rows)}</table></div>'


def chart(table: ComparisonTable) -> str:
    """The per-label chart of ``--plot`` for one dataset as an inline PNG (or a note when it cannot be drawn)."""
    from ssfbench.report.plots import grouped_bars

    with tempfile.TemporaryDirectory() as tmp:
        try:
            png = grouped_bars([part(table, "leaderboard")], Path(tmp) / "chart.png").read_bytes()
        except UserError as exc:
            return f'<p class="note">(no chart: {_e(str(exc).removeprefix("--plot: "))})</p>'
    data = base64.b64encode(png).decode("ascii")
    return (f'<img class="chart" alt="per-label {_e(table.metric_name)} of every row on {_e(table.dataset)}" '
            f'src="data:image/png;base64,{data}">')


def render_page(tables: Sequence[ComparisonTable], sources: Mapping[str, tuple[Path, Sequence[Mapping]]], *,
                vs: tuple[pd.DataFrame, str] | None = None, charts: bool = True,
                title: str = "ssfbench leaderboard") -> str:
    """The whole page: per dataset its caption, table and chart; the summary across datasets when there
    are several; the ``--vs`` bootstrap (frame, title) when given."""
    tables = [t for t in tables if len(t.rows)]
    body = [f"<h1>{_e(title)}</h1>",
            '<p class="note">Click a column header to sort (again: reverse; a third time: the paper\'s order). '
            "Hover a row for where it comes from, click it for every run's command, commit, seeds and "
            f"preprocessing. Badges: <i>paper</i> = the paper's printed number, <i>your run</i> = results in "
            f"--out, <i>committed</i> = this repository's results/. {OFF_PROTOCOL_MARK.strip()} = {_e(OFF_PROTOCOL_NOTE)}; "
            f"{RECIPE_MARK.strip()} = {_e(RECIPE_NOTE)}. One row per method configuration (seeds averaged); its "
            f"step-0 control (the same seeds at step 0) is folded into it: <i>{_e(INIT_AVG_HEADER)}</i> is that "
            f"control's average, <i>{_e(INIT_HEADER)}</i> the gain over it. The same methods with settings of "
            "their own (budget, data, statistics) are in each dataset's ablations table.</p>",
            '<p class="note">Datasets: ' + ", ".join(f'<a href="#{_e(t.dataset)}">{_e(t.dataset)}</a>' for t in tables)
            + (', <a href="#summary">summary</a>' if len(tables) > 1 else "")
            + (', <a href="#vs">paired bootstrap</a>' if vs is not None else "") + "</p>"]
    for t in tables:
        notes = "".join(f'<p class="note">{_e(n)}</p>' for n in footnotes(t))
        body += [f'<section id="{_e(t.dataset)}"><h2>{_e(t.dataset)} <small>({_e(t.metric_name)})</small></h2>',
                 f'<p class="caption">{_e(caption(t))}</p>', dataset_table(t, sources), notes,
                 chart(t) if charts else ""]
        if len(part(t, "ablations").rows):
            body += [f"<h3>{_e(t.dataset)}: {_e(TABLE_TITLES['ablations'])}</h3>",
                     dataset_table(t, sources, which="ablations", gains=gain_headers(t))]
        body.append("</section>")
    if len(tables) > 1:
        body += ['<section id="summary"><h2>Summary across datasets</h2>',
                 '<p class="caption">average per dataset (x100, like the paper\'s Table 5); blank = no result; mean '
                 "only over complete rows</p>", summary_table(tables), "</section>"]
    if vs is not None:
        frame, vs_title = vs
        body += ['<section id="vs"><h2>Paired bootstrap</h2>', f'<p class="caption">{_e(vs_title)}</p>',
                 frame_table(frame, "vs"), "</section>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
            f"<style>{asset('leaderboard.css')}</style></head><body>{''.join(body)}"
            f"<script>{asset('leaderboard.js')}</script></body></html>\n")


def write_page(path: Path, tables: Sequence[ComparisonTable], sources: Mapping[str, tuple[Path, Sequence[Mapping]]],
               **options: Any) -> Path:
    """Write :func:`render_page` to ``path`` atomically; returns the path."""
    path = Path(path)
    text = render_page(tables, sources, **options)
    atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path


__all__ = ["render_page", "write_page", "dataset_table", "summary_table", "frame_table", "provenance",
           "row_results", "chart"]
