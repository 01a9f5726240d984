"""The training toolkit every loop shares: pretraining on videos (:mod:`ssfbench.train.pretrain`),
training on a fold's labels (:mod:`ssfbench.train.finetune`) and the throughput benchmarks
(:mod:`ssfbench.bench.speed`).

* :func:`make_optimizer`: the optimiser a method's config asks for;
* :func:`jitter` and :func:`jitter_generator`: the crop jitter of a training step and its seeded
  generator (stream :data:`ssfbench.runtime.seeds.CROP_JITTER`);
* :func:`optimizer_step` and :func:`training_step`: one optimisation step (zero the gradients,
  backward, step), with the loss computed under autocast for :func:`training_step`;
* :func:`rng_states` and :func:`set_rng_states`: every global RNG state a step could read, saved
  with a resume file and restored from it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ssfbench.api.method import Method
from ssfbench.errors import UserError
from ssfbench.runtime.device import autocast
from ssfbench.runtime.seeds import crop_jitter_seed


def make_optimizer(method: Method) -> torch.optim.Optimizer:
    """The optimiser the method's config asks for, over its trainable parameters."""
    cfg = method.config
    params = [p for p in method.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise UserError(f"unknown optimizer {cfg.optimizer!r} (expected sgd or adam)")


def jitter_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The generator of the crop jitter of training step ``step`` on rank ``rank``: a pure function
    of (seed, step, rank), so a resumed run jitters exactly as an uninterrupted one."""
    return torch.Generator().manual_seed(crop_jitter_seed(seed, step, rank))


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


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """Zero the gradients, backpropagate ``loss`` and take one optimiser step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def training_step(optimizer: torch.optim.Optimizer, device: torch.device,
                  compute_loss: Callable[[], torch.Tensor], precision: str = "auto") -> torch.Tensor:
    """One optimisation step: ``compute_loss()`` under autocast (bf16 on CUDA; ``precision``:
    :func:`ssfbench.runtime.device.autocast`), then :func:`optimizer_step`; returns the loss (not detached)."""
    with autocast(device, precision):
        loss = compute_loss()
    optimizer_step(optimizer, loss)
    return loss


def divergence_message(what: str, step: int, loss: float) -> str:
    """The one line for a non-finite loss at ``step`` (updates done before it). At step 0 no update has
    happened, so the learning rate cannot be the cause: the initial weights or the input are."""
    if step == 0:
        return (f"{what}: the loss is {loss} at the first step, before any update (so not the learning rate): "
                "the initial weights (--pretrained, --weights) or the input frames give non-finite values")
    return f"{what} diverged at step {step} (loss {loss}); lower --lr"


def _numpy_state() -> dict[str, Any]:
    """numpy's global RNG state as tensors and plain data (what ``torch.load(weights_only=True)`` reads
    back without any allowlist): ``np.random.get_state(legacy=False)`` with its key as an int64 tensor."""
    state = np.random.get_state(legacy=False)
    inner = state["state"]
    return {**state, "state": {**inner, "key": torch.from_numpy(inner["key"].astype(np.int64))}}


def _numpy_state_from(saved: Any) -> Any:
    """What ``np.random.set_state`` takes, from :func:`_numpy_state`'s form or numpy's own tuple (older
    ``last.pt`` files)."""
    if not isinstance(saved, dict):
        return saved
    key = saved["state"]["key"]
    key = key.numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
    return {**saved, "state": {**saved["state"], "key": key.astype(np.uint32)}}


def rng_states() -> dict[str, Any]:
    """Every global RNG state a training step could read (torch, CUDA, numpy, python)."""
    states = {"torch": torch.get_rng_state(), "numpy": _numpy_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    torch.set_rng_state(states["torch"].cpu())
    if "numpy" in states:
        np.random.set_state(_numpy_state_from(states["numpy"]))
    if "python" in states:
        random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])


__all__ = ["divergence_message", "make_optimizer", "jitter_generator", "jitter", "optimizer_step", "training_step", "rng_states",
           "set_rng_states"]
