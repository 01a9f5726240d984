"""The leaderboard as one self-contained web page: ``ssfbench compare --format html --output FILE.html``.

Per dataset, the paper-style table of :mod:`ssfbench.report.compare` (its groups as block rows, the paper's
rows marked, your rows and the committed ones, coverage, the gain over each row's own initialisation)
sortable by any column, the per-label chart that ``--plot`` draws (:func:`ssfbench.report.plots.grouped_bars`,
inlined as a PNG data URI), then the summary across datasets (the paper's Table 5) and, when asked
(``--vs A B``), the paired bootstrap intervals. Each row carries its provenance (hover for a summary,
click the row to open it): every run's command line, commit, seed, date, versions and preprocessing
for ssfbench rows, the table it comes from for the paper's. Rows whose faces were not prepared the
paper's way (:func:`ssfbench.report.compare.off_protocol`) are marked ``†``.

The page needs no network: CSS and JavaScript are inline, the charts are data URIs. Sorting: a click
on a header sorts by that column (again: the other direction; a third time: back to the paper's
order, blocks shown); blank cells always sort last.
"""

from __future__ import annotations

import base64
import html
import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ssfbench.errors import UserError
from ssfbench.report.compare import (
    INIT_HEADER,
    OFF_PROTOCOL_MARK,
    ORIGIN_COMMITTED,
    ORIGIN_OUT,
    ORIGIN_PAPER,
    ComparisonTable,
    block_title,
    caption,
    cell,
    faces_off_protocol,
    gain_cell,
    has_gains,
    off_protocol,
    summary_frame,
)
from ssfbench.runtime.fileio import atomic_write_bytes

#: what each row origin is called in its badge
BADGES = {ORIGIN_PAPER: "paper", ORIGIN_OUT: "your run", ORIGIN_COMMITTED: "committed"}
OFF_PROTOCOL_NOTE = ("faces not prepared the paper's way (face_preprocessing.paper is false): "
                     "not comparable with the paper's rows")

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1600px;
 padding:0 16px;color:#1d2330}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 4px}
