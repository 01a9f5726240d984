"""FAb-Net and TCAE plugins: warping, curriculum, released key layouts, learning, the shared loop.

The released layouts are rebuilt here independently, from the authors' module structure (an
``nn.Sequential`` encoder for FAb-Net, ``Gen_sep_feature``'s attribute names for TCAE), so the
round trip checks the key mapping against a second implementation, not against itself.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from ssfbench.api.checkpoint import load_checkpoint, load_weights
from ssfbench.api.registry import get_method
from ssfbench.datasets.synthetic import SynthVox
from ssfbench.errors import UserError
from ssfbench.methods._warping import PercentileCurriculum, blend_views, flow_grid, warp
from ssfbench.methods.fabnet import FabNet
from ssfbench.methods.tcae import TCAE
from ssfbench.train.pretrain import PretrainSettings, pretrain

W = 32  # the authors' base filter count


# ---- independent re-creations of the released modules ----------------------------------------
def _randomise(module: nn.Module, seed: int) -> nn.Module:
    """Fresh seeded weights and random BatchNorm statistics and affines (eval-mode BN is not a no-op)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, nn.Conv2d):
                bound = 1 / (sub.in_channels * 9) ** 0.5
                sub.weight.uniform_(-bound, bound, generator=g)
                sub.bias.uniform_(-bound, bound, generator=g)
            elif isinstance(sub, nn.BatchNorm2d):
                sub.running_mean.normal_(0, 0.1, generator=g)
                sub.running_var.uniform_(0.5, 1.5, generator=g)
                sub.weight.uniform_(0.5, 1.5, generator=g)
                sub.bias.normal_(0, 0.1, generator=g)
    return module.eval()


def _released_decoder(out_channels: int) -> nn.Sequential:
    """[ReLU, Upsample, Conv3x3, BN] x7 then [ReLU, Upsample, Conv3x3, Tanh]: convs at 2, 6, .., 30."""
    widths, layers, c = [8 * W] * 4 + [4 * W, 2 * W, W, out_channels], [], 512
    for k, out in enumerate(widths):
        layers += [nn.ReLU(), nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.Conv2d(c, out, 3, 1, 1)]
        layers.append(nn.BatchNorm2d(out) if k < 7 else nn.Tanh())
        c = out
    return nn.Sequential(*layers)


class ReleasedFabNet(nn.Module):
    """``FrontaliseModelMasks_wider``: encoder convs at 0, 2, 5, .., 20, BNs at 3, 6, .., 18."""

    def __init__(self) -> None:
        super().__init__()
        chans, layers = [3, W, 2 * W, 4 * W, 8 * W, 8 * W, 8 * W, 8 * W, 256], []
        for i in range(8):
            layers.append(nn.Conv2d(chans[i], chans[i + 1], 4, 2, 1))
            if 1 <= i <= 6:
                layers.append(nn.BatchNorm2d(chans[i + 1]))
            if i < 7:
                layers.append(nn.LeakyReLU(0.2))
        self.encoder = nn.Sequential(*layers)
        self.decoder, self.mask = _released_decoder(2), _released_decoder(1)


