"""The pretraining loop every method shares: windows of frames from unlabeled videos (the stream and
the 80/20 video-level split are :mod:`ssfbench.train.windows`), validation each epoch,
best-checkpoint selection (or the last epoch's: ``select=last``), resumable checkpoints.

Resume: ``last.pt`` in the run folder holds everything the loop carries from step to step (model,
optimizer, the :class:`LoopState` -- step, history, best record -- as a plain dict, the losses of the
unfinished epoch, and the torch / CUDA / numpy / python RNG states). It is written atomically at every epoch end, every
``checkpoint_every`` steps and at least every ``checkpoint_minutes`` of wall time; writing it never
touches an RNG, so how often it is written does not change the numbers. A run killed at any point
and resumed ends with the same ``best.pt`` weights as one that never stopped (bitwise on CPU).
There is no learning-rate scheduler; the loop has no other state.

Under ``torchrun`` (see :mod:`ssfbench.runtime.distributed`) every rank reads its own share of each
step's windows (``windows(step)[rank::world]``: the global batch and the stream are those of a
single-process run, what ``DistributedSampler`` does for a map-style dataset), the loss runs
through ``DistributedDataParallel`` (gradients averaged, BatchNorm buffers broadcast from rank 0),
and rank 0 alone validates, logs and writes checkpoints. At every epoch end (and every
``sync_check_every`` steps) the ranks compare digests of their parameters and stop with an error if
they ever differ; the history records the check.

At ``steps = 0`` the checkpoint is the method's initialisation with its BatchNorm statistics
re-estimated on the training videos (:mod:`ssfbench.train.batchnorm`): the paired control of every
trained run, evaluated like the ``random`` floor.

:func:`pretrain` runs named steps (:func:`_set_up`, :func:`_start_or_resume`, :func:`_train_step`,
:func:`_end_epoch`, :func:`_finish`); what it shares with label training and the benchmarks (the
optimiser, crop jitter, one optimisation step, RNG states) is in :mod:`ssfbench.train.steps`.

The curve (:mod:`ssfbench.train.curves`): every step's loss and learning rate (``LoopState.steps``) and the
epoch records are written as ``curve.csv`` beside ``best.json`` whenever ``last.pt`` is (just before
it, so a resumed run rewrites the same rows and continues), and at the end; with ``log="tensorboard"``
also as TensorBoard events under ``tb/``.

Each epoch's record carries ``train_frames_per_s``: frames through the whole training path (data
loading, device copy, preprocessing, jitter, forward, backward, optimiser step; validation and
checkpoint writes excluded) per second of wall time, summed over ranks; ``model_frames_per_s``,
the same frames over the time of the steps alone (the loop's wait for its next batch left out: the
model's rate when data is free, measured for nothing as the run goes); ``data_wait_fraction``; and
``bottleneck`` (``data`` when the loop waited for batches more than 10 % of the time, else
``model``). The last epoch's are logged at the end; best.json and the result JSON carry them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ssfbench.api.checkpoint import save_checkpoint, torch_save_stable
from ssfbench.api.dataset import VideoSource
from ssfbench.api.method import Method
from ssfbench.errors import UserError
from ssfbench.runtime import distributed
from ssfbench.runtime.device import autocast, resolve_device, resolved_precision
from ssfbench.runtime.feeding import bottleneck
from ssfbench.runtime.fileio import atomic_write_bytes, atomic_write_json
from ssfbench.runtime.layout import CHECKPOINT, RESUME_STATE, record_path
from ssfbench.runtime.prefetch import prefetched
from ssfbench.train.batchnorm import reestimate_batchnorm
from ssfbench.train.curves import CurveLog, epoch_row
from ssfbench.train.steps import (
    divergence_message,
    jitter,
    jitter_generator,
    make_optimizer,
    rng_states,
    set_rng_states,
    training_step,
)
from ssfbench.train.windows import (
    VALIDATION_FRACTION,
    WindowBatches,
    model_input,
    split_videos,
    validation_crops,
    validation_windows,
)

logger = logging.getLogger(__name__)


#: The default budget (the synthetic benchmark's): pretraining and fine-tuning steps when none are given.
DEFAULT_STEPS = 300


@dataclass
class PretrainSettings:
    """Budget and machinery of one pretraining run (the method's own defaults live in its Config)."""

    steps: int = DEFAULT_STEPS
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    val_fraction: float = VALIDATION_FRACTION
    progress: bool = True
    #: also write ``last.pt`` every this many steps (0: only at epoch ends and by time)
    checkpoint_every: int = 0
    #: also write ``last.pt`` when this many minutes passed since the last write (0: never by time)
    checkpoint_minutes: float = 10.0
    #: continue from ``last.pt`` when the run folder holds one; False discards it and starts over
    resume: bool = True
    #: under torchrun: also compare the ranks' parameters every this many steps (0: at epoch ends only)
    sync_check_every: int = 0
    #: also log the curve to ``"tensorboard"`` (``runs/<run_id>/tb/``); the CSV curve is always written
    log: str | None = None
    #: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``fp32`` or ``bf16`` (:func:`ssfbench.runtime.device.autocast`)
    precision: str = "auto"


@dataclass
class PretrainResult:
    """Where the selected checkpoint is and how training went."""

    best_path: Path
    sha256: str
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoopState:
    """What the loop carries from step to step besides weights, optimiser and RNG states: the next
    step, the validation records so far (``epoch 0``: the initial weights), the best record by the
    method's selection metric, the sha256 of its checkpoint and one curve row per step done
    (``{"step", "epoch", "train_loss", "lr"}``). Saved in ``last.pt`` as a plain dict (:meth:`to_dict`)
    and read back with :meth:`from_dict`."""

    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    best_sha256: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """``{"step", "history", "best", "best_sha256", "steps"}`` (plain values, as stored in ``last.pt``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> LoopState:
        """The state stored in a ``last.pt`` (written by this or an earlier version, which kept no
        step rows: its curve starts at the resumed step)."""
        return cls(step=saved["step"], history=list(saved.get("history") or []), best=saved.get("best"),
                   best_sha256=saved.get("best_sha256"), steps=list(saved.get("steps") or []))


@torch.no_grad()
def validate(method: Method, windows: np.ndarray, device: torch.device, batch_size: int, *, seed: int = 0,
             precision: str = "auto") -> dict[str, float]:
    """The method's validation metrics averaged over the held-out windows (eval mode; with
    ``framing=released`` each image cropped as in training, crops drawn from ``seed``)."""
    was_training = method.training
    method.eval()
    totals: dict[str, float] = {}
    crops = validation_crops(seed)
    for start in range(0, len(windows), batch_size):
        chunk = torch.from_numpy(windows[start:start + batch_size]).to(device)
        with autocast(device, precision):
            metrics = method.validation_metrics(model_input(method, chunk, seed, crops))
        for key, value in metrics.items():
            totals[key] = totals.get(key, 0.0) + value * len(chunk)
    method.train(was_training)
    return {k: v / len(windows) for k, v in totals.items()}


def _better(value: float, best: float | None, mode: str) -> bool:
    """Whether ``value`` beats ``best`` (None: nothing yet) in the selection direction ``mode``."""
    return best is None or (value > best if mode == "max" else value < best)


def save_resume_state(path: Path, method: Method, optimizer: torch.optim.Optimizer,
                      state: LoopState | dict[str, Any], running: list[float]) -> None:
    """Write ``last.pt`` atomically: everything :func:`pretrain` needs to continue after ``state.step``
    (``payload["state"]`` is the loop state as a plain dict, the layout of every ``last.pt``)."""
    payload = {"model": method.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng_states(),
               "state": state.to_dict() if isinstance(state, LoopState) else state, "running": list(running)}
    atomic_write_bytes(path, lambda tmp: torch_save_stable(payload, tmp))


def load_resume_state(path: Path, device: torch.device) -> dict[str, Any]:
    """The payload of ``last.pt`` (``payload["state"]`` as stored: read it with
    :meth:`LoopState.from_dict`); an unreadable file is a :class:`UserError` suggesting ``--fresh``."""
    from ssfbench.runtime.safeload import UnsafeFileError, read_torch_file

    try:  # never runs the file's code: a replaced last.pt is refused (--trust-weights or --fresh)
        saved = read_torch_file(path, "resume state", map_location=device, hint=" (or --fresh to start over)")
        saved["state"]["step"]
    except UnsafeFileError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path}: cannot resume from this file ({type(exc).__name__}); "
                        "rerun with --fresh to start over") from None
    return saved


class _TrainingLoss(torch.nn.Module):
    """``forward(x)`` = ``method.training_loss(x)``: the module ``DistributedDataParallel`` wraps."""

    def __init__(self, method: Method) -> None:
        super().__init__()
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.method.training_loss(x)


def _loss_module(method: Method, device: torch.device) -> torch.nn.Module:
    """What the loop calls for the loss: the method's ``training_loss`` (wrapped in DDP under torchrun)."""
    if not distributed.world().distributed:
        return _TrainingLoss(method)
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(_TrainingLoss(method), device_ids=[device.index] if device.type == "cuda" else None)


