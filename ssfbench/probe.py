"""The frozen-encoder linear probe of the protocol: BatchNorm1d + Linear without bias, trained
with class-weighted BCE on cached embeddings, unknown (-1) labels masked out of the loss.

``PROBE_DEFAULTS`` is part of the evaluation protocol: results record the resolved
hyperparameters, and changing a default means a new ``ssfbench.PROTOCOL_VERSION``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssfbench.errors import UserError

#: Probe hyperparameters of the protocol (Adam, full batch when ``batch_size`` is None).
PROBE_DEFAULTS: dict[str, Any] = {
    "epochs": 100,
    "lr": 1e-2,
    "optimizer": "adam",
    "weight_decay": 0.0,
    "batch_size": None,
    "device": "cpu",
}

_PREDICT_CHUNK = 65536


class LinearProbe(nn.Module):
    """``BatchNorm1d(D)`` followed by ``Linear(D, C, bias=False)``; returns logits ``[B, C]``."""

    def __init__(self, dim: int, num_labels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(dim)
        self.linear = nn.Linear(dim, num_labels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for embeddings ``x`` ``[B, D]``."""
        return self.linear(self.norm(x))


def resolve_hparams(**hparams: Any) -> dict[str, Any]:
    """``PROBE_DEFAULTS`` updated with ``hparams``; unknown names raise :class:`UserError`."""
    unknown = sorted(set(hparams) - set(PROBE_DEFAULTS))
    if unknown:
        raise UserError(f"probe: unknown hyperparameter(s) {', '.join(unknown)}; "
                        f"expected some of {', '.join(PROBE_DEFAULTS)}")
    out = {**PROBE_DEFAULTS, **hparams}
    if out["optimizer"] != "adam":
        raise UserError(f"probe: optimizer {out['optimizer']!r} is not supported; expected 'adam'")
    if int(out["epochs"]) < 1 or (out["batch_size"] is not None and int(out["batch_size"]) < 2):
        raise UserError("probe: expected epochs >= 1 and batch_size >= 2 (or None for full batch)")
    return out


def _check_inputs(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> None:
    """Raise :class:`UserError` unless shapes, dtypes and values fit the probe."""
    for name, x in (("x_train", x_train), ("x_test", x_test)):
        if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating):
            raise UserError(f"probe: {name} must be a 2-D float array [N, D], got {x.dtype} {x.shape}")
        if not np.isfinite(x).all():
            raise UserError(f"probe: {name}: embeddings contain NaN or infinite values")
    if x_train.shape[1] != x_test.shape[1]:
        raise UserError(f"probe: x_train has {x_train.shape[1]} dims but x_test has {x_test.shape[1]}")
    if y_train.ndim != 2 or y_train.shape[0] != x_train.shape[0]:
        raise UserError(f"probe: y_train must be [N, C] with N = {x_train.shape[0]} rows, got {y_train.shape}")
    if x_train.shape[0] < 2:
        raise UserError("probe: need at least 2 training rows")
    if not np.isin(y_train, (0, 1, -1)).all():
        raise UserError("probe: y_train must hold 1 (present), 0 (absent) or -1 (unknown)")


def positive_weights(y: np.ndarray) -> np.ndarray:
    """Per-label ``n_neg / n_pos`` over known (non -1) entries of ``y`` ``[N, C]``; a label
    without known positives or without known negatives gets weight 1."""
    n_pos = (y == 1).sum(axis=0).astype(np.float64)
    n_neg = (y == 0).sum(axis=0).astype(np.float64)
    ok = (n_pos > 0) & (n_neg > 0)
    return np.where(ok, n_neg / np.maximum(n_pos, 1.0), 1.0).astype(np.float32)


def masked_bce(logits: torch.Tensor, y: torch.Tensor, known: torch.Tensor,
               pos_weight: torch.Tensor) -> torch.Tensor:
    """Positive-weighted BCE-with-logits, mean over the known entries only."""
    loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight, reduction="none")
    return (loss * known).sum() / known.sum().clamp(min=1.0)


def _batches(n: int, batch_size: int | None, gen: torch.Generator) -> list[torch.Tensor]:
    """Row-index batches of one epoch (shuffled; a trailing single row joins the previous batch,
    since BatchNorm cannot train on one row)."""
    if batch_size is None or batch_size >= n:
        return [torch.arange(n)]
    parts = list(torch.randperm(n, generator=gen).split(int(batch_size)))
    if len(parts) > 1 and len(parts[-1]) == 1:
        parts[-2:] = [torch.cat(parts[-2:])]
    return parts


def _train(model: LinearProbe, x: torch.Tensor, y: torch.Tensor, pos_weight: torch.Tensor,
           hp: dict[str, Any], gen: torch.Generator) -> None:
    """Adam on the masked, positive-weighted BCE for ``hp['epochs']`` epochs."""
    known = (y >= 0).float()
    target = y.clamp(min=0).float()
    opt = torch.optim.Adam(model.parameters(), lr=float(hp["lr"]), weight_decay=float(hp["weight_decay"]))
    model.train()
    for _ in range(int(hp["epochs"])):
        for idx in _batches(x.shape[0], hp["batch_size"], gen):
            idx = idx.to(x.device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            loss = masked_bce(model(x[idx]), target[idx], known[idx], pos_weight)
            loss.backward()
            opt.step()


@torch.inference_mode()
def _predict(model: LinearProbe, x: torch.Tensor) -> np.ndarray:
    """Sigmoid probabilities ``[N, C]`` in eval mode, in chunks."""
    model.eval()
    out = [torch.sigmoid(model(chunk)).float().cpu() for chunk in x.split(_PREDICT_CHUNK)]
    return torch.cat(out).numpy()


def fit_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, *, seed: int = 0,
                **hparams: Any) -> np.ndarray:
    """Fit a :class:`LinearProbe` on ``(x_train, y_train)`` and return float32 probabilities
    ``[n_test, C]`` for ``x_test``.

    ``y_train`` is ``[N, C]`` of 1/0 with -1 = unknown (masked from the loss); each label's
    positives are weighted by ``n_neg / n_pos`` of its known training entries. ``hparams``
    override :data:`PROBE_DEFAULTS`. The result is deterministic for a seed on CPU. Bad input
    (shapes, non-finite embeddings, unknown hyperparameters) raises :class:`UserError`.
    """
    hp = resolve_hparams(**hparams)
    x_train, y_train, x_test = np.asarray(x_train), np.asarray(y_train), np.asarray(x_test)
    _check_inputs(x_train, y_train, x_test)
    device = torch.device(hp["device"])
    x = torch.as_tensor(x_train, dtype=torch.float32).to(device)
    y = torch.as_tensor(y_train.astype(np.int8)).to(device)
    xt = torch.as_tensor(x_test, dtype=torch.float32).to(device)
    pos_weight = torch.as_tensor(positive_weights(y_train)).to(device)
    gen = torch.Generator().manual_seed(seed)
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        model = LinearProbe(x.shape[1], y.shape[1]).to(device)
    _train(model, x, y, pos_weight, hp, gen)
    return _predict(model, xt)


__all__ = ["PROBE_DEFAULTS", "LinearProbe", "fit_predict", "resolve_hparams", "positive_weights", "masked_bce"]
