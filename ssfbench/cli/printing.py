"""What the run commands print about their results: the per-label leaderboard tables (``run``,
``probe``, ``synth calibrate``) and the files a stage wrote (``pretrain``, ``embed``)."""

from __future__ import annotations

from pathlib import Path

import click


def print_stage(results: list[dict]) -> None:
    """What ``pretrain`` / ``embed`` produced: the checkpoint, then one cache per dataset."""
    click.echo(f"checkpoint: {results[0]['checkpoint'] if 'checkpoint' in results[0] else results[0]['run_id']} "
               f"(sha256 {results[0]['checkpoint_sha256'][:12]})")
    for result in results:
        if "cache" in result:
            click.echo(f"embeddings of {result['dataset']}: {result['cache']}")


def print_results(results: list[dict], out: Path) -> None:
    """Print, per dataset, this run's per-label scores among every row of that leaderboard under
    ``out``, the result file's path, and (to stderr) a warning when scores lacked positives."""
    from ssfbench.results import read_leaderboard
    from ssfbench.tables import METRIC_NAMES, leaderboard_table

    for result in results:
        board = read_leaderboard(out / "results" / f"{result['dataset']}.csv")
        metric = METRIC_NAMES[result["metric"]]
        click.echo(f"\n{result['dataset']}: per-label {metric} x100, mean over {len(result['scores_per_fold'])} "
                   f"fold(s); avg = mean over labels, ± = std over folds (or seeds); * = this run")
        click.echo(leaderboard_table(board, result["labels"], highlight=result["config_hash"]))
        path = out / 'results' / 'runs' / result['run_id'] / (result['dataset'] + '.json')
        click.echo(f"results: {path}")
        notes = result.get("warnings") or []
        if notes:
            click.echo(f"warning: {result['dataset']}: {len(notes)} fold/label scores without positives "
                       f"(recorded under 'warnings' in {path.name}), e.g. {notes[0]}", err=True)