def _mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """``value`` averaged over the ranks (itself when not distributed)."""
    if distributed.world().distributed:
        value = value.clone()
        torch.distributed.all_reduce(value)
        value /= distributed.world().size
    return value


def _due(step: int, since_save: float, settings: PretrainSettings) -> bool:
    """Whether ``last.pt`` is due after ``step`` steps by the step or the time interval."""
    by_steps = settings.checkpoint_every > 0 and step % settings.checkpoint_every == 0
    by_time = settings.checkpoint_minutes > 0 and since_save >= settings.checkpoint_minutes * 60
    return by_steps or by_time


@dataclass
class _Loop:
    """What one :func:`pretrain` call fixes before its first step (the loop's inputs and machinery)."""

    method: Method
    videos: VideoSource
    settings: PretrainSettings
    world: distributed.World
    device: torch.device
    train_ids: np.ndarray
    stream: WindowBatches
    val: np.ndarray | None  # the held-out windows (rank 0 only)
    optimizer: torch.optim.Optimizer
    last_path: Path
    best_path: Path

    @property
    def main(self) -> bool:
        """Whether this process validates, logs and writes (rank 0)."""
        return self.world.is_main


@dataclass
class _Throughput:
    """Wall time and frames of the training path (validation and checkpoint writes excluded) since
    the last epoch end, and how much of that time the loop waited for its next batch."""

    busy_s: float = 0.0
    frames: int = 0
    wait_s: float = 0.0

    def frames_per_s(self) -> float:
        """Frames per second of training-path wall time (as recorded: one decimal)."""
        return round(self.frames / max(self.busy_s, 1e-9), 1)

    def record(self) -> dict[str, Any]:
        """What an epoch's record says about speed: ``train_frames_per_s``; ``model_frames_per_s``,
        the rate of the steps alone (the time not spent waiting for data: what the model would reach
        if data were free); ``data_wait_fraction``; and ``bottleneck`` (:func:`ssfbench.runtime.feeding.bottleneck`)."""
        model_s = max(self.busy_s - self.wait_s, 1e-9)
        return {"train_frames_per_s": self.frames_per_s(), "model_frames_per_s": round(self.frames / model_s, 1),
                "data_wait_fraction": round(self.wait_s / max(self.busy_s, 1e-9), 3),
                "bottleneck": bottleneck(self.wait_s, self.busy_s)}


