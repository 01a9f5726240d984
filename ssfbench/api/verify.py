"""Checks of a user's copy of a real dataset without training anything (``ssfbench datasets
verify``), and the optional extraction of its face crops into an HDF5 store (``ssfbench datasets
prepare``).

An adapter that supports verification has a classmethod ``inspect(root, *, quick, sample,
**options)`` returning a :class:`Report`; one that supports preparation has
``prepare(root, out, *, image_size, codec, **options)``. The report counts subjects, rows and
labels per label (positive / negative / unknown) and lists every problem the adapter found, grouped
by kind: errors (the copy is not usable), rows left out of the protocol, and notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from ssfbench.api.dataset import Inspectable, Preparable
from ssfbench.errors import UserError

#: What each severity means in a report.
SEVERITY_TITLES = {"error": "ERROR", "skip": "SKIPPED", "note": "note"}


def label_counts(names: tuple[str, ...], targets: np.ndarray) -> list[tuple[str, int, int, int]]:
    """``(label, positives, negatives, unknown)`` for every column of int8 ``targets``."""
    t = np.asarray(targets)
    return [(name, int((t[:, j] == 1).sum()), int((t[:, j] == 0).sum()), int((t[:, j] < 0).sum()))
            for j, name in enumerate(names)]


@dataclass
class Report:
    """What ``verify`` found in one copy; ``usable`` when no error was recorded."""

    dataset: str
    root: str
    facts: list[tuple[str, str]]
    labels: list[tuple[str, int, int, int]]
    problems: Any  # ssfbench.datasets.kit.Problems
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        """True when the copy has no error (skipped rows and notes do not make it unusable)."""
        return self.problems.count("error") == 0

    def _short(self, where: str) -> str:
        prefix = self.root.rstrip("/") + "/"
        return where[len(prefix):] if where.startswith(prefix) else where

    def render(self, limit: int | None = 10) -> str:
        """The report as text; at most ``limit`` problems are listed per kind (None = all)."""
        lines = [f"{self.dataset}: {self.root}"]
        width = max((len(k) for k, _ in self.facts), default=0)
        lines += [f"  {k.ljust(width)}  {v}" for k, v in self.facts]
        if self.labels:
            table = tabulate(self.labels, headers=["label", "positive", "negative", "unknown"], tablefmt="plain")
            lines += ["", *("  " + row for row in table.splitlines())]
        counts = {s: self.problems.count(s) for s in SEVERITY_TITLES}
        lines += ["", f"problems: {counts['error']} error(s), {counts['skip']} row(s) left out of the protocol, "
                      f"{counts['note']} note(s)"]
        for severity, title in SEVERITY_TITLES.items():
            for kind, items in self.problems.of(severity):
                lines.append(f"  {title} {kind} ({len(items)})")
                shown = items if limit is None else items[:limit]
                lines += [f"    {self._short(p.where)}{': ' + p.detail if p.detail else ''}" for p in shown]
                if len(shown) < len(items):
                    lines.append(f"    ... and {len(items) - len(shown)} more (--all lists every one)")
        if self.usable and self.extra.get("not_paper"):
            lines.append(f"verdict: usable, but not the paper's preprocessing: {self.extra['not_paper']}")
        elif self.usable:
            lines.append("verdict: usable")
        else:
            kinds = [kind for kind, _ in self.problems.of("error")]
            lines.append(f"verdict: NOT usable: {counts['error']} error(s) ({', '.join(kinds)})")
        return "\n".join(lines)


def _dataset_class(name: str, capability: type) -> Any:
    """The registered dataset ``name``, which must support ``capability`` (:class:`Inspectable` or
    :class:`Preparable`)."""
    from ssfbench.api.registry import get_dataset

    cls = get_dataset(name)
    if not isinstance(cls, capability):
        raise UserError(f"dataset {name!r} has no local copy to {'verify' if capability is Inspectable else 'prepare'} "
                        f"(it is generated on the fly)")
    return cls


def verify(name: str, root: Path | None, *, options: dict[str, Any] | None = None, quick: bool = False,
           sample: int | None = None) -> Report:
    """Check the copy of dataset ``name`` at ``root``; a missing root or bad option is a
    :class:`UserError`, every problem of the copy itself is in the report."""
    cls = _dataset_class(name, Inspectable)
    return cls.inspect(root, quick=quick, sample=sample, **(options or {}))


def is_our_store(path: Path | str) -> bool:
    """True when ``path`` is an HDF5 file that ssfbench wrote (its ``format`` attribute names one
    of our formats: prepared crops, a video index, prepared videos)."""
    import h5py

    path = Path(path)
    if not (path.is_file() and h5py.is_hdf5(path)):
        return False
    try:
        with h5py.File(path, "r") as f:
            return str(f.attrs.get("format", "")).startswith("ssfbench.")
    except OSError:
        return False


def check_store_target(out: Path, root: Path | None) -> None:
    """Refuse an ``--out`` that ``prepare`` must not write: an existing folder, an existing file
    that is not one of our stores (it would be replaced), or a path inside the dataset copy at
    ``root`` (ssfbench never writes into a copy). Each is a one-line :class:`UserError`."""
    out = Path(out).expanduser()
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; expected the path of the store file to write (e.g. "
                        f"{out / 'store.h5'})")
    if root is not None and Path(root).is_dir():
        target, copy = out.resolve(), Path(root).expanduser().resolve()
        if target == copy or copy in target.parents:
            raise UserError(f"--out {out}: inside the dataset copy --root {root}; ssfbench never writes into a "
                            f"dataset copy, choose a path outside it")
    if out.exists() and not is_our_store(out):
        raise UserError(f"--out {out}: exists and is not a store written by ssfbench; refusing to replace it "
                        f"(choose another path, or remove the file yourself)")


def prepare(name: str, root: Path | None, out: Path, *, image_size: int = 256, codec: str | None = None,
            options: dict[str, Any] | None = None) -> Path:
    """Write the prepared store of dataset ``name`` (decoded, cropped frames, or a video index)
    to ``out`` atomically; returns ``out``. An ``out`` that is a folder, an existing file that is
    not one of our stores, or a path inside the copy at ``root`` is refused before anything is read."""
    cls = _dataset_class(name, Preparable)
    check_store_target(out, root)
    given = {"codec": codec} if codec is not None else {}  # None: the adapter's own default
    return cls.prepare(root, out, image_size=image_size, **given, **(options or {}))


__all__ = ["Report", "label_counts", "verify", "prepare"]
