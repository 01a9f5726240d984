"""torch.distributed for runs launched by ``torchrun``: who this process is, the process group, and
the few collectives the harness needs (barrier, broadcast of a small object, checks that every
rank holds the same parameters).

A process is distributed when torchrun's ``WORLD_SIZE`` is above 1; :func:`setup` then joins the
group once (NCCL on CUDA, gloo on CPU, addresses from torchrun's environment, so multi-node runs
use torchrun's usual ``--nnodes/--node-rank/--rdzv-*`` flags). Everything else in the harness asks
:func:`world` and behaves as a single process when it is not distributed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ssfbench.errors import UserError


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of the run (``size`` 1: not distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """More than one process takes part."""
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only one that writes checkpoints, results and logs."""
        return self.rank == 0


def _from_env() -> World:
    """The world torchrun describes in the environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``)."""
    try:
        return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                     int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise UserError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (set by torchrun)") from None


def world() -> World:
    """This process's :class:`World` (from the process group once joined, else from the environment)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), _from_env().local_rank)
    return _from_env()


def setup(device: str = "auto") -> World:
    """Join the process group when launched by torchrun with more than one process (idempotent).

    The backend is NCCL when the run uses CUDA (each process on GPU ``LOCAL_RANK``), gloo otherwise.
    Returns :func:`world`. Code that calls it (or :func:`ssfbench.pipeline.runner.run`) under torchrun ends with
    :func:`shutdown`, as the CLI does."""
    env = _from_env()
    if not env.distributed or (dist.is_available() and dist.is_initialized()):
        return world()
    if not dist.is_available():
        raise UserError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    use_cuda = device != "cpu" and not device.startswith("cpu") and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(env.local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return world()


def shutdown() -> None:
    """Leave the process group once every rank is done (no-op when none was joined).

    Call it only after success: a rank that failed would leave the others waiting here. Without it,
    gloo's worker threads can still hold tensors while the interpreter shuts down, and the process
    aborts (SIGABRT) although its work is done."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if world().distributed:
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (returned as is when not distributed)."""
    if not world().distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_object(obj: Any, dst: int = 0) -> list[Any] | None:
    """The list of every rank's ``obj`` on rank ``dst`` (None elsewhere); ``[obj]`` when not distributed."""
    w = world()
    if not w.distributed:
        return [obj]
    out: list[Any] | None = [None] * w.size if w.rank == dst else None
    dist.gather_object(obj, out, dst=dst)
    return out


def parameter_digest(model: nn.Module) -> str:
    """sha256 of every parameter of ``model`` in order (bitwise identity). Buffers are left out:
    each rank's BatchNorm running statistics follow its own batches until DDP broadcasts rank 0's
    at the next forward."""
    h = hashlib.sha256()
    for name, tensor in model.named_parameters():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_identical(model: nn.Module, what: str) -> bool:
    """Raise ``RuntimeError`` unless every rank holds bitwise the same parameters;
    True when they do (and when not distributed)."""
    w = world()
    if not w.distributed:
        return True
    digests: list[Any] = [None] * w.size
    dist.all_gather_object(digests, parameter_digest(model))
    if len(set(digests)) != 1:
        differing = [r for r, d in enumerate(digests) if d != digests[0]]
        raise RuntimeError(f"{what}: parameters differ between rank 0 and rank(s) {differing}")
    return True


__all__ = ["World", "world", "setup", "shutdown", "barrier", "broadcast_object", "gather_object",
           "parameter_digest", "check_identical"]
