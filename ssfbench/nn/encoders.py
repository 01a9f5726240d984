"""The shared image encoder: a timm trunk without classifier, a linear projection, L2 norm.

Every trunk starts with every layer live: timm zero-initialises the last normalisation layer of each
residual branch by default (``zero_init_last``), which leaves an untrained ResNet-18 its stem and
stride-2 shortcuts and lets it see about 7 % of a 64 px input; the harness re-initialises such
layers to scale 1, as torchvision's ResNets start (the authors' starting point).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import timm
import torch
import torch.nn.functional as F
from torch import nn

from ssfbench.errors import UserError


def create_trunk(backbone: str, pretrained: str | None = None) -> nn.Module:
    """A timm model with its classifier removed (``num_classes=0``: pooled features out).

    ``pretrained`` is None (random init, every layer live), ``"imagenet"`` (torchvision's ImageNet
    weights, as the paper's authors loaded them), ``"default"`` (timm's default tag for the name) or a
    path to a state dict (:mod:`ssfbench.nn.weights`, which downloads into the usual caches when online).
    A pretrained trunk carries :data:`WEIGHTS_ATTR`: its weights' identity and data config.
    """
    if not timm.is_model(backbone) and not backbone.startswith("hf-hub:"):
        import difflib

        near = difflib.get_close_matches(backbone, timm.list_models(), n=3)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise UserError(f"unknown backbone {backbone!r}{hint}; `ssfbench list backbones` shows them")
    if pretrained:
        from ssfbench.nn.weights import load_pretrained_trunk

        loaded = load_pretrained_trunk(backbone, pretrained)
        setattr(loaded.trunk, WEIGHTS_ATTR, loaded)
        return loaded.trunk
    trunk = timm.create_model(backbone, pretrained=False, num_classes=0)
    revive_zero_init(trunk)
    return trunk


#: attribute of a pretrained trunk holding its :class:`ssfbench.nn.weights.PretrainedTrunk` record
WEIGHTS_ATTR = "ssfbench_weights"


def trunk_weights(model: nn.Module) -> Any:
    """The :class:`ssfbench.nn.weights.PretrainedTrunk` record of the first pretrained trunk inside
    ``model`` (None when it has none)."""
    for module in model.modules():
        found = getattr(module, WEIGHTS_ATTR, None)
        if found is not None:
            return found
    return None


def revive_zero_init(model: nn.Module) -> list[str]:
    """Set every normalisation layer whose scale is identically zero to scale 1 (timm's
    ``zero_init_last`` of residual branches, in whatever model it is applied); returns their names.
    Uses no random numbers, so the other initial weights drawn from the seed are unchanged."""
    revived = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        is_norm = isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm))
        if is_norm and isinstance(weight, torch.Tensor) and weight.numel() and not weight.detach().any():
            with torch.no_grad():
                weight.fill_(1.0)
            revived.append(name)
    return revived


#: The ranking paper's released ``train/model.py`` layout (released prefix -> ``Encoder`` prefix):
#: ``nn.Sequential(*list(torchvision_model.children())[:-1])`` as ``resnet18``/``densenet`` plus
#: ``fc1``. torchvision's and timm's ResNet-18 and DenseNet-121 name their inner modules alike.
#: (Their MobileNetV2 is not mapped: timm's ``mobilenetv2_100`` names its blocks differently.)
RELEASED_PREFIXES: dict[str, dict[str, str]] = {
    "resnet18": {"resnet18.0.": "trunk.conv1.", "resnet18.1.": "trunk.bn1.", "resnet18.4.": "trunk.layer1.",
                 "resnet18.5.": "trunk.layer2.", "resnet18.6.": "trunk.layer3.", "resnet18.7.": "trunk.layer4.",
                 "fc1.": "fc."},
    "densenet121": {"densenet.0.": "trunk.features.", "fc1.": "fc."},
}


def is_released_layout(state: Mapping[str, Any]) -> bool:
    """Whether a state dict uses the released ``model.py`` layout (its head is ``fc1``)."""
    return any(k.startswith("fc1.") for k in state)


class Encoder(nn.Module):
    """``(B, 3, H, W) -> (B, dim)``: timm trunk -> ``Linear(features, dim)`` -> L2 norm (optional)."""

    def __init__(self, backbone: str = "resnet18", dim: int = 256, normalize: bool = True,
                 pretrained: str | None = None) -> None:
        super().__init__()
        self.backbone_name = backbone
        self.trunk = create_trunk(backbone, pretrained)
        self.fc = nn.Linear(cast(int, self.trunk.num_features), dim)
        self.normalize = normalize
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.fc(self.trunk(x))
        return F.normalize(z, p=2, dim=1) if self.normalize else z
