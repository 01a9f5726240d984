"""The standard subject-independent folds of the real AU datasets, read from the shipped
``folds/<dataset>.txt`` lists."""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import resources

import numpy as np

from ssfbench.api.dataset import Fold


def load_parts(dataset: str) -> list[tuple[str, ...]]:
    """The subject parts of a standard k-fold protocol, read from the shipped ``folds/<dataset>.txt``
    (lines ``partN: SUBJ SUBJ ...``; ``#`` starts a comment)."""
    text = resources.files("ssfbench.datasets").joinpath("folds", f"{dataset}.txt").read_text(encoding="utf-8")
    parts: list[tuple[str, ...]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        label, sep, names = line.partition(":")
        if not sep or not re.fullmatch(r"part\d+", label.strip()):
            raise ValueError(f"folds/{dataset}.txt: bad line {raw!r}")
        parts.append(tuple(names.split()))
    return parts


def standard_folds(subjects: np.ndarray, parts: Sequence[Sequence[str]]) -> list[Fold]:
    """Subject-independent folds from parts: fold ``i`` (1-based) tests part ``P+1-i`` and trains on
    the other parts (fold1 tests part3, fold2 part2, fold3 part1, as ME-GraphAU and JAA-Net do).
    Rows of subjects in no part are in no fold."""
    folds = []
    for i in range(len(parts)):
        test_part = len(parts) - 1 - i
        train_subjects = [s for j, p in enumerate(parts) if j != test_part for s in p]
        test = np.isin(subjects, list(parts[test_part]))
        train = np.isin(subjects, train_subjects)
        folds.append(Fold(f"fold{i + 1}", np.flatnonzero(train), np.flatnonzero(test)))
    return folds


__all__ = ["load_parts", "standard_folds"]
