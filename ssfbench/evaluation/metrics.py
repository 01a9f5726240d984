"""Per-label scores for the probe protocol: binary F1 (BP4D, DISFA) and ROC-AUC (EmotioNet,
AffectNet), one score per label with unknown (-1) ground-truth entries masked label by label.

Scores are computed by scikit-learn on the pooled rows given; averaging over labels or folds is
the caller's business.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

UNKNOWN = -1


class NoPositivesWarning(UserWarning):
    """A label has no known positives (F1) or only one class among its known rows (AUC)."""


def _as_2d(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as ``[N, C]`` (1-D input is one label); shapes must agree."""
    t = np.asarray(y_true)
    p = np.asarray(y_prob, dtype=np.float64)
    if t.ndim == 1:
        t = t[:, None]
    if p.ndim == 1:
        p = p[:, None]
    if t.ndim != 2 or t.shape != p.shape:
        raise ValueError(f"y_true {np.shape(y_true)} and y_prob {np.shape(y_prob)} must both be [N, C] or [N]")
    if not np.isin(t, (0, 1, UNKNOWN)).all():
        raise ValueError("y_true must hold 1 (present), 0 (absent) or -1 (unknown)")
    return t.astype(np.int64), p


def _per_label(y_true: np.ndarray, y_prob: np.ndarray,
               score: Callable[[np.ndarray, np.ndarray, int], float]) -> np.ndarray:
    """Apply ``score(known_true, known_prob, label_index)`` to each label's known rows."""
    t, p = _as_2d(y_true, y_prob)
    out = np.empty(t.shape[1], dtype=np.float64)
    for c in range(t.shape[1]):
        known = t[:, c] != UNKNOWN
        out[c] = score(t[known, c], p[known, c], c)
    return out


def per_label_f1(y_true: np.ndarray, y_prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Binary F1 per label of ``y_prob >= threshold`` against ``y_true`` (``[N, C]`` or ``[N]``,
    1/0 with -1 = unknown, masked per label). Returns float64 ``[C]``. A label with no known
    positives scores 0.0 and raises a :class:`NoPositivesWarning` naming its index."""

    def score(t: np.ndarray, p: np.ndarray, c: int) -> float:
        if not (t == 1).any():
            warnings.warn(f"label {c}: no known positives; F1 set to 0.0", NoPositivesWarning, stacklevel=4)
            return 0.0
        return float(f1_score(t, p >= threshold, zero_division=0))

    return _per_label(y_true, y_prob, score)


def per_label_auc(y_true: np.ndarray, y_prob: np.ndarray) -> np.ndarray:
    """ROC-AUC per label of ``y_prob`` against ``y_true`` (``[N, C]`` or ``[N]``, 1/0 with
    -1 = unknown, masked per label). Returns float64 ``[C]``. A label whose known rows hold only
    one class scores NaN and raises a :class:`NoPositivesWarning` naming its index."""

    def score(t: np.ndarray, p: np.ndarray, c: int) -> float:
        if np.unique(t).size < 2:
            warnings.warn(f"label {c}: only one class among known rows; AUC set to NaN",
                          NoPositivesWarning, stacklevel=4)
            return float("nan")
        return float(roc_auc_score(t, p))

    return _per_label(y_true, y_prob, score)


__all__ = ["NoPositivesWarning", "per_label_f1", "per_label_auc", "UNKNOWN"]
