"""Per-frame test predictions and the paired bootstrap over test subjects.

The runner keeps, for every (run, dataset), the probe's test probabilities of every fold with the
rows' keys, subjects and targets, in ``<dataset>.predictions.npz`` beside the result JSON (written
atomically; the JSON names it under ``"predictions"``). Two such files on the same dataset give a
paired bootstrap of the difference in mean-over-labels F1 (or ROC-AUC):

* resample the test subjects with replacement (seeded ``numpy`` Generator), the same draw for both
  methods (paired);
* recompute each method's per-label metric on the pooled rows of the drawn subjects (a subject drawn
  twice counts twice), average over labels, take the difference A - B;
* the percentile interval of those differences is the confidence interval.

Scores here are pooled over folds (every test row of every fold at once), so the point estimates can
differ slightly from the leaderboard's mean over folds. F1 at threshold 0.5 is exact from per-subject
TP/FP/FN counts; ROC-AUC uses per-row weights (= how often the row's subject was drawn), which equals
ROC-AUC on the concatenated resample, ties counted one half.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssfbench.errors import UserError

PREDICTIONS_SUFFIX = ".predictions.npz"
FORMAT = "ssfbench.predictions/1"
UNKNOWN = -1


@dataclass(frozen=True)
class Predictions:
    """Test predictions of one run on one dataset: one row per tested frame (every fold's test rows)."""

    keys: np.ndarray      # str [N] frame ids
    subjects: np.ndarray  # str [N]
    folds: np.ndarray     # str [N] name of the fold that tested the row
    targets: np.ndarray   # int8 [N, C]: 1 present, 0 absent, -1 unknown
    probs: np.ndarray     # float32 [N, C] probe probabilities
    labels: tuple[str, ...]
    metric: str           # "f1" or "auc"

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class BootstrapResult:
    """A paired bootstrap of ``score(A) - score(B)`` over test subjects."""

    metric: str
    score_a: float        # mean over labels, pooled over all test rows
    score_b: float
    diff: float           # score_a - score_b
    low: float            # percentile confidence interval of the difference
    high: float
    level: float
    n_subjects: int
    n_rows: int
    n_resamples: int
    seed: int

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies strictly on one side of zero."""
        return self.low > 0 or self.high < 0


def fold_predictions(dataset, tested: Sequence[tuple[str, np.ndarray]], probs: Sequence[np.ndarray]) -> Predictions:
    """The :class:`Predictions` of a probe run: ``tested`` holds ``(fold name, test row indices)`` and
    ``probs`` the matching ``[n_test, C]`` probabilities, fold by fold, of ``dataset`` (a
    :class:`~ssfbench.api.dataset.LabeledFrames`)."""
    rows = np.concatenate([np.asarray(idx, dtype=np.int64) for _, idx in tested]) if tested else np.zeros(0, np.int64)
    folds = np.concatenate([np.full(len(idx), name) for name, idx in tested]) if tested else np.zeros(0, str)
    c = len(dataset.label_names)
    prob = np.concatenate([np.asarray(p, np.float32) for p in probs]) if probs else np.zeros((0, c), np.float32)
    return Predictions(keys=np.asarray(dataset.keys)[rows].astype(str), subjects=np.asarray(dataset.subjects)[rows].astype(str),
                       folds=folds.astype(str), targets=np.asarray(dataset.targets)[rows].astype(np.int8),
                       probs=prob, labels=tuple(dataset.label_names), metric=str(dataset.metric))


def predictions_path(result_json: Path) -> Path:
    """The predictions file that belongs beside ``<run>/<dataset>.json``."""
    result_json = Path(result_json)
    return result_json.with_name(result_json.stem + PREDICTIONS_SUFFIX)


def write_predictions(path: Path, pred: Predictions) -> Path:
    """Write ``pred`` as a compressed ``.npz`` atomically (temporary file, fsync, rename); returns ``path``."""
    from ssfbench.runtime.fileio import atomic_write_bytes

    path = Path(path)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a bare name
            np.savez_compressed(f, format=np.array(FORMAT), keys=pred.keys.astype(str),
                                subjects=pred.subjects.astype(str), folds=pred.folds.astype(str),
                                targets=pred.targets.astype(np.int8), probs=pred.probs.astype(np.float32),
                                labels=np.asarray(pred.labels, dtype=str), metric=np.array(pred.metric))

    atomic_write_bytes(path, write)
    return path


def read_predictions(path: Path) -> Predictions:
    """Read a predictions file; a missing or malformed one raises :class:`UserError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no predictions file (runs made before predictions were kept need a rerun)")
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["format"]) != FORMAT:
                raise UserError(f"{path}: expected format {FORMAT!r}, got {str(z['format'])!r}")
            pred = Predictions(keys=z["keys"], subjects=z["subjects"], folds=z["folds"], targets=z["targets"],
                               probs=z["probs"], labels=tuple(str(s) for s in z["labels"]), metric=str(z["metric"]))
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{path}: not a readable predictions file ({type(exc).__name__})") from None
    if pred.probs.shape != pred.targets.shape or pred.probs.shape[0] != len(pred.keys):
        raise UserError(f"{path}: probs {pred.probs.shape} and targets {pred.targets.shape} do not match the keys")
    return pred


def align(a: Predictions, b: Predictions, *, names: tuple[str, str] = ("A", "B")) -> Predictions:
    """``b`` reordered to ``a``'s rows; both must hold the same frames, labels and targets (the same
    dataset version and folds), else :class:`UserError`."""
    if a.labels != b.labels or a.metric != b.metric:
        raise UserError(f"{names[0]} and {names[1]} were scored on different labels or metrics; "
                        "they are not results on the same dataset")
    if len(a) != len(b) or set(a.keys.tolist()) != set(b.keys.tolist()):
        raise UserError(f"{names[0]} and {names[1]} tested different frames ({len(a)} vs {len(b)}); "
                        "compare runs on the same dataset version")
    order = {k: i for i, k in enumerate(b.keys.tolist())}
    idx = np.fromiter((order[k] for k in a.keys.tolist()), dtype=np.int64, count=len(a))
    out = Predictions(keys=b.keys[idx], subjects=b.subjects[idx], folds=b.folds[idx], targets=b.targets[idx],
                      probs=b.probs[idx], labels=b.labels, metric=b.metric)
    if not np.array_equal(out.targets, a.targets) or not np.array_equal(out.subjects, a.subjects):
        raise UserError(f"{names[0]} and {names[1]} have different targets or subjects for the same frames; "
                        "compare runs on the same dataset version")
    return out


def subject_index(subjects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(unique subjects, index of each row's subject)``."""
    return np.unique(np.asarray(subjects).astype(str), return_inverse=True)


def resample_weights(n_subjects: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_resamples, n_subjects]`` counts: how often each subject is drawn when ``n_subjects``
    subjects are drawn with replacement."""
    draws = rng.integers(0, n_subjects, size=(n_resamples, n_subjects))
    weights = np.zeros((n_resamples, n_subjects), dtype=np.float64)
    np.add.at(weights, (np.repeat(np.arange(n_resamples), n_subjects), draws.ravel()), 1.0)
    return weights


def f1_from_weights(targets: np.ndarray, probs: np.ndarray, subj: np.ndarray, n_subjects: int,
                    weights: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Per-label F1 ``[R, C]`` of the rows weighted by their subject's weight (``weights`` ``[R, S]``).
    Unknown targets are masked per label; a label without positives scores 0 (as ``per_label_f1``)."""
    known = targets != UNKNOWN
    pred = probs >= threshold
    counts = []
    for mask in (known & (targets == 1) & pred, known & (targets == 0) & pred, known & (targets == 1) & ~pred):
        per_subject = np.zeros((n_subjects, targets.shape[1]))
        np.add.at(per_subject, subj, mask.astype(np.float64))
        counts.append(weights @ per_subject)
    tp, fp, fn = counts
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def auc_from_weights(targets: np.ndarray, probs: np.ndarray, row_weights: np.ndarray) -> np.ndarray:
    """Per-label ROC-AUC ``[R, C]`` with per-row weights ``[R, N]`` (ties count one half; unknown
    targets masked per label; NaN where a resample holds only one class of a label)."""
    out = np.full((row_weights.shape[0], targets.shape[1]), np.nan)
    for c in range(targets.shape[1]):
        known = np.flatnonzero(targets[:, c] != UNKNOWN)
        order = known[np.argsort(probs[known, c], kind="mergesort")]
        scores = probs[order, c]
        starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])  # first row of each tie group
        pos = (targets[order, c] == 1).astype(np.float64)
        w = row_weights[:, order]
        p_group = np.add.reduceat(w * pos, starts, axis=1)
        n_group = np.add.reduceat(w * (1 - pos), starts, axis=1)
        n_below = np.cumsum(n_group, axis=1) - n_group
        p_tot, n_tot = p_group.sum(axis=1), n_group.sum(axis=1)
        num = (p_group * (n_below + 0.5 * n_group)).sum(axis=1)
        ok = (p_tot > 0) & (n_tot > 0)
        out[ok, c] = num[ok] / (p_tot[ok] * n_tot[ok])
    return out


def _mean_over_labels(scores: np.ndarray) -> np.ndarray:
    """Mean over labels of ``[R, C]`` scores, ignoring labels undefined in a resample (NaN AUC; the
    same labels are undefined for both methods, since they share targets and weights)."""
    with np.errstate(invalid="ignore"):
        valid = ~np.isnan(scores)
        return np.where(valid.any(axis=1), np.nansum(scores, axis=1) / np.maximum(valid.sum(axis=1), 1), np.nan)


def mean_scores(pred: Predictions, subj: np.ndarray, n_subjects: int, weights: np.ndarray) -> np.ndarray:
    """Mean-over-labels score ``[R]`` of ``pred`` for each row of subject ``weights`` ``[R, S]``."""
    if pred.metric == "f1":
        return _mean_over_labels(f1_from_weights(pred.targets, pred.probs, subj, n_subjects, weights))
    return _mean_over_labels(auc_from_weights(pred.targets, pred.probs, weights[:, subj]))


def paired_bootstrap(a: Predictions, b: Predictions, *, n_resamples: int = 1000, seed: int = 0,
                     level: float = 0.95, chunk: int = 100) -> BootstrapResult:
    """Paired bootstrap over test subjects of ``mean-over-labels score(a) - score(b)`` (F1 or ROC-AUC
    by ``a.metric``), with a ``level`` percentile interval. ``b`` is aligned to ``a`` by frame key."""
    return paired_bootstrap_mean([(a, b)], n_resamples=n_resamples, seed=seed, level=level, chunk=chunk)


def paired_bootstrap_mean(pairs: Sequence[tuple[Predictions, Predictions]], *, n_resamples: int = 1000,
                          seed: int = 0, level: float = 0.95, chunk: int = 100) -> BootstrapResult:
    """:func:`paired_bootstrap` of the mean over ``pairs`` (e.g. one pair per seed: a trained encoder
    and its own initialisation) of ``score(a_i) - score(b_i)``: every pair is resampled with the same
    subject draw, so the interval covers subjects, and the seeds enter through their mean."""
    if not pairs:
        raise UserError("the bootstrap needs at least one pair of predictions")
    if n_resamples < 10:
        raise UserError(f"--resamples: expected at least 10, got {n_resamples}")
    if not 0 < level < 1:
        raise UserError(f"confidence level must be in (0, 1), got {level}")
    first = pairs[0][0]
    aligned = [(align(first, a, names=("the first run", "another run")), align(first, b)) for a, b in pairs]
    names, subj = subject_index(first.subjects)
    if len(names) < 2:
        raise UserError(f"the bootstrap needs at least 2 test subjects, got {len(names)}")

    def mean_over_pairs(which: int, weights: np.ndarray) -> np.ndarray:
        return np.mean([mean_scores(pair[which], subj, len(names), weights) for pair in aligned], axis=0)

    ones = np.ones((1, len(names)))
    score_a, score_b = mean_over_pairs(0, ones)[0], mean_over_pairs(1, ones)[0]
    weights = resample_weights(len(names), n_resamples, np.random.default_rng(seed))
    diffs = np.concatenate([mean_over_pairs(0, weights[i:i + chunk]) - mean_over_pairs(1, weights[i:i + chunk])
                            for i in range(0, n_resamples, chunk)])
    tail = (1 - level) / 2
    low, high = np.nanquantile(diffs, [tail, 1 - tail]) if np.isfinite(diffs).any() else (np.nan, np.nan)
    return BootstrapResult(metric=first.metric, score_a=float(score_a), score_b=float(score_b),
                           diff=float(score_a - score_b), low=float(low), high=float(high), level=level,
                           n_subjects=len(names), n_rows=len(first), n_resamples=n_resamples, seed=seed)


__all__ = ["PREDICTIONS_SUFFIX", "Predictions", "BootstrapResult", "fold_predictions", "predictions_path",
           "write_predictions", "read_predictions", "align", "paired_bootstrap", "paired_bootstrap_mean", "f1_from_weights",
           "auc_from_weights", "resample_weights"]
