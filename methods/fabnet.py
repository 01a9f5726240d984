"""FAb-Net (Wiles, Koepke & Zisserman, BMVC 2018): a face is encoded so that a decoder, given the
codes of a source and a target frame of one video, predicts the flow that warps the source onto
the target. The embedding evaluated is the encoder's 1x1 code (256-d).

Model (the authors' ``FrontaliseModelMasks_wider`` with 32 base filters):

* ``encoder``: ``log2(image_size)`` 4x4 stride-2 convs (eight at the authors' 256 px, six at the
  synthetic benchmark's 64 px), LeakyReLU(0.2) after all but the last, BatchNorm after conv2 ..
  conv(n-1), the last conv linear: ``[B, 3, S, S] -> [B, 256]``;
* ``decoder``: from ``cat(source_code, target_code)`` to a 2-channel tanh offset that, added to
  the identity grid and clamped, bilinearly resamples the (detached) source;
* ``mask``: the same decoder with one channel: with several sources the warped sources are blended
  by a per-pixel softmax over views (with one source, the default, it has no effect and is
  skipped; it stays in the model so that the released layout loads).

Loss: per-sample L1 between the reconstruction and the target, reduced by the percentile
curriculum ([0, 0.5] of the sorted batch, shifted by 0.1 after a 15-epoch validation plateau up to
0.85; validation on the full batch). Inputs are raw [0, 1], the first frame of an example is the
target, and each frame group goes through the encoder in its own call (per-group BatchNorm
statistics, as the authors' code does). ``num_views > 2`` with ``--pretrained`` (a two-view
checkpoint) is the authors' second stage: the flow decoder is frozen, encoder and mask train.

Optimiser: the authors' SGD lr 1e-4, momentum 0.9 (batch 128 in their code; 16 here, the harness
default). On the synthetic budget (300 steps, 64 px) it moves, but not far: the training loss on the
curriculum slice fell from 0.105 to 0.046, while the held-out L1 stayed above that of not warping
at all (0.086 at step 300 against 0.038), so selection picked the step-20 checkpoint. The untrained
decoder's tanh offsets are large (a scrambling warp) and the authors trained for thousands of
epochs. ``--lr`` overrides the default.

Released weights (``--weights``, ``--image-size 256``): a file whose ``state_dict_model`` holds
``encoder.{0,2,5,8,11,14,17,20}`` convs, ``encoder.{3,6,9,12,15,18}`` BNs and the ``decoder.`` /
``mask.`` Sequentials (convs at 2, 6, .., 30, BNs at 3, 7, .., 27); see ``released_key_map``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ssfbench.api.preprocess import Preprocess
from ssfbench.methods._warping import (
    RELEASED_DEPTH,
    FlowDecoder,
    WarpingConfig,
    WarpingMethod,
    blend_views,
    conv_stack,
    decoder_key_map,
    encoder_widths,
    warp,
)


@dataclass
class FabNetConfig(WarpingConfig):
    """The authors' defaults: SGD lr 1e-4, momentum 0.9, two views, curriculum [0, 0.5] -> 0.85."""

    lr: float = 1e-4


class FabNet(WarpingMethod):
    """FAb-Net: encoder + flow decoder (+ confidence masks) trained by warping one frame onto another."""

    name = "fabnet"
    summary = "FAb-Net (Wiles et al., BMVC 2018): 8-conv encoder, flow decoder warps a source frame onto a target, L1"
    Config = FabNetConfig

    def build_model(self, depth: int) -> None:
        """Encoder (``conv1..convN``, ``bn2..bn(N-1)``), flow ``decoder`` and confidence ``mask``."""
        cfg = self.config
        self.encoder = conv_stack(3, encoder_widths(depth, cfg.width, cfg.dim), first=1,
                                  norm=range(2, depth), linear_last=True)
        self.decoder = FlowDecoder(2 * cfg.dim, 2, depth, cfg.width)
        self.mask = FlowDecoder(2 * cfg.dim, 1, depth, cfg.width)

    def build(self) -> None:
        """The shared build, then the authors' multi-view stage: a frozen decoder after a two-view run."""
        super().build()
        if self.config.num_views > 2 and self.pretrained:
            self.decoder.requires_grad_(False)

    def display_name(self) -> str:
        """Row name in tables."""
        return "FAb-Net"

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The encoder's 1x1 code, flattened: ``[B, 3, S, S] -> [B, dim]``."""
        return self.encoder(images).flatten(1)

    def reconstruct(self, frames: torch.Tensor) -> torch.Tensor:
        """The target ``frames[:, 0]`` reconstructed from the sources ``frames[:, 1:]``."""
        codes = [self.encoder(frames[:, v]).flatten(1) for v in range(frames.shape[1])]
        pairs = [torch.cat([codes[v], codes[0]], dim=1) for v in range(1, frames.shape[1])]
        warped = [warp(frames[:, v].detach(), self.decoder(pair)) for v, pair in enumerate(pairs, 1)]
        if len(warped) == 1:
            return warped[0]  # a softmax over one view is 1: the mask is not evaluated
        return blend_views(torch.stack(warped, 1), torch.stack([self.mask(pair) for pair in pairs], 1))

    def loss_terms(self, frames: torch.Tensor) -> dict[str, tuple[float, torch.Tensor]]:
        """One term: the per-sample L1 between reconstruction and target."""
        recon = self.reconstruct(frames)
        return {"recon": (1.0, (recon - frames[:, 0].float()).abs().flatten(1).mean(1))}

    def released_state_dict(self, payload: dict) -> dict:
        """The authors' files keep the model under ``state_dict_model`` (their ``state_dict`` is the probe)."""
        state = payload.get("state_dict_model")
        return state if isinstance(state, dict) else super().released_state_dict(payload)

    def released_preprocess(self) -> Preprocess:
        """The authors' demo: the face resized (stretched, not squared) to 256 x 256, ``ToTensor``,
        no normalisation. The harness's faces are square crops, so stretching is a resize."""
        return Preprocess(input_size=256, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                          source="FAb-Net's released demo: face resized to 256 x 256, ToTensor, no normalisation")

    def released_key_map(self) -> dict[str, str]:
        """The authors' ``nn.Sequential`` indices -> named modules (eight-conv layout)."""
        convs = [0, 2, 5, 8, 11, 14, 17, 20]
        out = {f"encoder.{idx}": f"encoder.conv{i}" for i, idx in enumerate(convs, 1)}
        out.update({f"encoder.{idx + 1}": f"encoder.bn{i}" for i, idx in enumerate(convs[1:-1], 2)})
        out.update(decoder_key_map("decoder", "decoder", RELEASED_DEPTH))
        out.update(decoder_key_map("mask", "mask", RELEASED_DEPTH))
        return out
