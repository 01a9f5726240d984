"""Paper-style comparison tables, built (rendered by :mod:`ssfbench.report.render` as text, Markdown, CSV or
LaTeX and by :mod:`ssfbench.report.webpage` as a web page): the paper's own numbers beside the user's and the
committed rows.

One :class:`ComparisonTable` per dataset gathers rows from three places:

* the paper's tables, ``results/paper/*.csv`` (installed as ``ssfbench.paper_tables``; values in
  percent, as printed);
* the user's runs under ``<out>/results`` (leaderboards rebuilt from the result JSON files by the
  pure :func:`ssfbench.results.store.build_leaderboard`, so per-label std over folds is always there);
* the repository's committed leaderboards ``results/<dataset>.csv`` (``ssfbench.leaderboards``).

Rows are grouped as the paper groups them: self-supervised, supervised, then floors and ceilings;
inside each group reported-in-other-work, reproduced-by-the-paper, the paper's own, then ssfbench
rows. A row's ``coverage`` is the number of the table's labels it has a value for; an ssfbench row
gets an average only when it covers every label (paper rows keep the average the paper prints).
Every score in a table is a fraction in [0, 1]; rendering multiplies by 100.

Tables of methods, not of runs: each ssfbench row is one configuration (seeds averaged) and its
``table`` says where it is shown (:func:`row_table`): ``leaderboard`` (a method as its defaults make
it), ``ablations`` (the same with settings of its own: budget, learning rate, nuisance-free data,
BatchNorm statistics) or ``controls`` (a step-0 control: the own initialisation of other rows, folded
into them by :func:`add_init_gains` as their ``Δ own init`` and ``own init`` columns).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ssfbench.errors import UserError
from ssfbench.report.tables import METRIC_NAMES, gain_text, row_name
from ssfbench.results.records import role_of
from ssfbench.results.store import (
    NOT_RECIPE,
    OFF_PROTOCOL,
    PAPER_FILES,
    ResultFileWarning,
    build_leaderboard,
    inconsistent_rows,
    label_columns,
    load_results,
    read_leaderboard,
)

PAPER_SUMMARY_FILE = "table5_summary.csv"
PAPER_CHOICES = ("main", "all", "none")

GROUPS = ("self-supervised", "supervised", "floors and ceilings")
SOURCES = ("paper", "paper-reproduced", "paper-ours", "ssfbench", "ceiling")
ORIGIN_PAPER, ORIGIN_OUT, ORIGIN_COMMITTED = "paper", "your runs", "committed"
ORIGINS = (ORIGIN_PAPER, ORIGIN_OUT, ORIGIN_COMMITTED)
#: table group of each method role (``Method.role``, recorded in results and leaderboards)
ROLE_GROUPS = {"self-supervised": "self-supervised", "supervised": "supervised",
               "floor": "floors and ceilings", "ceiling": "floors and ceilings"}

ROW_COLUMNS = ["group", "source", "origin", "method", "variant", "backbone", "name", "order", "run_id",
               "config_hash", "n_runs", "faces", "recipe", "data", "table"]
#: appended to the name of a row whose faces were not prepared the paper's way
OFF_PROTOCOL_MARK = " †"
#: appended to the name of a row on the paper's data not pretrained by the paper's recipe
RECIPE_MARK = " ‡"
#: where a row is shown (:func:`row_table`), in display order
TABLES = ("leaderboard", "ablations", "controls")
TABLE_TITLES = {"leaderboard": "leaderboard", "ablations": "ablations: the methods above with settings of their own",
                "controls": "step-0 controls: each row's own initialisation (folded into its Δ own init)"}
#: the variant setting of a step-0 control (``spec.init_control_spec``) and of a statistics control
CONTROL_SETTING, STATISTICS_SETTING = "steps=0", "bn=data"


def faces_off_protocol(faces: object) -> bool:
    """Whether a row's ``faces`` value (the leaderboards' column) says its faces were not prepared the
    paper's way (:func:`ssfbench.results.store.off_protocol` decided it when the row was written): such
    rows are marked and not comparable with the paper's rows."""
    return isinstance(faces, str) and faces.startswith(OFF_PROTOCOL)


