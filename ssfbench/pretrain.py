"""The pretraining loop every method shares: windows of frames from unlabeled videos, an 80/20
video-level split, validation each epoch, best-checkpoint selection, resumable checkpoints.

The window stream is a pure function of (seed, step): which videos, which anchors and which crop
jitter a step uses never depends on what ran before, so a resumed run sees exactly the batches an
uninterrupted one would have seen.

Resume: ``last.pt`` in the run folder holds everything the loop carries from step to step (model,
optimizer, step, history, best record, the losses of the unfinished epoch, and the torch / CUDA /
numpy / python RNG states). It is written atomically at every epoch end, every
``checkpoint_every`` steps and at least every ``checkpoint_minutes`` of wall time; writing it never
touches an RNG, so how often it is written does not change the numbers. A run killed at any point
and resumed ends with the same ``best.pt`` weights as one that never stopped (bitwise on CPU).
There is no learning-rate scheduler; the loop has no other state.

Under ``torchrun`` (see :mod:`ssfbench.distributed`) every rank reads its own share of each
step's windows (``windows(step)[rank::world]``: the global batch and the stream are those of a
single-process run, what ``DistributedSampler`` does for a map-style dataset), the loss runs
through ``DistributedDataParallel`` (gradients averaged, BatchNorm buffers broadcast from rank 0),
and rank 0 alone validates, logs and writes checkpoints. At every epoch end (and every
``sync_check_every`` steps) the ranks compare digests of their parameters and stop with an error if
they ever differ; the history records the check.

At ``steps = 0`` the checkpoint is the method's initialisation with its BatchNorm statistics
re-estimated on the training videos (:mod:`ssfbench.batchnorm`): the paired control of every
trained run, evaluated like the ``random`` floor.

Each epoch's record carries ``train_frames_per_s``: frames through the whole training path (data
loading, device copy, preprocessing, jitter, forward, backward, optimiser step; validation and
checkpoint writes excluded) per second of wall time, summed over ranks.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ssfbench import distributed
from ssfbench.batchnorm import reestimate_batchnorm
from ssfbench.checkpoint import save_checkpoint, torch_save_stable
from ssfbench.data import VideoSource
from ssfbench.device import autocast, resolve_device
from ssfbench.errors import UserError
from ssfbench.fileio import atomic_write_bytes, atomic_write_json
from ssfbench.method import Method
from ssfbench.prefetch import prefetched


@dataclass
class PretrainSettings:
    """Budget and machinery of one pretraining run (the method's own defaults live in its Config)."""

    steps: int = 300
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    val_fraction: float = 0.2
    progress: bool = True
    #: also write ``last.pt`` every this many steps (0: only at epoch ends and by time)
    checkpoint_every: int = 0
    #: also write ``last.pt`` when this many minutes passed since the last write (0: never by time)
    checkpoint_minutes: float = 10.0
    #: continue from ``last.pt`` when the run folder holds one; False discards it and starts over
    resume: bool = True
    #: under torchrun: also compare the ranks' parameters every this many steps (0: at epoch ends only)
    sync_check_every: int = 0


@dataclass
class PretrainResult:
    """Where the selected checkpoint is and how training went."""

    best_path: Path
    sha256: str
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)


