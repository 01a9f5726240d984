"""The frozen-encoder linear probe of the protocol: BatchNorm1d + Linear without bias, trained
with class-weighted BCE on cached embeddings, unknown (-1) labels masked out of the loss.

``PROBE_DEFAULTS`` is part of the evaluation protocol: results record the resolved
hyperparameters, and changing a default means a new ``ssfbench.version.PROTOCOL_VERSION``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ssfbench.errors import UserError
from ssfbench.nn.heads import LinearProbe, masked_bce

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
    if hp["batch_size"] is None or int(hp["batch_size"]) >= x.shape[0]:
        _train_full_batch(model, x, target, known, pos_weight, hp)
        return
    opt = torch.optim.Adam(model.parameters(), lr=float(hp["lr"]), weight_decay=float(hp["weight_decay"]))
    model.train()
    for _ in range(int(hp["epochs"])):
        for idx in _batches(x.shape[0], hp["batch_size"], gen):
            idx = idx.to(x.device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            loss = masked_bce(model(x[idx]), target[idx], known[idx], pos_weight)
            loss.backward()
            opt.step()


def _train_full_batch(model: LinearProbe, x: torch.Tensor, target: torch.Tensor, known: torch.Tensor,
                      pos_weight: torch.Tensor, hp: dict[str, Any]) -> None:
    """Full-batch training of the same model with the same optimiser, computed cheaply.

    In train mode over the full batch, BatchNorm normalises with the statistics of ``x`` itself,
    which never change, so ``x̂ = (x - mean) / sqrt(var + eps)`` is computed once (stored ``[D, N]``
    for fast products). Each epoch's logits ``W (γ ⊙ x̂ + β)`` are ``(W diag γ) x̂ + W β`` (one
    ``[C, D] x [D, N]`` product), and the gradient of the masked, positive-weighted BCE mean is
    written out: ``G = a ⊙ σ(z) - c`` with ``a = known (1 + (p - 1) y) / K`` and ``c = known p y / K``
    (K known entries), chained to ``W, γ, β`` by hand. Adam then updates the module's own
    parameters, and the running statistics are set to what BatchNorm's momentum updates leave after
    ``epochs`` full-batch passes (``1 - (1 - momentum)^epochs`` of the way from 0 and 1 to the mean
    and the unbiased variance). The predictions are those of the step-by-step autograd loop up to
    float rounding (tests/test_probe.py compares the two), at a fraction of the time.
    """
    norm, linear = model.norm, model.linear
    n = x.shape[0]
    mean, var = x.mean(dim=0), x.var(dim=0, unbiased=False)
    xhat_t = ((x - mean) * torch.rsqrt(var + norm.eps)).t().contiguous()  # [D, N]
    known_t, target_t = known.t(), target.t()  # [C, N]
    scale = known_t / known_t.sum().clamp(min=1.0)
    a = (scale * (1.0 + (pos_weight[:, None] - 1.0) * target_t)).contiguous()
    c = (scale * pos_weight[:, None] * target_t).contiguous()
    weight, gamma, beta = linear.weight, norm.weight, norm.bias
    opt = torch.optim.Adam(model.parameters(), lr=float(hp["lr"]), weight_decay=float(hp["weight_decay"]))
    epochs = int(hp["epochs"])
    with torch.no_grad():
        for _ in range(epochs):
            logits = torch.addmm((weight @ beta)[:, None], weight * gamma, xhat_t)  # [C, N]
            grad_logits = torch.sigmoid_(logits).mul_(a).sub_(c)
            grad_m = grad_logits @ xhat_t.t()  # d loss / d (W diag γ), [C, D]
            grad_u = grad_logits.sum(dim=1)  # d loss / d (W β), [C]
            weight.grad = grad_m * gamma + torch.outer(grad_u, beta)
            gamma.grad = (grad_m * weight).sum(dim=0)
            beta.grad = weight.t() @ grad_u
            opt.step()
        keep = (1.0 - norm.momentum) ** epochs
        norm.running_mean.copy_(mean * (1.0 - keep))
        norm.running_var.copy_(keep + (1.0 - keep) * var * (n / max(n - 1, 1)))
        norm.num_batches_tracked += epochs


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
