"""What the run commands print about their results: the per-label leaderboard tables (``run``,
``probe``, ``synth calibrate``) and the files a stage wrote (``pretrain``, ``embed``)."""

from __future__ import annotations

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
    from ssfbench.report.tables import METRIC_NAMES, leaderboard_table
    from ssfbench.results.store import read_leaderboard
    from ssfbench.runtime.layout import OutputLayout

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