def faces_note(faces: object) -> str:
    """The † note of a row's ``faces`` value: ``off-protocol faces: 37.5 % centre-squared`` ('' when
    its faces were prepared the paper's way)."""
    if not faces_off_protocol(faces):
        return ""
    return "off-protocol faces: " + str(faces)[len(OFF_PROTOCOL):].lstrip(": ")


def recipe_off(recipe: object) -> bool:
    """Whether a row's ``recipe`` value (the leaderboards' column, :func:`ssfbench.results.store.recipe_column`)
    says it was not pretrained by the paper's recipe: such rows are marked ``‡``."""
    return isinstance(recipe, str) and recipe.startswith(NOT_RECIPE)


def variant_settings(display_name: str, variant: str) -> list[str]:
    """The settings of a row beyond its method's own (those :func:`ssfbench.report.tables.row_name` shows in
    parentheses): budget, learning rate, data options, statistics; an ensemble's axis (``k=1+2+4``,
    its first part) is its own."""
    parts = [p for p in str(variant).split() if p not in set(str(display_name).split())]
    return parts[1:] if parts and "+" in parts[0] and parts[0] == str(variant).split()[0] else parts


def row_table(source: str, display_name: str, variant: str) -> str:
    """Where a leaderboard row is shown (one of :data:`TABLES`): the paper's rows and ssfbench rows
    without settings of their own in the ``leaderboard``, step-0 runs in ``controls``, every other
    ssfbench row in ``ablations``."""
    if str(source).startswith("paper"):
        return "leaderboard"
    settings = variant_settings(display_name, variant)
    if CONTROL_SETTING in settings:
        return "controls"
    return "ablations" if settings else "leaderboard"


@dataclass
class ComparisonTable:
    """The rows of one dataset: ``rows`` holds ``ROW_COLUMNS``, one column per label, ``<label>_std``,
    ``avg``, ``avg_std`` and ``coverage`` (labels with a value), ordered for display."""

    dataset: str
    metric: str
    labels: list[str]
    rows: pd.DataFrame

    @property
    def metric_name(self) -> str:
        """``F1``, ``AUC`` or the raw metric name."""
        return METRIC_NAMES.get(self.metric, self.metric or "score")


# ---- where the CSVs are ---------------------------------------------------------------------


#: the repository root when running from a source checkout (the fallback of the data packages)
CHECKOUT = Path(__file__).resolve().parents[2]


def _package_dir(package: str, fallback: Path) -> Path | None:
    """The folder of data package ``package`` (installed), else ``fallback`` in a source checkout."""
    import importlib.resources

    try:
        path = Path(str(importlib.resources.files(package)))
    except ModuleNotFoundError:  # an editable install made before the package was mapped
        path = fallback
    return path if path.is_dir() else None


def paper_dir() -> Path:
    """The folder of the paper's CSVs (``ssfbench.paper_tables``)."""
    path = _package_dir("ssfbench.paper_tables", CHECKOUT / "results" / "paper")
    if path is None:
        raise UserError("the paper's tables (ssfbench.paper_tables) are not installed; reinstall ssfbench")
    return path


def committed_dir() -> Path | None:
    """The folder of the committed leaderboards (``ssfbench.leaderboards``), if there is one."""
    return _package_dir("ssfbench.leaderboards", CHECKOUT / "results")


def committed_runs_dir() -> Path | None:
    """The folder whose ``runs/`` holds the committed rows' run files (predictions, provenance): the
    committed leaderboards' own folder in an editable install of a checkout, else the ``results/``
    folder of the checkout the command runs from (the working directory is its root, as under
    ``pytest`` and ``tox``) when its leaderboard CSVs are byte for byte the installed ones; None
    otherwise (the wheel ships the committed leaderboards without their run files)."""
    installed = committed_dir()
    if installed is None:
        return None
    boards = {p.name: p.read_bytes() for p in installed.glob("*.csv")}
    for folder in (installed, CHECKOUT / "results", Path.cwd() / "results"):
        if (folder / "runs").is_dir() and all((folder / name).is_file() and (folder / name).read_bytes() == data
                                              for name, data in boards.items()):
            return folder
    return None


