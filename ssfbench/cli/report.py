"""The reporting commands: ``ssfbench compare`` (paper-style tables, summary, plot, paired bootstrap)
and ``ssfbench retrieve`` (cosine top-k retrieval grid with a score).

Registered on the main group by :mod:`ssfbench.cli`. Heavy imports happen inside the commands, so
``ssfbench --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from ssfbench.cli.options import parse_data_options, trust_weights_option
from ssfbench.errors import UserError

DEFAULT_OUT = Path("ssfbench-out")


def _explicit(ctx: click.Context, name: str) -> bool:
    """Whether option ``name`` was given on the command line (not its default)."""
    return ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE


def _check_out(ctx: click.Context, out: Path, option: str = "out") -> None:
    """An output folder given explicitly must exist."""
    if _explicit(ctx, option) and not out.is_dir():
        raise UserError(f"--{option}: {out} is not a folder (expected an ssfbench output folder)")


def _default_datasets(out: Path) -> tuple[str, ...]:
    """The datasets the user has results for, else the paper's Tables 1 and 2 (bp4d, disfa)."""
    from ssfbench.results.store import load_results

    found = sorted({r["dataset"] for r in load_results(out / "results")}) if out.is_dir() else []
    return tuple(found) or ("bp4d", "disfa")


@click.command("compare")
@click.option("--datasets", multiple=True, help="Datasets, space-separated (default: those with results in --out, else bp4d disfa).")
@click.option("--methods", multiple=True, help="Only these methods (method name or row name), space-separated.")
@click.option("--out", type=click.Path(path_type=Path), default=DEFAULT_OUT, show_default=True,
              help="ssfbench output folder whose results are 'your runs'.")
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "latex", "html"]), default="md", show_default=True,
              help="Markdown tables, CSV (numbers x100, one row per method), LaTeX (booktabs), or one "
                   "self-contained web page (html, written to --output).")
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE.html",
              help="--format html: the page to write (sortable tables, charts, provenance, no network needed).")
@click.option("--paper", type=click.Choice(["main", "all", "none"]), default="main", show_default=True,
              help="The paper's rows: its main tables, plus the supplementary ablations (all), or none.")
@click.option("--committed/--no-committed", default=True, show_default=True,
              help="Include the committed leaderboards (results/*.csv).")
@click.option("--plot", type=click.Path(path_type=Path), default=None, help="Also write a per-label bar chart (PNG).")
@click.option("--curves", multiple=True, metavar="RUN...",
              help="Pretraining runs (run ids under --out/runs, run folders or their curve.csv), space-separated: "
                   "draw their training curves into --plot instead of the tables.")
@click.option("--vs", nargs=2, default=None, metavar="A B",
              help="Paired bootstrap over test subjects of A - B (run ids, method or row names; your runs in --out "
                   "first, then the committed rows) on each dataset.")
@click.option("--init-gains/--no-init-gains", default=True, show_default=True,
              help="Show each self-supervised row's gain over its own initialisation (step-0 control, paired "
                   "bootstrap 95%% CI over test subjects); rows whose runs have no control stay blank.")
@click.option("--controls/--no-controls", default=False, show_default=True,
              help="Also show the step-0 controls as rows of their own (a third table per dataset); they are "
                   "always folded into the rows they control (own init, Δ own init).")
