"""Pretraining curves: the CSV beside ``best.json``, TensorBoard events, and their plot.

A run's curve joins two records the pretraining loop keeps in its :class:`~ssfbench.train.pretrain.LoopState`
(and so in ``last.pt``): one row per training step (``step``, ``epoch``, ``train_loss`` of that step,
learning rate ``lr``) and the epoch records of its history (validation metrics, ``epoch_train_loss`` =
the epoch's mean step loss, ``train_frames_per_s``, ``elapsed_s``; step 0 holds the validation of the
initial weights). :class:`CurveLog` writes it as ``runs/<run_id>/curve.csv`` (:data:`ssfbench.runtime.layout.CURVE`)
for every pretraining run, whole and atomically from that state each time ``last.pt`` is written, so a
resumed run continues the file without duplicate rows; with ``--log tensorboard`` it also writes the
same scalars as TensorBoard events under ``runs/<run_id>/tb/`` (tags :func:`tag_of`), purging the
events of steps a resumed run repeats.

``ssfbench compare --curves RUN... --plot FILE.png`` draws curves with :func:`plot_curves`; a run made
before curves were written is read from its ``best.json`` history (epoch rows only).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ssfbench.errors import UserError
from ssfbench.runtime.fileio import atomic_savefig, atomic_write_bytes
from ssfbench.runtime.layout import CHECKPOINT_RECORD, CURVE, TENSORBOARD_DIR

#: the keys of one step row (``LoopState.steps``)
STEP_KEYS = ("step", "epoch", "train_loss", "lr")
#: keys of an epoch record that are not validation metrics, after :func:`epoch_row`
EPOCH_KEYS = ("epoch_train_loss", "train_frames_per_s", "model_frames_per_s", "data_wait_fraction", "bottleneck",
              "elapsed_s", "ranks_identical")
#: what ``pip`` installs for ``--log tensorboard``
TENSORBOARD_INSTALL = "pip install 'ssfbench[tensorboard]'"


def epoch_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """An epoch record of the pretraining history as curve columns (its ``train_loss``, the epoch's
    mean step loss, becomes ``epoch_train_loss``)."""
    return {("epoch_train_loss" if key == "train_loss" else key): value for key, value in record.items()}


def curve_rows(history: Sequence[Mapping[str, Any]], steps: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """One row per step that has a step row or an epoch record, by step: the step's loss and learning
    rate joined with the epoch record that ends at it."""
    rows: dict[int, dict[str, Any]] = {int(s["step"]): dict(s) for s in steps}
    for record in history:
        rows.setdefault(int(record["step"]), {}).update(epoch_row(record))
    return [rows[step] for step in sorted(rows)]


def curve_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The CSV header: step columns, the validation metrics (first-seen order), then the epoch columns."""
    seen = dict.fromkeys(key for row in rows for key in row)
    metrics = [k for k in seen if k not in STEP_KEYS and k not in EPOCH_KEYS]
    return [*STEP_KEYS, *metrics, *(k for k in EPOCH_KEYS if k in seen)]


def validation_metrics(columns: Sequence[str]) -> list[str]:
    """The validation metric columns of a curve."""
    return [c for c in columns if c not in STEP_KEYS and c not in EPOCH_KEYS]


