"""What the run commands print about their results: the per-label leaderboard tables (``run``,
``probe``, ``synth calibrate``; step-0 controls left out) ending with each run's gain over its own
initialisation (``Δ own init [95% CI]``), and the files a stage wrote (``pretrain``, ``embed``)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ssfbench.results.records import Result, RunOutput


def print_stage(output: RunOutput) -> None:
    """What ``pretrain`` / ``embed`` produced: the checkpoint, then one cache per dataset."""
    click.echo(f"checkpoint: {output.checkpoint or output.run_id} (sha256 {output.checkpoint_sha256[:12]})")
    for dataset, cache in output.caches.items():
        click.echo(f"embeddings of {dataset}: {cache}")


def print_results(results: list[Result], out: Path) -> None:
    """Print, per dataset, this run's per-label scores among every row of that leaderboard under
    ``out``, the result file's path, and (to stderr) a warning when scores lacked positives."""
    from ssfbench.report.compare import row_table
    from ssfbench.report.tables import METRIC_NAMES, leaderboard_table
    from ssfbench.results.store import read_leaderboard
    from ssfbench.runtime.layout import OutputLayout

    layout = OutputLayout(out)
    gains = []
    records = None  # every result under out, read once (the Δ lines pair each run with its control)
    for result in results:
        board = read_leaderboard(layout.results.leaderboard(result.dataset))
        shown = [row_table(s, d, v) != "controls" or h == result.config_hash for s, d, v, h in
                 zip(board["source"], board["display_name"], board["variant"], board["config_hash"])]
        metric = METRIC_NAMES[result.metric]
        click.echo(f"\n{result.dataset}: per-label {metric} x100, mean over {len(result.scores_per_fold)} "
                   f"fold(s); avg = mean over labels, ± = std over folds (or seeds); * = this run; step-0 "
                   "controls are in the Δ own init line")
        click.echo(leaderboard_table(board[shown], result.labels, highlight=result.config_hash))
        path = layout.results.result(result.run_id, result.dataset)
        click.echo(f"results: {path}")
        notes = result.get("warnings") or []
        if notes:
            click.echo(f"warning: {result.dataset}: {len(notes)} fold/label scores without positives "
                       f"(recorded under 'warnings' in {path.name}), e.g. {notes[0]}", err=True)
        if records is None and (result.get("init_control") or result.get("ensemble")):
            records = _all_results(layout.results.root)
        gain = init_gain_line(result, layout.results.root, records or [])
        if gain:
            gains.append(gain)
    for result in results:  # then how many frames fell back, one line per dataset
        line = faces_line(result)
        if line:
            click.echo(line)
    for line in gains:  # last: what a newcomer reads first
        click.echo(line)


def faces_line(result: Result) -> str | None:
    """One line: how many of a real-data result's frames fell back (not prepared the paper's way),
    whether its row is marked †, and the file that lists them; None for data without a face record."""
    from ssfbench.results.store import fallback_text, off_protocol

    record = result.get("face_preprocessing") or {}
    if record.get("frames") is None:
        return None
    total, paper = int(record["frames"]), int(record["paper_frames"])
    if paper == total:
        return f"faces: {result.dataset}: all {total} frames prepared the paper's way (landmarks, or detected and aligned)"
    listed = f"; list: {record['fallback_list']}" if record.get("fallback_list") else ""
    mark = "; row marked † (off-protocol faces)" if off_protocol(result) else ""
    return (f"faces: {result.dataset}: {total - paper} of {total} frames fell back ({fallback_text(result)}), "
            f"not prepared the paper's way{mark}{listed}")



def _all_results(results_dir: Path) -> list[dict]:
    """Every result record under ``results_dir`` (files compare would skip are reported there, not here)."""
    from ssfbench.results.store import load_results

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_results(results_dir)


def init_gain_line(result: Result, results_dir: Path, records: list[dict], *, resamples: int = 1000,
                   seed: int = 0) -> str | None:
    """``Δ own init [95% CI] on synth-au: -1.2 [-2.5, 0.2] F1 (this run 38.0, its step-0 control 39.4 ...)``:
    the run's gain over its own initialisation (its step-0 control of the same seed among ``records``,
    the result records under ``results_dir``; paired bootstrap over test subjects, as ``compare``'s
    column), or a line saying why there is none; None for runs that have no initialisation of their
    own to compare with (floors, ceilings, supervised)."""
    from ssfbench.evaluation.bootstrap import paired_bootstrap_mean, predictions_path, read_predictions
    from ssfbench.report.compare import INIT_HEADER, init_pairs
    from ssfbench.report.tables import METRIC_NAMES, gain_text, score
    from ssfbench.results.store import result_path

    if not result.get("init_control") and not result.get("ensemble"):
        return None
    label = f"{INIT_HEADER} on {result.dataset}"
    pairs = [(a, c) for a, c in init_pairs(records, result.config_hash, result.dataset) if a["run_id"] == result.run_id]
    if not pairs:
        return (f"{label}: not measured (no step-0 control of this run in {results_dir}; "
                "`ssfbench run` makes it unless --no-init-control)")
    try:
        preds = [tuple(read_predictions(predictions_path(result_path(results_dir, x["run_id"], result.dataset)))
                       for x in pair) for pair in pairs]
    except Exception as exc:  # noqa: BLE001 - a missing predictions file: say so, the run itself is done
        return f"{label}: not measured ({exc})"
    res = paired_bootstrap_mean(preds, n_resamples=resamples, seed=seed)
    control = pairs[0][1]
    return (f"{label}: {gain_text(res.diff, res.low, res.high)} {METRIC_NAMES.get(result.metric, result.metric)} "
            f"(this run {score(result.get('avg'))}, its step-0 control {score(control.get('avg'))}: "
            f"{control['run_id']}; pooled over folds, paired bootstrap over test subjects)")
