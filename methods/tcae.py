"""TCAE, the Twin-Cycle Autoencoder (Li, Zeng, Shan & Chen, CVPR 2019): one encoder with a
shared trunk and two branches, a pose code and an AU code (256-d each); a pose decoder and an
expression decoder each turn a (source, target) code pair into a displacement field plus an
attention logit, and the source is warped onto the target by the attention-fused field. The
representation evaluated is the AU code (``emotion_feature`` in the authors' code).

Model (the authors' ``Gen_sep_feature`` + two ``FrontaliseModelMasks_wider`` decoders, 32 filters):

* trunk ``conv1..`` with BN + LeakyReLU(0.2) after every conv (conv1 included); two branches of
  three convs (BN + LeakyReLU on the first two, the last linear). At 256 px the trunk is conv1-5
  and the branches conv6-8, as released; at smaller inputs the trunk loses convs
  (``log2(image_size) - 3`` of them) so that the code is still 1x1;
* each decoder outputs 3 tanh channels: a 2-channel offset of the identity grid and 1 attention
  logit; the fused field is the per-pixel softmax (over {pose, AU}) weighted sum of both fields.

Loss (the authors' weights): w1=10 L1(fused-warp image, target); w2 pose(pose-warp image) ~ target
pose; w3 AU(pose-warp image) ~ source AU; w5 pose(AU-warp image) ~ source pose; w6 AU(AU-warp image)
~ target AU; w7, w8 pose and AU of the fused image ~ the target's; w9, w10 the AU and pose cycles
(the warped image warped back by the decoder of (its code, the source code), L1 to the source);
w4=0.1 the mean absolute AU displacement. w2..w10 are 1 except w4. Embedding terms are per-sample
MSE, image terms per-sample L1, each term reduced by the percentile curriculum. Sampled images are
detached (gradients reach the decoders through the grids), each image group goes through the
encoder in its own call, as the authors do. SGD lr 1e-3, momentum 0.9 (batch 64 in their code).

Released weights (``--weights``, ``--image-size 256``): ``encoder.conv{1..8}``,
``encoder.conv{6,7,8}_1`` (AU branch), ``encoder.batch_norm*`` and the ``pose_decoder.`` /
``expression_decoder.`` Sequentials; see ``released_key_map``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ssfbench.api.preprocess import Preprocess
from ssfbench.methods._warping import (
    RELEASED_DEPTH,
    FlowDecoder,
    WarpingConfig,
    WarpingMethod,
    conv_stack,
    decoder_key_map,
    encoder_widths,
    flow_grid,
    identity_grid_like,
    sample,
    warp,
)

#: released BatchNorm names -> own module paths (eight-conv layout)
_RELEASED_BN = {"batch_norm": "trunk.bn1", "batch_norm2_0": "trunk.bn2", "batch_norm4_0": "trunk.bn3",
                "batch_norm8_0": "trunk.bn4", "batch_norm8_1": "trunk.bn5", "batch_norm8_2": "pose.bn6",
                "batch_norm8_3": "pose.bn7", "batch_norm8_2_1": "au.bn6", "batch_norm8_3_1": "au.bn7"}


@dataclass
class TCAEConfig(WarpingConfig):
    """The authors' defaults: SGD lr 1e-3, momentum 0.9, w1=10, w4=0.1, the other weights 1."""

    lr: float = 1e-3
    w1: float = 10.0
    w2: float = 1.0
    w3: float = 1.0
    w4: float = 0.1
    w5: float = 1.0
    w6: float = 1.0
    w7: float = 1.0
    w8: float = 1.0
    w9: float = 1.0
    w10: float = 1.0


