"""Run the ``ssfbench`` console entry point in-process for tests."""

from __future__ import annotations

from ssfbench.cli import main


def run_main(args: list[str], capsys) -> tuple[int, str, str]:
    """``main(args)`` in-process: (exit code, stdout, stderr); a normal return is exit code 0."""
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err
