"""Recipes (``--recipe paper``) and the released training code's settings, each against the released
code's behaviour on a small case (github.com/ihp-lab/temporal-consistency, ``train/``): fixed anchors,
three forward passes, the released framing, last-epoch selection; the recipe's loading, overrides
and the record every pretrained result carries. No network: the recipe's ImageNet weights are
replaced by a state dict saved in the test."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import timm
import torch
from cli_runner import run_main

from ssfbench.api.framing import CENTER_OFFSET, crop_boxes, crop_side, frame_released
from ssfbench.api.registry import get_method
from ssfbench.datasets.synthetic import SynthVox
from ssfbench.errors import UserError
from ssfbench.pipeline import recipe
from ssfbench.train.pretrain import PretrainSettings, pretrain
from ssfbench.train.windows import WindowBatches, split_videos

RankingConfig = get_method("ranking").Config


def _ranking(image_size: int = 16, **settings):
    return get_method("ranking")(RankingConfig().replace(**settings), image_size=image_size)


# ---- defaults unchanged -----------------------------------------------------------------------------


def test_new_settings_at_their_defaults_leave_the_config_dict_as_it_was():
    # checkpoints, config hashes and run ids of runs that do not use them keep their bytes
    assert not set(RankingConfig().to_dict()) & {"anchor", "framing", "select", "forward_passes"}
    assert RankingConfig().replace(anchor="fixed").to_dict()["anchor"] == "fixed"
    with pytest.raises(ValueError, match="forward_passes: expected one of 1, 3"):
        RankingConfig().replace(forward_passes="2")


# ---- anchor=fixed -----------------------------------------------------------------------------------


def test_fixed_anchors_are_the_same_every_epoch_and_differ_across_seeds():
    videos = SynthVox.open(image_size=16, identities=6)
    train, _ = split_videos(len(videos), 0.2, 0)

    def windows_by_epoch(seed: int, anchor: str) -> list[dict[int, list[int]]]:
        stream = WindowBatches(videos, train, _ranking(anchor=anchor, batch_size=2), seed=seed)
        per = stream.steps_per_epoch
        return [{v: frames for s in range(e * per, (e + 1) * per) for v, frames in stream.windows(s)} for e in range(3)]

    fixed = windows_by_epoch(0, "fixed")
    assert fixed[0] == fixed[1] == fixed[2] and len(fixed[0]) == 2 * WindowBatches(
        videos, train, _ranking(anchor="fixed", batch_size=2), seed=0).steps_per_epoch
    other_seed = windows_by_epoch(1, "fixed")[0]
    shared = set(fixed[0]) & set(other_seed)
    assert shared and any(fixed[0][v] != other_seed[v] for v in shared)
    per_epoch = windows_by_epoch(0, "per_epoch")  # today's default: a fresh anchor each epoch
    assert any(per_epoch[0][v] != per_epoch[1].get(v, per_epoch[0][v]) for v in per_epoch[0])


def test_batch_48_on_two_processes_is_24_windows_each_and_the_same_48():
    # DataParallel x2 in the released code: BatchNorm over 24 windows per GPU; torchrun ranks do the same
    videos = SynthVox.open(image_size=16, identities=40)
    train, _ = split_videos(len(videos), 0.2, 0)
    method = _ranking(anchor="fixed", batch_size=48)
    whole = WindowBatches(videos, train, method, seed=0).windows(0)
    ranks = [WindowBatches(videos, train, method, seed=0, shard=(r, 2)) for r in range(2)]
    assert [len(r.windows(0)[r.shard[0]::2]) for r in ranks] == [24, 24]
    assert sorted(w for r in ranks for w in map(str, r.windows(0)[r.shard[0]::2])) == sorted(map(str, whole))


# ---- forward_passes=3 -------------------------------------------------------------------------------


def _released_tuplet_loss(anchor, close, sequence):
    """train/triplet_rank_train.py's tuplet_loss, on the CPU (criterion_l2: squared distance)."""
    delta = 3e-2 * torch.ones(anchor.size(0))
    anchors, positives = anchor[:, None], close[:, None]
    close_distance = ((anchors - positives) ** 2).sum(dim=2).view(-1)
    far_distance = ((anchors.expand(sequence.size(0), 10, 256) - sequence) ** 2).sum(dim=2)
    loss = torch.max(torch.zeros(anchor.size(0)), close_distance - far_distance[:, 0] + delta)
    for i in range(1, 10):
        loss = loss + torch.max(torch.zeros(anchor.size(0)), far_distance[:, i - 1] - far_distance[:, i] + delta)
    return loss.mean()