class ReleasedTCAEEncoder(nn.Module):
    """``Gen_sep_feature``: trunk conv1-5, pose conv6-8, AU conv6_1-8_1, the authors' BN names."""

    def __init__(self) -> None:
        super().__init__()
        chans = [3, W, 2 * W, 4 * W, 8 * W, 8 * W]
        for i in range(1, 6):
            setattr(self, f"conv{i}", nn.Conv2d(chans[i - 1], chans[i], 4, 2, 1))
        for suffix in ("", "_1"):
            for i in (6, 7, 8):
                setattr(self, f"conv{i}{suffix}", nn.Conv2d(256, 256, 4, 2, 1))
        for name, c in [("batch_norm", W), ("batch_norm2_0", 2 * W), ("batch_norm4_0", 4 * W), ("batch_norm8_0", 256),
                        ("batch_norm8_1", 256), ("batch_norm8_2", 256), ("batch_norm8_3", 256),
                        ("batch_norm8_2_1", 256), ("batch_norm8_3_1", 256)]:
            setattr(self, name, nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        act = nn.functional.leaky_relu
        for conv, bn in [("conv1", "batch_norm"), ("conv2", "batch_norm2_0"), ("conv3", "batch_norm4_0"),
                         ("conv4", "batch_norm8_0"), ("conv5", "batch_norm8_1")]:
            x = act(getattr(self, bn)(getattr(self, conv)(x)), 0.2)
        pose = self.conv8(act(self.batch_norm8_3(self.conv7(act(self.batch_norm8_2(self.conv6(x)), 0.2))), 0.2))
        au = self.conv8_1(act(self.batch_norm8_3_1(self.conv7_1(act(self.batch_norm8_2_1(self.conv6_1(x)), 0.2))), 0.2))
        return pose, au


class ReleasedTCAE(nn.Module):
    """The TCAE model: ``encoder``, ``pose_decoder`` and ``expression_decoder`` (3 output channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = ReleasedTCAEEncoder()
        self.pose_decoder, self.expression_decoder = _released_decoder(3), _released_decoder(3)


# ---- warping -------------------------------------------------------------------------------
def test_zero_flow_returns_the_source_and_a_one_pixel_flow_shifts_it():
    img = torch.rand(2, 3, 16, 20, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(warp(img, torch.zeros(2, 2, 16, 20)), img, atol=1e-5)  # grid_sample rounds ~1e-6
    flow = torch.zeros(2, 2, 16, 20)
    flow[:, 0] = 2 / 19  # one pixel in x
    assert torch.allclose(warp(img, flow)[..., :-1], img[..., 1:], atol=1e-5)
    flow = torch.zeros(2, 2, 16, 20)
    flow[:, 1] = 2 / 15  # one pixel in y
    assert torch.allclose(warp(img, flow)[..., :-1, :], img[..., 1:, :], atol=1e-5)
    assert flow_grid(torch.full((1, 2, 4, 4), 5.0)).max() == 1.0  # clamped


def test_blend_views_is_a_per_pixel_softmax():
    views = torch.rand(1, 2, 3, 4, 4)
    logits = torch.zeros(1, 2, 1, 4, 4)
    logits[:, 1, :, :2] = 50.0  # view 1 dominates the top half
    out = blend_views(views, logits)
    assert torch.allclose(out[..., :2, :], views[:, 1, :, :2], atol=1e-6)
    assert torch.allclose(out[..., 2:, :], views[:, :, :, 2:].mean(1), atol=1e-6)


# ---- curriculum ------------------------------------------------------------------------------
def test_curriculum_window_and_plateau_shift():
    cur = PercentileCurriculum(0.0, 0.5, step=0.1, limit=0.85, patience=2)
    losses = torch.arange(10.0).flip(0)
    assert float(cur.reduce(losses)) == 2.0  # the five smallest of 0..9
    cur.eval()
    assert float(cur.reduce(losses)) == 4.5  # validation: the full batch
    windows = []
    for _ in range(20):  # a flat validation loss: a plateau every patience + 2 epochs
        cur.observe(torch.ones(4))
        cur.end_epoch()
        windows.append([round(v, 6) for v in cur.window.tolist()])
    assert windows[0] == [0.0, 0.5] and windows[3] == [0.1, 0.6] and windows[7] == [0.2, 0.7]
    assert windows[-1] == [0.4, 0.9]  # stops once high >= 0.85, as in the authors' code
    cur.train()
    assert float(cur.reduce(losses)) == 6.0  # sorted 0..9, slice [4, 9)
    state = cur.state_dict()
    assert {"window", "best", "stale_epochs", "pending"} <= set(state)
    fresh = PercentileCurriculum()
    fresh.load_state_dict(state)
    assert fresh.window.tolist() == cur.window.tolist()


def test_validation_plateau_shifts_the_method_window_at_the_next_step():
    m = FabNet(FabNet.Config(plateau_epochs=0), image_size=16)
    flat = torch.full((4, 2, 3, 16, 16), 0.5)  # any warp of a constant image is exact: loss 0
    x = torch.rand(4, 2, 3, 16, 16)
    m.eval()
    first = m.validation_metrics(flat)
    assert first["val_loss"] == pytest.approx(first["val_recon"]) and first["val_recon"] < 1e-6
    m.train()
    m.training_loss(x)  # closes epoch 1: best = ~0
    assert [round(v, 6) for v in m.curriculum.window.tolist()] == [0.0, 0.5]
    m.eval()
    m.validation_metrics(x)  # a worse held-out loss: no improvement for > 0 epochs
    m.train()
    m.training_loss(x)
    assert [round(v, 6) for v in m.curriculum.window.tolist()] == [0.1, 0.6]
    assert m.config.jitter_per_frame  # the authors crop each frame independently


def test_sample_offsets_are_distinct_frames_within_the_gap():
    m = FabNet(FabNet.Config(num_views=3, max_gap=5), image_size=16)
    assert m.window_span() == 6 and m.preprocess.mean == (0.0, 0.0, 0.0) and m.preprocess.std == (1.0, 1.0, 1.0)
    draws = [m.sample_offsets(np.random.default_rng([0, i])) for i in range(50)]
    assert all(len(set(d)) == 3 and 0 <= min(d) and max(d) <= 5 for d in draws)
    assert draws[7] == m.sample_offsets(np.random.default_rng([0, 7]))
    assert len({tuple(d) for d in draws}) > 10
    with pytest.raises(ValueError, match="power of two"):
        FabNet(image_size=48)
    with pytest.raises(ValueError, match="num_views"):
        TCAE(TCAE.Config(num_views=3), image_size=16)


# ---- released layouts -----------------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["", "module."])
def test_fabnet_released_layout_loads_through_weights(tmp_path, prefix):
    ref = _randomise(ReleasedFabNet(), seed=1)
    path = tmp_path / "fabnet.pth"
    torch.save({"state_dict_model": {prefix + k: v for k, v in ref.state_dict().items()}}, path)
    m = get_method("fabnet")(image_size=256)
    load_weights(m, path)
    m.eval()
    x = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(m.embed(x), ref.encoder(x).flatten(1))
        code = torch.randn(1, 512, generator=torch.Generator().manual_seed(1))
        assert torch.equal(m.mask(code), ref.mask(code.view(1, 512, 1, 1)))
        assert torch.equal(m.decoder(code), ref.decoder(code.view(1, 512, 1, 1)))
    # the authors' demo input (raw [0, 1] at 256, the face stretched) travels with the weights
    assert m.preprocess.input_size == 256 and m.preprocess.std == (1.0, 1.0, 1.0)
    assert "FAb-Net's released demo" in m.preprocess.source


def test_tcae_released_layout_loads_through_weights(tmp_path):
    ref = _randomise(ReleasedTCAE(), seed=2)
    path = tmp_path / "tcae.pth"  # the authors' checkpoint dict, saved from DataParallel
    torch.save({"state_dict": {"module." + k: v for k, v in ref.state_dict().items()}, "epoch": 100}, path)
    m = get_method("tcae")(image_size=256)
    load_weights(m, path)
    m.eval()
    x = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pose, au = ref.encoder(x)
        assert torch.equal(m.embed(x), au.flatten(1))
        assert torch.equal(m.encoder(x)[0], pose.flatten(1))
        code = torch.randn(1, 512, generator=torch.Generator().manual_seed(1))
        assert torch.equal(m.expression_decoder(code), ref.expression_decoder(code.view(1, 512, 1, 1)))
    # the authors' loader (resize 256, pad 24, centre crop 224, resize 256) travels with the weights
    assert m.preprocess.center_crop == 224 / 256 and "TCAE's released loader" in m.preprocess.source
    assert get_method("tcae")(image_size=256).preprocess.center_crop == 1.0  # own weights: own preprocessing


def test_mismatched_checkpoints_are_refused_naming_the_keys(tmp_path):
    state = _randomise(ReleasedFabNet(), seed=3).state_dict()
    state.pop("encoder.20.bias")
    state["encoder.21.weight"] = torch.zeros(3)
    state["decoder.2.weight"] = torch.zeros(256, 500, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict_model": state}, path)
    with pytest.raises(UserError) as err:
        load_weights(FabNet(image_size=256), path)
    msg = str(err.value)
    assert "missing 1 key(s): encoder.20.bias" in msg and "unexpected 1 key(s): encoder.21.weight" in msg
    assert "decoder.2.weight (256, 500, 3, 3) vs (256, 512, 3, 3)" in msg

    torch.save({"state_dict_model": _randomise(ReleasedFabNet(), seed=3).state_dict()}, path)
    with pytest.raises(UserError, match="--image-size 256"):
        load_weights(FabNet(image_size=32), path)  # released weights need the eight-conv model

    torch.save({"state_dict": {"0.weight": torch.ones(256), "1.weight": torch.ones(10, 256)}}, path)
    with pytest.raises(UserError, match="state_dict_model"):
        load_weights(FabNet(image_size=32), path)  # a FAb-Net probe, not the model

    tcae = _randomise(ReleasedTCAE(), seed=4).state_dict()
    tcae.pop("encoder.conv8_1.weight")
    torch.save(tcae, path)
    with pytest.raises(UserError, match=r"missing 1 key\(s\): encoder.conv8_1.weight"):
        load_weights(TCAE(image_size=256), path)


# ---- learning ----------------------------------------------------------------------------------
def _pairs(method, n: int = 8) -> torch.Tensor:
    vox = SynthVox.open(image_size=32, identities=4, videos_per_identity=2, frames=30)
    rng = np.random.default_rng(0)
    windows = [vox.read_frames(v, [5 + o for o in method.sample_offsets(rng)]) for v in range(n)]
    return method.preprocess(torch.from_numpy(np.stack(windows)))


@pytest.mark.parametrize("cls", [FabNet, TCAE])
def test_reconstruction_loss_falls_on_synthetic_video(cls):
    torch.manual_seed(0)
    m = cls(cls.Config(max_gap=20), image_size=32)
    x = _pairs(m)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    recon = []
    for _ in range(16):
        terms = m.loss_terms(x)
        loss = sum(w * m.curriculum.reduce(v) for w, v in terms.values())
        recon.append(float(terms["recon"][1].detach().mean()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert np.mean(recon[-3:]) < 0.8 * np.mean(recon[:3]), recon


@pytest.mark.parametrize("name", ["fabnet", "tcae"])
def test_shared_loop_trains_checkpoints_and_reloads(tmp_path, name):
    cls = get_method(name)
    m = cls(cls.Config(batch_size=4, max_gap=10), image_size=32)
    vox = SynthVox.open(image_size=32, identities=4, videos_per_identity=2, frames=16)
    result = pretrain(m, vox, PretrainSettings(steps=3, num_workers=0, progress=False), tmp_path)
    record = json.loads(result.best_path.with_suffix(".json").read_text())
    assert record["completed"] and "val_recon" in record["selected"] and len(result.history) == 4
    loaded, _ = load_checkpoint(result.best_path)
    assert loaded.preprocess.mean == (0.0, 0.0, 0.0)
    assert torch.isfinite(loaded.curriculum.best) and loaded.curriculum.window.tolist() == [0.0, 0.5]
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert loaded.embed(x).shape == (2, 256)
        if record["selected"]["step"] == 3:  # the last step was the best: the final weights
            assert torch.equal(loaded.embed(x), m.eval().embed(x))
