"""User-facing errors: one line, exit code 2, no traceback (the CLI catches ``UserError``)."""

from __future__ import annotations


class UserError(Exception):
    """Bad input that the user can fix. The message is one line naming the file or option and
    what was expected; the CLI prints it as ``error: <message>`` and exits with code 2."""

    exit_code = 2


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an exception it was raised from, says the disk is full (``ENOSPC``)."""
    import errno

    while exc is not None:
        if isinstance(exc, OSError) and (exc.errno == errno.ENOSPC or "No space left" in str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
