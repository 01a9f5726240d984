"""User-facing errors: one line, exit code 2, no traceback (the CLI catches ``UserError``)."""

from __future__ import annotations


class UserError(Exception):
    """Bad input that the user can fix. The message is one line naming the file or option and
    what was expected; the CLI prints it as ``error: <message>`` and exits with code 2."""

    exit_code = 2
