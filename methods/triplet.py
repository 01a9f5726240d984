"""The ``triplet`` ablation of the ranking method (Lu, Tavabi & Soleymani, BMVC 2020, section 4.3).

One hinge per example instead of the sum of N: the anchor, its sibling (the next frame) as the
positive and ONE frame of the ranking sequence as the negative. The negative is drawn per example:
offsets ``[0, 1, 1 + j*k]`` with ``j`` uniform in ``1..N``, so over many examples the negatives
cover the same frames the ranking loss sees. Encoder, preprocessing and window span are the
ranking method's; only the frames an example takes and the loss differ. Model selection by
held-out triplet accuracy, ``d(a, p) < d(a, n)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ssfbench.methods.ranking import RankingConfig, RankingMethod
from ssfbench.nn.losses import pairwise_distance, triplet_loss


@dataclass
class TripletConfig(RankingConfig):
    """The ranking defaults (N=10 candidate negatives at interval k, margin 0.03, SGD lr 1e-3)."""


def triplet_accuracy(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                     distance: str = "euclidean") -> torch.Tensor:
    """Per-example ``1.0`` where ``d(a, p) < d(a, n)`` (strict, no margin), else ``0.0``; shape ``[B]``."""
    return (pairwise_distance(positive, anchor, distance) < pairwise_distance(negative, anchor, distance)).float()


class TripletMethod(RankingMethod):
    """Single triplet: anchor, sibling as positive, one frame of the ranking sequence as negative."""

    name = "triplet"
    summary = "ablation: one triplet (anchor, sibling +, one of the N frames at interval k as -), one hinge"
    Config = TripletConfig
    selection = ("triplet_accuracy", "max")

    def frame_offsets(self) -> list[int]:
        """Three frames per example; this is the farthest negative (the window the harness reserves)."""
        return [0, 1, 1 + self.config.n * self.config.k]

    def sample_offsets(self, rng: np.random.Generator) -> list[int]:
        """``[0, 1, 1 + j*k]`` with ``j`` drawn uniformly from ``1..N`` by ``rng``."""
        j = int(rng.integers(1, self.config.n + 1))
        return [0, 1, 1 + j * self.config.k]

    def _encode_triplets(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[B, 3, 3, S, S]`` -> anchor, positive, negative embeddings ``[B, D]`` each."""
        if frames.dim() != 5 or frames.shape[1] != 3:
            raise ValueError(f"triplet expects frames [B, 3, 3, S, S] (anchor, sibling, negative), got {tuple(frames.shape)}")
        b = frames.shape[0]
        z = self.encoder(frames.flatten(0, 1)).view(b, 3, -1)
        return z[:, 0], z[:, 1], z[:, 2]

    def training_loss(self, frames: torch.Tensor) -> torch.Tensor:
        """``max(0, d(a, p) - d(a, n) + margin)``, mean over the batch."""
        anchor, positive, negative = self._encode_triplets(frames)
        return triplet_loss(anchor, positive, negative, self.config.margin, self.config.distance)

    @torch.no_grad()
    def validation_metrics(self, frames: torch.Tensor) -> dict[str, float]:
        """Held-out loss and triplet accuracy (share of examples with ``d(a, p) < d(a, n)``)."""
        anchor, positive, negative = self._encode_triplets(frames)
        loss = triplet_loss(anchor, positive, negative, self.config.margin, self.config.distance)
        acc = triplet_accuracy(anchor, positive, negative, self.config.distance).mean()
        return {"val_loss": float(loss), "triplet_accuracy": float(acc)}

    def display_name(self) -> str:
        """``Triplet k=1``."""
        return f"Triplet {self.variant()}"
