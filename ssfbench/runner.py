"""``ssfbench run``: pretrain (or reuse, or load) an encoder, embed every evaluation dataset into an
HDF5 cache, fit the linear probe on the protocol's folds, write results and leaderboards.

Output layout under ``out`` (default ``ssfbench-out/``)::

    runs/<run_id>/best.pt, best.json, last.pt     checkpoints (+ metadata, + resume state)
    embeddings/<run_id>/<dataset>.h5               embedding caches
    results/runs/<run_id>/<dataset>.json           one result per (run, dataset)
    results/<dataset>.csv                          leaderboards rebuilt from the JSON files
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch

import ssfbench
from ssfbench.cache import cached_embeddings
from ssfbench.checkpoint import load_checkpoint, load_weights, save_checkpoint, sha256_file
from ssfbench.data import LabeledFrames, VideoSource
from ssfbench.embed import embed_frames
from ssfbench.errors import UserError
from ssfbench.method import Method
from ssfbench.metrics import per_label_auc, per_label_f1
from ssfbench.pretrain import PretrainSettings, pretrain
from ssfbench.probe import PROBE_DEFAULTS, fit_predict
from ssfbench.registry import get_dataset, get_method
from ssfbench.results import summarise_folds, write_leaderboards, write_result

DEFAULT_STEPS = 300
DEFAULT_IMAGE_SIZE = 64
DEFAULT_EVAL_DATASETS = ("synth-au", "synth-expr")


@dataclass
class RunSpec:
    """Everything that defines one run; all but ``seed`` and the machinery go into ``config_hash``."""

    method: str
    overrides: dict[str, Any] = field(default_factory=dict)
    backbone: str = "resnet18"
    image_size: int = DEFAULT_IMAGE_SIZE
    pretrained: str | None = None
    weights: Path | None = None
    steps: int = DEFAULT_STEPS
    seed: int = 0
    data_seed: int = 0
    pretrain_data: str = "synth-vox"
    datasets: tuple[str, ...] = DEFAULT_EVAL_DATASETS
    roots: dict[str, Path] = field(default_factory=dict)
    out: Path = Path("ssfbench-out")
    device: str = "auto"
    num_workers: int = 1
    overwrite: str = "only-missing"
    progress: bool = True


def build_method(spec: RunSpec) -> Method:
    """Instantiate the method with its defaults and the spec's overrides (bad keys -> UserError)."""
    cls = get_method(spec.method)
    try:
        config = cls.Config().replace(**spec.overrides)
    except KeyError as exc:
        import dataclasses

        known = ", ".join(f.name for f in dataclasses.fields(cls.Config))
        raise UserError(f"method {spec.method!r} has no setting {exc.args[0]!r} (settings: {known})") from None
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad setting for method {spec.method!r}: {exc}") from None
    try:
        return cls(config, backbone=spec.backbone, image_size=spec.image_size, pretrained=spec.pretrained)
    except ValueError as exc:
        raise UserError(f"method {spec.method!r}: {exc}") from None


def open_dataset(name: str, spec: RunSpec):
    """Open a registered dataset with the spec's image size, data seed and root."""
    cls = get_dataset(name)
    return cls.open(spec.roots.get(name), image_size=spec.image_size, seed=spec.data_seed)


def run_identity(spec: RunSpec, method: Method, pretrain_fingerprint: str | None) -> tuple[str, str, str]:
    """``(config_hash, variant, run_id)``. The variant names the method's own setting plus every
    setting that differs from the harness defaults, so leaderboard rows never mix budgets."""
    defaults = type(method).Config().to_dict()
    config = method.config.to_dict()
    identity = {"method": method.name, "config": config, "backbone": spec.backbone, "image_size": spec.image_size,
                "pretrained": spec.pretrained, "protocol_version": ssfbench.PROTOCOL_VERSION}
    parts = [method.variant()] if method.variant() else []
    if spec.weights is not None:
        identity["weights_sha256"] = sha256_file(spec.weights)
        parts.append(f"weights={spec.weights.name}")
    elif method.trainable:
        identity.update(steps=spec.steps, pretrain_data=spec.pretrain_data, pretrain_fingerprint=pretrain_fingerprint)
        if spec.steps != DEFAULT_STEPS:
            parts.append(f"steps={spec.steps}")
    variant_key = method.variant().split("=")[0] if method.variant() else None
    parts += [f"{k}={config[k]}" for k in sorted(config) if config[k] != defaults[k] and k != variant_key]
    if spec.image_size != DEFAULT_IMAGE_SIZE:
        parts.append(f"size={spec.image_size}")
    if spec.pretrained:
        parts.append(f"init={Path(spec.pretrained).name}")
    config_hash = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    variant = " ".join(parts)
    slug = "-".join(p.replace("=", "") for p in parts) or "default"
    run_id = f"{method.name}-{slug}-{spec.backbone}-{config_hash[:8]}-seed{spec.seed}"
    return config_hash, variant, run_id


