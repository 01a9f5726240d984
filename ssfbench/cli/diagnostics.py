"""How much the command line says about itself: whether debug output is on (``--debug`` or
``SSFBENCH_DEBUG``), the logging setup that carries the library's messages to stderr, warnings as
one ``warning: ...`` line each, the one line an ``OSError`` about a file becomes, and the full
traceback (every chained exception, ``raise ... from None`` included) printed in debug mode."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

#: environment variable that turns debug output on like ``--debug`` (any value but "", 0, false, no, off)
DEBUG_ENV = "SSFBENCH_DEBUG"

#: the logger every library module's ``logging.getLogger(__name__)`` descends from
LOGGER_NAME = "ssfbench"


def debug_from_env() -> bool:
    """Whether ``SSFBENCH_DEBUG`` asks for debug output."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


class _StderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stderr`` is when a record is emitted (so
    redirected or captured stderr receives the messages, as ``print(..., file=sys.stderr)`` did)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record`` to the current ``sys.stderr``."""
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(debug: bool) -> None:
    """Send the ``ssfbench`` loggers' messages to stderr as bare lines (``%(message)s``): INFO and
    above, DEBUG and above with ``debug``. Idempotent: a second call only changes the level. Other
    libraries' loggers are left as they are."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.propagate = False


def warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 line: str | None = None, *, debug: bool = False) -> str:
    """A warning as the CLI shows it: one ``warning: <message>`` line (ending in a newline; a
    multi-line message is joined with ``; ``). ssfbench's own warnings (datasets, result files,
    caches, plugins) speak for themselves; another library's also name their class and module, and
    with ``debug`` every warning names where it was raised. ``line`` (the source line Python's own
    format prints) is never shown."""
    text = "; ".join(part.strip() for part in str(message).splitlines() if part.strip()) or category.__name__
    own = category.__module__.split(".")[0] == LOGGER_NAME
    if debug:
        text += f" ({category.__name__} at {filename}:{lineno})"
    elif not own:
        text += f" ({category.__name__} from {Path(filename).stem if filename else 'unknown'})"
    return f"warning: {text}\n"


@contextlib.contextmanager
def one_line_warnings(debug: bool | Callable[[], bool] = False) -> Iterator[None]:
    """Within the block, every warning that reaches stderr is one line (:func:`warning_line`) instead
    of Python's ``path.py:169: DatasetWarning: ...`` plus the source line. It replaces
    ``warnings.formatwarning``, which Python's ``showwarning`` (and ``logging.captureWarnings``) format
    with, rather than ``showwarning`` itself, so code that records warnings
    (``warnings.catch_warnings(record=True)``, ``pytest.warns``) still receives them as warning
    objects. ``debug`` (or a function saying it, asked at each warning: ``--debug`` is parsed inside
    the block) adds where each warning was raised; the previous format is restored after."""

    def formatwarning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      line: str | None = None) -> str:
        return warning_line(message, category, filename, lineno, line,
                            debug=debug() if callable(debug) else debug)

    previous = warnings.formatwarning
    warnings.formatwarning = formatwarning
    try:
        yield
    finally:
        warnings.formatwarning = previous


def os_error_line(exc: OSError) -> str:
    """The one line an ``OSError`` about a file ends a command with (after ``error:``): the path (both
    paths of a rename) and the system's reason, e.g. ``out/plot.png: Read-only file system``."""
    where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
    reason = exc.strerror or type(exc).__name__
    if isinstance(exc, FileExistsError) and exc.filename2 is None and not Path(exc.filename).is_dir():
        reason = "is a file, where a folder is needed"  # mkdir(parents=True) of a path through a file
    return f"{where}: {reason}"


def exception_chain(exc: BaseException) -> list[tuple[BaseException, str | None]]:
    """``exc`` and every exception it was raised from or while handling, oldest first, each with
    the sentence printed after it that links it to the next one (None for ``exc`` itself, the
    last). Follows ``__cause__`` and ``__context__`` even where ``raise ... from None`` hides the
    context from Python's own display."""
    chain: list[tuple[BaseException, str | None]] = []
    seen: set[int] = set()
    link: str | None = None
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, "The above exception was the direct cause of the following exception:"
        elif current.__context__ is not None:
            link = ("During handling of the above exception, another exception occurred"
                    + (" (raised 'from None', hidden without --debug):" if current.__suppress_context__ else ":"))
            current = current.__context__
        else:
            current = None
    chain.reverse()
    return chain


def print_traceback(exc: BaseException, file: TextIO | None = None) -> None:
    """Print the traceback of ``exc`` and of every exception in its chain (see
    :func:`exception_chain`) to ``file`` (default: the current ``sys.stderr``)."""
    out = sys.stderr if file is None else file
    for error, link in exception_chain(exc):
        out.write("".join(traceback.format_exception(type(error), error, error.__traceback__, chain=False)))
        if link is not None:
            out.write(f"\n{link}\n\n")
    out.flush()