@click.option("--resamples", type=int, default=1000, show_default=True, help="Bootstrap resamples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.pass_context
def compare_cmd(ctx: click.Context, datasets: tuple[str, ...], methods: tuple[str, ...], out: Path, fmt: str,
                output: Path | None, paper: str, committed: bool, plot: Path | None, curves: tuple[str, ...],
                vs: tuple[str, str] | None, init_gains: bool, controls: bool, resamples: int, seed: int) -> None:
    """Paper-style tables: one per dataset (per-label scores, average, coverage), the paper's rows
    beside yours, and a summary across datasets like the paper's Table 5. One row per method
    configuration (seeds averaged) with its own initialisation and the gain over it; the same methods
    with settings of their own (budget, data, statistics) in an ablations table below.

    \b
    ssfbench compare --datasets bp4d disfa                 # the paper's Tables 1 and 2 (+ your rows)
    ssfbench compare --datasets synth-au synth-expr --plot out.png
    ssfbench compare --datasets synth-au synth-expr --format html --output leaderboard.html
    ssfbench compare --datasets synth-au --vs ranking random   # paired bootstrap CI of the difference
    ssfbench compare --curves RUN_ID RUN_ID2 --plot curves.png  # pretraining curves (runs/<run_id>/curve.csv)
    """
    from ssfbench.report.compare import ORIGIN_COMMITTED, add_init_gains, comparison_table
    from ssfbench.report.render import caption, render_summary, render_table
    from ssfbench.results.store import load_results

    _check_out(ctx, out)
    for option, path in (("--plot", plot), ("--output", output)):
        if path is not None and not path.parent.is_dir():
            raise UserError(f"{option}: folder {path.parent} does not exist")
    if (fmt == "html") != (output is not None):
        raise UserError("--format html writes a page: give --output FILE.html" if fmt == "html" else
                        "--output: only with --format html (the other formats print; redirect them)")
    if curves:
        if plot is None:
            raise UserError("--curves draws a figure: give --plot FILE.png (the numbers are in each run's curve.csv)")
        from ssfbench.train.curves import draw_curves

        click.echo(f"wrote {draw_curves(curves, out, plot)}")
        return
    if vs is not None and vs[0] == vs[1]:
        raise UserError(f"--vs: A and B are both {vs[0]!r}: a run compared with itself differs by nothing; "
                        "give two different runs")
    datasets = datasets or _default_datasets(out)
    results = load_results(out / "results") if out.is_dir() else []
    sources = _result_sources(out, results, committed)
    bootstrap = _bootstrap_frame(sources, datasets, vs, resamples, seed) if vs is not None else None  # errors first
    tables = [comparison_table(d, out=out, paper=paper, methods=methods, committed=committed, results=results)
              for d in datasets]
    if init_gains:
        tables = [add_init_gains(t, sources, resamples=resamples, seed=seed) for t in tables]
    _check_found(tables, methods, paper)
    if committed and init_gains and ORIGIN_COMMITTED not in sources and any(
            (t.rows["origin"] == ORIGIN_COMMITTED).any() for t in tables):
        click.echo(f"note: {COMMITTED_RUNS_NOTE}", err=True)
    if not results:
        click.echo(f"note: {out} holds no results of your runs; the tables show the paper's rows"
                   f"{' and the committed leaderboards' if committed else ''} only", err=True)
    if output is not None:
        from ssfbench.report.webpage import write_page

        click.echo(f"wrote {write_page(output, tables, sources, vs=bootstrap)}")
    printed = tables if output is None else []  # the page holds them
    for table in printed:
        if fmt == "md":
            click.echo(f"\n{caption(table)}\n")
        elif fmt == "latex":
            click.echo(f"% {caption(table)}")
        click.echo(render_table(table, fmt, controls=controls) if len(table.rows) else f"(no rows for {table.dataset})")
    if len([t for t in printed if len(t.rows)]) > 1:
        header = "summary: average per dataset (x100, like the paper's Table 5); blank = no result; mean only over complete rows"
        click.echo(f"\n{header}\n" if fmt == "md" else (f"% {header}" if fmt == "latex" else ""))
        click.echo(render_summary([t for t in printed if len(t.rows)], fmt, controls=controls))
    if bootstrap is not None and output is None:
        _print_bootstrap(bootstrap, fmt)
    if plot is not None:
        from ssfbench.report.compare import part
        from ssfbench.report.plots import grouped_bars

        click.echo(f"wrote {grouped_bars([part(t, 'leaderboard') for t in tables], plot)}", err=fmt == "csv")


#: what a user without the committed rows' run files (a wheel install) is told
COMMITTED_RUNS_NOTE = ("the committed rows' run files (results/runs/ in a checkout of the ssfbench repository) "
                       "are not installed with the package; from a checkout, compare shows their Δ own init and "
                       "--vs reaches them")


def _result_sources(out: Path, results: list[dict], committed: bool) -> dict:
    """Where each row origin's result files are: the user's ``--out`` and, in a source checkout,
    the committed ``results/`` (whose run files hold the committed rows' predictions; a wheel
    ships the committed leaderboards without them, and ``compare`` says so once its tables are made)."""
    from ssfbench.report.compare import ORIGIN_COMMITTED, ORIGIN_OUT, committed_dir, committed_runs_dir
    from ssfbench.results.store import load_results

    sources = {ORIGIN_OUT: (out / "results", results)}
    if not committed or committed_dir() is None:
        return sources
    folder = committed_runs_dir()
    if folder is not None:
        sources[ORIGIN_COMMITTED] = (folder, load_results(folder))
    return sources


def _check_found(tables: list, methods: tuple[str, ...], paper: str) -> None:
    """Refuse when nothing at all is found, naming what exists."""
    from ssfbench.report.compare import PAPER_FILES

    if any(len(t.rows) for t in tables):
        return
    names = ", ".join(t.dataset for t in tables)
    if methods:
        raise UserError(f"--methods: no rows of {', '.join(methods)} for {names}")
    covered = [t.dataset for t in tables if t.dataset in PAPER_FILES]
    if paper == "none" and covered:
        raise UserError(f"--datasets: no results for {names}, and --paper none leaves out the paper's rows of "
                        f"{', '.join(covered)} (drop --paper none to see them, or run `ssfbench run --method NAME "
                        "--datasets ...` first)")
    raise UserError(f"--datasets: no results and no paper table for {names} (the paper covers "
                    f"{', '.join(PAPER_FILES)}; run `ssfbench run --method NAME --datasets ...` first)")


def _print_bootstrap(bootstrap: tuple, fmt: str) -> None:
    """Print the paired bootstrap (frame, title) of :func:`_bootstrap_frame`."""
    from tabulate import tabulate

    frame, title = bootstrap
    if fmt == "csv":
        click.echo(frame.to_csv(index=False, float_format="%.2f"))
        return
    click.echo(f"\n{title}\n" if fmt == "md" else f"% {title}")
    click.echo(tabulate(frame, headers="keys", tablefmt="github" if fmt == "md" else "latex_booktabs",
                        floatfmt=".1f", showindex=False))


def _find_run(sources: dict, dataset: str, ref: str) -> tuple[Path, dict]:
    """(results folder, result) of the run ``ref`` names on ``dataset``: among your runs first, then
    among the committed rows (``sources`` as :func:`_result_sources` gives them, in that order)."""
    from ssfbench.report.compare import resolve_run

    for folder, results in sources.values():
        try:
            return folder, resolve_run(results, dataset, ref, option="--vs")
        except UserError:
            continue
    every = [r for _, results in sources.values() for r in results]
    try:
        resolve_run(every, dataset, ref, option="--vs")  # found nowhere: this raises, naming every run there
    except UserError as exc:
        from ssfbench.report.compare import ORIGIN_COMMITTED

        raise UserError(f"{exc}{'' if ORIGIN_COMMITTED in sources else '; ' + COMMITTED_RUNS_NOTE}") from None
    raise AssertionError("unreachable")


def _bootstrap_frame(sources: dict, datasets: tuple[str, ...], vs: tuple[str, str], resamples: int, seed: int):
    """(one row per dataset: the paired bootstrap of ``vs[0] - vs[1]``, x100; its title)."""
    import pandas as pd

    from ssfbench.evaluation.bootstrap import paired_bootstrap, predictions_path, read_predictions
    from ssfbench.results.store import result_path

    rows = []
    for dataset in datasets:
        found = [_find_run(sources, dataset, ref) for ref in vs]
        (_, a), (_, b) = found
        if a["run_id"] == b["run_id"]:
            raise UserError(f"--vs: {vs[0]!r} and {vs[1]!r} are the same run on {dataset} ({a['run_id']}): "
                            "give two different runs")
        pa, pb = (read_predictions(predictions_path(result_path(folder, r["run_id"], dataset))) for folder, r in found)
        res = paired_bootstrap(pa, pb, n_resamples=resamples, seed=seed)
        verdict = "A better" if res.low > 0 else ("B better" if res.high < 0 else "no significant difference")
        rows.append({"dataset": dataset, "A": a["run_id"], "B": b["run_id"], "metric": res.metric,
                     "A score": 100 * res.score_a, "B score": 100 * res.score_b, "A - B": 100 * res.diff,
                     f"{100 * res.level:.0f}% CI low": 100 * res.low, f"{100 * res.level:.0f}% CI high": 100 * res.high,
                     "subjects": res.n_subjects, "frames": res.n_rows, "resamples": res.n_resamples, "verdict": verdict})
    frame = pd.DataFrame(rows)
    title = ("paired bootstrap over test subjects (x100): mean-over-labels score pooled over folds, "
             f"A - B and its {100 * res.level:.0f}% percentile interval (seed {seed})")
    return frame, title


@click.command("retrieve")
@click.option("--method", "--methods", "methods", multiple=True, help="Method name(s): each one's newest run on --dataset.")
@click.option("--run", "runs", multiple=True, help="Run id(s) (see <from>/results/runs/).")
@click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(path_type=Path),
              help="Checkpoint(s) to embed the dataset with (cached under <from>/embeddings/).")
