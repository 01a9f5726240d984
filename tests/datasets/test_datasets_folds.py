"""The shipped fold lists are exactly the standard subject-independent 3 folds (tables typed again
here from the notes, not read from the package)."""

from __future__ import annotations

import numpy as np

from ssfbench.datasets.kit import load_parts, standard_folds

BP4D = (
    "F001 M007 F018 F008 F002 M004 F010 F009 M012 M001 F016 M014 F023 M008",
    "M011 F003 M010 M002 F005 F022 M018 M017 F013 M016 F020 F011 M013 M005",
    "F007 F015 F006 F019 M006 M009 F012 M003 F004 F021 F017 M015 F014",
)
DISFA = (
    "SN002 SN010 SN001 SN026 SN027 SN032 SN030 SN009 SN016",
    "SN013 SN018 SN011 SN028 SN012 SN006 SN031 SN021 SN024",
    "SN003 SN029 SN023 SN025 SN008 SN005 SN007 SN017 SN004",
)


def _check(name: str, table: tuple[str, ...], total: int) -> None:
    parts = load_parts(name)
    assert [set(p) for p in parts] == [set(row.split()) for row in table]
    assert [len(p) for p in parts] == [len(row.split()) for row in table]
    everyone = [s for p in parts for s in p]
    assert len(everyone) == total and len(set(everyone)) == total  # each subject in exactly one part


def test_bp4d_folds_are_the_standard_41_subjects():
    _check("bp4d", BP4D, 41)
    assert {s for row in BP4D for s in row.split()} == {f"F{i:03d}" for i in range(1, 24)} | {f"M{i:03d}" for i in range(1, 19)}


def test_disfa_folds_are_the_standard_27_subjects():
    _check("disfa", DISFA, 27)
    absent = {14, 15, 19, 20, 22}
    assert {s for row in DISFA for s in row.split()} == {f"SN{i:03d}" for i in range(1, 33) if i not in absent}


def test_fold_k_tests_part_4_minus_k_and_trains_on_the_others():
    parts = load_parts("bp4d")
    subjects = np.array([s for p in parts for s in p] + ["X999"])
    folds = standard_folds(subjects, parts)
    assert [f.name for f in folds] == ["fold1", "fold2", "fold3"]
    for fold, test_part in zip(folds, (2, 1, 0)):
        assert set(subjects[fold.test]) == set(parts[test_part])
        assert set(subjects[fold.train]) == {s for j, p in enumerate(parts) if j != test_part for s in p}
        assert not set(fold.train) & set(fold.test)
    assert all(len(subjects) - 1 not in np.concatenate([f.train, f.test]) for f in folds)  # X999 in no fold
