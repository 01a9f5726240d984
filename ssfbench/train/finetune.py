"""Per-fold training on labels for ``needs_labels`` methods (the ``supervised`` ceiling).

The harness owns the loop, as for pretraining: which rows a step takes (a pure function of seed
and step, drawn from the fold's TRAINING rows only), preprocessing, crop jitter, the optimiser the
method's config asks for, bf16 on CUDA, non-finite loss detection and the checkpoint (the pieces it
shares with pretraining are in :mod:`ssfbench.train.steps`). The method
owns ``label_loss``. The budget is fixed (``steps``); there is no model selection, since the only
held-out labels of a fold are its test rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ssfbench.api.checkpoint import save_checkpoint
from ssfbench.api.dataset import LabeledFrames
from ssfbench.api.method import Method, MethodConfig
from ssfbench.api.preprocess import stack_resized
from ssfbench.errors import UserError
from ssfbench.evaluation.probe import positive_weights
from ssfbench.runtime.device import autocast, resolve_device
from ssfbench.runtime.seeds import FINETUNE_ROWS
from ssfbench.train.pretrain import DEFAULT_STEPS
from ssfbench.train.steps import divergence_message, jitter, jitter_generator, make_optimizer, optimizer_step


@dataclass
class FinetuneSettings:
    """Budget and machinery of one fold's training."""

    steps: int = DEFAULT_STEPS
    seed: int = 0
    device: str = "auto"
    progress: bool = True


def with_num_labels(method_name: str, config: MethodConfig, num_labels: int) -> MethodConfig:
    """``config`` with ``num_labels`` set; a ``needs_labels`` method without that setting is a UserError."""
    try:
        return config.replace(num_labels=num_labels)
    except KeyError:
        raise UserError(f"method {method_name!r} sets needs_labels but its Config has no 'num_labels' "
                        "setting (the harness sets it to the dataset's label count)") from None


def step_rows(rows: np.ndarray, batch_size: int, seed: int, step: int) -> np.ndarray:
    """The rows (a sorted subset of ``rows``, without repeats) that training step ``step`` takes."""
    rng = np.random.default_rng([seed, FINETUNE_ROWS, step])
    return np.sort(rows[rng.choice(len(rows), size=min(batch_size, len(rows)), replace=False)])


def finetune(method: Method, dataset: LabeledFrames, rows: np.ndarray, settings: FinetuneSettings,
             path: Path, meta: dict[str, Any] | None = None) -> str:
    """Train ``method`` with its ``label_loss`` on rows ``rows`` of ``dataset`` (a fold's training
    rows) for ``settings.steps`` steps, then save it (eval mode, on CPU) as a completed checkpoint at
    ``path``; returns the checkpoint's sha256."""
    if not method.needs_labels:
        raise TypeError(f"method {method.name!r} does not train on labels")
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) < 2:
        raise UserError(f"{dataset.name}: a fold has {len(rows)} training rows; training on labels needs at least 2")
    device = resolve_device(settings.device)
    torch.manual_seed(settings.seed)
    pos_weight = torch.as_tensor(positive_weights(dataset.targets[rows])).to(device)
    method.to(device).train()
    optimizer = make_optimizer(method)
    size = method.preprocess.input_size
    losses: list[float] = []
    started = time.time()
    for step in tqdm(range(settings.steps), disable=not settings.progress, unit="step",
                     desc=f"train {method.display_name()} on {dataset.name} labels", dynamic_ncols=True):
        batch = step_rows(rows, method.config.batch_size, settings.seed, step)
        images = torch.from_numpy(stack_resized(dataset.read_images(batch.tolist()), size))
        x = method.preprocess(images.to(device, non_blocking=True))
        x = jitter(x, method.config.jitter, jitter_generator(settings.seed, step))
        y = torch.as_tensor(dataset.targets[batch].astype(np.int8)).to(device)
        with autocast(device):
            loss = method.label_loss(x, y, pos_weight)
        if not torch.isfinite(loss):
            raise UserError(divergence_message(f"training {method.name!r} on {dataset.name} labels", step, float(loss)))
        optimizer_step(optimizer, loss)
        losses.append(round(float(loss.detach()), 5))
    method.cpu().eval()
    record = {**(meta or {}), "completed": True,
              "finetune": {"steps": settings.steps, "seed": settings.seed, "dataset": dataset.name,
                           "dataset_fingerprint": dataset.fingerprint(), "train_rows": len(rows),
                           "train_loss": losses, "elapsed_s": round(time.time() - started, 1)}}
    return save_checkpoint(method, path, record)


__all__ = ["FinetuneSettings", "finetune", "step_rows", "with_num_labels"]
