"""The ``pixels`` floor: the image itself, average-pooled to 16x16 and flattened (768-d).

On the synthetic benchmark the AU cues are geometric and large, so raw pixels are a strong floor
that every learned representation should be read against (see notes on the synthetic trial).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssfbench.api.method import Method


class PixelsFloor(Method):
    """Raw pixels pooled to a 16x16 grid: no learning at all."""

    name = "pixels"
    role = "floor"
    summary = "floor: raw pixels average-pooled to 16x16 (768-d), no learning"
    trainable = False
    grid = 16

    def build(self) -> None:
        pass

    @property
    def embed_dim(self) -> int:
        return 3 * self.grid * self.grid

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(images, self.grid).flatten(1)

    def display_name(self) -> str:
        return "Raw pixels"