def read_table_csv(path: Path) -> pd.DataFrame:
    """A leaderboard-format CSV (ssfbench's or the paper's): text columns as str, scores as float."""
    try:
        return read_leaderboard(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"{path}: not a readable leaderboard CSV ({type(exc).__name__})") from None


def paper_table(name: str) -> pd.DataFrame:
    """One of the paper's tables as printed (percent), e.g. ``paper_table("table1_bp4d.csv")``."""
    path = paper_dir() / name
    if not path.is_file():
        raise UserError(f"{path}: no such paper table (files: {', '.join(sorted(p.name for p in paper_dir().glob('*.csv')))})")
    return read_table_csv(path)


# ---- normalising rows -------------------------------------------------------------------------


def group_of(method: str, source: str, group: str = "", role: str = "") -> str:
    """The paper's row group: the paper's own ``group`` column for its rows, else by the method's
    role (recorded with the results; older leaderboards without it: by method name)."""
    if group:
        return group
    return ROLE_GROUPS[role if role in ROLE_GROUPS else role_of({"method": method, "source": source})]


def normalise(board: pd.DataFrame, *, origin: str) -> pd.DataFrame:
    """Leaderboard rows (ssfbench's fractions or the paper's percent) as comparison rows."""
    if board.empty:
        return pd.DataFrame(columns=ROW_COLUMNS)
    labels = label_columns(board)
    scale = np.where(board.get("unit", pd.Series("", index=board.index)).eq("percent"), 0.01, 1.0)
    out = pd.DataFrame({
        "group": [group_of(m, s, g, r) for m, s, g, r in zip(
            board["method"], board["source"], board.get("group", pd.Series("", index=board.index)),
            board.get("role", pd.Series("", index=board.index)))],
        "source": board["source"].replace("", "ssfbench"), "origin": origin,
        "method": board["method"], "variant": board["variant"], "backbone": board["backbone"],
        "name": [_display(r) for _, r in board.iterrows()], "order": np.arange(len(board)),
        "run_id": board.get("run_id", ""), "config_hash": board.get("config_hash", ""),
        "n_runs": board.get("n_runs", np.nan), "faces": board.get("faces", ""),
        "recipe": board.get("recipe", ""), "data": board.get("data", ""),
        "table": [row_table(s, d, v) for s, d, v in zip(board["source"], board.get("display_name", board["method"]),
                                                        board["variant"])],
        "_fingerprint": board.get("dataset_fingerprint", ""),
    })
    off = out["faces"].map(faces_off_protocol).astype(bool)
    out.loc[off, "name"] = out.loc[off, "name"] + OFF_PROTOCOL_MARK
    deviates = out["recipe"].map(recipe_off).astype(bool)
    out.loc[deviates, "name"] = out.loc[deviates, "name"] + RECIPE_MARK
    for lab in labels:
        out[lab] = board[lab].astype(float).to_numpy() * scale
        std = board.get(f"{lab}_std")
        out[f"{lab}_std"] = np.nan if std is None else std.astype(float).to_numpy() * scale
    out["avg"] = board["avg"].astype(float).to_numpy() * scale if "avg" in board else np.nan
    out["avg_std"] = board["avg_std"].astype(float).to_numpy() * scale if "avg_std" in board else np.nan
    return out


def _display(r: pd.Series) -> str:
    """Row name: the paper's rows as printed (reported ones marked ``*``), ours with their variant."""
    if r["source"] == "paper":
        return f"{r['display_name']} *"
    if r["source"].startswith("paper"):
        return r["display_name"]
    return row_name(r["display_name"] or r["method"], r["variant"], r["backbone"])


