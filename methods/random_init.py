"""The ``random`` floor: the same encoder as the ranking method, untrained.

Evaluated in eval mode with its initial BatchNorm statistics (running mean 0, variance 1); the
weights are drawn from the run's seed and saved as a checkpoint like any other method's.
"""

from __future__ import annotations

import torch

from ssfbench.encoders import Encoder
from ssfbench.method import Method


class RandomInit(Method):
    """Untrained encoder (random initialisation): the floor every table needs."""

    name = "random"
    summary = "floor: the ranking encoder (timm trunk + Linear 256 + L2) at random initialisation, untrained"
    trainable = False

    def build(self) -> None:
        self.encoder = Encoder(self.backbone, dim=256, normalize=True, pretrained=self.pretrained)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def display_name(self) -> str:
        return "Random init"
