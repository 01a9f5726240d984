"""Results files and leaderboards.

One results JSON per (run, dataset) holds per-fold, per-label scores and everything needed to
rerun it. Leaderboard CSVs (one per dataset) are a pure function of those JSON files, so they can
be rebuilt and diffed: ``build_leaderboard(load_results(dir), dataset)``.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ssfbench.results.records import SCHEMA, Result, ResultFileError, role_of
from ssfbench.runtime.fileio import atomic_write_bytes
from ssfbench.runtime.layout import ResultsLayout

__all__ = ["SCHEMA", "Result", "ResultFileWarning", "result_path", "write_result", "load_results",
           "build_leaderboard", "write_leaderboards", "read_leaderboard", "label_columns",
           "off_protocol", "recipe_deviation", "inconsistent_rows", "PAPER_FILES"]


class ResultFileWarning(UserWarning):
    """A results JSON was skipped: unreadable, not following the schema, or inconsistent."""
# Scores in leaderboard CSVs: 6 decimals, so that rounding them again for display (one decimal x100)
# agrees with the run files except within 5e-7 of a rounding boundary (4 decimals moved 0.1s).
LEADERBOARD_FLOAT_FORMAT = "%.6f"
PROVENANCE = ["run_id", "config_hash", "protocol_version", "ssfbench_version", "date"]

#: the paper's datasets (its real ones): dataset -> (its main table, its supplementary tables), file names
#: under results/paper/; a row on one of these is compared with the paper's rows
PAPER_FILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "bp4d": ("table1_bp4d.csv", ("supp_table1_bp4d.csv", "supp_table5_bp4d_backbones.csv")),
    "disfa": ("table2_disfa.csv", ("supp_table2_disfa.csv",)),
    "emotionet": ("table3_emotionet.csv", ("supp_table3_emotionet.csv",)),
    "affectnet": ("table4_affectnet.csv", ("supp_table4_affectnet.csv",)),
}


def result_path(results_dir: Path, run_id: str, dataset: str) -> Path:
    """Where the result of ``run_id`` on ``dataset`` lives under ``results_dir``."""
    return ResultsLayout(Path(results_dir)).result(run_id, dataset)


def write_result(results_dir: Path, result: Result | dict[str, Any]) -> Path:
    """Write one result atomically; returns its path. Per-frame test predictions under
    ``"test_predictions"`` (from ``probe_dataset``) are moved out of ``result`` into
    ``<dataset>.predictions.npz`` beside the JSON, written first, and ``result["predictions"]`` names it."""
    plain = result if isinstance(result, dict) else None
    if plain is not None:
        preds = plain.pop("test_predictions", None)
        result = Result.from_json(plain, where=f"result of {plain.get('run_id')!r}")
    else:
        preds = result.extra.pop("test_predictions", None)
    layout = ResultsLayout(Path(results_dir))
    path = layout.result(result.run_id, result.dataset)
    if _unchanged(path, result, preds, layout.predictions(result.run_id, result.dataset)):
        if preds is not None:  # what the caller would have found after writing
            result.extra["predictions"] = layout.predictions(result.run_id, result.dataset).name
            if plain is not None:
                plain["predictions"] = result.extra["predictions"]
        return path  # a rerun with nothing new writes nothing (a read-only output folder works)
    if preds is not None:
        from ssfbench.evaluation.bootstrap import write_predictions

        name = write_predictions(layout.predictions(result.run_id, result.dataset), preds).name
        result.extra["predictions"] = name
        if plain is not None:
            plain["predictions"] = name
    text = json.dumps(_jsonable(result.to_json()), indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(text))
    return path


#: fields that differ between two runs of the same command without the result being different
VOLATILE_FIELDS = ("date", "timing", "wall_s", "rerun", "predictions")


def _unchanged(path: Path, result: Result, preds: Any, predictions: Path) -> bool:
    """Whether ``path`` already holds ``result`` (up to :data:`VOLATILE_FIELDS`) and, when there are
    predictions, ``predictions`` holds the same ones."""
    if not path.is_file():
        return False
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    new = _jsonable(result.to_json())
    if {k: v for k, v in old.items() if k not in VOLATILE_FIELDS} != \
            {k: v for k, v in json.loads(json.dumps(new)).items() if k not in VOLATILE_FIELDS}:
        return False
    if preds is None:
        return True
    from ssfbench.evaluation.bootstrap import read_predictions

    try:
        saved = read_predictions(predictions)
    except Exception:  # noqa: BLE001 - unreadable: write it again
        return False
    return all(np.array_equal(getattr(saved, f), getattr(preds, f)) for f in ("keys", "targets", "probs")) \
        and tuple(saved.labels) == tuple(preds.labels)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    return obj


def load_results(results_dir: Path) -> list[Result]:
    """Every valid result JSON under ``results_dir/runs`` (sorted by path, so the order is stable).
    A file that cannot be read, does not follow the schema (``results/README.md``) or whose averages
    disagree with its per-label scores is skipped with one :class:`ResultFileWarning` naming it."""
    out = []
    for path in ResultsLayout(Path(results_dir)).result_files():
        try:
            result = Result.from_json(json.loads(path.read_text()), where=str(path))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            warnings.warn(f"{path}: skipped, not readable JSON ({type(exc).__name__})", ResultFileWarning, stacklevel=2)
            continue
        except ResultFileError as exc:
            warnings.warn(f"{exc}; skipped", ResultFileWarning, stacklevel=2)
            continue
        problems = result.inconsistencies()
        if problems:
            warnings.warn(f"{path}: skipped, its scores disagree ({'; '.join(problems)})", ResultFileWarning,
                          stacklevel=2)
            continue
        out.append(result)
    return out


def build_leaderboard(results: list[dict[str, Any]], dataset: str) -> pd.DataFrame:
    """One row per (configuration, dataset version): label scores averaged over the runs (seeds)
    of that configuration, ``avg`` = mean over labels, plus ``avg_std`` (std over folds, or over
    seeds when there are several), ``n_runs`` and provenance columns. Rows sorted by ``avg``."""
    rows = [r for r in results if r["dataset"] == dataset]
    if not rows:
        return pd.DataFrame()
    labels = list(dict.fromkeys(lab for r in rows for lab in r["labels"]))  # union, first-seen order
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:  # a configuration evaluated on another version of the dataset is another row
        groups.setdefault((r["config_hash"], r["dataset_fingerprint"]), []).append(r)
    table = []
    for (config_hash, _), runs in groups.items():
        runs = sorted(runs, key=lambda r: r["run_id"])
        first = runs[0]
        means = np.array([[_num(r["mean"].get(lab)) for lab in labels] for r in runs])
        avgs = np.array([np.nan if r["avg"] is None else r["avg"] for r in runs])
        row = {"method": first["method"], "variant": first["variant"], "backbone": first["backbone"],
               "source": first.get("source", "ssfbench"), "display_name": first["display_name"]}
        extras = {"role": role_of(first)}
        row.update({lab: float(v) for lab, v in zip(labels, means.mean(axis=0))})
        row["avg"] = float(avgs.mean()) if not np.isnan(means).any() else np.nan  # no average over missing labels
        row["avg_std"] = float(avgs.std()) if len(runs) > 1 else _fold_std(first, first.get("avg_std"))
        row["n_runs"] = len(runs)
        row["seeds"] = " ".join(str(r["seed"]) for r in runs)
        row["run_id"] = " ".join(r["run_id"] for r in runs)
        row["config_hash"] = config_hash
        row["protocol_version"] = first["protocol_version"]
        row["ssfbench_version"] = first["ssfbench_version"]
        row["date"] = max(r["date"] for r in runs)
        row["metric"] = first.get("metric", "")
        row["n_folds"] = len(first.get("scores_per_fold") or {})
        row["faces"] = faces_column(first)
        row.update(extras)
        row["recipe"] = recipe_column(first)
        row["dataset_fingerprint"] = first["dataset_fingerprint"]
        row["data"] = data_column(first)
        stds = means.std(axis=0) if len(runs) > 1 else [_fold_std(first, (first.get("std") or {}).get(lab))
                                                         for lab in labels]
        row.update({f"{lab}_std": float(v) for lab, v in zip(labels, stds)})  # same spread as avg_std, per label
        for col in LATER_COLUMNS:  # columns added after the first leaderboards: last, so older CSVs read alike
            row[col] = row.pop(col)
        table.append(row)
    df = pd.DataFrame(table)
    return df.sort_values(["avg", "method", "variant", "backbone", "config_hash", "run_id"],
                          ascending=[False, True, True, True, True, True], na_position="last",
                          kind="mergesort", ignore_index=True)


#: the leaderboard's ``faces`` value of rows whose faces were not prepared the paper's way starts with this
OFF_PROTOCOL = "not the paper's"
#: how a face prepared the paper's way is recorded (the dataset's landmarks; detected by dlib and aligned)
PAPER_WAYS = ("landmarks", "detected")
#: a row is off-protocol when more than this percentage of its frames fell back. 0: the paper prepares
#: every frame (landmarks given, or detected and aligned) and reports no exception, so any frame cut
#: another way makes the row a different experiment (docs/faces.md)
OFF_PROTOCOL_THRESHOLD = 0.0
#: how each way of falling back is named in the † note
FALLBACK_WORDS = {"no face detected (centre square)": "centre-squared", "centre square (crop=centre)": "centre-squared",
                  "box": "face box, not aligned"}


def face_share(found: Mapping[str, int]) -> dict[str, Any]:
    """The share of frames prepared the paper's way from ``{way: frames}`` (every frame counted once):
    ``frames``, ``paper_frames``, ``paper_percent`` (2 decimals) and ``fallback`` (``{way: frames}``
    of the rest)."""
    total = int(sum(found.values()))
    paper = int(sum(v for k, v in found.items() if k in PAPER_WAYS))
    return {"frames": total, "paper_frames": paper,
            "paper_percent": round(100.0 * paper / total, 2) if total else None,
            "fallback": {k: int(v) for k, v in sorted(found.items()) if k not in PAPER_WAYS and v}}


def fallback_percent(result: Mapping[str, Any]) -> float:
    """Percent of a result's frames whose faces fell back (0 when nothing fell back or nothing was
    counted: synthetic sets). Results written before the share was recorded are read from their
    ``faces_found`` counts."""
    record = result.get("face_preprocessing") or {}
    if record.get("paper_percent") is not None:
        return round(100.0 - float(record["paper_percent"]), 2)
    found = result.get("faces_found") or record.get("faces_found") or {}
    share = face_share(found) if found else {}
    return round(100.0 - share["paper_percent"], 2) if share.get("paper_percent") is not None else 0.0


def fallback_text(result: Mapping[str, Any]) -> str:
    """``37.5 % centre-squared`` (each way of falling back, by its share), or '' when none fell back."""
    record = result.get("face_preprocessing") or {}
    found = record.get("fallback")
    total = record.get("frames")
    if found is None:
        counts = result.get("faces_found") or record.get("faces_found") or {}
        found, total = face_share(counts)["fallback"], sum(counts.values())
    parts: dict[str, float] = {}
    for way, n in (found or {}).items():
        word = FALLBACK_WORDS.get(way, way)
        parts[word] = parts.get(word, 0.0) + (100.0 * n / total if total else 0.0)
    return ", ".join(f"{v:.3g} % {k}" for k, v in parts.items() if v)


def off_protocol(result: Mapping[str, Any]) -> bool:
    """True when the row's faces were not prepared the paper's way: ``crop=centre`` (``paper`` is
    false), or more than :data:`OFF_PROTOCOL_THRESHOLD` percent of its frames fell back (marked in
    tables: not comparable with the paper's rows)."""
    return ((result.get("face_preprocessing") or {}).get("paper") is False
            or fallback_percent(result) > OFF_PROTOCOL_THRESHOLD)


#: the leaderboard's ``recipe`` value of real-data rows pretrained otherwise than by a named recipe starts with this
NOT_RECIPE = "not the paper's recipe"


def recipe_deviation(result: Mapping[str, Any]) -> str | None:
    """Why a row on one of the paper's (real) datasets was not pretrained the paper's way, e.g.
    ``not the paper's recipe: steps 300 (paper 50 epochs), batch_size 16 (paper 48)``, or None: the
    dataset is not one of the paper's, the encoder was not pretrained by ssfbench (no ``recipe``
    record), or its recipe record lists no deviation. Rows with a reason are marked ``‡``."""
    recipe = result.get("recipe")
    if result.get("dataset") not in PAPER_FILES or not isinstance(recipe, Mapping):
        return None
    deviations = recipe.get("deviations") or {}
    if not deviations:
        return None
    parts = []
    for setting in sorted(deviations):
        value = deviations[setting]
        if isinstance(value, Mapping):
            parts.append(f"{setting} {_plain(value.get('run'))} (paper {_plain(value.get('paper'))})")
        else:
            parts.append(f"{setting} {_plain(value)}")
    return f"{NOT_RECIPE}: {', '.join(parts)}"


def _plain(value: Any) -> str:
    """A setting's value as written in a mark (JSON for lists and mappings)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def recipe_column(result: Mapping[str, Any]) -> str:
    """A result's ``recipe`` column: :func:`recipe_deviation`'s reason, else the recipe's name, else empty."""
    reason = recipe_deviation(result)
    if reason is not None:
        return reason
    recipe = result.get("recipe")
    return str(recipe.get("name") or "") if isinstance(recipe, Mapping) else ""


def data_column(result: Mapping[str, Any]) -> str:
    """The evaluation data's non-default options of a result (its ``--data-option`` values for the dataset,
    and ``data_seed`` when not 0), e.g. ``noise=0.2 data_seed=1``; empty for the default data."""
    options = (result.get("dataset_options") or {}).get(result.get("dataset"), {}) or {}
    parts = [f"{k}={v}" for k, v in sorted(options.items())]
    if result.get("data_seed"):
        parts.append(f"data_seed={result['data_seed']}")
    return " ".join(parts)


def faces_column(result: dict[str, Any]) -> str:
    """How a result's faces were prepared, for the leaderboard's ``faces`` column: ``paper``,
    ``not the paper's: 37.5 % centre-squared`` (frames fell back), ``not the paper's: <crop>``
    (``crop=centre``), or empty where the dataset has no paper protocol for faces (the synthetic
    sets). Rows starting with :data:`OFF_PROTOCOL` are marked † (not comparable with the paper's)."""
    record = result.get("face_preprocessing") or {}
    if off_protocol(result):
        if record.get("crop", "aligned") == "aligned" and fallback_percent(result) > OFF_PROTOCOL_THRESHOLD:
            return f"{OFF_PROTOCOL}: {fallback_text(result)}"
        return f"{OFF_PROTOCOL}: {record.get('crop', 'unknown crop')}"
    return "paper" if record.get("paper") is True else ""


def _num(value: Any) -> float:
    """A JSON score as float (``None``, i.e. NaN written as null, and absent labels -> NaN)."""
    return np.nan if value is None else float(value)


def _fold_std(result: dict[str, Any], value: Any) -> float:
    """A std over folds from ``result``, NaN when it has fewer than 2 folds (no spread to report)."""
    return np.nan if len(result.get("scores_per_fold") or {}) < 2 else _num(value)


#: leaderboard columns added after the first committed leaderboards, written last (absent in older CSVs)
LATER_COLUMNS = ["recipe", "dataset_fingerprint", "data"]

TEXT_COLUMNS = ["method", "variant", "backbone", "source", "display_name", "seeds", "run_id", "config_hash",
                "protocol_version", "ssfbench_version", "date",
                # extra text columns of leaderboards and of the paper's tables (results/paper/)
                "metric", "role", "group", "dataset", "unit", "paper_table", "reference", "note", "faces",
                *LATER_COLUMNS]

#: how far a leaderboard row's ``avg`` may be from the mean of its label columns (CSV rounding)
AVG_TOLERANCE = 5e-4

#: leading identity columns of every leaderboard CSV; the label columns follow them, up to ``avg``
ID_COLUMNS = ["method", "variant", "backbone", "source", "display_name"]


def label_columns(board: pd.DataFrame) -> list[str]:
    """The per-label score columns of a leaderboard: those after the identity columns and before
    ``avg`` (or, in a table without ``avg``, before the first known text column)."""
    cols = list(board.columns)
    end = cols.index("avg") if "avg" in cols else next(
        (i for i, c in enumerate(cols) if c in TEXT_COLUMNS and c not in ID_COLUMNS), len(cols))
    return [c for c in cols[:end] if c not in ID_COLUMNS]


def read_leaderboard(path: Path) -> pd.DataFrame:
    """Read a leaderboard CSV: text columns as strings ('' when empty), every other column as numbers
    (NaN when empty). A cell that is not a number is one :class:`~ssfbench.errors.UserError` naming
    the file, its line and the column."""
    from ssfbench.errors import UserError

    df = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS})
    for col in df.columns:
        if col in TEXT_COLUMNS:
            df[col] = df[col].fillna("")
        elif not pd.api.types.is_numeric_dtype(df[col]):
            numbers = pd.to_numeric(df[col], errors="coerce")
            bad = numbers.isna() & df[col].notna()
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise UserError(f"{path}: line {i + 2} (row {i + 1}), column {col!r}: {df[col].iloc[i]!r} is not a number "
                            "(score columns hold fractions in [0, 1])")
    return df