def _set_up(method: Method, videos: VideoSource, settings: PretrainSettings, run_dir: Path,
            world: distributed.World, device: torch.device) -> _Loop:
    """The run folder, the 80/20 video split, the window stream, the held-out windows, the method on
    its device (channels-last where that pays) and the optimiser."""
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    train_ids, val_ids = split_videos(len(videos), settings.val_fraction, settings.seed)
    stream = WindowBatches(videos, train_ids, method, settings.seed, shard=(world.rank, world.size))
    val = validation_windows(videos, val_ids, method, settings.seed) if world.is_main else None
    method.to(device)
    if device.type == "cuda" or world.distributed:  # weights in the inputs' layout (and DDP's gradient buckets)
        method.to(memory_format=torch.channels_last)
    return _Loop(method, videos, settings, world, device, train_ids, stream, val, make_optimizer(method),
                 run_dir / RESUME_STATE, run_dir / CHECKPOINT)


def _start_or_resume(loop: _Loop) -> tuple[LoopState, list[float], dict[str, Any] | None, dict[str, Any] | None]:
    """``(state, losses of the unfinished epoch, saved resume payload or None, BatchNorm record or
    None)``: the state of ``last.pt`` when there is one (``settings.resume`` False deletes it first),
    else a fresh state whose history starts with the initial weights' validation (at ``steps = 0``
    after re-estimating their BatchNorm statistics)."""
    method, settings = loop.method, loop.settings
    if not settings.resume and loop.main:
        loop.last_path.unlink(missing_ok=True)
    distributed.barrier()
    if loop.last_path.is_file():
        saved = load_resume_state(loop.last_path, loop.device)
        method.load_state_dict(saved["model"])
        loop.optimizer.load_state_dict(saved["optimizer"])
        state = LoopState.from_dict(saved["state"])
        if loop.main:
            logger.info("resuming %s from %s at step %d/%d", method.display_name(), loop.last_path, state.step,
                        settings.steps)
        return state, list(saved.get("running", [])), saved, None
    state, batchnorm = LoopState(), None
    if loop.main:
        if settings.steps == 0:  # the method scored at its own initialisation: statistics like the floor's
            batchnorm = reestimate_batchnorm(method, loop.videos, loop.train_ids, seed=settings.seed,
                                             device=loop.device)
        state.history.append({"epoch": 0, "step": 0,
                              **validate(method, loop.val, loop.device, method.config.batch_size,
                                         seed=settings.seed, precision=settings.precision)})
    return state, [], None, batchnorm


