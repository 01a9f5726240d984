"""``ssfbench run``: pretrain (or reuse, or load) an encoder, embed every evaluation dataset into an
HDF5 cache, fit the linear probe on the protocol's folds, write results and leaderboards.

Output layout under ``out`` (default ``ssfbench-out/``)::

    runs/<run_id>/best.pt, best.json, last.pt     checkpoints (+ metadata, + resume state)
    embeddings/<run_id>/<dataset>.h5               embedding caches
    results/runs/<run_id>/<dataset>.json           one result per (run, dataset)
    results/<dataset>.csv                          leaderboards rebuilt from the JSON files

Methods that train on labels (``needs_labels``, the supervised ceiling) keep one encoder per fold:
``runs/<run_id>/folds/<dataset>-<fingerprint[:8]>/<fold>.pt`` and ``embeddings/<run_id>/<dataset>/<fold>.h5``
(the dataset's fingerprint is in the checkpoint path: a fold encoder is never reused for other data).
An ensemble (``ensemble``) owns no encoder: its caches are its members' and its result lists them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import platform
import shutil
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from filelock import FileLock, Timeout

import ssfbench
from ssfbench.api.checkpoint import load_checkpoint, load_weights, save_checkpoint
from ssfbench.api.dataset import AccountsFaces, CountsFaces, Fold, LabeledFrames, TrueIntensities, VideoSource
from ssfbench.api.method import Method
from ssfbench.api.registry import get_dataset, get_method
from ssfbench.errors import UserError
from ssfbench.evaluation.cache import cache_attributes, cached_embeddings, read_cache
from ssfbench.evaluation.embed import (
    constant_embeddings,
    iter_embeddings,
    serve_embedding_shards,
    sharded_embeddings,
)
from ssfbench.evaluation.metrics import NoPositivesWarning, per_label_auc, per_label_f1
from ssfbench.evaluation.probe import PROBE_DEFAULTS, fit_predict
from ssfbench.results.records import SCHEMA, Result, RunOutput
from ssfbench.results.store import summarise_folds, write_leaderboards, write_result
from ssfbench.runtime import distributed
from ssfbench.runtime.fileio import sha256_file
from ssfbench.runtime.layout import (
    CHECKPOINT,
    CHECKPOINT_RECORD,
    RESUME_STATE,
    OutputLayout,
    record_path,
)
from ssfbench.runtime.seeds import BATCHNORM_DRAW
from ssfbench.train.batchnorm import BN_BATCH, BN_FRAMES, reestimate_batchnorm
from ssfbench.train.pretrain import DEFAULT_STEPS, PretrainSettings, pretrain, split_videos

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_SIZE = 64
DEFAULT_EVAL_DATASETS = ("synth-au", "synth-expr")
#: the longest run id (a folder and file-name component; ids up to it are unchanged): a longer slug is
#: cut and marked with RUN_ID_ELLIPSIS, the config hash in the id keeping it unique
MAX_RUN_ID = 150
RUN_ID_ELLIPSIS = "~"
#: how re-estimated BatchNorm statistics are drawn: part of the identity of every run that has them
BATCHNORM_IDENTITY = {"frames": BN_FRAMES, "batch_size": BN_BATCH, "stream": BATCHNORM_DRAW}


@dataclass
class RunSpec:
    """Everything that defines one run; all but ``seed`` and the machinery go into ``config_hash``."""

    method: str
    overrides: dict[str, Any] = field(default_factory=dict)
    backbone: str = "resnet18"
    image_size: int = DEFAULT_IMAGE_SIZE
    pretrained: str | None = None
    weights: Path | None = None
    #: BatchNorm statistics of the trained or loaded encoder: ``checkpoint`` (what training left, or
    #: the loaded file's) or ``data`` (re-estimated on the pretraining videos as every floor's and
    #: step-0 control's are: the control of whether a gain is weights or statistics)
    bn_stats: str = "checkpoint"
    steps: int = DEFAULT_STEPS
    seed: int = 0
    data_seed: int = 0
    pretrain_data: str = "synth-vox"
    datasets: tuple[str, ...] = DEFAULT_EVAL_DATASETS
    roots: dict[str, Path] = field(default_factory=dict)
    #: per-dataset keyword options for ``open`` (e.g. ``{"synth-vox": {"identities": 1000}}``)
    dataset_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    out: Path = Path("ssfbench-out")
    device: str = "auto"
    num_workers: int = 0
    overwrite: str = "only-missing"
    progress: bool = True
    #: continue from the run folder's ``last.pt``; False (``--fresh``) discards its checkpoints first
    resume: bool = True
    #: write ``last.pt`` every this many pretraining steps too (0: epoch ends and every 10 minutes)
    checkpoint_every: int = 0
    #: rows per embedding batch (and per resumable cache block); part of a partial cache's resume key
    embed_batch_size: int = 256
    #: the command line that started the run (recorded in results)
    argv: tuple[str, ...] = ()
    #: ``pretrain``: stop once the encoder is ready; ``embed``: once the caches are written; None: run all
    stop_after: str | None = None
    #: the ``probe`` stage: use the finished checkpoint and complete caches of earlier stages, never
    #: pretrain or embed (a missing one is a :class:`UserError` naming it)
    reuse_only: bool = False
    #: under torchrun: also compare the ranks' parameters every this many steps (0: epoch ends only)
    sync_check_every: int = 0
    #: ``run`` of a pretrained method also scores its step-0 control (:func:`init_control_spec`)
    init_control: bool = True
    #: also log pretraining curves to ``"tensorboard"`` (the CSV curve is always written)
    log: str | None = None
    #: pretraining arithmetic (``--precision``: ``auto``, ``fp32``, ``bf16``); part of the identity unless ``auto``
    precision: str = "auto"
    #: the ``--epochs`` that gave ``steps`` (None: steps were given); recorded, not part of the identity
    epochs: int | None = None
    #: the applied recipe's record (``{"name", "settings", "overrides"}``, :func:`ssfbench.pipeline.recipe.apply`;
    #: its values are already in the other fields); its name is part of the identity
    recipe: dict[str, Any] | None = None


def build_method(spec: RunSpec, num_labels: int | None = None) -> Method:
    """Instantiate the method with its defaults and the spec's overrides (bad keys -> UserError);
    ``num_labels`` sets the label count of a ``needs_labels`` method."""
    cls = get_method(spec.method)
    overrides = dict(spec.overrides) if num_labels is None else {**spec.overrides, "num_labels": num_labels}
    if num_labels is not None and "num_labels" not in {f.name for f in dataclasses.fields(cls.Config)}:
        from ssfbench.train.finetune import with_num_labels

        with_num_labels(spec.method, cls.Config(), num_labels)  # raises the UserError
    try:
        config = cls.Config().replace(**overrides)
    except KeyError as exc:
        known = ", ".join(f.name for f in dataclasses.fields(cls.Config))
        raise UserError(f"method {spec.method!r} has no setting {exc.args[0]!r} (settings: {known})") from None
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad setting for method {spec.method!r}: {exc}") from None
    try:
        method = cls(config, backbone=spec.backbone, image_size=spec.image_size, pretrained=spec.pretrained)
    except ValueError as exc:
        raise UserError(f"method {spec.method!r}: {exc}") from None
    check_input_size(method, spec)
    return method


def check_input_size(method: Method, spec: RunSpec) -> None:
    """One-line :class:`UserError` naming the option when a timm trunk of ``method`` takes only a fixed
    input size (a ViT's patch grid) other than the method's input size."""
    from ssfbench.nn.weights import check_input_size as check_trunk

    size = method.preprocess.input_size
    option = "--image-size" if size == spec.image_size else "--set input_size"
    for module in method.modules():
        if getattr(module, "pretrained_cfg", None) is not None and hasattr(module, "num_features"):
            check_trunk(module, spec.backbone, size, option)


def open_dataset(name: str, spec: RunSpec):
    """Open a registered dataset with the spec's image size, data seed, root and options (checked
    against and cast to the dataset's declared ``OPTIONS``: an unknown one or a bad value is a
    one-line ``UserError``)."""
    cls = get_dataset(name)
    options = cls.resolve_options(spec.dataset_options.get(name, {}), defaults=False, source="--data-option: ")
    try:
        return cls.open(spec.roots.get(name), image_size=spec.image_size, seed=spec.data_seed, **options)
    except (TypeError, ValueError) as exc:
        if not options:
            raise
        raise UserError(f"--data-option: dataset {name!r}: {exc}") from None


def uses_videos(spec: RunSpec, method: Method) -> bool:
    """Whether the run reads the pretraining videos: to pretrain, or to estimate BatchNorm
    statistics (of an untrained floor, ``Method.batchnorm_from_data``, or of loaded weights with
    ``bn_stats="data"``)."""
    if spec.weights is not None:
        return spec.bn_stats == "data"
    if method.needs_labels:
        return False
    return method.trainable or method.batchnorm_from_data()


def init_control_spec(spec: RunSpec, method: Method) -> RunSpec | None:
    """The run that scores ``spec``'s encoder at its own initialisation (``steps=0``: the same seeded
    weights, BatchNorm statistics re-estimated like the floor's), or None when there is none to pair
    with (untrained, loaded or label-trained methods, or a run that is itself at step 0)."""
    if not (method.trainable and uses_videos(spec, method)) or spec.steps == 0 or spec.weights is not None:
        return None
    frozen = frozen_control_spec(spec, method)
    return frozen if frozen is not None else dataclasses.replace(spec, steps=0, bn_stats="checkpoint")


def frozen_control_spec(spec: RunSpec, method: Method) -> RunSpec | None:
    """For a method whose trunk starts from pretrained weights (``--pretrained``): the ``frozen`` row of
    that trunk and those weights (``ssfbench run --method frozen --backbone B --pretrained P``, the
    ImageNet row for ``--pretrained imagenet``), evaluated with ``method``'s preprocessing; it is the
    method's step-0 control (its initialisation, without the untrained projection head). None when the
    method has no pretrained trunk or normalises its input otherwise than the weights do."""
    weights = getattr(method, "pretrained_weights", None)
    if not spec.pretrained or weights is None or spec.method == "frozen":
        return None
    from ssfbench.api.preprocess import Preprocess

    own = method.preprocess
    natural = method.pretrained_preprocess or Preprocess(input_size=spec.image_size)  # the frozen row's own
    if (own.mean, own.std) != (natural.mean, natural.std):
        return None
    overrides: dict[str, Any] = {}
    if own.input_size != natural.input_size:
        overrides["input_size"] = own.input_size
    if own.center_crop != natural.center_crop:
        overrides["crop_pct"] = own.center_crop
    return dataclasses.replace(spec, method="frozen", overrides=overrides, steps=0, bn_stats="checkpoint",
                               init_control=False)


def trained_spec(spec: RunSpec, method: Method) -> RunSpec | None:
    """For ``bn_stats="data"`` on a method this run pretrains: the same run with the statistics
    training left (whose checkpoint this one re-estimates); else None. A combination with no trained
    statistics to replace is one :class:`UserError`."""
    if spec.bn_stats != "data" or spec.weights is not None:
        return None
    if not method.trainable or method.needs_labels or spec.steps == 0:
        why = ("its encoder is untrained (the random floor's statistics: --set bn_stats=data|init)"
               if not method.trainable else "it trains one encoder per fold" if method.needs_labels
               else "a --steps 0 encoder has re-estimated statistics already")
        raise UserError(f"--bn-stats data: nothing to re-estimate for method {method.name!r}: {why}")
    return dataclasses.replace(spec, bn_stats="checkpoint", datasets=(), stop_after="pretrain", init_control=False)


#: variant parts whose name is not the flat setting key a recipe applies (``steps=`` comes from ``epochs``)
_RECIPE_PART_KEYS = {"steps": "epochs", "data": "pretrain_data", "size": "image_size", "init": "pretrained"}


def weights_record(method: Method) -> dict[str, Any]:
    """``{"pretrained_weights": identity}`` for a method on a pretrained trunk (the identity
    :mod:`ssfbench.nn.weights` computed, as its checkpoint records it), else ``{}`` (results unchanged)."""
    weights = getattr(method, "pretrained_weights", None)
    return {"pretrained_weights": weights} if weights else {}


def run_identity(spec: RunSpec, method: Method, pretrain_fingerprint: str | None) -> tuple[str, str, str]:
    """``(config_hash, variant, run_id)``. The variant names the method's own setting plus every
    setting that differs from the harness defaults, so leaderboard rows never mix budgets."""
    defaults = type(method).Config().to_dict()
    config = method.config.to_dict()
    identity = {"method": method.name, "config": config, "backbone": method.backbone, "image_size": spec.image_size,
                "pretrained": spec.pretrained, "protocol_version": ssfbench.PROTOCOL_VERSION}
    if spec.precision != "auto":
        identity["precision"] = spec.precision
    if spec.recipe is not None:
        identity["recipe"] = spec.recipe["name"]
    if getattr(method, "pretrained_weights", None):  # which file: other weights under one name are another run
        identity["pretrained_weights"] = {k: v for k, v in method.pretrained_weights.items() if k != "revision"}
    parts = [method.variant()] if method.variant() else []
    if spec.weights is not None:
        identity["weights_sha256"] = sha256_file(spec.weights)
        parts.append(f"weights={spec.weights.name}")
        if spec.bn_stats == "data":
            identity.update(pretrain_data=spec.pretrain_data, pretrain_fingerprint=pretrain_fingerprint)
            if spec.pretrain_data != "synth-vox":
                parts.append(f"data={spec.pretrain_data}")
            parts += [f"{spec.pretrain_data}.{k}={v}"
                      for k, v in sorted(spec.dataset_options.get(spec.pretrain_data, {}).items())]
    elif method.needs_labels:
        identity.update(steps=spec.steps, trained_on="each fold's training labels")
        if spec.steps != DEFAULT_STEPS:
            parts.append(f"steps={spec.steps}")
    elif uses_videos(spec, method):
        identity.update(pretrain_data=spec.pretrain_data, pretrain_fingerprint=pretrain_fingerprint)
        if method.trainable:
            identity["steps"] = spec.steps
            if spec.steps != DEFAULT_STEPS:
                parts.append(f"steps={spec.steps}")
        if not method.trainable or spec.steps == 0:
            identity["batchnorm"] = BATCHNORM_IDENTITY
        if spec.pretrain_data != "synth-vox":
            parts.append(f"data={spec.pretrain_data}")
        parts += [f"{spec.pretrain_data}.{k}={v}" for k, v in sorted(spec.dataset_options.get(spec.pretrain_data, {}).items())]
    if spec.bn_stats == "data":
        identity["batchnorm"] = BATCHNORM_IDENTITY
        parts.append("bn=data")
    variant_key = method.variant().split("=")[0] if method.variant() else None
    parts += [f"{k}={config[k]}" for k in sorted(config)
              if config[k] != defaults.get(k) and k != variant_key and k not in method.identity_settings]
    if spec.image_size != DEFAULT_IMAGE_SIZE:
        parts.append(f"size={spec.image_size}")
    if spec.pretrained:
        parts.append(f"init={Path(spec.pretrained).name}")
    if spec.precision != "auto":
        parts.append(f"precision={spec.precision}")
    if spec.recipe is not None:  # the recipe's own values are named by the recipe, overrides stay listed
        parts = [p for p in parts if _RECIPE_PART_KEYS.get(p.split("=")[0], p.split("=")[0]) not in spec.recipe["settings"]
                 or p == method.variant()]
        parts.insert(1 if method.variant() else 0, f"recipe={spec.recipe['name']}")
    config_hash = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    variant = " ".join(parts)
    slug = "-".join(p.replace("=", "") for p in parts) or "default"
    run_id = f"{method.name}-{slug}-{method.backbone}-{config_hash[:8]}-seed{spec.seed}"
    keep = len(slug)
    while len(run_id.encode()) > MAX_RUN_ID and keep > 0:  # a folder name (<= 255 bytes); the hash in it
        keep -= 1                                          # already tells configurations apart
        run_id = f"{method.name}-{slug[:keep]}{RUN_ID_ELLIPSIS}-{method.backbone}-{config_hash[:8]}-seed{spec.seed}"
    return config_hash, variant, run_id


def obtain_encoder(spec: RunSpec, method: Method, run_dir: Path, videos: VideoSource | None,
                   meta: dict[str, Any], trained: Path | None = None) -> tuple[Method, str, dict[str, Any]]:
    """The trained (or loaded, or untrained) method, its checkpoint sha256 and its metadata record.
    A completed checkpoint in ``run_dir`` is reused; an interrupted one is resumed."""
    best = OutputLayout(spec.out).checkpoint(run_dir.name)
    record = record_path(best)
    distributed.barrier()
    if record.is_file() and json.loads(record.read_text()).get("completed"):
        return verified_checkpoint(best)
    if spec.reuse_only:
        raise UserError(f"{best}: no finished encoder for this run; run `ssfbench pretrain` (or `embed`) "
                        "with the same options first")
    distributed.barrier()  # every rank has looked before rank 0 writes
    with one_process_per_run(run_dir):
        if record.is_file() and json.loads(record.read_text()).get("completed"):
            return verified_checkpoint(best)  # another process finished it while this one waited
        _make_encoder(spec, method, best, videos, meta, trained)
    distributed.barrier()
    return verified_checkpoint(best)


@contextlib.contextmanager
def one_process_per_run(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir/.lock`` while the encoder of a run is made: a second identical run waits (and
    says so) instead of training the same encoder twice, then reuses the finished checkpoint.
    Under torchrun the ranks already share one job: no lock."""
    if distributed.world().distributed:
        yield
        return
    lock = FileLock(str(run_dir / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.warning("%s: another ssfbench process is making this run's encoder; waiting for it, then its "
                       "checkpoint is reused", run_dir.name)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _make_encoder(spec: RunSpec, method: Method, best: Path, videos: VideoSource | None,
                  meta: dict[str, Any], trained: Path | None = None) -> None:
    """Write the run's checkpoint at ``best``: loaded weights (``spec.weights``, or the ``trained``
    checkpoint of the same run with training's statistics), an untrained floor, or pretraining."""
    torch.manual_seed(spec.seed)
    main = distributed.world().is_main
    if spec.weights is not None or trained is not None:
        load_weights(method, spec.weights or trained)
        if main:
            if spec.weights is not None:
                layout = "released (the authors' layout and preprocessing)" if method.weights_preprocess else "own"
                meta = {**meta, "weights": str(spec.weights), "weights_layout": layout}
            else:
                record = json.loads(record_path(trained).read_text())
                meta = {**meta, "trained": str(trained), "trained_sha256": record["sha256"],
                        **{k: record[k] for k in ("pretrain", "selected") if k in record}}
            if spec.bn_stats == "data":
                meta = {**meta, "batchnorm": _reestimate(spec, method, videos)}
            save_checkpoint(method, best, {**meta, "completed": True})
    elif not method.trainable:
        method = build_method(spec)  # weights drawn from the seed just set
        if main:
            if videos is not None and method.batchnorm_from_data():
                meta = {**meta, "batchnorm": _reestimate(spec, method, videos)}
            save_checkpoint(method, best, {**meta, "completed": True})
    else:
        settings = PretrainSettings(steps=spec.steps, seed=spec.seed, device=spec.device,
                                    num_workers=spec.num_workers, progress=spec.progress,
                                    checkpoint_every=spec.checkpoint_every, resume=spec.resume,
                                    sync_check_every=spec.sync_check_every, log=spec.log,
                                    precision=spec.precision)
        pretrain(method, videos, settings, best.parent, meta)


def _reestimate(spec: RunSpec, method: Method, videos: VideoSource | None) -> dict[str, Any] | None:
    """Re-estimate ``method``'s BatchNorm statistics on the seed's pretraining training split, as
    every floor and step-0 control of that seed has them."""
    assert videos is not None
    train_ids = split_videos(len(videos), PretrainSettings.val_fraction, spec.seed)[0]
    return reestimate_batchnorm(method, videos, train_ids, seed=spec.seed)


def verified_checkpoint(path: Path) -> tuple[Method, str, dict[str, Any]]:
    """The method saved at ``path``, its sha256 and its record (``best.json``), after checking that
    the file is the one the record was written for: a checkpoint replaced or changed since is one
    :class:`UserError` naming both digests, never silently used."""
    record_file = record_path(path)
    try:
        record = json.loads(record_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{record_file}: unreadable checkpoint record ({type(exc).__name__}); rerun with --fresh") from None
    method, digest = load_checkpoint(path)
    if digest != record.get("sha256"):
        raise UserError(f"{path}: sha256 {digest[:16]}... differs from the {str(record.get('sha256'))[:16]}... that "
                        f"{record_file.name} recorded: the checkpoint was replaced or changed; rerun with --fresh "
                        "to train it again")
    return method, digest, record


def embeddings(method: Method, digest: str, dataset: LabeledFrames, spec: RunSpec,
               cache_path: Path, collective: bool = True) -> np.ndarray | None:
    """float32 ``[N, D]`` embeddings of every row of ``dataset`` by the frozen ``method`` (checkpoint
    sha256 ``digest``), read from the HDF5 cache at ``cache_path`` or computed and written there
    block by block (an interrupted extraction continues where it stopped). Under torchrun (and
    ``collective``) every rank computes a share of the batches and rank 0 writes the one cache and
    gets the embeddings; the other ranks get None. ``collective=False`` works on this rank alone."""
    from ssfbench.runtime.device import resolve_device

    attrs = cache_attributes(method, digest, dataset)
    device = str(resolve_device(spec.device))
    options = {"batch_size": spec.embed_batch_size, "device": device, "num_workers": spec.num_workers}
    sharded = collective and distributed.world().distributed
    if spec.reuse_only:
        if sharded and not distributed.world().is_main:
            return None
        try:
            return read_cache(cache_path, attrs, expected_keys=dataset.keys)[0]
        except UserError as exc:
            raise UserError(f"{exc}; run `ssfbench embed` with the same options first") from None
    if sharded and not distributed.world().is_main:
        serve_embedding_shards(method, method.preprocess, dataset, **options)
        return None

    def compute_from(start: int):
        rows = sharded_embeddings if sharded else iter_embeddings
        return rows(method, method.preprocess, dataset, progress=spec.progress, start=start, **options)

    x = cached_embeddings(cache_path, attrs, dataset.keys, overwrite=spec.overwrite, compute_from=compute_from,
                          resume_key={"embed_batch_size": spec.embed_batch_size, "device": device})
    if sharded:
        distributed.broadcast_object(None)  # releases the ranks serving shards
    return x


def evaluate(method: Method, digest: str, dataset: LabeledFrames, spec: RunSpec, run_id: str) -> dict[str, Any]:
    """Embed ``dataset`` (through the cache) and probe every fold; returns per-fold per-label scores."""
    cache_path = OutputLayout(spec.out).cache(run_id, dataset.name)
    started = time.time()
    x = embeddings(method, digest, dataset, spec, cache_path)
    embed_s = time.time() - started
    if x is not None and x.shape[1] != method.embed_dim:
        raise UserError(f"{cache_path}: embeddings of width {x.shape[1]}, but method {method.name!r} declares "
                        f"embed_dim {method.embed_dim}; fix the method's embed or embed_dim")
    if x is not None and constant_embeddings(x):
        logger.warning("warning: run %s: %s: every image has the same embedding (zero variance over %d rows in %s); "
                       "its scores are the probe's constant guess, not a representation's", run_id, dataset.name,
                       len(x), cache_path)
    if x is None or spec.stop_after == "embed":
        return {"cache": str(cache_path), "timing": {"embed_s": round(embed_s, 2)}}
    started = time.time()
    scores = probe_dataset(x, dataset, seed=spec.seed, device=probe_device(spec))
    return {**scores, "n_rows": len(dataset), "embed_dim": int(x.shape[1]), "cache": str(cache_path),
            "preprocess": method.preprocess.to_dict(),
            "timing": {"embed_s": round(embed_s, 2), "probe_s": round(time.time() - started, 2)}}


def evaluate_per_fold(spec: RunSpec, run_id: str, dataset: LabeledFrames, meta: dict[str, Any]) -> dict[str, Any]:
    """For a ``needs_labels`` method: per fold, train a fresh copy (same seeded init) on the fold's
    training rows, freeze it, embed the dataset and fit the probe on that fold. Checkpoints and
    caches are kept per fold (and per dataset version) and reused when complete; returns the scores
    like ``evaluate``."""
    from ssfbench.train.finetune import FinetuneSettings, finetune

    folds, checkpoints, digests, caches = dataset.folds(), {}, {}, {}
    settings = FinetuneSettings(steps=spec.steps, seed=spec.seed, device=spec.device, progress=spec.progress)
    layout = OutputLayout(spec.out)
    paths = {fold.name: layout.fold_checkpoint(run_id, dataset.name, dataset.fingerprint(), fold.name) for fold in folds}
    started = time.time()
    for fold in folds:
        path = paths[fold.name]
        record = record_path(path)
        if not (record.is_file() and json.loads(record.read_text()).get("completed")):
            torch.manual_seed(spec.seed)
            method = build_method(spec, num_labels=len(dataset.label_names))
            finetune(method, dataset, fold.train, settings, path, {**meta, "fold": fold.name})
        checkpoints[fold.name], digests[fold.name], _ = verified_checkpoint(path)
        caches[fold.name] = layout.fold_cache(run_id, dataset.name, fold.name)
    train_s = time.time() - started

    def features(fold: Fold) -> np.ndarray:
        return embeddings(checkpoints[fold.name], digests[fold.name], dataset, spec, caches[fold.name])

    started = time.time()
    scores = probe_dataset(features, dataset, seed=spec.seed)
    dim = checkpoints[folds[0].name].embed_dim if folds else 0
    return {**scores, "n_rows": len(dataset), "embed_dim": int(dim),
            "cache": {f: str(p) for f, p in caches.items()},
            "checkpoint": {f: str(paths[f]) for f in checkpoints},
            "checkpoint_sha256": digests,
            "timing": {"train_s": round(train_s, 2), "embed_probe_s": round(time.time() - started, 2)}}


def probe_device(spec: RunSpec) -> str:
    """Where the probe fits: the run's device (the embeddings go there whole, full batch)."""
    from ssfbench.runtime.device import resolve_device

    return str(resolve_device(spec.device))


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


def discard_checkpoints(run_dir: Path) -> None:
    """``--fresh``: remove the run folder's checkpoints and resume state (caches stay: they are
    keyed by the checkpoint's sha256, so they are reused only if retraining gives the same weights)."""
    for name in (CHECKPOINT, CHECKPOINT_RECORD, RESUME_STATE):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "folds", ignore_errors=True)


@functools.lru_cache(maxsize=1)
def git_revision() -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the ssfbench source checkout, or None (not a git checkout, no git)."""
    root = Path(ssfbench.__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(status.strip())}


def rerun_info(spec: RunSpec) -> dict[str, Any]:
    """What a rerun needs beyond the result's own fields: the command line and the source revision."""
    return {"argv": list(spec.argv), "git": git_revision()}


def versions() -> dict[str, str]:
    """Library versions a rerun needs to match."""
    import sklearn

    return {"ssfbench": ssfbench.__version__, "torch": torch.__version__, "timm": timm.__version__,
            "numpy": np.__version__, "sklearn": sklearn.__version__, "python": platform.python_version()}


@functools.lru_cache(maxsize=1)
def cpu_kernels() -> dict[str, Any]:
    """The SIMD kernels torch and numpy dispatch to on this CPU. Like ``torch_threads``, they
    decide the last bits of float results: numpy's AVX-512 kernels round float32 work differently
    from its AVX2 ones, so a checkpoint's digest matches across machines only with the same numpy
    kernels (``NPY_DISABLE_CPU_FEATURES`` pins them; results/README.md says how)."""
    try:  # numpy keeps its dispatch table private; np.show_runtime() prints the same
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
        numpy_kernels = [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]
    except ImportError:
        numpy_kernels = None
    return {"torch": torch.backends.cpu.get_cpu_capability(), "numpy": numpy_kernels}


def result_record(*, run_id: str, config_hash: str, method: str, variant: str, display_name: str, backbone: str,
                  source: str, dataset: LabeledFrames, seed: int, scores: dict[str, Any], role: str,
                  faces_folder: Path | None = None, **extra: Any) -> Result:
    """One result (schema :data:`~ssfbench.results.records.SCHEMA`): identity, role, provenance, how the
    dataset's faces were prepared (``face_preprocessing``; ``faces_found`` counts how the faces read
    in this process were found), the CPU threads torch used and the SIMD kernels of this CPU
    (``torch_threads``, ``cpu_kernels``: checkpoint digests depend on both), scores, extras;
    validated as any results file is when read. For a real dataset ``face_preprocessing`` also holds
    the share of frames prepared the paper's way (:func:`face_record`; the frames that fell back are
    listed in ``faces_folder``, the run folder)."""
    scores = dict(scores)
    faces, found = face_record(dataset, faces_folder)
    device = scores.pop("probe_device", PROBE_DEFAULTS["device"])
    record = {
        "schema": SCHEMA, "protocol_version": ssfbench.PROTOCOL_VERSION,
        "ssfbench_version": ssfbench.__version__, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_id": run_id, "config_hash": config_hash, "method": method, "variant": variant,
        "display_name": display_name, "backbone": backbone, "source": source, "role": role, "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint(), "seed": seed,
        "face_preprocessing": faces, **({"faces_found": found} if found else {}),
        "probe": {**PROBE_DEFAULTS, "seed": seed, "device": device},
        "versions": versions(), "torch_threads": torch.get_num_threads(),
        "cpu_kernels": dict(cpu_kernels()), **extra, **scores,
    }
    return Result.from_json(record, where=f"result of {run_id} on {dataset.name}")


def face_record(dataset: Any, folder: Path | None = None) -> tuple[dict[str, Any], dict[str, int]]:
    """``(face_preprocessing, faces_found)`` of a result on ``dataset``: how faces are cut and, for a
    real dataset (an adapter, or a prepared store, which counted every row), how every frame's face
    was prepared (``faces_found``) and the share of them prepared the paper's way
    (:func:`ssfbench.results.store.face_share`; ``paper`` is false when any frame fell back, and
    ``fallback_list`` names the list of those frames written into ``folder``)."""
    from ssfbench.results.store import OFF_PROTOCOL_THRESHOLD, face_share

    record = dict(getattr(dataset, "preprocessing", dict)())
    if isinstance(dataset, AccountsFaces):
        found = dataset.face_account(folder)
    else:
        found = dict(record.pop("faces_found", None) or (dataset.faces_found if isinstance(dataset, CountsFaces) else {}))
    if not found or "paper" not in record:
        return record, found
    share = face_share(found)
    record.update(share)
    if record["paper"] and 100.0 - (share["paper_percent"] or 0.0) > OFF_PROTOCOL_THRESHOLD:
        record["paper"] = False
    if share["fallback"] and folder is not None and isinstance(dataset, AccountsFaces):
        record["fallback_list"] = str(dataset.fallback_list(Path(folder)))
    return record, found


def calibrate(spec: RunSpec) -> list[Result]:
    """The synthetic benchmark's ceiling: the same probe on the true AU intensities of every frame.
    Written as results (source and role ``ceiling``) so the tables show it beside the methods."""
    results = []
    layout = OutputLayout(spec.out)
    for name in spec.datasets:
        ds = open_dataset(name, spec)
        if not isinstance(ds, TrueIntensities):
            raise UserError(f"dataset {name!r} has no true AU intensities; only synthetic datasets can be calibrated")
        check_labels(ds)
        scores = probe_dataset(np.asarray(ds.intensities, dtype=np.float32), ds, seed=spec.seed)
        config_hash = hashlib.sha256(f"ceiling|{ds.fingerprint()}|{ssfbench.PROTOCOL_VERSION}".encode()).hexdigest()
        result = result_record(run_id=f"ceiling-{name}-{config_hash[:8]}-seed{spec.seed}", config_hash=config_hash,
                               method="true-intensities", variant="", display_name="Ceiling: true AU intensities",
                               backbone="", source="ceiling", role="ceiling", dataset=ds, seed=spec.seed,
                               data_seed=spec.data_seed, image_size=spec.image_size, scores=scores,
                               rerun=rerun_info(spec))
        write_result(layout.results.root, result)
        results.append(result)
    write_leaderboards(layout.results.root)
    return results


def run(spec: RunSpec) -> RunOutput:
    """Run one method end to end (or up to ``spec.stop_after``); returns what it produced."""
    started = time.time()
    world = distributed.setup(spec.device)
    torch.manual_seed(spec.seed)  # initial weights from the seed: torch seeds its default generator randomly
    method = build_method(spec)
    eval_sets = [open_dataset(name, spec) for name in spec.datasets]
    for ds in eval_sets:
        if not isinstance(ds, LabeledFrames):
            raise UserError(f"dataset {ds.name!r} holds unlabeled videos; it cannot be probed (use it for pretraining)")
        check_labels(ds)
    if method.weights_format is not None and spec.weights is None:
        raise UserError(f"method {method.name!r} evaluates a given file: give it with --weights FILE "
                        f"({method.weights_format})")
    if method.weights_format is not None and spec.bn_stats == "data":
        raise UserError(f"--bn-stats data: method {method.name!r} evaluates its file as saved, BatchNorm "
                        "statistics included; nothing is re-estimated")
    if method.needs_labels and spec.weights is not None:
        raise UserError(f"--weights: method {method.name!r} trains on each fold's labels; give its backbone "
                        "init with --pretrained (imagenet or a state-dict path) instead")
    videos = None
    if uses_videos(spec, method):
        videos = open_dataset(spec.pretrain_data, spec)
        if not isinstance(videos, VideoSource):
            raise UserError(f"dataset {spec.pretrain_data!r} is not a video dataset; pretraining needs videos")
    config_hash, variant, run_id = run_identity(spec, method, videos.fingerprint() if videos else None)
    layout = OutputLayout(spec.out)
    run_dir = layout.run_dir(run_id)
    meta = {"run_id": run_id, "config_hash": config_hash, "variant": variant, "seed": spec.seed}
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{spec.out}: cannot write the output folder ({exc.strerror})") from None
    if not spec.resume and world.is_main:
        discard_checkpoints(run_dir)
    identity = {"run_id": run_id, "config_hash": config_hash, "variant": variant,
                "settings": variant_settings(variant, method)}
    if method.needs_labels:
        if spec.stop_after or spec.reuse_only:
            raise UserError(f"method {method.name!r} trains one encoder per fold on the labels; it has no "
                            "separate pretrain, embed and probe stages: use `ssfbench run`")
        if world.distributed:
            raise UserError(f"method {method.name!r} fine-tunes one encoder per fold in one process; "
                            "run it without torchrun")
        return _run_per_fold(spec, method, eval_sets, identity, meta)
    base = trained_spec(spec, method)
    trained = run(base).checkpoint if base is not None else None  # training's statistics, to re-estimate
    control = init_control_spec(spec, method)
    init_control, control_output = None, None
    if control is not None:
        control_method = method if control.method == spec.method else build_method(control)
        init_control = run_identity(control, control_method, videos.fingerprint())[2]
        if spec.init_control and spec.stop_after is None and not spec.reuse_only:
            control_output = run(control)  # the paired control first: this encoder at its own initialisation
    method, digest, record = obtain_encoder(spec, method, run_dir, videos, meta, trained)
    pretrain_s = time.time() - started
    checkpoint = layout.checkpoint(run_id)
    output = RunOutput(run_id=run_id, checkpoint=checkpoint, checkpoint_sha256=digest, control=control_output)
    if spec.stop_after == "pretrain":
        return output
    if eval_sets and not spec.reuse_only:
        check_embed_width(method, eval_sets[0])
    for ds in eval_sets:
        scores = evaluate(method, digest, ds, spec, run_id)
        output.caches[ds.name] = Path(scores["cache"])
        if spec.stop_after == "embed" or not world.is_main:
            continue
        result = result_record(
            run_id=run_id, config_hash=config_hash, method=method.name, variant=variant,
            display_name=method.display_name(), backbone=method.backbone, source="ssfbench", role=method.role,
            dataset=ds, seed=spec.seed, data_seed=spec.data_seed, scores=scores,
            checkpoint=str(checkpoint), checkpoint_sha256=digest, variant_settings=identity["settings"],
            method_config=method.config.to_dict(), image_size=spec.image_size,
            pretrain={k: record.get(k) for k in ("pretrain", "selected", "batchnorm") if k in record},
            init_control=init_control, wall_s={"pretrain": round(pretrain_s, 1)}, rerun=rerun_info(spec),
            dataset_options=spec.dataset_options, faces_folder=run_dir, **recipe_extra(spec, method, record),
            **weights_record(method),
        )
        write_result(layout.results.root, result)
        output.results.append(result)
    if world.is_main and spec.stop_after is None:
        write_leaderboards(layout.results.root)
    return output


def recipe_extra(spec: RunSpec, method: Method, record: dict[str, Any]) -> dict[str, Any]:
    """``{"recipe": ...}`` (:func:`ssfbench.pipeline.recipe.result_record`) for a result whose encoder ssfbench
    pretrained here (a trainable method, steps > 0, not ``--weights``, not trained on labels), else
    ``{}``. The precision is the one pretraining recorded (older checkpoints: resolved for ``spec.device``)."""
    if not method.trainable or method.needs_labels or spec.weights is not None or spec.steps == 0:
        return {}
    from ssfbench.pipeline import recipe
    from ssfbench.runtime.device import resolve_device, resolved_precision

    precision = (record.get("pretrain") or {}).get("precision") or resolved_precision(resolve_device(spec.device),
                                                                                     spec.precision)
    settings = recipe.pretraining_settings(
        method=method.name, config=dataclasses.asdict(method.config), backbone=spec.backbone,
        pretrained=spec.pretrained, pretrain_data=spec.pretrain_data, image_size=spec.image_size, steps=spec.steps,
        epochs=spec.epochs, precision=precision)
    return {"recipe": recipe.result_record(spec.recipe, settings)}


@torch.no_grad()
def check_embed_width(method: Method, dataset: LabeledFrames) -> None:
    """One line (:class:`UserError`) naming the method when its ``embed`` does not return one row of
    ``embed_dim`` values per image (checked on two frames before anything is embedded or cached)."""
    from ssfbench.api.preprocess import stack_resized

    images = stack_resized(dataset.read_images([0, min(1, len(dataset) - 1)]), method.preprocess.input_size)
    was_training = method.training
    out = method.eval().embed(method.preprocess(torch.from_numpy(images)))
    method.train(was_training)
    if tuple(out.shape) != (len(images), method.embed_dim):
        raise UserError(f"method {method.name!r}: embed returned shape {tuple(out.shape)} for {len(images)} images, "
                        f"expected ({len(images)}, {method.embed_dim}) (one row per image, embed_dim wide); fix the "
                        "method's embed or embed_dim")


def variant_settings(variant: str, method: Method) -> list[str]:
    """The parts of a run's ``variant`` other than the method's own setting (``method.variant()``,
    which :func:`run_identity` puts first): budgets, data, non-default settings."""
    parts = variant.split()
    own = method.variant().split()
    return parts[len(own):] if own and parts[:len(own)] == own else parts


def _run_per_fold(spec: RunSpec, method: Method, eval_sets: list[LabeledFrames], identity: dict[str, Any],
                  meta: dict[str, Any]) -> RunOutput:
    """``run`` for a ``needs_labels`` method: one encoder per (dataset, fold), one result per dataset."""
    layout = OutputLayout(spec.out)
    run_id = identity["run_id"]
    output = RunOutput(run_id=run_id)
    for ds in eval_sets:
        scores = evaluate_per_fold(spec, run_id, ds, meta)
        result = result_record(
            run_id=run_id, config_hash=identity["config_hash"], method=method.name, variant=identity["variant"],
            display_name=method.display_name(), backbone=spec.backbone, source="ssfbench", role=method.role,
            dataset=ds, seed=spec.seed, data_seed=spec.data_seed, scores=scores,
            variant_settings=identity["settings"], method_config=method.config.to_dict(), image_size=spec.image_size,
            trained_on_labels={"steps_per_fold": spec.steps, "folds": list(scores["scores_per_fold"])},
            rerun=rerun_info(spec), dataset_options=spec.dataset_options, faces_folder=layout.run_dir(run_id),
        )
        write_result(layout.results.root, result)
        output.results.append(result)
    write_leaderboards(layout.results.root)
    return output


def ensemble(members: list[RunOutput], spec: RunSpec) -> list[Result]:
    """The ensemble row of several finished runs that differ only in the method's ensemble axis
    (``Method.ensemble_axis``; the paper's "Ranking Ensemble" over k): per dataset, the concatenation
    of the members' cached embeddings (in member order) through the same probe. ``spec`` gives the
    output folder, device, seed and cache policy. Writes and returns one result per dataset,
    identified by a config hash derived from the members' and listing their run ids."""
    if len(members) < 2:
        raise UserError(f"an ensemble needs at least 2 member runs, got {len(members)}")
    by_dataset: dict[str, list[Result]] = {}
    for member in members:
        if member.checkpoint is None:
            raise UserError(f"ensemble: run {member.run_id} keeps one encoder per fold; it cannot be ensembled")
        for r in member.results:
            by_dataset.setdefault(r.dataset, []).append(r)
    layout = OutputLayout(spec.out)
    out = []
    for name, rows in by_dataset.items():
        if len(rows) != len(members):
            raise UserError(f"ensemble: dataset {name!r} was evaluated by {len(rows)} of the {len(members)} members")
        ds = open_dataset(name, dataclasses.replace(spec, image_size=rows[0]["image_size"],
                                                    data_seed=rows[0]["data_seed"]))
        started = time.time()
        parts = []
        for r in rows:
            method, digest = load_checkpoint(Path(r["checkpoint"]))
            if digest != r["checkpoint_sha256"]:
                raise UserError(f"{r['checkpoint']}: checkpoint changed since run {r.run_id} wrote its result; rerun it")
            parts.append(embeddings(method, digest, ds, spec, Path(r["cache"]), collective=False))
        axis = get_method(rows[0].method).ensemble_axis
        if axis is None:
            raise UserError(f"ensemble: method {rows[0].method!r} declares no ensemble axis")
        x = np.concatenate(parts, axis=1)
        embed_s = time.time() - started
        started = time.time()
        scores = probe_dataset(x, ds, seed=rows[0].seed, device=probe_device(spec))
        result = _ensemble_record(rows, axis, ds, scores, x.shape[1],
                                  {"embed_s": round(embed_s, 2), "probe_s": round(time.time() - started, 2)},
                                  rerun=rerun_info(spec), faces_folder=layout.run_dir(rows[0].run_id))
        write_result(layout.results.root, result)
        out.append(result)
    write_leaderboards(layout.results.root)
    return out


def _ensemble_record(rows: list[Result], axis: str, ds: LabeledFrames, scores: dict[str, Any], dim: int,
                     timing: dict[str, float], **extra: Any) -> Result:
    """The result of an ensemble of the member results ``rows`` (one dataset) along ``axis``."""
    values = [r["method_config"][axis] for r in rows]
    first = rows[0]
    variant = " ".join([f"{axis}=" + "+".join(str(v) for v in values), *first.get("variant_settings", [])])
    member_hashes = [r.config_hash for r in rows]
    config_hash = hashlib.sha256(json.dumps({"ensemble": member_hashes}).encode()).hexdigest()
    base_name = get_method(first.method).ensemble_display_name()
    slug = "-".join(p.replace("=", "").replace("+", "_") for p in variant.split())
    run_id = f"{first.method}-ensemble-{slug}-{first.backbone}-{config_hash[:8]}-seed{first.seed}"
    return result_record(
        run_id=run_id, config_hash=config_hash, method=first.method, variant=variant,
        display_name=base_name, backbone=first.backbone, source="ssfbench", role=first.role,
        dataset=ds, seed=first.seed, data_seed=first["data_seed"], image_size=first["image_size"], scores=scores,
        ensemble={"members": [r.run_id for r in rows], "member_config_hashes": member_hashes,
                  "member_checkpoint_sha256": [r["checkpoint_sha256"] for r in rows],
                  "caches": [r["cache"] for r in rows], axis: values},
        variant_settings=first.get("variant_settings", []), n_rows=len(ds), embed_dim=int(dim), timing=timing,
        **({"recipe": first["recipe"]} if first.get("recipe") is not None else {}), **extra,
    )
