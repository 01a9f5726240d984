"""Shared pieces of the warping autoencoders (FAb-Net, TCAE): the stride-2 conv encoder stacks,
the upsampling flow decoder, bilinear warping with ``grid_sample``, the percentile curriculum, the
loader of released key layouts, and :class:`WarpingMethod`, the base both methods subclass.

Conventions, fixed by the authors' code:

* a decoder output ``[B, 2, S, S]`` (tanh) is an offset added to the identity grid
  ``linspace(-1, 1)`` (channel 0 = x, channel 1 = y), clamped to [-1, 1], and sampled with
  ``align_corners=True`` (the pre-1.3 PyTorch behaviour the authors ran), so a zero flow returns
  the source exactly; the decoder's x2 upsampling uses today's ``align_corners=False``;
* the depth follows the input: ``log2(image_size)`` stride-2 convs take the image to 1x1 (eight
  at the authors' 256 px, six at the synthetic benchmark's 64 px) and the decoder has as many x2
  upsampling blocks. Released checkpoints exist for the eight-conv (256 px) layout only.
"""

from __future__ import annotations

import abc
import math
from collections import OrderedDict
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssfbench.api.method import Method, MethodConfig
from ssfbench.api.preprocess import Preprocess
from ssfbench.nn.statedict import load_mapped

RELEASED_DEPTH = 8  # the authors' 256x256 input: eight stride-2 convs


def depth_for(image_size: int) -> int:
    """``log2(image_size)``: stride-2 convs that take a square image to 1x1 (a power of two >= 16)."""
    depth = int(round(math.log2(image_size))) if image_size > 0 else 0
    if image_size < 16 or 2**depth != image_size:
        raise ValueError(f"image_size must be a power of two >= 16 (the conv encoder halves it to 1x1), got {image_size}")
    return depth


def encoder_widths(depth: int, width: int = 32, dim: int = 256) -> list[int]:
    """Output channels of each encoder conv: w, 2w, 4w, then 8w, the last one ``dim``."""
    hidden = [width, 2 * width, 4 * width] + [8 * width] * max(0, depth - 4)
    return hidden[:depth - 1] + [dim]


def decoder_widths(depth: int, width: int = 32) -> list[int]:
    """Output channels of each hidden decoder conv (the last ``depth - 1`` of 8w.., 4w, 2w, w)."""
    hidden = [8 * width] * max(0, depth - 4) + [4 * width, 2 * width, width]
    return hidden[len(hidden) - (depth - 1):]


def conv_stack(in_channels: int, widths: list[int], *, first: int, norm: Container[int],
               linear_last: bool) -> nn.Sequential:
    """4x4 stride-2 convs ``conv{first}..``, each followed by ``bn{i}`` when ``i in norm`` and by
    LeakyReLU(0.2), except that the last conv is linear when ``linear_last``."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for k, out in enumerate(widths):
        i = first + k
        layers[f"conv{i}"] = nn.Conv2d(in_channels, out, 4, 2, 1)
        if i in norm:
            layers[f"bn{i}"] = nn.BatchNorm2d(out)
        if not (linear_last and k == len(widths) - 1):
            layers[f"act{i}"] = nn.LeakyReLU(0.2)
        in_channels = out
    return nn.Sequential(layers)


class FlowDecoder(nn.Sequential):
    """The authors' decoder: ``depth`` x [ReLU, bilinear x2 upsample, 3x3 conv, BN] from a 1x1
    code (BN on all but the last conv), then tanh. ``[B, C]`` -> ``[B, out_channels, 2^d, 2^d]``."""

    def __init__(self, in_channels: int, out_channels: int, depth: int, width: int = 32) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        widths = decoder_widths(depth, width) + [out_channels]
        for k, out in enumerate(widths, 1):
            layers[f"relu{k}"] = nn.ReLU()
            layers[f"up{k}"] = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            layers[f"conv{k}"] = nn.Conv2d(in_channels, out, 3, 1, 1)
            if k < len(widths):
                layers[f"bn{k}"] = nn.BatchNorm2d(out)
            in_channels = out
        layers["tanh"] = nn.Tanh()
        super().__init__(layers)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        """Code ``[B, C]`` (or ``[B, C, 1, 1]``) -> tanh map."""
        return super().forward(code.reshape(code.shape[0], -1, 1, 1))


def decoder_key_map(released: str, ours: str, depth: int = RELEASED_DEPTH) -> dict[str, str]:
    """Module map of a released decoder ``nn.Sequential`` (convs at 2, 6, .., BNs at 3, 7, ..)."""
    out = {f"{released}.{2 + 4 * k}": f"{ours}.conv{k + 1}" for k in range(depth)}
    out.update({f"{released}.{3 + 4 * k}": f"{ours}.bn{k + 1}" for k in range(depth - 1)})
    return out


def flow_grid(flow: torch.Tensor) -> torch.Tensor:
    """Sampling grid ``[B, S, S, 2]``: identity ``linspace(-1, 1)`` grid + ``flow`` ``[B, 2, S, S]``,
    clamped to [-1, 1]; computed in float32 whatever the autocast dtype."""
    b, _, h, w = flow.shape
    ys = torch.linspace(-1, 1, h, device=flow.device)
    xs = torch.linspace(-1, 1, w, device=flow.device)
    identity = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
    return (identity.unsqueeze(0) + flow.float().permute(0, 2, 3, 1)).clamp(-1, 1)


def identity_grid_like(grid: torch.Tensor) -> torch.Tensor:
    """The identity grid of the same shape as ``grid`` (to measure displacement after clamping)."""
    return flow_grid(torch.zeros(grid.shape[0], 2, grid.shape[1], grid.shape[2], device=grid.device))


def sample(image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear ``grid_sample`` of ``image`` ``[B, C, S, S]`` at ``grid`` (``align_corners=True``)."""
    return F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image`` resampled at identity + ``flow`` (a zero flow returns ``image``)."""
    return sample(image, flow_grid(flow))


def blend_views(images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Per-pixel softmax blend over views: ``[B, V, C, H, W]`` images, ``[B, V, 1, H, W]`` logits."""
    return (images * torch.softmax(logits.float(), dim=1)).sum(dim=1)