def _checkpoint_meta(loop: _Loop, meta: dict[str, Any] | None, batchnorm: dict[str, Any] | None) -> dict[str, Any]:
    """The metadata every checkpoint of this run carries: the caller's, the BatchNorm re-estimate (if
    any) and how pretraining was set up (``precision``: ``fp32`` or ``bf16``, as resolved on its device)."""
    settings, method = loop.settings, loop.method
    return {**(meta or {}), **({"batchnorm": batchnorm} if batchnorm else {}),
            "pretrain": {"steps": settings.steps, "seed": settings.seed, "train_videos": len(loop.stream.usable),
                         "val_videos": len(loop.val) if loop.main else None, "processes": loop.world.size,
                         "offsets": method.frame_offsets(), "dataset": loop.videos.name,
                         "dataset_fingerprint": loop.videos.fingerprint(),
                         "precision": resolved_precision(loop.device, settings.precision)}}


def _loader(loop: _Loop, first_step: int) -> DataLoader:
    """The DataLoader of the windows of steps ``first_step .. steps - 1`` (the stream is indexed by
    step). Iterating it draws a worker base seed from the torch RNG."""
    settings = loop.settings
    return DataLoader(loop.stream, batch_size=None, sampler=range(first_step, settings.steps),
                      num_workers=settings.num_workers, pin_memory=loop.device.type == "cuda",
                      prefetch_factor=4 if settings.num_workers else None,
                      persistent_workers=False)