# ---- gathering the rows of one dataset -----------------------------------------------------------


def paper_rows(dataset: str, which: str = "main") -> pd.DataFrame:
    """The paper's rows for ``dataset``: its main table (``main``), plus the supplementary tables'
    rows not already in it (``all``), or none (``none``)."""
    if which not in PAPER_CHOICES:
        raise UserError(f"--paper: expected one of {', '.join(PAPER_CHOICES)}, got {which!r}")
    if which == "none" or dataset not in PAPER_FILES:
        return pd.DataFrame(columns=ROW_COLUMNS)
    main, supp = PAPER_FILES[dataset]
    files = [main, *(supp if which == "all" else ())]
    parts = [normalise(paper_table(f), origin=ORIGIN_PAPER).assign(order=lambda d, i=i: d["order"] + 1000 * i)
             for i, f in enumerate(files)]
    rows = pd.concat(parts, ignore_index=True)
    return rows.drop_duplicates(["method", "variant", "backbone", "source"], keep="first", ignore_index=True)


def our_rows(out: Path, dataset: str, results: list[dict] | None = None) -> tuple[pd.DataFrame, str]:
    """The user's rows for ``dataset`` from ``<out>/results`` and the metric of their results: rebuilt
    from the result JSON files when there are any (``results`` if already loaded), else read from the
    leaderboard CSV."""
    results_dir = Path(out) / "results"
    results = load_results(results_dir) if results is None else results
    mine = [r for r in results if r["dataset"] == dataset]
    if mine:
        return normalise(build_leaderboard(mine, dataset), origin=ORIGIN_OUT), mine[0].get("metric", "")
    csv = results_dir / f"{dataset}.csv"
    if csv.is_file():
        board = read_checked_board(csv)
        return normalise(board, origin=ORIGIN_OUT), _board_metric(board)
    return pd.DataFrame(columns=ROW_COLUMNS), ""


def read_checked_board(path: Path) -> pd.DataFrame:
    """An ssfbench leaderboard CSV without its inconsistent rows (:func:`ssfbench.results.store.inconsistent_rows`:
    an ``avg`` that is not its labels' mean), each skipped with one :class:`ResultFileWarning` naming the
    file and the row, as result files that disagree are."""
    board = read_table_csv(path)
    bad = inconsistent_rows(board)
    for i, problem in bad:
        name = board.iloc[i].get("display_name") or board.iloc[i].get("method", "")
        warnings.warn(f"{path}: line {i + 2} ({name}): skipped, its scores disagree ({problem})", ResultFileWarning,
                      stacklevel=2)
    return board.drop(index=board.index[[i for i, _ in bad]]).reset_index(drop=True) if bad else board


def committed_rows(dataset: str) -> tuple[pd.DataFrame, str]:
    """The rows of the committed leaderboard ``results/<dataset>.csv`` (none if absent)."""
    folder = committed_dir()
    if folder is None or not (folder / f"{dataset}.csv").is_file():
        return pd.DataFrame(columns=ROW_COLUMNS), ""
    board = read_checked_board(folder / f"{dataset}.csv")
    return normalise(board, origin=ORIGIN_COMMITTED), _board_metric(board)


def _board_metric(board: pd.DataFrame) -> str:
    """The metric a leaderboard names in its ``metric`` column, if it has one."""
    if "metric" in board and len(board) and board["metric"].iloc[0]:
        return str(board["metric"].iloc[0])
    return ""


def _paper_metric(dataset: str) -> str:
    """The metric of the paper's table for ``dataset`` (``""`` if the paper has none)."""
    if dataset not in PAPER_FILES:
        return ""
    board = paper_table(PAPER_FILES[dataset][0])
    return _board_metric(board)


def _registry_metric(dataset: str) -> str:
    """The metric of a registered dataset (``""`` for a name nobody registered)."""
    from ssfbench.api.registry import get_dataset

    try:
        return str(getattr(get_dataset(dataset), "metric", ""))
    except UserError:
        return ""