.caption,.note{color:#555;font-size:12.5px;margin:2px 0 8px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums;margin:4px 0 12px}
.sd{font-size:11px;color:#777}
th,td{padding:3px 6px;border-bottom:1px solid #e3e6ec;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
thead th{background:#f3f5f9;white-space:normal;cursor:pointer;user-select:none;position:sticky;top:0}
thead th:hover{background:#e4e9f2}
thead th[aria-sort=ascending]::after{content:" \\25B2";font-size:10px}
thead th[aria-sort=descending]::after{content:" \\25BC";font-size:10px}
tbody.block th{background:#fafbfd;text-align:left;font-weight:600;color:#334;padding-top:8px}
tr.row{cursor:pointer}tr.row:hover td{background:#f6f9ff}
tr.paper td{color:#555;font-style:italic}
tr.offprot td:first-child{color:#a33}
.badge{display:inline-block;font-size:10.5px;font-style:normal;padding:0 5px;margin-left:6px;border-radius:8px;
 background:#e8ecf3;color:#445;vertical-align:1px}
.badge.paper{background:#f1e7d0}.badge.your{background:#d8eedc}.badge.off{background:#f6d6d6;color:#822}
tr.prov td{background:#fbfbfd;text-align:left;white-space:normal;font-size:12.5px;color:#333}
tr.prov code{font-size:12px;background:#eef0f4;padding:1px 4px;border-radius:3px;word-break:break-all}
tr.prov ul{margin:2px 0 4px 18px;padding:0}
img.chart{max-width:min(100%,1200px);border:1px solid #e3e6ec}
"""

JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  function key(group, col) {
    var c = group.rows[0].cells[col];
    return c ? c.getAttribute("data-v") : "";
  }
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () {
      var state = th.getAttribute("aria-sort");
      var next = state === null ? (th.dataset.type === "text" ? "ascending" : "descending")
        : (state === (th.dataset.type === "text" ? "ascending" : "descending")
           ? (th.dataset.type === "text" ? "descending" : "ascending") : null);
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      var groups = Array.prototype.slice.call(table.tBodies).filter(function (b) {
        return b.classList.contains("entry"); });
      var blocks = Array.prototype.slice.call(table.tBodies).filter(function (b) {
        return b.classList.contains("block"); });
      if (next === null) {
        var all = Array.prototype.slice.call(table.tBodies);
        all.sort(function (a, b) { return a.dataset.order - b.dataset.order; });
        all.forEach(function (b) { table.appendChild(b); });
        blocks.forEach(function (b) { b.hidden = false; });
        return;
      }
      th.setAttribute("aria-sort", next);
      var sign = next === "ascending" ? 1 : -1, text = th.dataset.type === "text";
      groups.sort(function (a, b) {
        var x = key(a, col), y = key(b, col);
        if (x === "" || y === "") { return (x === "") - (y === "") || a.dataset.order - b.dataset.order; }
        var d = text ? x.localeCompare(y) : parseFloat(x) - parseFloat(y);
        return sign * d || a.dataset.order - b.dataset.order;
      });
      blocks.forEach(function (b) { b.hidden = true; });
      groups.forEach(function (g) { table.appendChild(g); });
    });
  });
  Array.prototype.forEach.call(table.querySelectorAll("tr.row"), function (tr) {
    tr.addEventListener("click", function () {
      var prov = tr.nextElementSibling;
      if (prov) { prov.hidden = !prov.hidden; }
    });
  });
});
"""


def _e(text: Any) -> str:
    """HTML-escaped text."""
    return html.escape(str(text), quote=True)


def _score(value: Any, std: Any = math.nan) -> str:
    """A score cell's HTML: ``43.1`` and, when there is one, its std in a smaller ``± 1.2``."""
    shown = cell(value)
    if shown and std is not None and not pd.isna(std):
        shown += f'<span class="sd"> ± {100 * float(std):.1f}</span>'
    return shown


def _num(value: Any) -> str:
    """A sort key for a score cell: x100, or blank when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return ""
    return f"{100 * float(value):.4f}"


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
            + "</li>")


def provenance(row: pd.Series, results: Sequence[Mapping]) -> tuple[str, str]:
    """(hover text, HTML of the opened provenance) of one row."""
    block = block_title(row["group"], row["source"], row["origin"])
    if row["origin"] == ORIGIN_PAPER:
        text = f"{block}: the number the paper prints (results/paper/)"
        return text, _e(text)
    if not results:
        ids = str(row.get("run_id") or "")
        text = f"{block}: run(s) {ids or 'unknown'}; config {str(row['config_hash'])[:12]} (result files not at hand)"
        return text, _e(text)
    seeds = " ".join(str(r["seed"]) for r in results)
    commits = sorted({((r.get("rerun") or {}).get("git") or {}).get("commit", "")[:7] or "?" for r in results})
    text = (f"{block}: {len(results)} run(s), seeds {seeds}, commit {', '.join(commits)}; "
            f"config {str(row['config_hash'])[:12]} (click for the commands)")
    body = (f"<b>{_e(block)}</b>, configuration <code>{_e(row['config_hash'])}</code>, "
            f"{len(results)} run(s):<ul>{''.join(_run_html(r) for r in results)}</ul>")
    return text, body


# ---- tables ---------------------------------------------------------------------------------------


def _header(cells: Sequence[tuple[str, str]]) -> str:
    """``<thead>`` from (label, type) pairs; type ``text`` or ``num`` decides the first sort direction."""
    return "<thead><tr>" + "".join(f'<th data-type="{t}" title="sort by {_e(h)}">{_e(h)}</th>' for h, t in cells) + \
        "</tr></thead>"


def dataset_table(table: ComparisonTable, sources: Mapping[str, tuple[Path, Sequence[Mapping]]]) -> str:
    """The sortable HTML table of one dataset: block rows, one entry per row with its provenance."""
    gains = has_gains(table)
    heads = [("method", "text"), *((lab, "num") for lab in table.labels), ("avg", "num"),
             *([(INIT_HEADER, "num")] if gains else []), ("coverage", "num")]
    width = len(heads)
    parts, last, order = [], None, 0
    for _, r in table.rows.iterrows():
        block = block_title(r["group"], r["source"], r["origin"])
        if block != last:
            parts.append(f'<tbody class="block" data-order="{order}"><tr><th colspan="{width}">{_e(block)}</th></tr>'
                         "</tbody>")
            order += 1
            last = block
        results = row_results(r, table.dataset, sources)
        off = faces_off_protocol(r["faces"])
        hover, body = provenance(r, results)
        badge = BADGES.get(r["origin"], r["origin"])
        classes = " ".join(c for c in ("row", "paper" if r["origin"] == ORIGIN_PAPER else "", "offprot" if off else "")
                           if c)
        name = (_e(r["name"])
                + f'<span class="badge {badge.split()[0]}">{_e(badge)}</span>'
                + ('<span class="badge off">off-protocol faces</span>' if off else ""))
        cells = [f'<td data-v="{_e(r["name"])}">{name}</td>']
        cells += [f'<td data-v="{_num(r[lab])}">{_score(r[lab], r[f"{lab}_std"])}</td>' for lab in table.labels]
        cells.append(f'<td data-v="{_num(r["avg"])}"><b>{_score(r["avg"], r["avg_std"])}</b></td>')
        if gains:
            cells.append(f'<td data-v="{_num(r.get("init_gain"))}">{_e(gain_cell(r))}</td>')
        cells.append(f'<td data-v="{int(r["coverage"])}">{int(r["coverage"])}/{len(table.labels)}</td>')
        parts.append(f'<tbody class="entry" data-order="{order}"><tr class="{classes}" title="{_e(hover)}" '
                     f'data-origin="{_e(r["origin"])}" data-config-hash="{_e(r["config_hash"])}" '
                     f'data-off-protocol="{str(off).lower()}">{"".join(cells)}</tr>'
                     f'<tr class="prov" hidden><td colspan="{width}">{body}</td></tr></tbody>')
        order += 1
    return (f'<div class="scroll"><table class="board sortable" data-dataset="{_e(table.dataset)}">'
            f'{_header(heads)}{"".join(parts)}</table></div>')


def summary_table(tables: Sequence[ComparisonTable]) -> str:
    """The sortable summary across datasets (average per dataset, like the paper's Table 5)."""
    frame = summary_frame(tables)
    names = [t.dataset for t in tables]
    has_mean = "mean" in frame
    metrics = {t.dataset: t.metric_name for t in tables}
    heads = [("method", "text"), *((f"{n} ({metrics[n]})", "num") for n in names),
             *([("mean", "num")] if has_mean else []), ("datasets", "num")]
    parts, last, order = [], None, 0
    for _, r in frame.iterrows():
        block = block_title(r["group"], r["source"], r["origin"])
        if block != last:
            parts.append(f'<tbody class="block" data-order="{order}"><tr><th colspan="{len(heads)}">{_e(block)}</th>'
                         "</tr></tbody>")
            order += 1
            last = block
        badge = BADGES.get(r["origin"], r["origin"])
        cells = [f'<td data-v="{_e(r["name"])}">{_e(r["name"])}<span class="badge {badge.split()[0]}">'
                 f'{_e(badge)}</span></td>']
        cells += [f'<td data-v="{_num(r[n])}">{_score(r[n], r[f"{n}_std"])}</td>' for n in names]
        if has_mean:
            cells.append(f'<td data-v="{_num(r["mean"])}"><b>{_e(cell(r["mean"]))}</b></td>')
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
            png = grouped_bars([table], Path(tmp) / "chart.png").read_bytes()
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
            f"--out, <i>committed</i> = this repository's results/. {OFF_PROTOCOL_MARK.strip()} = {_e(OFF_PROTOCOL_NOTE)}.</p>",
            '<p class="note">Datasets: ' + ", ".join(f'<a href="#{_e(t.dataset)}">{_e(t.dataset)}</a>' for t in tables)
            + (', <a href="#summary">summary</a>' if len(tables) > 1 else "")
            + (', <a href="#vs">paired bootstrap</a>' if vs is not None else "") + "</p>"]
    for t in tables:
        body += [f'<section id="{_e(t.dataset)}"><h2>{_e(t.dataset)} <small>({_e(t.metric_name)})</small></h2>',
                 f'<p class="caption">{_e(caption(t))}</p>', dataset_table(t, sources),
                 chart(t) if charts else "", "</section>"]
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
            f"<style>{CSS}</style></head><body>{''.join(body)}<script>{JS}</script></body></html>\n")


def write_page(path: Path, tables: Sequence[ComparisonTable], sources: Mapping[str, tuple[Path, Sequence[Mapping]]],
               **options: Any) -> Path:
    """Write :func:`render_page` to ``path`` atomically; returns the path."""
    path = Path(path)
    text = render_page(tables, sources, **options)
    atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path


__all__ = ["render_page", "write_page", "dataset_table", "summary_table", "frame_table", "provenance",
           "row_results", "chart"]