def inconsistent_rows(board: pd.DataFrame) -> list[tuple[int, str]]:
    """(row position, what disagrees) for every ssfbench leaderboard row whose ``avg`` is not the mean of
    its label columns (the consistency check of result files, for CSV rows: e.g. a hand-edited average).
    The paper's rows keep the average the paper prints and are not checked."""
    labels = label_columns(board)
    if "avg" not in board or not labels:
        return []
    out = []
    for i, (_, r) in enumerate(board.iterrows()):
        if str(r.get("source", "")).startswith("paper") or str(r.get("unit", "")) == "percent":
            continue
        values = r[labels].astype(float).to_numpy()
        avg = float(r["avg"])
        if np.isnan(avg) or np.isnan(values).any():
            continue
        if abs(values.mean() - avg) > AVG_TOLERANCE:
            out.append((i, f"avg {100 * avg:.1f} but its labels average {100 * values.mean():.1f}"))
    return out


def write_leaderboards(results_dir: Path) -> list[Path]:
    """Rebuild ``results_dir/<dataset>.csv`` for every dataset that has results; returns the paths."""
    results = load_results(results_dir)
    paths = []
    for dataset in sorted({r["dataset"] for r in results}):
        df = build_leaderboard(results, dataset)
        path = ResultsLayout(Path(results_dir)).leaderboard(dataset)
        text = df.to_csv(index=False, float_format=LEADERBOARD_FLOAT_FORMAT)
        if not (path.is_file() and path.read_text() == text):  # unchanged: nothing to write
            atomic_write_bytes(path, lambda tmp, t=text: Path(tmp).write_text(t))
        paths.append(path)
    return paths