@click.option("--dataset", required=True, help="Labelled dataset whose frames are queried and retrieved.")
@click.option("--queries", type=int, default=4, show_default=True, help="Query rows shown in the grid.")
@click.option("--top", type=int, default=5, show_default=True, help="Retrieved frames per query (k).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Image file to write (PNG).")
@click.option("--from", "source_dir", type=click.Path(path_type=Path), default=DEFAULT_OUT, show_default=True,
              help="ssfbench output folder holding the runs and their embeddings.")
@click.option("--root", type=click.Path(path_type=Path), default=None, help="The dataset's local copy (real datasets).")
@click.option("--data-option", "data_options", multiple=True, metavar="DATASET.KEY=VALUE",
              help="Option for the dataset's open(), as the runs were made with (repeatable).")
@click.option("--score-queries", type=int, default=1000, show_default=True,
              help="Random queries the score is averaged over (all frames if fewer).")
@click.option("--keep-same-subject", is_flag=True, help="Also retrieve frames of the query's subject (excluded by default).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the query choice.")
@click.option("--device", default="cpu", show_default=True, help="Device for embedding with --checkpoint.")
@trust_weights_option("the --checkpoint files")
@click.pass_context
def retrieve_cmd(ctx: click.Context, methods: tuple[str, ...], runs: tuple[str, ...], checkpoints: tuple[Path, ...],
                 dataset: str, queries: int, top: int, out: Path, source_dir: Path, root: Path | None,
                 data_options: tuple[str, ...], score_queries: int, keep_same_subject: bool, seed: int,
                 device: str) -> None:
    """Cosine top-k retrieval over cached embeddings, as the paper's Figure 2: one row per query (query
    first), each method's top-k side by side, and a score: mean precision@k of the same expression
    (single-label data) or mean AU agreement (Jaccard of active AUs). The query itself and every frame
    of the query's subject are excluded unless --keep-same-subject.

    \b
    ssfbench retrieve --method ranking --method random --dataset synth-expr --queries 4 --top 5 --out r.png
    """
    from ssfbench.report.retrieval import retrieve_report

    _check_out(ctx, source_dir, "from")
    if not (methods or runs or checkpoints):
        raise UserError("give at least one --method, --run or --checkpoint")
    if queries < 1 or score_queries < 1:
        raise UserError("--queries and --score-queries must be at least 1")
    if not out.parent.is_dir():
        raise UserError(f"--out: folder {out.parent} does not exist")
    lines = retrieve_report(methods=methods, runs=runs, checkpoints=checkpoints, dataset=dataset, n_queries=queries,
                            k=top, png=out, source_dir=source_dir, root=root, score_queries=score_queries,
                            exclude_same_subject=not keep_same_subject, seed=seed, device=device,
                            options=parse_data_options(data_options).get(dataset, {}))
    for line in lines:
        click.echo(line)


__all__ = ["compare_cmd", "retrieve_cmd"]
