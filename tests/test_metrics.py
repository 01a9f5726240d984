"""Per-label F1 / AUC against hand computations, with unknown (-1) entries masked per label."""

from __future__ import annotations

import numpy as np
import pytest

from ssfbench.evaluation.metrics import NoPositivesWarning, per_label_auc, per_label_f1


def test_f1_matches_hand_computation_with_masked_unknowns() -> None:
    # label 0: known rows 0-3: TP, FN, FP, TN -> precision 1/2, recall 1/2, F1 0.5.
    # row 4 is unknown but predicted positive: counting it as a negative would give F1 0.4.
    # label 1: known rows 0,1,3,4: TP, TP, TN, FN -> P 1, R 2/3, F1 0.8.
    y = np.array([[1, 1], [1, 1], [0, -1], [0, 0], [-1, 1]])
    p = np.array([[0.9, 0.7], [0.2, 0.5], [0.6, 0.9], [0.1, 0.4], [0.8, 0.3]])
    np.testing.assert_allclose(per_label_f1(y, p), [0.5, 0.8])


def test_f1_threshold() -> None:
    y = np.array([1, 1, 0, 0])
    p = np.array([0.9, 0.3, 0.2, 0.1])
    assert per_label_f1(y, p, threshold=0.5)[0] == pytest.approx(2 / 3)
    assert per_label_f1(y, p, threshold=0.25)[0] == pytest.approx(1.0)


def test_f1_label_without_positives_warns_and_scores_zero() -> None:
    y = np.array([[1, 0], [0, -1], [1, 0]])
    p = np.array([[0.9, 0.9], [0.1, 0.9], [0.8, 0.1]])
    with pytest.warns(NoPositivesWarning, match="label 1"):
        f1 = per_label_f1(y, p)
    np.testing.assert_allclose(f1, [1.0, 0.0])


def test_auc_matches_hand_computation_with_masked_unknowns() -> None:
    # known rows of label 0: pos 0.8, 0.4; neg 0.6, 0.2 -> 3 of 4 pairs ordered -> 0.75.
    # the unknown row (0.9) would raise the AUC if counted as a negative ranking above all.
    y = np.array([1, 1, 0, 0, -1])
    p = np.array([0.8, 0.4, 0.6, 0.2, 0.9])
    auc = per_label_auc(y, p)
    assert auc.shape == (1,)
    assert auc[0] == pytest.approx(0.75)


def test_auc_single_class_label_is_nan_with_warning() -> None:
    y = np.array([[1, 1], [0, 1], [-1, 1]])
    p = np.array([[0.9, 0.5], [0.1, 0.4], [0.5, 0.3]])
    with pytest.warns(NoPositivesWarning, match="label 1"):
        auc = per_label_auc(y, p)
    assert auc[0] == 1.0 and np.isnan(auc[1])


def test_one_dimensional_input_is_one_label() -> None:
    f1 = per_label_f1([1, 0, 1], [0.7, 0.2, 0.6])
    assert f1.shape == (1,) and f1[0] == 1.0


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError):
        per_label_f1(np.zeros((3, 2)), np.zeros((3, 3)))
