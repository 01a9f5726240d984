"""Typed records of what a run produces, under the versioned results schema.

* :class:`Result` — one results JSON (schema ``ssfbench.result/1``, fields in ``results/README.md``):
  the fields every result has are typed attributes, the rest (provenance, timings, method-specific
  records) stays in ``extra``. ``Result.from_json`` validates a file's content and names what is
  wrong; ``to_json`` is what gets written. A ``Result`` also reads like the JSON mapping
  (``result["avg"]``, ``result.get("init_control")``) for code written against the files.
* :class:`RunOutput` — what one ``ssfbench run`` / ``pretrain`` / ``embed`` / ``probe`` produced for
  one run: its checkpoint, the caches written and the results (none for the first two stages).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "ssfbench.result/1"
ROLES = ("self-supervised", "supervised", "floor", "ceiling")


class ResultFileError(ValueError):
    """A results JSON that does not follow the schema (the message names what is wrong)."""


#: the typed fields every result has, with the JSON types they must have
_REQUIRED: dict[str, tuple[type, ...]] = {
    "schema": (str,), "protocol_version": (str,), "ssfbench_version": (str,), "date": (str,),
    "run_id": (str,), "config_hash": (str,), "method": (str,), "variant": (str,), "display_name": (str,),
    "backbone": (str,), "source": (str,), "dataset": (str,), "dataset_fingerprint": (str,), "seed": (int,),
    "labels": (list,), "metric": (str,), "scores_per_fold": (dict,), "mean": (dict,), "std": (dict,),
    "avg": (float, int, type(None)), "avg_std": (float, int, type(None)),
}


@dataclass
class Result(Mapping):
    """One result of one run on one dataset: what ``ssfbench run`` writes to
    ``<out>/results/runs/<run_id>/<dataset>.json`` and ``ssfbench.evaluate`` / ``ssfbench.run`` return
    (``results/README.md`` lists every field).

    The typed attributes are the fields every result has: identity (``run_id``, ``config_hash``,
    ``method``, ``variant``, ``display_name`` — the row's name in tables —, ``backbone``, ``source``,
    ``seed``), the data (``dataset`` and its ``dataset_fingerprint``), the ``metric`` (``f1`` or
    ``auc``) over ``labels``, the scores as fractions in [0, 1] (``scores_per_fold`` per fold and
    label, ``mean``/``std`` per label over folds, ``avg`` = mean over labels and ``avg_std`` its std
    over folds; NaN or None where a label could not be scored) and the schema and versions. Every
    other field (``cache``, ``checkpoint``, ``preprocess``, ``probe``, ``timing``, ``rerun``,
    ``init_control``, ...) is in ``extra``; a ``Result`` also reads like the JSON mapping
    (``result["avg"]``, ``result.get("cache")``)."""

    schema: str
    protocol_version: str
    ssfbench_version: str
    date: str
    run_id: str
    config_hash: str
    method: str
    variant: str
    display_name: str
    backbone: str
    source: str
    dataset: str
    dataset_fingerprint: str
    seed: int
    labels: list[str]
    metric: str
    scores_per_fold: dict[str, dict[str, float | None]]
    mean: dict[str, float | None]
    std: dict[str, float | None]
    avg: float | None
    avg_std: float | None
    #: every other field of the file (rerun, versions, probe, checkpoint, timing, init_control, ...)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any, where: str = "result") -> Result:
        """Validate ``data`` (a parsed results JSON) and build the record; :class:`ResultFileError`
        names the first problem (``where`` names the file)."""
        if not isinstance(data, dict):
            raise ResultFileError(f"{where}: not a JSON object")
        if data.get("schema") != SCHEMA:
            raise ResultFileError(f"{where}: schema {data.get('schema')!r}, expected {SCHEMA!r}")
        for key, types in _REQUIRED.items():
            if key not in data:
                raise ResultFileError(f"{where}: field {key!r} missing")
            if not isinstance(data[key], types) or (types == (int,) and isinstance(data[key], bool)):
                raise ResultFileError(f"{where}: field {key!r} has type {type(data[key]).__name__}")
        labels = data["labels"]
        if not labels or not all(isinstance(lab, str) for lab in labels):
            raise ResultFileError(f"{where}: field 'labels' must be a non-empty list of names")
        for fold, scores in data["scores_per_fold"].items():
            if not isinstance(scores, dict) or set(scores) != set(labels):
                raise ResultFileError(f"{where}: fold {fold!r} does not score exactly the result's labels")
        typed = {k: data[k] for k in _REQUIRED}
        extra = {k: v for k, v in data.items() if k not in _REQUIRED}
        return cls(**typed, extra=extra)

    def to_json(self) -> dict[str, Any]:
        """The JSON object written for this result (typed fields and ``extra`` side by side)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**self.extra, **out}

    def inconsistencies(self, tolerance: float = 1e-3) -> list[str]:
        """What disagrees inside the record: each label's ``mean`` with its per-fold scores, ``avg``
        with the labels' means. Empty for a file the harness wrote."""
        problems = []
        for lab in self.labels:
            folds = [s.get(lab) for s in self.scores_per_fold.values()]
            if self.scores_per_fold and all(v is not None for v in folds):
                expected = sum(folds) / len(folds)
                if self.mean.get(lab) is None or abs(self.mean[lab] - expected) > tolerance:
                    problems.append(f"mean of {lab} is {self.mean.get(lab)}, its folds give {expected:.4f}")
        means = [self.mean.get(lab) for lab in self.labels]
        if self.avg is not None and all(m is not None for m in means):
            expected = sum(means) / len(means)
            if not math.isfinite(self.avg) or abs(self.avg - expected) > tolerance:
                problems.append(f"avg is {self.avg}, its labels give {expected:.4f}")
        return problems

    @property
    def role(self) -> str:
        """The method's role (:func:`role_of`)."""
        return role_of(self)

    # ---- read like the JSON mapping --------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        if key != "extra" and key in _REQUIRED:
            return getattr(self, key)
        return self.extra[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(_REQUIRED) + len(self.extra)


#: roles of the built-in methods, for results written before roles were recorded
_LEGACY_ROLES = {"random": "floor", "pixels": "floor", "supervised": "supervised"}


def role_of(result: Mapping[str, Any]) -> str:
    """``self-supervised``, ``supervised``, ``floor`` or ``ceiling``: the ``role`` a result records
    (the method's ``Method.role`` at run time; ``ceiling`` for calibration results); results
    written before roles existed get it from their built-in method's name."""
    recorded = result.get("role")
    if recorded in ROLES:
        return recorded
    if result.get("source") == "ceiling":
        return "ceiling"
    return _LEGACY_ROLES.get(result.get("method", ""), "self-supervised")


@dataclass
class RunOutput:
    """What one run produced: its id, its checkpoint (None for ensembles and for label-trained methods,
    which keep one per fold), the embedding caches written (dataset -> path) and its results (empty
    for the ``pretrain`` and ``embed`` stages, and on torchrun ranks other than 0)."""

    run_id: str
    checkpoint: Path | None = None
    checkpoint_sha256: str | None = None
    caches: dict[str, Path] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)
    #: the step-0 control this run scored first (:func:`ssfbench.pipeline.spec.init_control_spec`), if it did
    control: RunOutput | None = None
