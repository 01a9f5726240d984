"""What is wrong with a user's copy of a dataset, collected instead of stopping at the first.

:class:`Problems` records errors (the copy is unusable), rows skipped from the protocol (counted)
and notes; ``open`` raises the first error as a one-line :class:`~ssfbench.errors.UserError` and
warns about skipped rows (:class:`DatasetWarning`), ``ssfbench datasets verify`` lists them all.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ssfbench.errors import UserError

SEVERITIES: tuple[str, ...] = ("error", "skip", "note")


class DatasetWarning(UserWarning):
    """Rows of a dataset were skipped from the protocol (counted; ``verify`` lists them)."""



@dataclass(frozen=True)
class Problem:
    """One thing wrong with a copy. ``severity``: ``error`` (the copy is not usable), ``skip``
    (a row left out of the protocol, counted) or ``note`` (worth knowing, changes nothing)."""

    severity: str
    kind: str
    where: str
    detail: str = ""

    def line(self) -> str:
        """``where: detail`` (or just ``where``)."""
        return f"{self.where}: {self.detail}" if self.detail else self.where


@dataclass
class Problems:
    """Every problem found in a copy, grouped by (severity, kind) in the order first seen."""

    groups: dict[tuple[str, str], list[Problem]] = field(default_factory=dict)

    def add(self, severity: str, kind: str, where: str | os.PathLike, detail: str = "") -> None:
        """Record one problem."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
        self.groups.setdefault((severity, kind), []).append(Problem(severity, kind, str(where), detail))

    def error(self, kind: str, where: str | os.PathLike, detail: str = "") -> None:
        """Record a problem that makes the copy unusable."""
        self.add("error", kind, where, detail)

    def skip(self, kind: str, where: str | os.PathLike, detail: str = "") -> None:
        """Record a row left out of the protocol."""
        self.add("skip", kind, where, detail)

    def note(self, kind: str, where: str | os.PathLike, detail: str = "") -> None:
        """Record something worth knowing that changes nothing."""
        self.add("note", kind, where, detail)

    def of(self, severity: str) -> list[tuple[str, list[Problem]]]:
        """``(kind, problems)`` of one severity, in the order first seen."""
        return [(kind, items) for (sev, kind), items in self.groups.items() if sev == severity]

    def count(self, severity: str) -> int:
        """How many problems of ``severity`` were recorded."""
        return sum(len(items) for _, items in self.of(severity))

    def counts(self, severity: str) -> dict[str, int]:
        """``kind -> count`` for one severity."""
        return {kind: len(items) for kind, items in self.of(severity)}

    @property
    def errors(self) -> list[Problem]:
        """Every error, grouped by kind."""
        return [p for _, items in self.of("error") for p in items]

    def raise_errors(self, dataset: str, root: Path | str) -> None:
        """Raise the first error as a one-line :class:`UserError` that names the file and says how
        many more there are."""
        errors = self.errors
        if not errors:
            return
        first = errors[0]
        more = len(errors) - 1
        tail = (f" (and {more} more problem{'s' if more > 1 else ''}; `ssfbench datasets verify {dataset} "
                f"--root {root}` lists them all)") if more else ""
        raise UserError(f"{dataset}: {first.kind}: {first.line()}{tail}")

    def warn_skips(self, dataset: str, root: Path | str) -> None:
        """One :class:`DatasetWarning` summarising the rows skipped from the protocol."""
        counts = self.counts("skip")
        if counts:
            parts = ", ".join(f"{kind} {n}" for kind, n in counts.items())
            warnings.warn(f"{dataset}: {sum(counts.values())} row(s) left out of the protocol ({parts}); "
                          f"`ssfbench datasets verify {dataset} --root {root}` lists them",
                          DatasetWarning, stacklevel=3)


__all__ = ["SEVERITIES", "DatasetWarning", "Problem", "Problems"]
