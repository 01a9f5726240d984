"""What the run commands print about their results: the per-label leaderboard tables (``run``,
``probe``, ``synth calibrate``) and the files a stage wrote (``pretrain``, ``embed``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ssfbench.records import Result, RunOutput


def print_stage(output: RunOutput) -> None:
    """What ``pretrain`` / ``embed`` produced: the checkpoint, then one cache per dataset."""
    click.echo(f"checkpoint: {output.checkpoint or output.run_id} (sha256 {output.checkpoint_sha256[:12]})")
    for dataset, cache in output.caches.items():
        click.echo(f"embeddings of {dataset}: {cache}")


def print_results(results: list[Result], out: Path) -> None:
    """Print, per dataset, this run's per-label scores among every row of that leaderboard under
    ``out``, the result file's path, and (to stderr) a warning when scores lacked positives."""
    from ssfbench.layout import OutputLayout
    from ssfbench.results import read_leaderboard
    from ssfbench.tables import METRIC_NAMES, leaderboard_table

    layout = OutputLayout(out)
    for result in results:
        board = read_leaderboard(layout.results.leaderboard(result.dataset))
        metric = METRIC_NAMES[result.metric]
        click.echo(f"\n{result.dataset}: per-label {metric} x100, mean over {len(result.scores_per_fold)} "
                   f"fold(s); avg = mean over labels, ± = std over folds (or seeds); * = this run")
        click.echo(leaderboard_table(board, result.labels, highlight=result.config_hash))
        path = layout.results.result(result.run_id, result.dataset)
        click.echo(f"results: {path}")
        notes = result.get("warnings") or []
        if notes:
            click.echo(f"warning: {result.dataset}: {len(notes)} fold/label scores without positives "
                       f"(recorded under 'warnings' in {path.name}), e.g. {notes[0]}", err=True)
    for result in results:  # the printout ends with how many frames fell back, one line per dataset
        line = faces_line(result)
        if line:
            click.echo(line)


def faces_line(result: Result) -> str | None:
    """One line: how many of a real-data result's frames fell back (not prepared the paper's way),
    whether its row is marked †, and the file that lists them; None for data without a face record."""
    from ssfbench.results import fallback_text, off_protocol

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