def obtain_encoder(spec: RunSpec, method: Method, run_dir: Path, videos: VideoSource | None,
                   meta: dict[str, Any]) -> tuple[Method, str, dict[str, Any]]:
    """The trained (or loaded, or untrained) method, its checkpoint sha256 and its metadata record.
    A completed checkpoint in ``run_dir`` is reused; an interrupted one is resumed."""
    best = run_dir / "best.pt"
    record_path = best.with_suffix(".json")
    if record_path.is_file() and json.loads(record_path.read_text()).get("completed"):
        loaded, digest = load_checkpoint(best)
        return loaded, digest, json.loads(record_path.read_text())
    torch.manual_seed(spec.seed)
    if spec.weights is not None:
        load_weights(method, spec.weights)
        digest = save_checkpoint(method, best, {**meta, "weights": str(spec.weights), "completed": True})
    elif not method.trainable:
        method = build_method(spec)  # weights drawn from the seed just set
        digest = save_checkpoint(method, best, {**meta, "completed": True})
    else:
        settings = PretrainSettings(steps=spec.steps, seed=spec.seed, device=spec.device,
                                    num_workers=spec.num_workers, progress=spec.progress)
        result = pretrain(method, videos, settings, run_dir, meta)
        best, digest = result.best_path, result.sha256
    loaded, digest = load_checkpoint(best)
    return loaded, digest, json.loads(record_path.read_text())


def evaluate(method: Method, digest: str, dataset: LabeledFrames, spec: RunSpec, run_id: str) -> dict[str, Any]:
    """Embed ``dataset`` (through the cache) and probe every fold; returns per-fold per-label scores."""
    from ssfbench.device import resolve_device

    attrs = {"method": method.name, "checkpoint_sha256": digest, "dataset": dataset.name,
             "dataset_fingerprint": dataset.fingerprint(), "preprocess": method.preprocess.to_json(),
             "face_preprocessing": json.dumps(dataset.preprocessing(), sort_keys=True),
             "ssfbench_version": ssfbench.__version__}
    cache_path = spec.out / "embeddings" / run_id / f"{dataset.name}.h5"
    device = resolve_device(spec.device)
    started = time.time()
    x = cached_embeddings(cache_path, attrs, dataset.keys,
                          lambda: embed_frames(method, method.preprocess, dataset, device=str(device),
                                               progress=spec.progress),
                          overwrite=spec.overwrite)
    embed_s = time.time() - started
    started = time.time()
    scores = probe_dataset(x, dataset, seed=spec.seed)
    return {**scores, "n_rows": len(dataset), "embed_dim": int(x.shape[1]), "cache": str(cache_path),
            "timing": {"embed_s": round(embed_s, 2), "probe_s": round(time.time() - started, 2)}}


def probe_dataset(x: np.ndarray, dataset: LabeledFrames, *, seed: int = 0) -> dict[str, Any]:
    """Fit the protocol's probe on every fold of ``dataset`` using features ``x`` (one row per
    frame); returns per-fold per-label scores, their summary and the scores pooled over folds."""
    metric_fn = per_label_f1 if dataset.metric == "f1" else per_label_auc
    labels = list(dataset.label_names)
    per_fold: dict[str, dict[str, float]] = {}
    pooled_true, pooled_prob = [], []
    for fold in dataset.folds():
        prob = fit_predict(x[fold.train], dataset.targets[fold.train], x[fold.test], seed=seed)
        scores = metric_fn(dataset.targets[fold.test], prob)
        per_fold[fold.name] = dict(zip(labels, map(float, scores)))
        pooled_true.append(dataset.targets[fold.test])
        pooled_prob.append(prob)
    pooled = metric_fn(np.concatenate(pooled_true), np.concatenate(pooled_prob))
    return {"labels": labels, "metric": dataset.metric, "scores_per_fold": per_fold,
            **summarise_folds(per_fold, labels), "pooled": dict(zip(labels, map(float, pooled)))}


