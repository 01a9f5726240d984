"""``ssfbench rerun RESULT.json``: run again the command that made a result, or print it as a
configuration file (``--print-config``), so a published row is one file away from being rerun.

The result's recorded command line (``rerun.argv``) is read back with ``ssfbench run``'s own
options (:mod:`ssfbench.cli.config`); options given after the file (``--out DIR``, ``--device cuda``)
win over the recorded ones, exactly as command-line flags win over ``--config``.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command("rerun", context_settings={"ignore_unknown_options": True})
@click.argument("result", type=click.Path(path_type=Path))
@click.option("--print-config", is_flag=True,
              help="Print the TOML configuration that reproduces the result (`ssfbench run --config FILE`) "
                   "instead of running it.")
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED, metavar="[RUN OPTIONS]...")
@click.pass_context
def rerun_cmd(ctx: click.Context, result: Path, print_config: bool, overrides: tuple[str, ...]) -> None:
    """Rerun the `ssfbench run` command recorded in RESULT.json (a file under <out>/results/runs/ or
    results/runs/), with any `ssfbench run` options after it overriding the recorded ones.

    \b
    ssfbench rerun results/runs/RUN_ID/synth-au.json --print-config > run.toml
    ssfbench run --config run.toml --out my-out          # the same run (same run id)
    ssfbench rerun results/runs/RUN_ID/synth-au.json --out my-out
    """
    from ssfbench.cli.config import parse_options, result_options, to_default_map, to_toml
    from ssfbench.cli.options import expand_list_options
    from ssfbench.cli.run import run

    options, record = result_options(result, run)
    options = parse_options(run, overrides, source="rerun", defaults=options)
    if print_config:
        commit = ((record.get("rerun") or {}).get("git") or {}).get("commit") or "unknown"
        click.echo(to_toml(options, comments=(
            f"ssfbench run configuration of {record.get('run_id', '?')} on {record.get('dataset', '?')} "
            f"(seed {record.get('seed', '?')}), from {result}",
            f"made at commit {commit}; run it with: ssfbench run --config FILE.toml (command-line flags win)")), nl=False)
        return
    with run.make_context("run", expand_list_options(list(overrides)), parent=ctx,
                          default_map=to_default_map(run, options, str(result))) as sub:
        run.invoke(sub)


__all__ = ["rerun_cmd"]
