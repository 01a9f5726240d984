"""The ``npair`` ablation: the exact N-pair-mc loss (Sohn, NeurIPS 2016; Eq. 1 of Lu et al. 2020).

Over the ranking window ``[anchor, sibling, N frames at interval k]``: the sibling is the one
positive and all N far frames are negatives, compared at once through unnormalised inner products
``log(1 + sum_i exp(f.f_i - f.f+))``. As in Sohn's paper the embeddings are NOT L2-normalised;
an L2 penalty on them (``l2_reg``) keeps their norm in check instead. The paper blames that for the
ablation's poor scores ("instability of the numerical output"), so the evaluation embedding is
the unnormalised one the loss trained. Model selection by held-out N-pair accuracy: the share of
negatives the anchor scores below the positive, ``f.f_i < f.f+``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ssfbench.methods.ranking import RankingConfig, RankingMethod
from ssfbench.nn.encoders import Encoder
from ssfbench.nn.losses import npair_mc_loss


@dataclass
class NPairConfig(RankingConfig):
    """The ranking window and optimiser defaults plus Sohn's L2 penalty weight on the embeddings."""

    l2_reg: float = 0.002


def npair_accuracy(anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Per-example share of negatives with ``f.f_i < f.f+`` (strict); ``anchor``/``positive``
    ``[B, D]``, ``negatives`` ``[B, M, D]`` -> ``[B]``."""
    pos = (anchor * positive).sum(-1, keepdim=True)
    neg = torch.einsum("bd,bmd->bm", anchor, negatives)
    return (neg < pos).float().mean(dim=1)


class NPairMethod(RankingMethod):
    """N-pair-mc: anchor, sibling as the positive, the N far frames as negatives, no normalisation."""

    name = "npair"
    summary = "ablation: exact N-pair-mc (Sohn 2016) over the ranking window, unnormalised embeddings + L2 penalty"
    Config = NPairConfig
    selection = ("npair_accuracy", "max")

    def build(self) -> None:
        """The ranking encoder without its final L2 normalisation."""
        cfg = self.config
        if cfg.k < 1:
            raise ValueError(f"k must be >= 1, got {cfg.k}")
        if cfg.l2_reg < 0:
            raise ValueError(f"l2_reg must be >= 0, got {cfg.l2_reg}")
        self.encoder = Encoder(self.backbone, dim=cfg.dim, normalize=False, pretrained=self.pretrained)

    def _encode(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[B, N+2, 3, S, S]`` -> anchor ``[B, D]``, positive ``[B, D]``, negatives ``[B, N, D]``."""
        anchor, sequence = self._encode_windows(frames)
        if sequence.shape[1] < 2:
            raise ValueError(f"npair expects frames [B, N+2, 3, S, S] with N >= 1, got {tuple(frames.shape)}")
        return anchor, sequence[:, 0], sequence[:, 1:]

    def training_loss(self, frames: torch.Tensor) -> torch.Tensor:
        """Eq. 1 plus ``l2_reg`` times the mean squared norm of the embeddings."""
        anchor, positive, negatives = self._encode(frames)
        return npair_mc_loss(anchor.float(), positive.float(), negatives.float(), l2_reg=self.config.l2_reg)

    @torch.no_grad()
    def validation_metrics(self, frames: torch.Tensor) -> dict[str, float]:
        """Held-out loss and N-pair accuracy (share of negatives scored below the positive)."""
        anchor, positive, negatives = (t.float() for t in self._encode(frames))
        loss = npair_mc_loss(anchor, positive, negatives, l2_reg=self.config.l2_reg)
        acc = npair_accuracy(anchor, positive, negatives).mean()
        return {"val_loss": float(loss), "npair_accuracy": float(acc)}

    def display_name(self) -> str:
        """``N-pair-mc k=1`` (the paper's row name)."""
        return f"N-pair-mc {self.variant()}"