def test_three_forward_passes_give_the_released_loss_gradients_and_running_statistics():
    torch.manual_seed(0)
    ours = _ranking(32, distance="squared", forward_passes=3).double().train()
    released = copy.deepcopy(ours.encoder)  # the same weights in the released model's role
    frames = torch.randn(4, 12, 3, 32, 32, dtype=torch.float64)

    loss = ours.training_loss(frames)
    loss.backward()
    # train_model's body: input_images, close_images, far_images through the model as three batches
    input_emb = released(frames[:, 0])
    close_emb = released(frames[:, 1])
    far_emb = released(frames[:, 2:].reshape(-1, 3, 32, 32)).view(input_emb.size(0), -1, 256)
    theirs = _released_tuplet_loss(input_emb, close_emb, far_emb)
    theirs.backward()

    # equal to float32 rounding of the margin (ours holds 0.03 as a float32 tensor; theirs in float64)
    assert float(loss.detach()) == pytest.approx(float(theirs.detach()), rel=1e-7)
    for (name, a), b in zip(ours.encoder.named_parameters(), released.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-9, msg=name)
    for (name, a), b in zip(ours.encoder.named_buffers(), released.buffers()):  # BN updated 3 times, alike
        torch.testing.assert_close(a, b, msg=name)

    one_pass = copy.deepcopy(ours)
    one_pass.config = one_pass.config.replace(forward_passes=1)
    one_pass.zero_grad()
    one_pass.training_loss(frames).backward()
    first = next(one_pass.encoder.parameters())
    assert not torch.allclose(first.grad, next(ours.encoder.parameters()).grad)  # the test has power


# ---- framing=released -------------------------------------------------------------------------------