def _train_step(loop: _Loop, loss_module: torch.nn.Module, frames: torch.Tensor, step: int) -> tuple[float, int]:
    """One training step on the uint8 windows ``frames`` ``[B, T, S, S, 3]``: preprocessing, the
    step's crop jitter (one crop per window unless ``jitter_per_frame``; with ``framing=released``
    the released crop per image instead, drawn from the same generator), forward and backward,
    optimiser step. Returns the loss averaged over ranks and the frames this process trained on; a
    non-finite loss is a :class:`UserError`."""
    method, device = loop.method, loop.device
    gen = jitter_generator(loop.settings.seed, step, loop.world.rank)
    x = model_input(method, frames.to(device, non_blocking=True), loop.settings.seed, gen)
    b, t = x.shape[:2]
    if method.config.framing == "released":
        x = x.flatten(0, 1)
    else:
        group = 1 if method.config.jitter_per_frame else t
        x = jitter(x.flatten(0, 1), method.config.jitter, gen, group)
    x = x.contiguous(memory_format=torch.channels_last).view(b, t, *x.shape[1:])  # ~13 % faster convs, CPU too
    loss = training_step(loop.optimizer, device, lambda: loss_module(x), loop.settings.precision)
    logged = float(_mean_over_ranks(loss.detach().float()))
    if not math.isfinite(logged):
        raise UserError(divergence_message("pretraining", step, logged))
    return logged, b * t


def _end_epoch(loop: _Loop, state: LoopState, running: list[float], throughput: _Throughput, started: float,
               base_meta: dict[str, Any], curves: CurveLog) -> dict[str, Any]:
    """Rank 0 at an epoch end (or the last step): validate, append the epoch's record to the history
    and, when it is the best so far by the method's selection metric (every time with
    ``select=last``: the last epoch's is kept), write ``best.pt``. Returns the record."""
    method, world = loop.method, loop.world
    metric, mode = method.selection
    record = {"epoch": math.ceil(state.step / loop.stream.steps_per_epoch), "step": state.step,
              "train_loss": float(np.mean(running)),
              **validate(method, loop.val, loop.device, method.config.batch_size, seed=loop.settings.seed,
                         precision=loop.settings.precision),
              "elapsed_s": round(time.time() - started, 1), **throughput.record()}
    if world.distributed:
        record["ranks_identical"] = world.size
    state.history.append(record)
    curves.log(epoch_row(record))
    if method.config.select == "last" or _better(record[metric], state.best and state.best[metric], mode):
        state.best = record
        state.best_sha256 = save_checkpoint(method, loop.best_path, {**base_meta, "selected": record,
                                                                    "history": state.history})
    return record


def _report_speed(loop: _Loop, state: LoopState) -> None:
    """Rank 0 logs the last epoch's speed and which side held it back (data or model)."""
    last = next((h for h in reversed(state.history) if "bottleneck" in h), None)
    if loop.main and last is not None:
        logger.info("pretraining: %.1f frames/s, the steps alone %.1f frames/s, waiting for data %.0f%% of the time: "
                    "the %s was the bottleneck", last["train_frames_per_s"], last["model_frames_per_s"],
                    100 * last["data_wait_fraction"], "data pipeline" if last["bottleneck"] == "data" else "model")


def _finish(loop: _Loop, state: LoopState, base_meta: dict[str, Any], curves: CurveLog) -> PretrainResult:
    """Rank 0 writes the whole curve and marks ``best.json`` completed with the whole history (at zero
    steps the initial weights are the checkpoint); every rank then returns the same result, the
    method back on the CPU."""
    curves.save(state.history, state.steps)
    curves.close()
    if loop.main:
        if state.best is None:  # zero steps asked for: the initial weights are the checkpoint
            state.best = state.history[0]
            state.best_sha256 = save_checkpoint(loop.method, loop.best_path, {**base_meta, "selected": state.best,
                                                                              "history": state.history})
        record = json.loads(record_path(loop.best_path).read_text())
        record.update(history=state.history, completed=True)
        atomic_write_json(record_path(loop.best_path), record)
    distributed.barrier()
    record = json.loads(record_path(loop.best_path).read_text())
    loop.method.cpu()
    return PretrainResult(loop.best_path, record["sha256"], record["history"], record["selected"])