class PercentileCurriculum(nn.Module):
    """The authors' curriculum. In training mode the per-sample losses are sorted and only the
    ``[low, high)`` percentile slice of the batch is averaged; in eval mode the whole batch is.
    Held-out losses are observed during validation; at the next training step the epoch's mean is
    compared with the best so far, and after more than ``patience`` epochs without improvement the
    window shifts by ``step`` (and the best is forgotten) while ``high < limit``: [0, 0.5] ends at
    [0.4, 0.9]. The state lives in buffers, so it is checkpointed with the weights."""

    def __init__(self, low: float = 0.0, high: float = 0.5, step: float = 0.1, limit: float = 0.85,
                 patience: int = 15) -> None:
        super().__init__()
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"percentile window must satisfy 0 <= low < high <= 1, got [{low}, {high})")
        self.step, self.limit, self.patience = step, limit, patience
        self.register_buffer("window", torch.tensor([low, high], dtype=torch.float64))
        self.register_buffer("best", torch.tensor(math.inf, dtype=torch.float64))
        self.register_buffer("stale_epochs", torch.tensor(0, dtype=torch.int64))
        self.register_buffer("pending", torch.zeros(2, dtype=torch.float64))  # held-out loss sum, count

    def reduce(self, losses: torch.Tensor) -> torch.Tensor:
        """Per-sample losses ``[B]`` -> the mean of the window's slice (training) or of all (eval)."""
        if not self.training:
            return losses.mean()
        low, high = self.window.tolist()
        n = losses.shape[0]
        start = min(int(low * n + 1e-9), n - 1)
        end = min(max(int(high * n + 1e-9), start + 1), n)
        return losses.sort().values[start:end].mean()

    @torch.no_grad()
    def observe(self, losses: torch.Tensor) -> None:
        """Record held-out per-sample losses (called during validation)."""
        self.pending += torch.stack([losses.detach().double().sum(), losses.new_tensor(losses.numel()).double()])

    @torch.no_grad()
    def end_epoch(self) -> bool:
        """Close the validation recorded since the last call, if any; True when the window shifted."""
        total, count = self.pending.tolist()
        if count == 0:
            return False
        self.pending.zero_()
        loss = total / count
        if loss < float(self.best):
            self.best.fill_(loss)
            self.stale_epochs.zero_()
            return False
        self.stale_epochs += 1
        if int(self.stale_epochs) <= self.patience:
            return False
        self.stale_epochs.zero_()
        if float(self.window[1]) >= self.limit - 1e-9:
            return False  # the authors then drop the learning rate (the shared loop owns the optimiser)
        self.window += self.step
        self.best.fill_(math.inf)
        return True


@dataclass
class WarpingConfig(MethodConfig):
    """Settings the warping methods share (the authors' names in brackets).

    ``max_gap``: the two (or more) frames of an example are distinct frames at most this far apart;
    the authors take any frames of a track, 99 = 4 s at 25 fps, VoxCeleb's shortest track.
    """

    num_views: int = 2  # sources + 1 target (num_views)
    max_gap: int = 99
    dim: int = 256  # embedding size (embedding_size)
    width: int = 32  # base filter count (num_additional_ids)
    min_percentile: float = 0.0  # (minpercentile)
    max_percentile: float = 0.5  # (maxpercentile)
    percentile_step: float = 0.1  # (diff_percentile)
    percentile_limit: float = 0.85  # (max_percentile)
    plateau_epochs: int = 15  # TrackLoss interval
    #: the authors crop every image of an example independently; the relative shift is motion the
    #: flow decoder models (the harness default shares one crop per example)
    jitter_per_frame: bool = True