class TwinBranchEncoder(nn.Module):
    """Shared trunk, then a pose branch and an AU branch: ``[B, 3, S, S] -> ([B, D], [B, D])``."""

    def __init__(self, depth: int, width: int, dim: int) -> None:
        super().__init__()
        widths = encoder_widths(depth, width, dim)
        t = depth - 3
        self.trunk = conv_stack(3, widths[:t], first=1, norm=range(1, t + 1), linear_last=False)
        for branch in ("pose", "au"):
            setattr(self, branch, conv_stack(widths[t - 1], widths[t:], first=t + 1,
                                             norm=range(t + 1, depth), linear_last=True))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pose code and AU code of each image."""
        h = self.trunk(x)
        return self.pose(h).flatten(1), self.au(h).flatten(1)


class TCAE(WarpingMethod):
    """TCAE: pose and AU codes, two displacement decoders with attention, twin cycles."""

    name = "tcae"
    summary = "TCAE (Li et al., CVPR 2019): pose/AU twin-branch encoder, attention-fused warps, twin cycles; AU code"
    Config = TCAEConfig

    def build_model(self, depth: int) -> None:
        """Twin-branch encoder, pose and expression decoders (2 offset channels + 1 attention logit)."""
        cfg = self.config
        if cfg.num_views != 2:
            raise ValueError(f"tcae takes (target, source) pairs: num_views must be 2, got {cfg.num_views}")
        self.encoder = TwinBranchEncoder(depth, cfg.width, cfg.dim)
        self.pose_decoder = FlowDecoder(2 * cfg.dim, 3, depth, cfg.width)
        self.expression_decoder = FlowDecoder(2 * cfg.dim, 3, depth, cfg.width)

    def display_name(self) -> str:
        """Row name in tables."""
        return "TCAE"

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The AU code: ``[B, 3, S, S] -> [B, dim]``."""
        return self.encoder(images)[1]

    def loss_terms(self, frames: torch.Tensor) -> dict[str, tuple[float, torch.Tensor]]:
        """The ten terms, per sample, keyed ``recon`` (w1), ``pose_img_pose`` (w2) .. ``pose_cycle`` (w10)."""
        cfg = self.config
        target, source = frames[:, 0], frames[:, 1]
        src = source.detach().float()
        pose_t, au_t = self.encoder(target)
        pose_s, au_s = self.encoder(source)
        pose_out = self.pose_decoder(torch.cat([pose_s, pose_t], 1))
        exp_out = self.expression_decoder(torch.cat([au_s, au_t], 1))
        pose_grid, exp_grid = flow_grid(pose_out[:, :2]), flow_grid(exp_out[:, :2])
        pose_img, exp_img = sample(src, pose_grid), sample(src, exp_grid)
        attention = torch.softmax(torch.stack([pose_out[:, 2:], exp_out[:, 2:]]).float(), dim=0)
        out_img = warp(src, attention[0] * pose_out[:, :2].float() + attention[1] * exp_out[:, :2].float())

        pose_p, au_p = self.encoder(pose_img)
        pose_e, au_e = self.encoder(exp_img)
        pose_o, au_o = self.encoder(out_img)
        pose_back = warp(pose_img.detach(), self.pose_decoder(torch.cat([pose_p, pose_s], 1))[:, :2])
        exp_back = warp(exp_img.detach(), self.expression_decoder(torch.cat([au_e, au_s], 1))[:, :2])

        def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return (a.float() - b.float()).pow(2).flatten(1).mean(1)

        def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return (a.float() - b.float()).abs().flatten(1).mean(1)

        return {
            "recon": (cfg.w1, l1(out_img, target)),
            "pose_img_pose": (cfg.w2, mse(pose_p, pose_t)),
            "pose_img_au": (cfg.w3, mse(au_p, au_s)),
            "au_displacement": (cfg.w4, (exp_grid - identity_grid_like(exp_grid)).abs().flatten(1).mean(1)),
            "au_img_pose": (cfg.w5, mse(pose_e, pose_s)),
            "au_img_au": (cfg.w6, mse(au_e, au_t)),
            "out_img_pose": (cfg.w7, mse(pose_o, pose_t)),
            "out_img_au": (cfg.w8, mse(au_o, au_t)),
            "au_cycle": (cfg.w9, l1(exp_back, src)),
            "pose_cycle": (cfg.w10, l1(pose_back, src)),
        }

    def released_preprocess(self) -> Preprocess:
        """The authors' loader: resize 256, pad 24, centre crop 224 (all of the padding and 16 px
        of the face each side go: the central 224/256), resize 256, ToTensor, no normalisation."""
        return Preprocess(input_size=256, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), center_crop=224 / 256,
                          source="TCAE's released loader: resize 256, pad 24, centre crop 224, resize 256, "
                                 "no normalisation")

    def released_key_map(self) -> dict[str, str]:
        """The authors' ``Gen_sep_feature`` names and decoder Sequential indices -> own modules."""
        out = {f"encoder.conv{i}": f"encoder.trunk.conv{i}" for i in range(1, 6)}
        out.update({f"encoder.conv{i}": f"encoder.pose.conv{i}" for i in range(6, 9)})
        out.update({f"encoder.conv{i}_1": f"encoder.au.conv{i}" for i in range(6, 9)})
        out.update({f"encoder.{k}": f"encoder.{v}" for k, v in _RELEASED_BN.items()})
        out.update(decoder_key_map("pose_decoder", "pose_decoder", RELEASED_DEPTH))
        out.update(decoder_key_map("expression_decoder", "expression_decoder", RELEASED_DEPTH))
        return out
