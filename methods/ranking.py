"""The temporal ranking triplet method (Lu, Tavabi & Soleymani, BMVC 2020).

An anchor frame, its sibling and N frames at interval k; a shared encoder to a 256-d
L2-normalised embedding; the sum of N adjacent-pair hinges (Eq. 2). By default the checkpoint kept is the one with the best
ranking accuracy on held-out videos (``select=best``, the harness's choice: the released code
computes that accuracy every epoch but saves every epoch's weights and selects none;
``select=last`` keeps the last epoch's, as the released code's final file).

``forward_passes=3`` encodes a batch as the released ``train_model`` does: anchors, siblings and
the far frames as three separate batches (in train mode each has its own BatchNorm batch
statistics, and the running statistics are updated three times per step); ``1`` (the default)
encodes all frames of every window as one batch. ``recipes/paper.toml`` (``--recipe paper``) sets
these and the other released settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ssfbench.api.method import Method, MethodConfig
from ssfbench.api.preprocess import Preprocess
from ssfbench.nn.encoders import RELEASED_PREFIXES, Encoder, is_released_layout
from ssfbench.nn.losses import ranking_accuracy, ranking_triplet_loss
from ssfbench.nn.sampling import ranking_window
from ssfbench.nn.statedict import load_mapped, translate_prefixes


@dataclass
class RankingConfig(MethodConfig):
    """The paper's defaults: N=10, margin 0.03, SGD lr 1e-3 momentum 0.9, k in {1, 2, 4}."""

    k: int = 1
    n: int = 10
    margin: float = 0.03
    distance: Literal["euclidean", "squared"] = "euclidean"
    dim: int = 256
    #: 1: every frame of every window through the encoder as one batch; 3: anchors, siblings and far
    #: frames as three batches (the released ``train_model``; BatchNorm statistics per pass)
    forward_passes: Literal[1, 3] = 1


class RankingMethod(Method):
    """Temporal ranking triplet loss over [anchor, sibling, N frames at interval k]."""

    name = "ranking"
    summary = "temporal ranking triplet loss (Lu et al., BMVC 2020): anchor, sibling, N frames at interval k"
    Config = RankingConfig
    selection = ("ranking_accuracy", "max")
    ensemble_axis = "k"

    def build(self) -> None:
        cfg = self.config
        if cfg.k < 1:
            raise ValueError(f"k must be >= 1, got {cfg.k}")
        self.encoder = Encoder(self.backbone, dim=cfg.dim, normalize=True, pretrained=self.pretrained)

    @property
    def embed_dim(self) -> int:
        return self.config.dim

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def load_released_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Own layout, or the authors' released ``train/model.py`` one: ``resnet18.<i>.*`` (or
        ``densenet.<i>.*``) for ``nn.Sequential(*list(model.children())[:-1])`` plus ``fc1.*``,
        with or without DataParallel's ``module.``. Keys that do not fit are named."""
        if not is_released_layout(state_dict):
            load_mapped(self, state_dict, {}, layout=f"{self.name} ({self.backbone})")
            return
        prefixes = RELEASED_PREFIXES.get(self.backbone)
        if prefixes is None:
            raise RuntimeError("weights do not fit the released layout:\n"
                               f"the released layout is mapped for {', '.join(RELEASED_PREFIXES)}, "
                               f"not for backbone {self.backbone!r}")
        own = translate_prefixes(state_dict, {rel: f"encoder.{ours}" for rel, ours in prefixes.items()})
        load_mapped(self, own, {}, layout=f"{self.name} ({self.backbone}, the authors' model.py)")
        self.weights_preprocess = self.released_preprocess()

    def released_preprocess(self) -> Preprocess:
        """The released training code's transform without its random crop: resize 256, pad 24,
        centre crop 224 (the central 224/256 of the face), resize 256, ImageNet normalisation."""
        return Preprocess(input_size=256, center_crop=224 / 256,
                          source="the ranking paper's code (ihp-lab/temporal-consistency), its random crop left "
                                 "out: resize 256, pad 24, centre crop 224, resize 256, ImageNet normalisation")

    def frame_offsets(self) -> list[int]:
        return ranking_window(0, self.config.k, self.config.n)

    def _encode_windows(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(anchor [B, D], sequence [B, N + 1, D])`` of windows ``[B, T, 3, S, S]``, in one encoder
        pass or in the released code's three (anchors, siblings, far frames: ``forward_passes``)."""
        b, t = frames.shape[:2]
        if self.config.forward_passes == 3:
            anchor = self.encoder(frames[:, 0])
            sibling = self.encoder(frames[:, 1])
            far = self.encoder(frames[:, 2:].flatten(0, 1)).view(b, t - 2, -1)
            return anchor, torch.cat([sibling[:, None], far], dim=1)
        z = self.encoder(frames.flatten(0, 1)).view(b, t, -1)
        return z[:, 0], z[:, 1:]

    def training_loss(self, frames: torch.Tensor) -> torch.Tensor:
        anchor, sequence = self._encode_windows(frames)
        return ranking_triplet_loss(anchor, sequence, self.config.margin, self.config.distance)

    @torch.no_grad()
    def validation_metrics(self, frames: torch.Tensor) -> dict[str, float]:
        anchor, sequence = self._encode_windows(frames)
        loss = ranking_triplet_loss(anchor, sequence, self.config.margin, self.config.distance)
        acc = ranking_accuracy(anchor, sequence, self.config.distance).mean()
        return {"val_loss": float(loss), "ranking_accuracy": float(acc)}

    def variant(self) -> str:
        return f"k={self.config.k}"