def filter_methods(rows: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Rows whose method name, display name or shown name equals one of ``methods`` (any case);
    every row when ``methods`` is empty."""
    if not methods or rows.empty:
        return rows
    wanted = {m.lower() for m in methods}
    names = rows["name"].str.lower().str.rstrip(" *")
    keep = rows["method"].str.lower().isin(wanted) | names.isin(wanted)
    return rows[keep]


def add_coverage(rows: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Add ``coverage`` (labels with a value) and blank the average of ssfbench rows that miss a
    label: no average over missing labels (the paper's rows keep the average the paper prints)."""
    rows = rows.copy()
    for lab in labels:
        if lab not in rows:
            rows[lab] = np.nan
            rows[f"{lab}_std"] = np.nan
    rows["coverage"] = rows[labels].notna().sum(axis=1).astype(int) if labels else 0
    incomplete = (rows["coverage"] < len(labels)) & (rows["origin"] != ORIGIN_PAPER)
    rows.loc[incomplete, ["avg", "avg_std"]] = np.nan
    return rows


def order_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Display order: table (:data:`TABLES`), group, then source, then origin; the paper's rows in the
    paper's order; ours by average (best first, missing last), ties by name, variant, backbone and run id."""
    if rows.empty:
        return rows
    table = rows["table"] if "table" in rows else pd.Series("leaderboard", index=rows.index)
    rows = rows.assign(_t=table.map(_rank(TABLES)), _g=rows["group"].map(_rank(GROUPS)),
                       _s=rows["source"].map(_rank(SOURCES)),
                       _o=rows["origin"].map(_rank(ORIGINS)),
                       _k=np.where(rows["origin"] == ORIGIN_PAPER, rows["order"].astype(float),
                                   -rows["avg"].astype(float)))
    rows = rows.sort_values(["_t", "_g", "_s", "_o", "_k", "name", "variant", "backbone", "run_id"],
                            na_position="last", kind="mergesort")
    return rows.drop(columns=["_t", "_g", "_s", "_o", "_k"]).reset_index(drop=True)


def _rank(order: Sequence[str]) -> dict[str, int]:
    """Position of each name in ``order`` (unknown names sort last)."""
    return {name: i for i, name in enumerate(order)}


def comparison_table(dataset: str, *, out: Path | None, paper: str = "main", methods: Sequence[str] = (),
                     committed: bool = True, results: list[dict] | None = None) -> ComparisonTable:
    """Every row for ``dataset``: the paper's, the user's (``out``) and the committed ones (a committed
    row with the same configuration as one of the user's is dropped), filtered by ``methods``."""
    parts, metrics = [paper_rows(dataset, paper)], [_paper_metric(dataset)]
    mine = pd.DataFrame(columns=ROW_COLUMNS)
    if out is not None:
        mine, metric = our_rows(out, dataset, results)
        parts.append(mine)
        metrics.append(metric)
    if committed:
        theirs, metric = committed_rows(dataset)
        if not theirs.empty and not mine.empty:
            theirs = theirs[~theirs["config_hash"].isin(set(mine["config_hash"]))]
        parts.append(theirs)
        metrics.append(metric)
    parts = [p for p in parts if not p.empty]
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=ROW_COLUMNS)
    labels = _labels(parts)
    rows = order_rows(add_coverage(filter_methods(_disambiguate(rows), methods), labels))
    metric = next((m for m in metrics if m), "") or _registry_metric(dataset)
    return ComparisonTable(dataset=dataset, metric=metric, labels=labels, rows=rows)


