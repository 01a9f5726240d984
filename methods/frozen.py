"""The ``frozen`` method: any timm model as it comes, frozen, its pooled features as the embedding.

``ssfbench run --method frozen --backbone NAME [--pretrained imagenet|default|PATH]`` evaluates an
outside encoder without a plugin: nothing is trained (steps 0), there is no projection head, the
embedding is the trunk's pooled output (``embed_dim`` = timm's ``num_features``), the BatchNorm
statistics are the weights' own, and the preprocessing is the weights' data config (timm's
``pretrained_cfg``: input size, mean/std, crop fraction; ``--set input_size=..``/``crop_pct=..``
override it). ``--pretrained imagenet`` on ``resnet18`` is the ranking paper's starting point,
torchvision's ImageNet ResNet-18: the row "ResNet-18 ImageNet (torchvision)", which is also the
step-0 control of every method pretrained from those weights (:func:`ssfbench.pipeline.spec.init_control_spec`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ssfbench.api.method import Method, MethodConfig
from ssfbench.api.preprocess import Preprocess
from ssfbench.nn.encoders import create_trunk
from ssfbench.nn.weights import IMAGENET, pretty_backbone, weights_label


@dataclass
class FrozenConfig(MethodConfig):
    """``input_size``: model input side in px (0: the weights' data config, else ``--image-size``);
    ``crop_pct``: the central fraction of each side kept before resizing (0: the weights')."""

    input_size: int = 0
    crop_pct: float = 0.0


class FrozenEncoder(Method):
    """A timm trunk with the weights ``--pretrained`` names, untrained; pooled features out."""

    name = "frozen"
    summary = ("any timm model (--backbone, --pretrained imagenet|default|PATH), frozen: pooled features as the "
               "embedding, no head, no training; the weights' own preprocessing")
    Config = FrozenConfig
    trainable = False

    def build(self) -> None:
        if self.config.input_size < 0 or not 0.0 <= self.config.crop_pct <= 1.0:
            raise ValueError(f"input_size must be >= 0 and crop_pct in [0, 1], got {self.config.input_size}, "
                             f"{self.config.crop_pct}")
        self.trunk = create_trunk(self.backbone, self.pretrained)
        self.trunk.requires_grad_(False)
        # the paper's starting point (and a random trunk) is a reference row; other weights are outside
        # representations compared with the self-supervised methods
        self.role = "floor" if self.pretrained in (None, IMAGENET) else "self-supervised"

    def default_preprocess(self) -> Preprocess:
        base = super().default_preprocess()
        size = self.config.input_size or base.input_size
        crop = self.config.crop_pct or base.center_crop
        if (size, crop) == (base.input_size, base.center_crop):
            return base
        return Preprocess(input_size=size, mean=base.mean, std=base.std, center_crop=crop, source=base.source)

    @property
    def embed_dim(self) -> int:
        return int(self.trunk.num_features)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(images)

    def display_name(self) -> str:
        return f"{pretty_backbone(self.backbone)} {weights_label(self.backbone, self.pretrained)}"
