"""The ``supervised`` ceiling: the ranking encoder fine-tuned on each fold's TRAINING labels.

Every table of the paper has a supervised row; this is its counterpart measured with the harness's
own protocol so the self-supervised rows can be read between a floor (``random``) and a ceiling.
The encoder (timm trunk + Linear 256 + L2, random init or ``--pretrained``) gets the probe's own
head (BatchNorm1d + Linear without bias) and is trained end to end with the probe's loss: BCE with
per-label positive weights ``n_neg / n_pos`` of the fold's training rows, unknown (-1) labels
masked. The harness trains one copy per fold (``needs_labels``) for a small step budget
(``--steps``, Adam), then freezes it, embeds the dataset and fits the SAME probe on that fold:
the row is "what the frozen-encoder protocol gives an encoder that saw the labels".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ssfbench.api.method import Method, MethodConfig
from ssfbench.nn.encoders import Encoder
from ssfbench.nn.heads import LinearProbe, masked_bce


@dataclass
class SupervisedConfig(MethodConfig):
    """Adam 1e-3 (fine-tuning a whole trunk with SGD 1e-3 barely moves it in a small budget)."""

    optimizer: Literal["sgd", "adam"] = "adam"
    lr: float = 1e-3
    dim: int = 256
    #: set by the harness to the label count of the dataset being fitted (0: no head yet)
    num_labels: int = 0


class SupervisedMethod(Method):
    """Encoder + probe head trained on a fold's labels; evaluated through the encoder alone."""

    name = "supervised"
    role = "supervised"
    summary = "ceiling: the ranking encoder fine-tuned per fold on that fold's training labels (probe's BCE)"
    Config = SupervisedConfig
    needs_labels = True
    selection = ("train_loss", "min")

    def build(self) -> None:
        """The ranking encoder, plus the probe head once ``num_labels`` is known."""
        cfg = self.config
        if cfg.num_labels < 0:
            raise ValueError(f"num_labels must be >= 0, got {cfg.num_labels}")
        self.encoder = Encoder(self.backbone, dim=cfg.dim, normalize=True, pretrained=self.pretrained)
        self.head = LinearProbe(cfg.dim, cfg.num_labels) if cfg.num_labels > 0 else None

    @property
    def embed_dim(self) -> int:
        """The encoder's width (the head is not part of the embedding)."""
        return self.config.dim

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The encoder's L2-normalised embedding, exactly as for ``ranking`` and ``random``."""
        return self.encoder(images)

    def label_loss(self, images: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor) -> torch.Tensor:
        """The probe's loss through the whole encoder: positive-weighted BCE over known labels."""
        if self.head is None:
            raise TypeError("supervised: config.num_labels is 0; the harness sets it to the dataset's label count")
        if targets.shape != (images.shape[0], self.config.num_labels):
            raise ValueError(f"supervised: targets must be [{images.shape[0]}, {self.config.num_labels}], "
                             f"got {tuple(targets.shape)}")
        logits = self.head(self.encoder(images)).float()
        known = (targets >= 0).float()
        return masked_bce(logits, targets.clamp(min=0).float(), known, pos_weight.float())

    def display_name(self) -> str:
        """``Supervised`` (the paper's row name for its supervised baselines)."""
        return "Supervised"