def test_released_framing_takes_the_released_transforms_crop_boxes():
    transforms = pytest.importorskip("torchvision.transforms")
    from PIL import Image

    side = crop_side(123)
    assert side == 213  # the released default seed's draw
    yy, xx = np.mgrid[0:256, 0:256]
    coded = Image.fromarray(np.stack([xx, yy, np.zeros_like(xx)], -1).astype(np.uint8))  # pixel = its position
    pipeline = transforms.Compose([transforms.Resize((256, 256)), transforms.Pad((24, 24, 24, 24)),
                                   transforms.CenterCrop(224), transforms.RandomCrop(side)])
    torch.manual_seed(5)  # torchvision draws RandomCrop's position from the global generator
    released = []
    for _ in range(6):
        crop = np.asarray(pipeline(coded))
        assert crop.shape[:2] == (side, side)
        released.append([int(crop[0, 0, 1]), int(crop[0, 0, 0])])  # (top, left) in the 256 px frame
    ours = crop_boxes(6, side, torch.Generator().manual_seed(5)).tolist()
    assert ours == released
    assert min(min(b) for b in ours) >= CENTER_OFFSET and max(max(b) for b in ours) + side <= CENTER_OFFSET + 224

    # and frame_released resizes that crop back to 256 as the released Resize((256, 256)) does
    frame = torch.from_numpy(np.asarray(coded).copy())
    method = _ranking(256)
    x = frame_released(frame[None], method.preprocess, side, torch.Generator().manual_seed(5))
    top, left = ours[0]
    full = method.preprocess(frame[None])  # normalised frame, uncropped
    ref = torch.nn.functional.interpolate(full[:, :, top:top + side, left:left + side], size=(256, 256),
                                          mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(x, ref)


def test_released_framing_embeds_the_central_224_of_256():
    assert _ranking(256, framing="released").preprocess.center_crop == pytest.approx(224 / 256)
    assert _ranking(256).preprocess.center_crop == 1.0


# ---- select=last ------------------------------------------------------------------------------------


def test_select_last_keeps_the_last_epoch(tmp_path):
    videos = SynthVox.open(image_size=16, identities=4)
    torch.manual_seed(0)
    method = get_method("ranking")(RankingConfig(k=1, batch_size=4).replace(select="last", framing="released",
                                                                             anchor="fixed"), image_size=16)
    settings = PretrainSettings(steps=6, device="cpu", progress=False, checkpoint_minutes=0)
    result = pretrain(method, videos, settings, tmp_path)
    trained = [h for h in result.history if h["step"] > 0]
    assert len(trained) >= 2 and result.best["step"] == 6 == trained[-1]["step"]
    assert json.loads((tmp_path / "best.json").read_text())["pretrain"]["precision"] == "fp32"


# ---- the recipe: loading, overrides, the record -----------------------------------------------------


def test_list_recipes_names_the_paper_recipe(capsys):
    code, out, _ = run_main(["list", "recipes"], capsys)
    assert code == 0 and out.splitlines()[1].startswith("paper ") and "ImageNet ResNet-18" in out


def test_paper_recipe_holds_the_released_values_and_its_settings_exist():
    paper = recipe.load("paper")
    flat = paper.flat()
    assert {k: flat[k] for k in ("pretrained", "image_size", "batch_size", "epochs", "lr", "momentum", "n", "margin",
                                 "distance", "anchor", "forward_passes", "framing", "select", "precision")} == {
        "pretrained": "imagenet", "image_size": 256, "batch_size": 48, "epochs": 50, "lr": 0.001, "momentum": 0.9,
        "n": 10, "margin": 0.03, "distance": "squared", "anchor": "fixed", "forward_passes": 3,
        "framing": "released", "select": "last", "precision": "fp32"}
    RankingConfig().replace(**paper.settings)  # every setting is one the method has
    with pytest.raises(UserError, match="no recipe 'nope'"):
        recipe.load("nope")


def test_explicit_options_and_settings_override_the_recipe():
    paper = recipe.load("paper")
    options = {"image-size": ("image_size", 64, False), "batch-size": ("batch_size", 8, True),
               "epochs": ("epochs", None, False), "steps": ("steps", 10, True), "lr": ("lr", None, False),
               "pretrained": ("pretrained", None, False), "pretrain-data": ("pretrain_data", "synth-vox", False),
               "backbone": ("backbone", "resnet18", False), "precision": ("precision", "auto", False)}
    applied = recipe.apply(paper, "ranking", options, {"margin": "0.05", "lr": "0.01"})
    assert applied.record["overrides"] == {"batch_size": 8, "steps": 10, "lr": 0.01, "margin": 0.05}
    assert applied.options == {"image_size": 256, "pretrained": "imagenet", "pretrain_data": "voxceleb2",
                               "backbone": "resnet18", "precision": "fp32"}
    assert "margin=0.03" not in applied.settings and "forward_passes=3" in applied.settings
    assert set(applied.record["settings"]) | set(applied.record["overrides"]) >= set(paper.flat()) - {"method", "epochs"}
    with pytest.raises(UserError, match="for method 'ranking', not 'triplet'"):
        recipe.apply(paper, "triplet", options, {})


def test_deviations_list_what_differs_from_the_paper_recipe():
    paper = recipe.load("paper").flat()
    config = RankingConfig().replace(**recipe.load("paper").settings, batch_size=48, lr=0.001)
    faithful = recipe.pretraining_settings(method="ranking", config=config.__dict__,
                                           backbone="resnet18", pretrained="imagenet", pretrain_data="voxceleb2",
                                           image_size=256, steps=900, epochs=50, precision="fp32")
    assert {k: faithful[k] for k in paper} == paper and recipe.deviations(faithful) == {}
    today = recipe.pretraining_settings(method="ranking", config=RankingConfig().__dict__, backbone="resnet18",
                                        pretrained=None, pretrain_data="synth-vox", image_size=64, steps=300,
                                        epochs=None, precision="bf16")
    assert recipe.deviations(today)["epochs"] == {"run": "300 steps", "paper": 50}
    assert set(recipe.deviations(today)) == {"pretrained", "pretrain_data", "image_size", "batch_size", "epochs",
                                              "precision", "distance", "anchor", "forward_passes", "framing", "select"}


def test_a_recipe_run_records_every_setting_and_its_overrides(tmp_path, capsys):
    trunk = tmp_path / "resnet18.pt"
    torch.manual_seed(0)
    torch.save(timm.create_model("resnet18", pretrained=False, num_classes=0).state_dict(), trunk)
    common = ["--method", "ranking", "--k", "1", "--pretrain-data", "synth-vox", "--image-size", "32",
              "--steps", "2", "--batch-size", "4", "--pretrained", str(trunk), "--device", "cpu", "--workers", "0",
              "--quiet", "--no-init-control", "--datasets", "synth-au", "--out", str(tmp_path / "out"),
              "--data-option", "synth-vox.identities=6", "--data-option", "synth-au.subjects=6"]
    code, out, err = run_main(["run", "--recipe", "paper", *common], capsys)
    assert code == 0, err
    (path,) = (tmp_path / "out").glob("results/runs/*/synth-au.json")
    result = json.loads(path.read_text())
    record = result["recipe"]
    assert record["name"] == "paper"
    assert record["overrides"] == {"pretrained": str(trunk), "pretrain_data": "synth-vox", "image_size": 32,
                                   "batch_size": 4, "steps": 2}
    assert record["settings"] == {k: v for k, v in recipe.load("paper").flat().items()
                                  if k not in {"method", "epochs", "pretrained", "pretrain_data", "image_size",
                                               "batch_size"}}
    assert set(record["deviations"]) == {"pretrained", "pretrain_data", "image_size", "batch_size", "epochs"}
    assert result["method_config"]["forward_passes"] == 3 and result["method_config"]["anchor"] == "fixed"
    assert "recipe=paper" in result["variant"] and "forward_passes" not in result["variant"]
    assert result["pretrain"]["pretrain"]["precision"] == "fp32"