def pretrain(method: Method, videos: VideoSource, settings: PretrainSettings, run_dir: Path,
             meta: dict[str, Any] | None = None) -> PretrainResult:
    """Train ``method`` on ``videos`` for ``settings.steps`` steps; validate at every epoch end and at
    the last step; keep the best checkpoint (``best.pt`` + ``best.json``) by the method's selection
    metric. Resumes from ``last.pt`` in ``run_dir`` when one is there (unless ``settings.resume`` is
    False, which deletes it and starts over). Under torchrun every rank calls it and every rank
    returns the same result; only rank 0 writes."""
    world = distributed.setup(settings.device)
    device = resolve_device(settings.device)
    torch.manual_seed(settings.seed)
    loop = _set_up(method, videos, settings, run_dir, world, device)
    state, running, saved, batchnorm = _start_or_resume(loop)
    curves = CurveLog(run_dir, main=loop.main, tensorboard=settings.log == "tensorboard", first_step=state.step)
    if saved is None and loop.main:
        curves.log(epoch_row(state.history[0]))  # the initial weights' validation, step 0
    loss_module = _loss_module(method, device)
    base_meta = _checkpoint_meta(loop, meta, batchnorm)
    loader = _loader(loop, state.step)
    method.train()
    bar = tqdm(total=settings.steps, initial=state.step, disable=not (settings.progress and loop.main),
               desc=f"pretrain {method.display_name()}", unit="step", dynamic_ncols=True)
    started = last_save = time.time()
    throughput = _Throughput()
    batches = iter(loader)  # draws a worker base seed from the torch RNG: restore the saved states after it
    if not settings.num_workers:
        batches = prefetched(batches)  # no worker processes: read ahead in a thread
    if saved is not None:
        set_rng_states(saved["rng"] if "rng" in saved else {"torch": saved["torch_rng"]})
    tick = time.perf_counter()
    for frames in batches:
        throughput.wait_s += time.perf_counter() - tick
        loss, n_frames = _train_step(loop, loss_module, frames, state.step)
        running.append(loss)
        state.step += 1
        state.steps.append({"step": state.step, "epoch": math.ceil(state.step / loop.stream.steps_per_epoch),
                            "train_loss": loss, "lr": loop.optimizer.param_groups[0]["lr"]})
        curves.log(state.steps[-1])
        throughput.busy_s += time.perf_counter() - tick
        throughput.frames += n_frames * world.size
        bar.update(1)
        epoch_end = state.step % loop.stream.steps_per_epoch == 0 or state.step == settings.steps
        if epoch_end or (settings.sync_check_every and state.step % settings.sync_check_every == 0):
            distributed.check_identical(method, f"pretraining step {state.step}")
        if epoch_end and loop.main:
            record = _end_epoch(loop, state, running, throughput, started, base_meta, curves)
            bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k in ("train_loss", method.selection[0])})
        if epoch_end:
            running, throughput = [], _Throughput()
        if loop.main and (epoch_end or _due(state.step, time.time() - last_save, settings)):
            curves.save(state.history, state.steps)  # first: a resumed run rewrites these rows, never repeats them
            save_resume_state(loop.last_path, method, loop.optimizer, state, running)
            last_save = time.time()
        tick = time.perf_counter()
    bar.close()
    _report_speed(loop, state)
    return _finish(loop, state, base_meta, curves)


__all__ = ["DEFAULT_STEPS", "PretrainSettings", "PretrainResult", "LoopState", "pretrain", "validate",
           "save_resume_state", "load_resume_state"]
