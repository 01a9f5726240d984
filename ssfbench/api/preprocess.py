"""Preprocessing that travels with the weights (as timm's ``PretrainedCfg`` does): input size and
normalisation are saved in every checkpoint and every embedding cache, and applied here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """How images become model input: the central ``center_crop`` fraction of each side kept (1 =
    all), resized to ``input_size`` (square, bilinear), scaled to [0, 1], then normalised with
    ``mean``/``std`` (mean 0 / std 1 means raw [0, 1] input). ``source`` names whose convention it
    is when it is not the method's own (released weights carry their authors' preprocessing)."""

    input_size: int = 64
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    center_crop: float = 1.0
    source: str = ""

    def to_dict(self) -> dict:
        """The JSON form (saved in checkpoints, cache keys and results; the optional fields only
        when set, so older caches keep their keys)."""
        out = {"input_size": self.input_size, "mean": list(self.mean), "std": list(self.std)}
        if self.center_crop != 1.0:
            out["center_crop"] = self.center_crop
        if self.source:
            out["source"] = self.source
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        return cls(int(d["input_size"]), tuple(d["mean"]), tuple(d["std"]), float(d.get("center_crop", 1.0)),
                   str(d.get("source", "")))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[..., H, W, 3]`` (channels last, any leading dims) -> float ``[..., 3, S, S]``."""
        lead = images.shape[:-3]
        x = images.reshape(-1, *images.shape[-3:]).permute(0, 3, 1, 2).to(torch.float32, copy=True).div_(255.0)
        if self.center_crop != 1.0:
            h, w = x.shape[-2:]
            ch, cw = round(h * self.center_crop), round(w * self.center_crop)
            x = x[..., (h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw]
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False, antialias=True)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        x = x.sub_(mean).div_(std)  # in place: the same numbers as (x - mean) / std, 5x faster channels-last
        return x.reshape(*lead, 3, self.input_size, self.input_size)


def stack_resized(images: list[np.ndarray], size: int) -> np.ndarray:
    """Stack uint8 images of possibly different sizes into ``[B, size, size, 3]`` (bilinear)."""
    if all(im.shape[:2] == (size, size) for im in images):
        return np.stack(images)
    out = []
    for im in images:
        t = torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None].float()
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out.append(t[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy())
    return np.stack(out)


__all__ = ["Preprocess", "IMAGENET_MEAN", "IMAGENET_STD", "stack_resized", "preprocess_from"]


def preprocess_from(config: Mapping[str, Any], source: str) -> Preprocess:
    """The :class:`Preprocess` of a timm data config (:func:`ssfbench.nn.weights.data_config`): its
    input size, statistics and centre crop fraction (images are resized bilinearly with antialiasing
    whatever ``interpolation`` says)."""
    mean, std = (tuple(float(v) for v in config[key]) for key in ("mean", "std"))
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"{source}: expected 3-channel mean and std, got {mean} and {std}")
    return Preprocess(input_size=int(config["input_size"][-1]), mean=(mean[0], mean[1], mean[2]),
                      std=(std[0], std[1], std[2]), center_crop=float(config.get("crop_pct", 1.0)), source=source)
