"""Atomic file writing shared by checkpoints, caches and results: a temporary file in the same
folder, fsynced, given the permissions ``open()`` would have given, then renamed into place, so a
reader never sees a partial file and a full disk is one clear line."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ssfbench.errors import UserError, is_disk_full


def new_file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open()`` gives a new file (``mkstemp`` makes
    temporaries 0600, which would hide shared caches and results from colleagues)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file (or a folder: a rename in it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, write: Callable[[str], Any]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, fsync it and rename it onto
    ``path``, then fsync the folder (the rename); no partial file is ever left at ``path``, and on
    any exception ``path`` is left as it was. A full disk becomes the one-line :class:`UserError`
    ``disk full while writing <path>``. The one atomic writer: checkpoints, caches, results."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # a read-only folder: name the file asked for, not the temporary one
        if is_disk_full(exc):
            raise UserError(f"disk full while writing {path}") from None
        raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, new_file_mode())  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(exc):
            raise UserError(f"disk full while writing {path}") from None
        raise
    with contextlib.suppress(OSError):
        fsync_path(path.parent)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON atomically."""
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str)
            f.write("\n")
    atomic_write_bytes(path, write)


def atomic_savefig(figure: Any, path: Path, **savefig_kwargs: Any) -> Path:
    """Save a matplotlib ``figure`` to ``path`` atomically (:func:`atomic_write_bytes`), in the format
    its suffix names (PNG when it has none), and return ``path``."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    atomic_write_bytes(path, lambda tmp: figure.savefig(tmp, format=fmt, **savefig_kwargs))
    return path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