class WarpingMethod(Method):
    """Base of FAb-Net and TCAE: raw [0, 1] input, frame tuples from one video, a per-term
    percentile curriculum, selection by held-out reconstruction L1, released-layout loading.

    Subclasses implement ``build_model(depth)``, ``embed``, ``loss_terms`` and
    ``released_key_map``. ``--pretrained PATH`` initialises every weight from a checkpoint (own or
    released layout) before training, e.g. a two-view run before a multi-view stage."""

    Config = WarpingConfig
    selection = ("val_recon", "min")

    def build(self) -> None:
        """Check the settings, build the model and the curriculum, load ``pretrained`` if given."""
        cfg = self.config
        if cfg.num_views < 2 or cfg.num_views > cfg.max_gap + 1:
            raise ValueError(f"num_views must be in [2, max_gap + 1], got {cfg.num_views} (max_gap {cfg.max_gap})")
        self.depth = depth_for(self.image_size)
        self.curriculum = PercentileCurriculum(cfg.min_percentile, cfg.max_percentile, cfg.percentile_step,
                                               cfg.percentile_limit, cfg.plateau_epochs)
        self.build_model(self.depth)
        if self.pretrained:
            if not Path(self.pretrained).is_file():
                raise ValueError(f"--pretrained for {self.name} is a checkpoint path (own or released layout), "
                                 f"not {self.pretrained!r}")
            from ssfbench.api.checkpoint import load_weights

            load_weights(self, Path(self.pretrained))

    @abc.abstractmethod
    def build_model(self, depth: int) -> None:
        """Create the encoder and decoders for ``depth`` stride-2 convs."""

    @abc.abstractmethod
    def loss_terms(self, frames: torch.Tensor) -> dict[str, tuple[float, torch.Tensor]]:
        """``name -> (weight, per-sample loss [B])`` on ``[B, T, 3, S, S]``; ``recon`` is the L1 one."""

    @abc.abstractmethod
    def released_key_map(self) -> dict[str, str]:
        """Released module path -> own module path, for the eight-conv (256 px) layout."""

    def default_preprocess(self) -> Preprocess:
        """Raw [0, 1] input, as the authors feed it (no mean/std normalisation)."""
        return Preprocess(input_size=self.image_size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))

    @property
    def embed_dim(self) -> int:
        """The embedding size (256 by default)."""
        return self.config.dim

    def frame_offsets(self) -> list[int]:
        """The span an example may cover: offsets 0 .. ``max_gap``."""
        return [0, self.config.max_gap]

    def sample_offsets(self, rng: np.random.Generator) -> list[int]:
        """``num_views`` distinct frames within ``max_gap``; the first is the target."""
        return [int(o) for o in rng.choice(self.config.max_gap + 1, size=self.config.num_views, replace=False)]

    def training_loss(self, frames: torch.Tensor) -> torch.Tensor:
        """Weighted sum of the terms, each reduced by the curriculum window."""
        self.curriculum.end_epoch()
        terms = self.loss_terms(frames)
        return sum(w * self.curriculum.reduce(v) for w, v in terms.values())

    @torch.no_grad()
    def validation_metrics(self, frames: torch.Tensor) -> dict[str, float]:
        """Full-batch ``val_loss`` (all terms), ``val_recon`` (L1) and each term; feeds the curriculum."""
        terms = self.loss_terms(frames)
        total = sum(w * v.float() for w, v in terms.values())
        self.curriculum.observe(total)
        return {"val_loss": float(total.mean()), "val_recon": float(terms["recon"][1].mean()),
                **{f"val_{k}": float(v.mean()) for k, (_, v) in terms.items() if k != "recon"}}

    def load_released_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Own layout, or the authors' released one (256 px only), with or without ``module.``."""
        hint = (f"the released layout is the 256-px eight-conv model; this one has image_size {self.image_size}: "
                "pass --image-size 256")
        key_map = self.released_key_map()
        load_mapped(self, state_dict, key_map, layout=f"{self.name} (own or released)",
                    released_ok=self.depth == RELEASED_DEPTH, hint=hint)
        inner = state_dict.get("state_dict_model", state_dict)
        if any(k.removeprefix("module.").rpartition(".")[0] in key_map for k in inner):
            self.weights_preprocess = self.released_preprocess()
