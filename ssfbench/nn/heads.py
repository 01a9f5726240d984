"""The probe's head and loss, shared by the linear probe (:mod:`ssfbench.evaluation.probe`) and the
``supervised`` ceiling (which trains the same head on the encoder): ``BatchNorm1d`` + ``Linear``
without bias, and class-weighted BCE with unknown labels masked out."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LinearProbe(nn.Module):
    """``BatchNorm1d(D)`` followed by ``Linear(D, C, bias=False)``; returns logits ``[B, C]``."""

    def __init__(self, dim: int, num_labels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(dim)
        self.linear = nn.Linear(dim, num_labels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for embeddings ``x`` ``[B, D]``."""
        return self.linear(self.norm(x))


def masked_bce(logits: torch.Tensor, y: torch.Tensor, known: torch.Tensor,
               pos_weight: torch.Tensor) -> torch.Tensor:
    """Positive-weighted BCE-with-logits, mean over the known entries only."""
    loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight, reduction="none")
    return (loss * known).sum() / known.sum().clamp(min=1.0)
