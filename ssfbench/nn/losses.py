"""Metric-learning losses of the paper and its ablations (Lu, Tavabi & Soleymani, BMVC 2020).

All losses take embeddings (not images) and return a scalar: the mean over the batch.
"""

from __future__ import annotations

from typing import Literal

import torch

Distance = Literal["euclidean", "squared"]


def pairwise_distance(x: torch.Tensor, y: torch.Tensor, distance: Distance = "euclidean") -> torch.Tensor:
    """Row-wise distance over the last dim: Euclidean (the paper's text) or squared Euclidean
    (the released code). Broadcasts like ``x - y``."""
    sq = (x - y).pow(2).sum(dim=-1)
    if distance == "squared":
        return sq
    if distance == "euclidean":
        # clamp keeps the gradient finite where two embeddings coincide
        return sq.clamp_min(1e-12).sqrt()
    raise ValueError(f"distance must be 'euclidean' or 'squared', got {distance!r}")


def ranking_triplet_loss(anchor: torch.Tensor, sequence: torch.Tensor, margin: float = 0.03,
                         distance: Distance = "euclidean") -> torch.Tensor:
    """Eq. 2: ``sum_{n=1..N} max(0, d(x^{n-1}, x^a) - d(x^n, x^a) + margin)``, mean over the batch.

    ``anchor`` is ``[B, D]``; ``sequence`` is ``[B, N+1, D]`` with the sibling at index 0 followed by
    the N frames at interval k, in temporal order.
    """
    if sequence.dim() != 3 or sequence.shape[1] < 2:
        raise ValueError(f"sequence must be [B, N+1, D] with N >= 1, got {tuple(sequence.shape)}")
    d = pairwise_distance(sequence, anchor[:, None, :], distance)  # [B, N+1]
    hinges = (d[:, :-1] - d[:, 1:] + margin).clamp_min(0)
    return hinges.sum(dim=1).mean()


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                 margin: float = 0.03, distance: Distance = "euclidean") -> torch.Tensor:
    """One hinge ``max(0, d(x^+, x^a) - d(x^-, x^a) + margin)``, mean over the batch."""
    dp = pairwise_distance(positive, anchor, distance)
    dn = pairwise_distance(negative, anchor, distance)
    return (dp - dn + margin).clamp_min(0).mean()


def npair_mc_loss(anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor,
                  l2_reg: float = 0.002) -> torch.Tensor:
    """Eq. 1 (Sohn 2016, N-pair-mc) on unnormalised embeddings:
    ``log(1 + sum_i exp(f.f_i - f.f+))`` averaged over the batch, plus Sohn's L2 penalty
    ``l2_reg * mean_b(|f|^2 + |f+|^2 + mean_i |f_i|^2)`` on the embeddings (instead of L2-normalising).

    ``anchor`` and ``positive`` are ``[B, D]``, ``negatives`` is ``[B, M, D]``.
    """
    pos = (anchor * positive).sum(-1, keepdim=True)  # [B, 1]
    neg = torch.einsum("bd,bmd->bm", anchor, negatives)  # [B, M]
    # log(1 + sum exp(neg - pos)) == logsumexp over [0, neg - pos]
    logits = torch.cat([torch.zeros_like(pos), neg - pos], dim=1)
    loss = torch.logsumexp(logits, dim=1).mean()
    penalty = (anchor.pow(2).sum(-1) + positive.pow(2).sum(-1) + negatives.pow(2).sum(-1).mean(-1)).mean()
    return loss + l2_reg * penalty


def ranking_accuracy(anchor: torch.Tensor, sequence: torch.Tensor, distance: Distance = "euclidean") -> torch.Tensor:
    """Per-position share of correctly ordered adjacent pairs, ``d(a, x^{n-1}) < d(a, x^n)`` (strict,
    no margin), as the released code's validation: returns ``[N]`` accuracies (mean them for one number)."""
    d = pairwise_distance(sequence, anchor[:, None, :], distance)
    return (d[:, :-1] < d[:, 1:]).float().mean(dim=0)