def split_videos(n_videos: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Video-level split: a seeded permutation, the last ``val_fraction`` held out."""
    perm = np.random.default_rng([seed, 7919]).permutation(n_videos)
    n_val = max(1, int(round(n_videos * val_fraction)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class WindowBatches(Dataset):
    """Item ``step`` -> uint8 ``[B / shards, T, H, W, 3]``: this shard's windows of training step ``step``.

    Epoch ``e`` visits every training video once in a seeded order, each with a fresh anchor (and
    offsets, for methods with random gaps) drawn from ``(seed, e, video)``; videos shorter than the
    method's window are skipped. ``shard = (i, n)`` keeps windows ``i, i + n, ...`` of every step
    (one shard per rank; ``(0, 1)`` keeps them all).
    """

    def __init__(self, videos: VideoSource, train_ids: np.ndarray, method: Method, seed: int,
                 shard: tuple[int, int] = (0, 1)) -> None:
        self.videos, self.seed = videos, seed
        self.batch_size = method.config.batch_size
        self.shard = shard
        if self.batch_size % shard[1]:
            raise UserError(f"a batch of {self.batch_size} windows cannot be split evenly over {shard[1]} "
                            "processes; pick --batch-size as a multiple of the process count")
        self.sample_offsets = method.sample_offsets
        self.span = method.window_span()
        self.usable = np.array([v for v in train_ids if videos.num_frames(int(v)) >= self.span])
        if len(self.usable) < self.batch_size:
            raise UserError(f"{videos.name}: only {len(self.usable)} training videos have at least {self.span} "
                            f"frames (the window), fewer than a batch of {self.batch_size}")
        self.steps_per_epoch = len(self.usable) // self.batch_size

    def windows(self, step: int) -> list[tuple[int, list[int]]]:
        """(video, frame indices) of every example of training step ``step``."""
        epoch, pos = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.usable))
        chosen = self.usable[order[pos * self.batch_size:(pos + 1) * self.batch_size]]
        out = []
        for v in chosen:
            rng = np.random.default_rng([self.seed, epoch, int(v)])
            anchor = int(rng.integers(0, self.videos.num_frames(int(v)) - self.span + 1))
            out.append((int(v), [anchor + o for o in self.sample_offsets(rng)]))
        return out

    def __len__(self) -> int:  # the stream is unbounded; DataLoader only needs a sampler
        return 2**62

    def __getitem__(self, step: int) -> torch.Tensor:
        mine = self.windows(step)[self.shard[0]::self.shard[1]]
        return torch.from_numpy(np.stack([self.videos.read_frames(v, f) for v, f in mine]))


def validation_windows(videos: VideoSource, val_ids: np.ndarray, method: Method, seed: int) -> np.ndarray:
    """Fixed windows (one per held-out video, drawn from the seed) as uint8 ``[V, T, H, W, 3]``."""
    span = method.window_span()
    out = []
    for v in val_ids:
        n = videos.num_frames(int(v))
        if n < span:
            continue
        rng = np.random.default_rng([seed, 104729, int(v)])
        anchor = int(rng.integers(0, n - span + 1))
        out.append(videos.read_frames(int(v), [anchor + o for o in method.sample_offsets(rng)]))
    if not out:
        raise UserError(f"{videos.name}: no held-out video has at least {span} frames (the window)")
    return np.stack(out)


def jitter(x: torch.Tensor, min_scale: float, generator: torch.Generator, group: int = 1) -> torch.Tensor:
    """Random crop of side ``s ~ U(min_scale, 1)`` at a random position, resized back (one batched
    ``grid_sample``); ``x`` is ``[N, 3, S, S]``. Each run of ``group`` consecutive images shares one
    crop (``group = T`` gives every frame of a window the same crop)."""
    if min_scale >= 1.0:
        return x
    n = x.shape[0] // group
    s = torch.empty(n).uniform_(min_scale, 1.0, generator=generator)
    tx = (torch.rand(n, generator=generator) * 2 - 1) * (1 - s)
    ty = (torch.rand(n, generator=generator) * 2 - 1) * (1 - s)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = s, s, tx, ty
    theta = theta.repeat_interleave(group, dim=0)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def make_optimizer(method: Method) -> torch.optim.Optimizer:
    """The optimiser the method's config asks for, over its trainable parameters."""
    cfg = method.config
    params = [p for p in method.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise UserError(f"unknown optimizer {cfg.optimizer!r} (expected sgd or adam)")


@torch.no_grad()
def validate(method: Method, windows: np.ndarray, device: torch.device, batch_size: int) -> dict[str, float]:
    """The method's validation metrics averaged over the held-out windows (eval mode)."""
    was_training = method.training
    method.eval()
    totals: dict[str, float] = {}
    for start in range(0, len(windows), batch_size):
        chunk = torch.from_numpy(windows[start:start + batch_size]).to(device)
        with autocast(device):
            metrics = method.validation_metrics(method.preprocess(chunk))
        for key, value in metrics.items():
            totals[key] = totals.get(key, 0.0) + value * len(chunk)
    method.train(was_training)
    return {k: v / len(windows) for k, v in totals.items()}


def _better(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value > best if mode == "max" else value < best)


def rng_states() -> dict[str, Any]:
    """Every global RNG state a training step could read (torch, CUDA, numpy, python)."""
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    torch.set_rng_state(states["torch"].cpu())
    if "numpy" in states:
        np.random.set_state(states["numpy"])
    if "python" in states:
        random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])


