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

What a run is and its id are :mod:`ssfbench.pipeline.spec`; what its results record beside the scores,
:mod:`ssfbench.pipeline.provenance`; the probe over a dataset's folds, :mod:`ssfbench.evaluation.protocol`;
the ensemble and the synthetic ceiling, :mod:`ssfbench.pipeline.ensemble`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout

from ssfbench.api.checkpoint import load_checkpoint, load_weights, save_checkpoint
from ssfbench.api.dataset import Fold, LabeledFrames, VideoSource
from ssfbench.api.method import Method
from ssfbench.errors import UserError
from ssfbench.evaluation.cache import cache_attributes, cached_embeddings, read_cache
from ssfbench.evaluation.embed import (
    constant_embeddings,
    iter_embeddings,
    serve_embedding_shards,
    sharded_embeddings,
)
from ssfbench.evaluation.protocol import check_labels, probe_dataset
from ssfbench.pipeline.provenance import recipe_extra, rerun_info, result_record, weights_record
from ssfbench.pipeline.spec import (
    RunSpec,
    build_method,
    init_control_spec,
    open_dataset,
    run_identity,
    trained_spec,
    uses_videos,
    variant_settings,
)
from ssfbench.results.records import RunOutput
from ssfbench.results.store import write_leaderboards, write_result
from ssfbench.runtime import distributed
from ssfbench.runtime.layout import (
    CHECKPOINT,
    CHECKPOINT_RECORD,
    RESUME_STATE,
    OutputLayout,
    record_path,
)
from ssfbench.train.batchnorm import reestimate_batchnorm
from ssfbench.train.pretrain import PretrainSettings, pretrain
from ssfbench.train.windows import split_videos

logger = logging.getLogger(__name__)

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


def discard_checkpoints(run_dir: Path) -> None:
    """``--fresh``: remove the run folder's checkpoints and resume state (caches stay: they are
    keyed by the checkpoint's sha256, so they are reused only if retraining gives the same weights)."""
    for name in (CHECKPOINT, CHECKPOINT_RECORD, RESUME_STATE):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "folds", ignore_errors=True)


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


