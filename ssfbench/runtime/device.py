"""Device choice and the GPU fast path (bf16 autocast, channels_last, cuDNN autotuning)."""

from __future__ import annotations

import contextlib
import os

import torch

from ssfbench.errors import UserError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; an explicit ``cuda`` without a GPU is a UserError.
    Under torchrun a bare ``cuda`` means this process's GPU, ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA device is available")
        if device.index is None:
            from ssfbench.runtime.distributed import world

            device = torch.device("cuda", world().local_rank if world().distributed else torch.cuda.current_device())
        torch.backends.cudnn.benchmark = True
    return device


#: ``--precision`` values: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``fp32`` (no autocast, as the
#: released ranking code), ``bf16`` (bf16 autocast on any device)
PRECISIONS = ("auto", "fp32", "bf16")


def resolved_precision(device: torch.device, precision: str = "auto") -> str:
    """``fp32`` or ``bf16``: what ``precision`` means on ``device``."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; a no-op context on CPU (CPU results stay bitwise reproducible).
    ``precision="fp32"`` never autocasts, ``"bf16"`` autocasts on any device."""
    if resolved_precision(device, precision) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def default_workers(device: torch.device) -> int:
    """DataLoader workers for ``--workers auto``: on CUDA as many per GPU as it needs at the
    measured per-core rate of reading VoxCeleb2 from mp4 (:func:`ssfbench.runtime.feeding.cuda_workers`:
    at most the process's share of the cores less one), so decoding keeps up with the GPU; on CPU
    none when the machine has at most 4 cores (the model's own threads use them all and a worker
    would only compete: measured in BENCHMARKS.md), else 2."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type == "cuda":
        from ssfbench.runtime.feeding import cuda_workers

        return cuda_workers(cores, torch.cuda.device_count())
    return 0 if cores <= 4 else 2


def resolve_workers(workers: int | str, device: str) -> int:
    """DataLoader worker processes (``--workers``): a count >= 0, or ``"auto"`` (:func:`default_workers`
    for ``device``); anything else is one :class:`UserError` naming the option."""
    if isinstance(workers, str):
        if workers == "auto":
            return default_workers(resolve_device(device))
        if not workers.isdigit():
            raise UserError(f"--workers expects a number >= 0 or auto, got {workers!r}")
        workers = int(workers)
    if workers < 0:
        raise UserError(f"--workers expects a number >= 0 or auto, got {workers}")
    return workers
