"""The ``random`` floor: the same encoder as the ranking method, untrained.

The weights are drawn from the run's seed (the same draw as the ranking, triplet and npair
encoders' initialisation: this row is their step 0) and saved as a checkpoint like any other
method's. By default (``bn_stats=data``) its BatchNorm statistics are re-estimated on a fixed,
seeded draw of pretraining frames (:mod:`ssfbench.train.batchnorm`), so it is evaluated like the trained
encoders it is compared with; ``--set bn_stats=init`` keeps the initial statistics (running mean 0,
variance 1), the floor of protocol version 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ssfbench.api.method import Method, MethodConfig
from ssfbench.nn.encoders import Encoder


@dataclass
class RandomInitConfig(MethodConfig):
    """``bn_stats``: ``data`` (re-estimated on pretraining frames, the default) or ``init`` (0/1)."""

    bn_stats: Literal["data", "init"] = "data"


class RandomInit(Method):
    """Untrained encoder (random initialisation): the floor every table needs."""

    name = "random"
    role = "floor"
    summary = ("floor: the ranking encoder (timm trunk + Linear 256 + L2) at random initialisation, untrained; "
               "BatchNorm statistics from pretraining frames (--set bn_stats=init: 0/1)")
    Config = RandomInitConfig
    trainable = False

    def build(self) -> None:
        if self.config.bn_stats not in ("data", "init"):
            raise ValueError(f"bn_stats must be data or init, got {self.config.bn_stats!r}")
        self.encoder = Encoder(self.backbone, dim=self.embed_dim, normalize=True, pretrained=self.pretrained)

    @property
    def embed_dim(self) -> int:
        return 256

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def batchnorm_from_data(self) -> bool:
        return self.config.bn_stats == "data"

    def display_name(self) -> str:
        return "Random init" if self.batchnorm_from_data() else "Random init (BN 0/1)"