def _disambiguate(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of this harness that share a shown name get told apart: of another configuration (e.g.
    another protocol version) by the start of their config hash, ``Raw pixels #d7dd85``; of the same
    configuration on other evaluation data (``--data-option``, ``--data-seed``) by that data,
    ``Ranking k=2 [data: noise=0.2]`` (or ``[data 1a2b3c]``, its fingerprint, where the options are
    the same or not recorded)."""
    if rows.empty:
        return rows.drop(columns=["_fingerprint"], errors="ignore")
    rows = rows.copy()
    if "_fingerprint" not in rows:
        rows["_fingerprint"] = ""
    ours = rows["origin"] != ORIGIN_PAPER
    dup = ours & rows.duplicated(["origin", "name"], keep=False)
    same_config = dup & rows.duplicated(["origin", "name", "config_hash"], keep=False)
    other = dup & ~same_config
    rows.loc[other, "name"] = rows.loc[other, "name"] + " #" + rows.loc[other, "config_hash"].astype(str).str[:6]
    for _, group in rows[same_config].groupby(["origin", "name", "config_hash"], sort=False):
        data = group["data"].fillna("").astype(str)
        distinct = data.nunique() == len(group)
        for i in group.index:
            label = f"data: {data[i] or 'default'}" if distinct else f"data {str(rows.at[i, '_fingerprint'])[:6] or '?'}"
            rows.at[i, "name"] = f"{rows.at[i, 'name']} [{label}]"
    return rows.drop(columns=["_fingerprint"])


def _labels(parts: Sequence[pd.DataFrame]) -> list[str]:
    """The label columns of several row frames, in first-seen order."""
    skip = set(ROW_COLUMNS) | {"avg", "avg_std", "coverage", "_fingerprint"}
    seen: dict[str, None] = {}
    for part in parts:
        for col in part.columns:
            if col not in skip and not col.endswith("_std"):
                seen.setdefault(col, None)
    return list(seen)


# ---- each row's gain over its own initialisation ---------------------------------------------------

#: columns :func:`add_init_gains` adds (fractions, like the scores; ``init_seeds`` = pairs used,
#: ``init_avg`` = the own initialisation's average, ``init_config`` = its configuration)
INIT_COLUMNS = ("init_gain", "init_low", "init_high", "init_seeds", "init_avg")
#: the same gain of the row's statistics control (``bn=data``: the trained weights, BatchNorm
#: statistics re-estimated as the step-0 control's were), folded into the row
STATISTICS_COLUMNS = ("bn_gain", "bn_low", "bn_high")
INIT_HEADER = "Δ own init [95% CI]"
INIT_AVG_HEADER = "own init"
STATISTICS_HEADER = "Δ own init, BN re-estimated [95% CI]"


def init_pairs(results: Sequence[dict], config_hash: str, dataset: str) -> list[tuple[dict, dict]]:
    """(run, its step-0 control) result pairs of configuration ``config_hash`` on ``dataset``: every
    seed whose result names an ``init_control`` run that ``results`` holds, or, for an ensemble, whose
    members' controls were ensembled too (an ensemble's own initialisation is the ensemble of its
    members' initialisations)."""
    by_id = {r["run_id"]: r for r in results if r["dataset"] == dataset}
    by_members = {tuple(r["ensemble"]["members"]): r for r in by_id.values() if r.get("ensemble")}

    def control(r: dict) -> dict | None:
        if r.get("init_control") in by_id:
            return by_id[r["init_control"]]
        members = [by_id.get(m) for m in (r.get("ensemble") or {}).get("members", ())]
        if not members or any(m is None or not m.get("init_control") for m in members):
            return None
        return by_members.get(tuple(m["init_control"] for m in members))

    runs = [r for r in results if r["dataset"] == dataset and r["config_hash"] == config_hash]
    return [(r, c) for r in runs if (c := control(r)) is not None]


def add_init_gains(table: ComparisonTable, sources: dict[str, tuple[Path, Sequence[dict]]], *,
                   resamples: int = 1000, seed: int = 0) -> ComparisonTable:
    """Add :data:`INIT_COLUMNS` to every ssfbench row whose runs have step-0 controls: the mean over
    seeds of (run - its own initialisation), mean-over-labels score pooled over folds, with the paired
    bootstrap's 95 % interval over test subjects. ``sources`` maps a row origin to (results folder,
    its result records)."""
    from ssfbench.evaluation.bootstrap import paired_bootstrap_mean, predictions_path, read_predictions
    from ssfbench.results.store import result_path

    rows = table.rows.copy()
    for col in (*INIT_COLUMNS, *STATISTICS_COLUMNS):
        rows[col] = np.nan
    rows["init_config"] = ""
    controls: dict[str, set[str]] = {}  # origin -> run ids some result names as its init_control
    for origin, (_, results) in sources.items():
        controls[origin] = {r["init_control"] for r in results if r["dataset"] == table.dataset and r.get("init_control")}
    for i, r in rows.iterrows():
        if r["origin"] not in sources or not r["config_hash"]:
            continue
        folder, results = sources[r["origin"]]
        runs = str(r["run_id"]).split()
        if runs and set(runs) <= controls[r["origin"]]:
            rows.loc[i, "table"] = "controls"  # a control of other rows, whatever its variant says
        pairs = init_pairs(results, r["config_hash"], table.dataset)
        if not pairs:
            continue
        preds = [tuple(read_predictions(predictions_path(result_path(folder, x["run_id"], table.dataset)))
                       for x in pair) for pair in pairs]
        res = paired_bootstrap_mean(preds, n_resamples=resamples, seed=seed)
        init_avgs = [c["avg"] for _, c in pairs]
        init_avg = float(np.mean(init_avgs)) if all(a is not None for a in init_avgs) else np.nan
        rows.loc[i, list(INIT_COLUMNS)] = [res.diff, res.low, res.high, len(pairs), init_avg]
        rows.loc[i, "init_config"] = pairs[0][1]["config_hash"]
    rows = _fold_statistics_controls(rows)
    return ComparisonTable(dataset=table.dataset, metric=table.metric, labels=table.labels,
                           rows=order_rows(rows))


def _fold_statistics_controls(rows: pd.DataFrame) -> pd.DataFrame:
    """Give each row the ``Δ own init`` of its statistics control (the same method, backbone and
    variant plus ``bn=data``; of the same origin when there is one, else any ssfbench row) as
    :data:`STATISTICS_COLUMNS`."""
    ours = rows[(rows["origin"] != ORIGIN_PAPER) & rows["init_gain"].notna()]
    for i, r in rows.iterrows():
        if r["origin"] == ORIGIN_PAPER or STATISTICS_SETTING in str(r["variant"]).split():
            continue
        wanted = sorted([*str(r["variant"]).split(), STATISTICS_SETTING])
        match = [str(m) == str(r["method"]) and str(b) == str(r["backbone"]) and sorted(str(v).split()) == wanted
                 for m, b, v in zip(ours["method"], ours["backbone"], ours["variant"])]
        found = ours[match]
        if found.empty:
            continue
        same = found[found["origin"] == r["origin"]]
        best = (same if len(same) else found).iloc[0]
        rows.loc[i, list(STATISTICS_COLUMNS)] = [best["init_gain"], best["init_low"], best["init_high"]]
    return rows


def gain_cell(r: pd.Series) -> str:
    """``+3.1 [1.2, 4.9]`` (x100) or blank."""
    return gain_text(r.get("init_gain"), r.get("init_low"), r.get("init_high"))


def statistics_cell(r: pd.Series) -> str:
    """The statistics control's ``Δ own init`` as ``+3.1 [1.2, 4.9]`` (x100) or blank."""
    return gain_text(r.get("bn_gain"), r.get("bn_low"), r.get("bn_high"))


def has_gains(table: ComparisonTable) -> bool:
    """Whether any row carries a gain over its own initialisation."""
    return "init_gain" in table.rows and table.rows["init_gain"].notna().any()


def has_statistics(table: ComparisonTable) -> bool:
    """Whether any row carries its statistics control's gain (:data:`STATISTICS_COLUMNS`)."""
    return "bn_gain" in table.rows and table.rows["bn_gain"].notna().any()


def part(table: ComparisonTable, which: str) -> ComparisonTable:
    """The rows of ``table`` shown in one of :data:`TABLES` (same dataset, metric and labels)."""
    rows = table.rows[table.rows["table"] == which] if "table" in table.rows else table.rows.iloc[0:0]
    return ComparisonTable(dataset=table.dataset, metric=table.metric, labels=table.labels,
                           rows=rows.reset_index(drop=True))


# ---- the summary across datasets (the paper's Table 5) ------------------------------------------


KEY = ["group", "source", "origin", "method", "variant", "backbone"]


def summary_frame(tables: Sequence[ComparisonTable], parts: Sequence[str] = ("leaderboard", "ablations")) -> pd.DataFrame:
    """One row per (table part, group, source, origin, method, variant, backbone, shown name) in the
    ``parts`` of any table (:data:`TABLES`; controls only when asked), one column per dataset holding
    that row's average there (NaN when it has none: never averaged over what is missing),
    ``<dataset>_std``, ``coverage`` (datasets with an average) and, when every dataset uses the same
    metric, ``mean`` over datasets for rows that have them all."""
    key = ["table", *KEY]
    frames = []
    for t in tables:
        rows = t.rows[t.rows["table"].isin(parts)] if "table" in t.rows else t.rows.assign(table="leaderboard")
        f = rows[key + ["name", "order", "avg", "avg_std"]].rename(
            columns={"avg": t.dataset, "avg_std": f"{t.dataset}_std"})
        frames.append(f.drop_duplicates(key + ["name"]))
    if not frames:
        return pd.DataFrame()
    merged = frames[0]
    for f in frames[1:]:
        merged = merged.merge(f, on=key + ["name"], how="outer", suffixes=("", "_r"))
        merged["order"] = merged["order"].fillna(merged.pop("order_r"))
    names = [t.dataset for t in tables]
    merged["coverage"] = merged[names].notna().sum(axis=1).astype(int)
    if len({t.metric for t in tables}) == 1 and len(names) > 1:
        merged["mean"] = merged[names].mean(axis=1, skipna=False)
    merged["avg"] = merged[names].mean(axis=1, skipna=False)  # only for ordering: complete rows first
    merged["run_id"] = ""
    return order_rows(merged).drop(columns=["avg"])


# ---- finding one run ---------------------------------------------------------------------------------


def resolve_run(results: Sequence[dict], dataset: str, ref: str, *, option: str = "--vs") -> dict:
    """The result on ``dataset`` that ``ref`` names: a run id; else the newest run of a method of that
    name; else of that display or row name (any case); else the newest run whose id starts with it."""
    runs = [r for r in results if r["dataset"] == dataset]
    exact = [r for r in runs if r["run_id"] == ref]
    if exact:
        return exact[0]
    low = ref.lower()
    tests = (lambda r: r["method"] == ref,
             lambda r: low in {str(r.get("display_name", "")).lower(),
                               row_name(r.get("display_name") or r["method"], r.get("variant", ""),
                                        r.get("backbone", "")).lower()},
             lambda r: r["run_id"].startswith(ref))
    for test in tests:
        found = [r for r in runs if test(r)]
        if found:
            return max(found, key=lambda r: (r.get("date", ""), r["run_id"]))
    methods = sorted({r["method"] for r in runs})
    known = (f"{len(runs)} runs of {', '.join(methods)}; give a run id, a method or a row name as "
             "`ssfbench compare` shows it") if runs else "none"
    raise UserError(f"{option}: no run {ref!r} on {dataset} (runs on {dataset}: {known})")


__all__ = ["ComparisonTable", "PAPER_FILES", "TABLES", "comparison_table", "paper_table", "paper_rows", "our_rows",
           "committed_rows", "filter_methods", "add_coverage", "order_rows", "summary_frame", "resolve_run",
           "add_init_gains", "init_pairs", "part", "row_table", "variant_settings", "faces_off_protocol",
           "recipe_off", "read_checked_board"]
