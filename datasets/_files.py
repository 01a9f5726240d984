"""Finding and reading the files of an official dataset layout: the user's root, case-insensitive
lookup of folders and files (never walking into an image tree), numbered frame images, and label
files read as text and as rows (every problem recorded, none raised)."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ssfbench.datasets._digest import Digest
from ssfbench.datasets._problems import Problems
from ssfbench.errors import UserError

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_SUFFIXES: tuple[str, ...] = (".avi", ".mp4", ".mkv", ".mov", ".wmv")


def require_root(root: Path | str | None, dataset: str) -> Path:
    """The user's copy as a ``Path``; a missing option or folder is a :class:`UserError`."""
    if root is None:
        raise UserError(f"{dataset}: no local copy given; pass --root {dataset}=PATH (the folder of your copy)")
    path = Path(root).expanduser()
    if not path.exists():
        raise UserError(f"{path}: {dataset} root not found")
    if not path.is_dir():
        raise UserError(f"{path}: {dataset} root must be a folder (or a prepared .h5 store)")
    return path


def entries(folder: Path) -> list[os.DirEntry]:
    """Entries of ``folder`` sorted by name ([] when it is missing or unreadable)."""
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:
        return []


def subdirs(folder: Path) -> list[Path]:
    """Sub-folders of ``folder``, sorted by name."""
    return [Path(e.path) for e in entries(folder) if e.is_dir()]


def find_child(parent: Path, names: Iterable[str], *, want_dir: bool = True) -> Path | None:
    """The first of ``names`` that exists in ``parent``, matched case-insensitively."""
    found = {e.name.lower(): e for e in entries(parent) if (e.is_dir() if want_dir else e.is_file())}
    for name in names:
        if name.lower() in found:
            return Path(found[name.lower()].path)
    return None


#: Folders with more sub-folders than this are not searched below (image trees, not layout).
MAX_FAN_OUT = 64


def descend(frontier: list[Path]) -> list[Path]:
    """The sub-folders of every folder in ``frontier``, or [] when there are too many to be layout
    folders (``MAX_FAN_OUT``): searching never walks into an image tree."""
    out = [d for f in frontier for d in subdirs(f)]
    return out if len(out) <= MAX_FAN_OUT else []


def find_path(root: Path, chains: Sequence[Sequence[str]], *, depth: int = 1) -> Path | None:
    """The first chain of folder names (each matched case-insensitively) found under ``root``, or
    under its sub-folders up to ``depth`` levels down (users point at a parent folder); shallower
    matches win."""
    frontier = [root]
    for level in range(depth + 1):
        for chain in chains:
            for base in frontier:
                node: Path | None = base
                for name in chain:
                    node = find_child(node, [name]) if node is not None else None
                if node is not None:
                    return node
        if level < depth:
            frontier = descend(frontier)
    return None


def find_parent_of(root: Path, pattern: re.Pattern, *, depth: int = 2, minimum: int = 1) -> Path | None:
    """The shallowest folder under ``root`` (``root`` included) holding at least ``minimum``
    sub-folders whose names match ``pattern``."""
    frontier = [root]
    for _ in range(depth + 1):
        for folder in frontier:
            if sum(1 for d in subdirs(folder) if pattern.fullmatch(d.name)) >= minimum:
                return folder
        frontier = descend(frontier)
    return None


def numbered_images(folder: Path) -> tuple[dict[int, str], list[str]]:
    """``{frame number: file name}`` of the images in ``folder`` whose names are a number, whatever
    the zero padding (``0643.jpg``, ``643.jpg``, ``00643.png``), and the names that clash (two files
    with the same number)."""
    out: dict[int, str] = {}
    clashes: list[str] = []
    for e in entries(folder):
        stem, suffix = os.path.splitext(e.name)
        if suffix.lower() in IMAGE_SUFFIXES and stem.isdigit() and e.is_file():
            n = int(stem)
            if n in out:
                clashes.append(e.name)
            else:
                out[n] = e.name
    return out, clashes


def read_text(path: Path, problems: Problems, digest: Digest | None = None) -> str | None:
    """The text of a label file (utf-8, BOM stripped, latin-1 as a fallback), fed to ``digest``;
    ``None`` and an error when it cannot be read."""
    try:
        blob = path.read_bytes()
    except OSError as exc:
        problems.error("unreadable label file", path, exc.strerror or str(exc))
        return None
    if digest is not None:
        digest.text(path.name).data(blob)
    try:
        return blob.decode("utf-8-sig")
    except UnicodeDecodeError:
        return blob.decode("latin-1")


def read_rows(path: Path, text: str, problems: Problems, *, sep: str = ",",
              usecols: Sequence[int] | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Every line of a delimited label file as a frame of strings (only the columns ``usecols``,
    labelled by position, when given) and the 1-based line number of each row. Lines with more
    or fewer fields than the first line are recorded as malformed rows (errors) and left out;
    blank lines are dropped."""
    widths = np.array([len(row) for row in csv.reader(io.StringIO(text), delimiter=sep)], np.int64)
    filled = np.flatnonzero(widths > 0)
    if not len(filled):
        return pd.DataFrame(), np.zeros(0, np.int64)
    expected = int(widths[filled[0]])
    for i in np.flatnonzero((widths > 0) & (widths != expected)):
        problems.error("malformed row", f"{path} line {i + 1}", f"{widths[i]} fields, expected {expected}")
    keep = np.flatnonzero(widths == expected)
    skip = np.flatnonzero(widths != expected).tolist()
    df = pd.read_csv(io.StringIO(text), sep=sep, header=None, dtype=object, keep_default_na=False,
                     skip_blank_lines=False, skiprows=skip, usecols=usecols)
    if len(df) != len(keep):  # quoting spread a row over lines: fall back to pandas' own rows
        df = pd.read_csv(io.StringIO(text), sep=sep, header=None, dtype=object, keep_default_na=False,
                         on_bad_lines="skip", usecols=usecols)
        keep = np.arange(len(df))
    return df.fillna("").reset_index(drop=True), keep + 1


def relative(path: str | Path, root: Path) -> str:
    """``path`` relative to ``root`` when it lies under it (for short reports)."""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "require_root", "entries", "subdirs", "find_child", "MAX_FAN_OUT",
           "descend", "find_path", "find_parent_of", "numbered_images", "read_text", "read_rows", "relative"]