def versions() -> dict[str, str]:
    """Library versions a rerun needs to match."""
    import sklearn

    return {"ssfbench": ssfbench.__version__, "torch": torch.__version__, "timm": timm.__version__,
            "numpy": np.__version__, "sklearn": sklearn.__version__, "python": platform.python_version()}


def result_record(*, run_id: str, config_hash: str, method: str, variant: str, display_name: str, backbone: str,
                  source: str, dataset: LabeledFrames, seed: int, scores: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """One results-JSON record (schema ``ssfbench.result/1``): identity, provenance, scores, extras."""
    return {
        "schema": "ssfbench.result/1", "protocol_version": ssfbench.PROTOCOL_VERSION,
        "ssfbench_version": ssfbench.__version__, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_id": run_id, "config_hash": config_hash, "method": method, "variant": variant,
        "display_name": display_name, "backbone": backbone, "source": source, "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint(), "seed": seed, "probe": {**PROBE_DEFAULTS, "seed": seed},
        "versions": versions(), **extra, **scores,
    }


def calibrate(spec: RunSpec) -> list[dict[str, Any]]:
    """The synthetic benchmark's ceiling: the same probe on the true AU intensities of every frame.
    Written as results (source ``ceiling``) so the tables show it beside the methods."""
    results = []
    for name in spec.datasets:
        ds = open_dataset(name, spec)
        if not hasattr(ds, "intensities"):
            raise UserError(f"dataset {name!r} has no true AU intensities; only synthetic datasets can be calibrated")
        scores = probe_dataset(np.asarray(ds.intensities, dtype=np.float32), ds, seed=spec.seed)
        config_hash = hashlib.sha256(f"ceiling|{ds.fingerprint()}|{ssfbench.PROTOCOL_VERSION}".encode()).hexdigest()
        result = result_record(run_id=f"ceiling-{name}-{config_hash[:8]}-seed{spec.seed}", config_hash=config_hash,
                               method="true-intensities", variant="", display_name="Ceiling: true AU intensities",
                               backbone="", source="ceiling", dataset=ds, seed=spec.seed,
                               data_seed=spec.data_seed, image_size=spec.image_size, scores=scores)
        write_result(spec.out / "results", result)
        results.append(result)
    write_leaderboards(spec.out / "results")
    return results


def run(spec: RunSpec) -> list[dict[str, Any]]:
    """Run one method end to end; returns the results written (one per evaluation dataset)."""
    started = time.time()
    method = build_method(spec)
    eval_sets = [open_dataset(name, spec) for name in spec.datasets]
    for ds in eval_sets:
        if not isinstance(ds, LabeledFrames):
            raise UserError(f"dataset {ds.name!r} holds unlabeled videos; it cannot be probed (use it for pretraining)")
    videos = None
    if method.trainable and spec.weights is None:
        videos = open_dataset(spec.pretrain_data, spec)
        if not isinstance(videos, VideoSource):
            raise UserError(f"dataset {spec.pretrain_data!r} is not a video dataset; pretraining needs videos")
    config_hash, variant, run_id = run_identity(spec, method, videos.fingerprint() if videos else None)
    run_dir = spec.out / "runs" / run_id
    meta = {"run_id": run_id, "config_hash": config_hash, "variant": variant, "seed": spec.seed}
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{spec.out}: cannot write the output folder ({exc.strerror})") from None
    method, digest, record = obtain_encoder(spec, method, run_dir, videos, meta)
    pretrain_s = time.time() - started
    results = []
    for ds in eval_sets:
        scores = evaluate(method, digest, ds, spec, run_id)
        result = result_record(
            run_id=run_id, config_hash=config_hash, method=method.name, variant=variant,
            display_name=method.display_name(), backbone=spec.backbone, source="ssfbench", dataset=ds,
            seed=spec.seed, data_seed=spec.data_seed, scores=scores,
            checkpoint=str(run_dir / "best.pt"), checkpoint_sha256=digest,
            method_config=method.config.to_dict(), image_size=spec.image_size,
            pretrain={k: record.get(k) for k in ("pretrain", "selected") if k in record},
            wall_s={"pretrain": round(pretrain_s, 1)},
        )
        write_result(spec.out / "results", result)
        results.append(result)
    write_leaderboards(spec.out / "results")
    return results
