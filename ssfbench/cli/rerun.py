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
    for line in provenance_differences(record):
        click.echo(f"warning: {result}: {line}", err=True)
    if options.pop("trust-weights", False) and not print_config:
        click.echo(f"warning: {result}: its command trusted pickled weight files (--trust-weights); a rerun "
                   "does not: add --trust-weights after the file if you trust them", err=True)
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


def provenance_differences(record: dict) -> list[str]:
    """How the code that made ``record`` differs from the code about to rerun it, one sentence each:
    another commit, uncommitted changes then or now, another protocol version, result schema or
    ssfbench version (nothing when the record names none of them: it cannot say)."""
    from ssfbench import version
    from ssfbench.pipeline.provenance import git_revision
    from ssfbench.results.records import SCHEMA

    out = []
    then = (record.get("rerun") or {}).get("git") or {}
    now = git_revision() or {}
    if then.get("commit") and now.get("commit") and then["commit"] != now["commit"]:
        out.append(f"made at commit {then['commit'][:12]}, rerun with commit {now['commit'][:12]}: "
                   "today's code may give other numbers")
    if then.get("dirty"):
        out.append(f"made with uncommitted changes to commit {str(then.get('commit', '?'))[:12]}: "
                   "that code is not in any commit")
    for key, current, what in (("protocol_version", version.PROTOCOL_VERSION, "protocol"),
                               ("schema", SCHEMA, "result schema"),
                               ("ssfbench_version", version.__version__, "ssfbench version")):
        if record.get(key) is not None and str(record[key]) != str(current):
            out.append(f"made under {what} {record[key]}, rerun under {current}")
    return out


__all__ = ["provenance_differences", "rerun_cmd"]