def save_resume_state(path: Path, method: Method, optimizer: torch.optim.Optimizer, state: dict[str, Any],
                      running: list[float]) -> None:
    """Write ``last.pt`` atomically: everything :func:`pretrain` needs to continue after ``state['step']``."""
    payload = {"model": method.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng_states(),
               "state": state, "running": list(running)}
    atomic_write_bytes(path, lambda tmp: torch_save_stable(payload, tmp))


def load_resume_state(path: Path, device: torch.device) -> dict[str, Any]:
    """The payload of ``last.pt``; an unreadable file is a :class:`UserError` suggesting ``--fresh``."""
    try:
        saved = torch.load(path, map_location=device, weights_only=False)
        saved["state"]["step"]
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


def pretrain(method: Method, videos: VideoSource, settings: PretrainSettings, run_dir: Path,
             meta: dict[str, Any] | None = None) -> PretrainResult:
    """Train ``method`` on ``videos`` for ``settings.steps`` steps; validate at every epoch end and at
    the last step; keep the best checkpoint (``best.pt`` + ``best.json``) by the method's selection
    metric. Resumes from ``last.pt`` in ``run_dir`` when one is there (unless ``settings.resume`` is
    False, which deletes it and starts over). Under torchrun every rank calls it and every rank
    returns the same result; only rank 0 writes."""
    world = distributed.setup(settings.device)
    main = world.is_main
    device = resolve_device(settings.device)
    torch.manual_seed(settings.seed)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    train_ids, val_ids = split_videos(len(videos), settings.val_fraction, settings.seed)
    stream = WindowBatches(videos, train_ids, method, settings.seed, shard=(world.rank, world.size))
    val = validation_windows(videos, val_ids, method, settings.seed) if main else None
    metric, mode = method.selection

    method.to(device)
    if device.type == "cuda" or world.distributed:  # weights in the inputs' layout (and DDP's gradient buckets)
        method.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(method)
    state = {"step": 0, "history": [], "best": None, "best_sha256": None}
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if not settings.resume and main:
        last_path.unlink(missing_ok=True)
    distributed.barrier()
    saved, running, batchnorm = None, [], None
    if last_path.is_file():
        saved = load_resume_state(last_path, device)
        method.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state, running = saved["state"], list(saved.get("running", []))
        if main:
            print(f"resuming {method.display_name()} from {last_path} at step {state['step']}/{settings.steps}",
                  file=sys.stderr)
    elif main:
        if settings.steps == 0:  # the method scored at its own initialisation: statistics like the floor's
            batchnorm = reestimate_batchnorm(method, videos, train_ids, seed=settings.seed, device=device)
        state["history"].append({"epoch": 0, "step": 0, **validate(method, val, device, method.config.batch_size)})
    loss_module = _loss_module(method, device)

    base_meta = {**(meta or {}), **({"batchnorm": batchnorm} if batchnorm else {}), "pretrain": {"steps": settings.steps, "seed": settings.seed,
                                              "train_videos": len(stream.usable),
                                              "val_videos": len(val) if main else None, "processes": world.size,
                                              "offsets": method.frame_offsets(), "dataset": videos.name,
                                              "dataset_fingerprint": videos.fingerprint()}}
    loader = DataLoader(stream, batch_size=None, sampler=range(state["step"], settings.steps),
                        num_workers=settings.num_workers, pin_memory=device.type == "cuda",
                        prefetch_factor=4 if settings.num_workers else None,
                        persistent_workers=False)
    method.train()
    bar = tqdm(total=settings.steps, initial=state["step"], disable=not (settings.progress and main),
               desc=f"pretrain {method.display_name()}", unit="step", dynamic_ncols=True)
    started = last_save = time.time()
    busy_s, busy_frames = 0.0, 0
    batches = iter(loader)  # draws a worker base seed from the torch RNG: restore the saved states after it
    if not settings.num_workers:
        batches = prefetched(batches)  # no worker processes: read ahead in a thread
    if saved is not None:
        set_rng_states(saved["rng"] if "rng" in saved else {"torch": saved["torch_rng"]})
    tick = time.perf_counter()
    for frames in batches:
        step = state["step"]
        gen = torch.Generator().manual_seed(settings.seed * 1_000_003 + step + world.rank * 2**40)
        x = method.preprocess(frames.to(device, non_blocking=True))
        b, t = x.shape[:2]
        group = 1 if method.config.jitter_per_frame else t
        x = jitter(x.flatten(0, 1), method.config.jitter, gen, group)
        x = x.contiguous(memory_format=torch.channels_last).view(b, t, *x.shape[1:])  # ~13 % faster convs, CPU too
        with autocast(device):
            loss = loss_module(x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        logged = float(_mean_over_ranks(loss.detach().float()))
        if not math.isfinite(logged):
            raise UserError(f"pretraining diverged at step {step} (loss {logged}); lower --lr")
        running.append(logged)
        state["step"] = step + 1
        busy_s += time.perf_counter() - tick
        busy_frames += b * t * world.size
        bar.update(1)
        epoch_end = state["step"] % stream.steps_per_epoch == 0 or state["step"] == settings.steps
        if epoch_end or (settings.sync_check_every and state["step"] % settings.sync_check_every == 0):
            distributed.check_identical(method, f"pretraining step {state['step']}")
        if epoch_end and main:
            record = {"epoch": math.ceil(state["step"] / stream.steps_per_epoch), "step": state["step"],
                      "train_loss": float(np.mean(running)), **validate(method, val, device, method.config.batch_size),
                      "elapsed_s": round(time.time() - started, 1),
                      "train_frames_per_s": round(busy_frames / max(busy_s, 1e-9), 1)}
            if world.distributed:
                record["ranks_identical"] = world.size
            state["history"].append(record)
            bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k in ("train_loss", metric)})
            if _better(record[metric], state["best"] and state["best"][metric], mode):
                state["best"] = record
                state["best_sha256"] = save_checkpoint(method, best_path, {**base_meta, "selected": record,
                                                                           "history": state["history"]})
        if epoch_end:
            running, busy_s, busy_frames = [], 0.0, 0
        if main and (epoch_end or _due(state["step"], time.time() - last_save, settings)):
            save_resume_state(last_path, method, optimizer, state, running)
            last_save = time.time()
        tick = time.perf_counter()
    bar.close()
    if main:
        if state["best"] is None:  # zero steps asked for: the initial weights are the checkpoint
            state["best"] = state["history"][0]
            state["best_sha256"] = save_checkpoint(method, best_path, {**base_meta, "selected": state["best"],
                                                                       "history": state["history"]})
        record = json.loads(best_path.with_suffix(".json").read_text())
        record.update(history=state["history"], completed=True)
        atomic_write_json(best_path.with_suffix(".json"), record)
    distributed.barrier()
    record = json.loads(best_path.with_suffix(".json").read_text())
    method.cpu()
    return PretrainResult(best_path, record["sha256"], record["history"], record["selected"])