def write_curve(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write the curve CSV atomically (blank cells where a row has no value)."""
    columns = curve_columns(rows)

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)

    atomic_write_bytes(Path(path), write)


def find_curve(ref: str, out: Path) -> Path:
    """The run folder ``ref`` names: a run id under ``<out>/runs``, a run folder, or its ``curve.csv``
    / ``best.json``; anything else is a :class:`UserError` listing the runs there."""
    from ssfbench.runtime.layout import OutputLayout

    layout = OutputLayout(out)
    path = Path(ref)
    if path.is_file() and path.name in (CURVE, CHECKPOINT_RECORD):
        return path.parent
    for folder in (path, layout.run_dir(ref)):
        if folder.is_dir() and ((folder / CURVE).is_file() or (folder / CHECKPOINT_RECORD).is_file()):
            return folder
    runs = layout.run_dir(ref).parent
    known = sorted(p.name for p in runs.glob("*") if p.is_dir()) if runs.is_dir() else []
    raise UserError(f"--curves: no pretraining run {ref!r} (a run id under {runs}, a run folder or its "
                    f"{CURVE}; runs there: {', '.join(known) or 'none'})")


def read_curve(run_dir: Path):
    """The curve of a run folder as a DataFrame: its ``curve.csv``, else the epoch rows of its
    ``best.json`` history (runs made before curves were written); numbers as floats."""
    import pandas as pd

    run_dir = Path(run_dir)
    if (run_dir / CURVE).is_file():
        try:
            frame = pd.read_csv(run_dir / CURVE)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise UserError(f"{run_dir / CURVE}: not a readable curve CSV ({type(exc).__name__})") from None
    else:
        try:
            history = json.loads((run_dir / CHECKPOINT_RECORD).read_text()).get("history") or []
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{run_dir / CHECKPOINT_RECORD}: unreadable ({type(exc).__name__})") from None
        rows = curve_rows(history)
        frame = pd.DataFrame(rows, columns=curve_columns(rows))
    if "step" not in frame or frame.empty:
        raise UserError(f"{run_dir}: the curve has no rows (pretraining has not logged a step yet)")
    return frame


def tag_of(column: str) -> str | None:
    """The TensorBoard tag of a curve column: ``train/loss``, ``train/lr``, ``train/epoch_loss``,
    ``train/frames_per_s``, ``train/model_frames_per_s``, ``train/data_wait_fraction``, ``val/<metric>``;
    None for bookkeeping (step, epoch, elapsed, rank check, the bottleneck's name)."""
    fixed = {"train_loss": "train/loss", "lr": "train/lr", "epoch_train_loss": "train/epoch_loss",
             "train_frames_per_s": "train/frames_per_s", "model_frames_per_s": "train/model_frames_per_s",
             "data_wait_fraction": "train/data_wait_fraction"}
    if column in fixed:
        return fixed[column]
    if column in STEP_KEYS or column in EPOCH_KEYS:
        return None
    return f"val/{column}"


def require_tensorboard() -> None:
    """Raise a one-line :class:`UserError` naming the pip command when TensorBoard is not installed."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise UserError(f"--log tensorboard needs the tensorboard package: {TENSORBOARD_INSTALL}")


class CurveLog:
    """The curve of one pretraining run as it goes: ``runs/<run_id>/curve.csv`` always and, with
    ``tensorboard``, events under ``runs/<run_id>/tb/``. Only the process that writes (``main``)
    does anything. ``first_step`` is the step a (resumed) run continues after: TensorBoard events
    of later steps from an interrupted session are purged."""

    def __init__(self, run_dir: Path, *, main: bool, tensorboard: bool = False, first_step: int = 0) -> None:
        self.path = Path(run_dir) / CURVE
        self.writer = None
        if main and tensorboard:
            require_tensorboard()
            from torch.utils.tensorboard import SummaryWriter

            # events of steps > first_step were written by a session that stopped before saving them
            self.writer = SummaryWriter(log_dir=str(Path(run_dir) / TENSORBOARD_DIR),
                                        purge_step=first_step + 1 if first_step else 0, flush_secs=10)
        self.main = main

    def log(self, row: Mapping[str, Any]) -> None:
        """Send one step row or one epoch row (:func:`epoch_row`) to TensorBoard, if logging there."""
        if self.writer is None:
            return
        for column, value in row.items():
            tag = tag_of(column)
            if tag is not None and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(tag, value, global_step=int(row["step"]))

    def save(self, history: Sequence[Mapping[str, Any]], steps: Sequence[Mapping[str, Any]]) -> None:
        """Write the whole curve CSV from the loop's state (and flush TensorBoard)."""
        if not self.main:
            return
        write_curve(self.path, curve_rows(history, steps))
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        """Close the TensorBoard writer."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# ---- the figure ---------------------------------------------------------------------------------

_PANEL_TITLES = {"train_loss": "training loss (per step; dots: epoch means)", "lr": "learning rate",
                 "train_frames_per_s": "training frames/s (per epoch)"}


def _recorded(frame: Any, panel: str) -> bool:
    """Whether a curve holds any value for ``panel`` (the training loss: per step or per epoch)."""
    columns = [panel, "epoch_train_loss"] if panel == "train_loss" else [panel]
    return any(c in frame and frame[c].notna().any() for c in columns)


def plot_curves(curves: Mapping[str, Any], path: Path) -> Path:
    """Draw the curves (run name -> DataFrame from :func:`read_curve`) to ``path`` (PNG, PDF or SVG):
    one panel each for the training loss, every validation metric, the learning rate and frames/s
    that at least one run recorded (runs of older versions have no learning rate), against the step;
    one colour per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(m for frame in curves.values() for m in validation_metrics(list(frame.columns))))
    panels = [p for p in ("train_loss", *metrics, "lr", "train_frames_per_s")
              if any(_recorded(frame, p) for frame in curves.values())]
    ncols = 2
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(11, 3.2 * nrows + 0.6), squeeze=False)
    colours = matplotlib.colormaps["tab10"].colors
    for ax, panel in zip(axes.flat, panels):
        for i, (name, frame) in enumerate(curves.items()):
            colour = colours[i % len(colours)]
            if panel == "train_loss" and "epoch_train_loss" in frame:
                epochs = frame.dropna(subset=["epoch_train_loss"])
                ax.plot(epochs["step"], epochs["epoch_train_loss"], "o", color=colour, markersize=3)
            if panel not in frame:
                continue
            points = frame.dropna(subset=[panel])
            style = "-" if panel in ("train_loss", "lr") else "-o"
            ax.plot(points["step"], points[panel], style, color=colour, label=name, linewidth=1.2, markersize=3)
        ax.set_title(_PANEL_TITLES.get(panel, f"validation: {panel} (per epoch; step 0 = initial weights)"),
                     loc="left", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(color="#dddddd", linewidth=0.6)
        ax.spines[["top", "right"]].set_visible(False)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    handles, labels = next((a.get_legend_handles_labels() for a in axes.flat if a.get_legend_handles_labels()[0]),
                           ([], []))
    ncol = min(len(labels), 3) or 1
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, (0.25 * math.ceil(len(labels) / ncol) + 0.15) / fig.get_figheight(), 1, 1))
    try:
        atomic_savefig(fig, Path(path), dpi=110)
    finally:
        plt.close(fig)
    return Path(path)


def draw_curves(refs: Sequence[str], out: Path, path: Path) -> Path:
    """``compare --curves RUN... --plot FILE``: find each run (:func:`find_curve`), read its curve and
    draw them all into ``path``."""
    folders = [find_curve(ref, out) for ref in refs]
    return plot_curves({folder.name: read_curve(folder) for folder in folders}, path)


__all__ = ["CurveLog", "draw_curves", "curve_rows", "curve_columns", "epoch_row", "find_curve", "plot_curves", "read_curve",
           "require_tensorboard", "tag_of", "validation_metrics", "write_curve", "TENSORBOARD_INSTALL"]
