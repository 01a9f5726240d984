"""The evaluation protocol over one dataset: the probe fitted on every fold's training rows and
scored on its test rows (:func:`probe_dataset`), the summary over folds (:func:`summarise_folds`),
and the checks of a dataset's labels (:func:`check_labels`, :func:`degenerate_labels`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ssfbench.api.dataset import Fold, LabeledFrames
from ssfbench.errors import UserError
from ssfbench.evaluation.metrics import NoPositivesWarning, per_label_auc, per_label_f1
from ssfbench.evaluation.probe import fit_predict


def probe_dataset(x: np.ndarray | Callable[[Fold], np.ndarray], dataset: LabeledFrames, *,
                  seed: int = 0, device: str = "cpu") -> dict[str, Any]:
    """Fit the protocol's probe on every fold of ``dataset`` using features ``x`` (one row per
    frame; or a function giving each fold its own features, for per-fold encoders) on ``device``;
    returns per-fold per-label scores, their summary, the scores pooled over folds and the device."""
    metric_fn = per_label_f1 if dataset.metric == "f1" else per_label_auc
    labels = list(dataset.label_names)
    per_fold: dict[str, dict[str, float]] = {}
    pooled_true, pooled_prob = [], []
    tested: list[tuple[str, np.ndarray]] = []
    notes: list[str] = []
    for fold in dataset.folds():
        xf = x(fold) if callable(x) else x
        notes += degenerate_labels(dataset.targets[fold.train], labels, f"{dataset.name} {fold.name}", "training")
        prob = fit_predict(xf[fold.train], dataset.targets[fold.train], xf[fold.test], seed=seed, device=device)
        scores = _quiet_metric(metric_fn, dataset.targets[fold.test], prob)
        notes += degenerate_labels(dataset.targets[fold.test], labels, f"{dataset.name} {fold.name}", "test",
                                   dataset.metric)
        per_fold[fold.name] = dict(zip(labels, map(float, scores)))
        pooled_true.append(dataset.targets[fold.test])
        pooled_prob.append(prob)
        tested.append((fold.name, fold.test))
    pooled = _quiet_metric(metric_fn, np.concatenate(pooled_true), np.concatenate(pooled_prob))
    for note in notes:
        warnings.warn(note, NoPositivesWarning, stacklevel=2)
    from ssfbench.evaluation.bootstrap import (
        fold_predictions,  # per-frame test predictions, saved by write_result
    )

    return {"labels": labels, "metric": dataset.metric, "scores_per_fold": per_fold,
            **summarise_folds(per_fold, labels), "pooled": dict(zip(labels, map(float, pooled))),
            "warnings": notes, "test_predictions": fold_predictions(dataset, tested, pooled_prob),
            "probe_device": device}


def _quiet_metric(metric_fn: Callable[..., np.ndarray], y_true: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """``metric_fn(y_true, prob)`` with its index-only NoPositivesWarnings silenced (the caller
    reports them by label name through :func:`degenerate_labels`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoPositivesWarning)
        return metric_fn(y_true, prob)


def degenerate_labels(targets: np.ndarray, labels: list[str], where: str, rows: str,
                      metric: str | None = None) -> list[str]:
    """One note per label of ``targets`` (``[N, C]``, -1 unknown) without known positives (or,
    for training rows and AUC, without known negatives), saying what the score becomes."""
    notes = []
    for c, label in enumerate(labels):
        known = targets[:, c][targets[:, c] >= 0]
        n_pos, n_neg = int((known == 1).sum()), int((known == 0).sum())
        if rows == "training" and (n_pos == 0 or n_neg == 0):
            missing = "positives" if n_pos == 0 else "negatives"
            notes.append(f"{where}: label {label} has no {missing} among the known training rows; "
                         "the probe cannot learn it")
        elif rows == "test" and metric == "f1" and n_pos == 0:
            notes.append(f"{where}: label {label} has no positives among the known test rows; F1 set to 0.0")
        elif rows == "test" and metric == "auc" and (n_pos == 0 or n_neg == 0):
            notes.append(f"{where}: label {label} has only one class among the known test rows; AUC is NaN")
    return notes


def check_labels(dataset: LabeledFrames) -> None:
    """One-line :class:`UserError` unless ``dataset`` has one label row per image (``targets``
    ``[N, C]`` with C = the label names, values 1/0/-1) and one subject per image."""
    n, c = len(dataset.keys), len(dataset.label_names)
    targets = np.asarray(dataset.targets)
    if targets.ndim != 2 or targets.shape != (n, c):
        raise UserError(f"dataset {dataset.name!r}: labels do not match the images: targets {targets.shape}, "
                        f"expected ({n} frames, {c} labels)")
    if len(dataset.subjects) != n:
        raise UserError(f"dataset {dataset.name!r}: labels do not match the images: "
                        f"{len(dataset.subjects)} subjects for {n} frames")
    if not np.isin(targets, (0, 1, -1)).all():
        raise UserError(f"dataset {dataset.name!r}: labels must be 1 (present), 0 (absent) or -1 (unknown)")


def summarise_folds(per_fold: dict[str, dict[str, float]], labels: list[str]) -> dict[str, Any]:
    """Mean and std over folds per label, and the average over labels (of the fold means), with the
    std over folds of each fold's label average. NaN stays NaN: no average over missing labels."""
    scores = np.array([[per_fold[f][lab] for lab in labels] for f in per_fold], dtype=float)  # [F, C]
    fold_avg = scores.mean(axis=1)
    return {
        "mean": dict(zip(labels, scores.mean(axis=0).tolist())),
        "std": dict(zip(labels, scores.std(axis=0).tolist())),
        "avg": float(fold_avg.mean()),
        "avg_std": float(fold_avg.std()),
    }
