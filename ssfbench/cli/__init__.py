"""The ``ssfbench`` command line (click): the group :func:`cli` with every command registered on
it, and the console entry point :func:`main`.

Every bad input ends in one ``error:`` line and exit code 2 (``--debug`` or ``SSFBENCH_DEBUG=1``
adds the full traceback); Ctrl-C ends in one ``interrupted:`` line and exit code 130. Options that
take lists accept them space-separated after one flag, as in ``ssfbench compare --datasets bp4d
disfa`` or ``ssfbench run --method ranking --k 1 2 4``.

Layout: one module per command family (:mod:`~ssfbench.cli.run`, :mod:`~ssfbench.cli.report`,
:mod:`~ssfbench.cli.datasets`, :mod:`~ssfbench.cli.faces`, :mod:`~ssfbench.cli.bench`, :mod:`~ssfbench.cli.synth`,
:mod:`~ssfbench.cli.listing`, :mod:`~ssfbench.cli.mockrun`, :mod:`~ssfbench.cli.rerun`); they import the shared options
(:mod:`~ssfbench.cli.options`), the shared printing (:mod:`~ssfbench.cli.printing`) and library
code, never this module, which only assembles them. Heavy imports (torch, ...) happen inside the
commands, so ``ssfbench --help`` stays fast.
"""

from __future__ import annotations

import sys

import click

from ssfbench.cli import bench, datasets, faces, listing, mockrun, report, rerun, run, synth, weights
from ssfbench.cli.diagnostics import (
    configure_logging,
    debug_from_env,
    one_line_warnings,
    os_error_line,
    print_traceback,
)
from ssfbench.cli.options import expand_list_options
from ssfbench.errors import UserError

#: what Ctrl-C prints (exit code 130): an interrupted run resumes when the same command is rerun
INTERRUPTED = "interrupted: rerun the same command to resume"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ssfbench")
@click.option("--debug", is_flag=True,
              help="On an error, also print the full traceback (chained causes included) after the "
                   "error line, and log debug messages. SSFBENCH_DEBUG=1 does the same.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """ssfbench: benchmark self-supervised facial representations for AU detection and expression
    recognition with one frozen-encoder linear-probe protocol.

    \b
    Quick start (no downloads; the embedded synthetic benchmark):
      ssfbench run --method random            # the floor
      ssfbench run --method ranking --k 2     # pretrain, embed, probe, print tables
      ssfbench compare --datasets synth-au synth-expr
    """
    debug = debug or debug_from_env()
    ctx.ensure_object(dict)["debug"] = debug
    configure_logging(debug)


for _command in (*run.COMMANDS, synth.synth, listing.list_cmd, mockrun.mock_run_cmd, report.compare_cmd,
                 report.retrieve_cmd, datasets.datasets, faces.faces, bench.bench_cmd, rerun.rerun_cmd,
                 weights.weights):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: expand list options, run click, and end every failure the user can act
    on in one line on stderr: ``error: ...`` with exit code 2 for a :class:`UserError` and for an
    ``OSError`` that names a file (a read-only folder, a path through a regular file: the path and
    the reason; plus the traceback in debug mode), ``interrupted: ...`` with exit code 130 for
    Ctrl-C, and a usage error (bad or unknown option) as one ``error:`` line naming the option, exit
    code 2. Warnings are shown as one ``warning: ...`` line each
    (:func:`~ssfbench.cli.diagnostics.one_line_warnings`). Returns normally when the command
    succeeded."""
    given = list(sys.argv[1:] if argv is None else argv)
    obj = {"argv": ["ssfbench", *given], "debug": debug_from_env()}
    configure_logging(obj["debug"])
    try:
        with one_line_warnings(lambda: bool(obj["debug"])):
            cli.main(args=expand_list_options(given), prog_name="ssfbench", standalone_mode=False, obj=obj)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        if obj["debug"]:
            print_traceback(exc)
        sys.exit(exc.exit_code)
    except OSError as exc:
        if exc.filename is None:  # not about a file the user named: a bug to report, with its traceback
            raise
        click.echo(f"error: {os_error_line(exc)}", err=True)
        if obj["debug"]:
            print_traceback(exc)
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:  # click turns Ctrl-C into Abort
        click.echo(INTERRUPTED, err=True)
        if obj["debug"]:
            print_traceback(exc)
        sys.exit(130)
    except click.UsageError as exc:  # a bad or unknown option: one line naming it, like every bad input
        command = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{command}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


__all__ = ["INTERRUPTED", "cli", "main"]
