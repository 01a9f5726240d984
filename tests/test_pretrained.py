"""Pretrained backbone weights (``--pretrained imagenet|default|PATH``, :mod:`ssfbench.nn.weights`) and the
``frozen`` method. Never touches the network: the torch hub and Hugging Face caches are empty
temporary folders, torchvision's files are state dicts of randomly initialised torchvision models
saved under the names torchvision publishes them with."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import torchvision
from cli_runner import run_main
from torch.nn import functional as F

from ssfbench.errors import UserError
from ssfbench.nn.encoders import create_trunk

TINY = ["--data-option", "synth-vox.identities=20", "--data-option", "synth-au.subjects=9", "--datasets", "synth-au",
        "--image-size", "32", "--quiet", "--offline"]


def torchvision_resnet18(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torchvision.models.resnet18().eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval-mode features test them too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def torchvision_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision's pooled features: everything before the classifier."""
    return torch.flatten(torch.nn.Sequential(*list(model.children())[:-1])(x), 1)


def test_path_torchvision_state_dict_gives_torchvision_features(tmp_path):
    model = torchvision_resnet18()
    path = tmp_path / "resnet18-tv.pth"
    torch.save(model.state_dict(), path)
    trunk = create_trunk("resnet18", str(path)).eval()
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(trunk(x), torchvision_features(model, x))
    identity = trunk.ssfbench_weights.identity
    assert identity["source"] == "file" and identity["file"] == "resnet18-tv.pth" and len(identity["sha256"]) == 64
    assert trunk.ssfbench_weights.data_config is None  # a bare file has no data config: the method's own


def test_path_safetensors_and_a_wrong_file(tmp_path):
    from safetensors.torch import save_file

    model = torchvision_resnet18(1)
    path = tmp_path / "weights.safetensors"
    save_file(model.state_dict(), str(path))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(create_trunk("resnet18", str(path)).eval()(x), torchvision_features(model, x))
    wrong = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(UserError, match=r"other\.pth: not a resnet18 state dict"):
        create_trunk("resnet18", str(wrong))
    with pytest.raises(UserError, match="weights file not found"):
        create_trunk("resnet18", str(tmp_path / "absent.pth"))


def test_imagenet_is_torchvisions_file_from_the_torch_hub_cache(offline_caches):
    """``imagenet`` = torchvision's resnet18-f37072fd.pth (the authors' ``pretrained=True``), read from the
    torch hub cache, the trunk's features equal torchvision's model's; the tv_in1k data config."""
    model = torchvision_resnet18(2)
    torch.save(model.state_dict(), offline_caches / "resnet18-f37072fd.pth")
    trunk = create_trunk("resnet18", "imagenet").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(trunk(x), torchvision_features(model, x))
    loaded = trunk.ssfbench_weights
    assert loaded.identity["tag"] == "resnet18.tv_in1k" and loaded.identity["source"] == "torchvision"
    assert loaded.identity["url"] == "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    from ssfbench.runtime.fileio import sha256_file

    assert loaded.identity["sha256"] == sha256_file(offline_caches / "resnet18-f37072fd.pth")
    assert loaded.data_config["input_size"] == (3, 224, 224) and loaded.data_config["crop_pct"] == 0.875


def test_imagenet_densenet121_and_mobilenet_v2_equal_torchvision(offline_caches):
    x = torch.randn(1, 3, 64, 64)
    torch.manual_seed(3)
    dense = torchvision.models.densenet121().eval()
    # torchvision's published file predates BatchNorm step counters and names norm.1/conv.1
    old_style = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))(\d)\.", r"\1.\2.", k): v
                 for k, v in dense.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(old_style, offline_caches / "densenet121-a639ec97.pth")
    mobile = torchvision.models.mobilenet_v2().eval()
    torch.save(mobile.state_dict(), offline_caches / "mobilenet_v2-b0353104.pth")
    with torch.no_grad():
        ref = torch.flatten(F.adaptive_avg_pool2d(F.relu(dense.features(x)), 1), 1)
        assert torch.equal(create_trunk("densenet121", "imagenet").eval()(x), ref)
        ref = torch.flatten(F.adaptive_avg_pool2d(mobile.features(x), 1), 1)
        assert torch.equal(create_trunk("mobilenetv2_100", "imagenet").eval()(x), ref)


@pytest.mark.parametrize(("backbone", "pretrained", "names"), [
    ("resnet18", "imagenet", ["resnet18.tv_in1k", "hub/checkpoints", "torch.hub.load_state_dict_from_url"]),
    ("resnet18", "default", ["resnet18.a1_in1k", "huggingface-cli download timm/resnet18.a1_in1k"]),
    ("vit_small_patch14_dinov2.lvd142m", "default", ["vit_small_patch14_dinov2.lvd142m", "hf/hub"]),
    ("hf-hub:timm/resnet18.a1_in1k", "default", ["hf-hub:timm/resnet18.a1_in1k", "hf/hub"]),
])
def test_offline_with_an_empty_cache_is_one_line(offline_caches, capsys, tmp_path, backbone, pretrained, names):
    code, out, err = run_main(["run", "--method", "frozen", "--backbone", backbone, "--pretrained", pretrained,
                               "--out", str(tmp_path / "out"), *TINY], capsys)
    assert code == 2 and err.startswith("error: --pretrained: weights ") and err.count("\n") == 1, err
    assert "not in the local cache" in err and "Traceback" not in err
    for name in names:
        assert name in err


def test_offline_flag_without_the_environment(offline_caches, monkeypatch):
    from ssfbench.nn.weights import is_offline, offline_mode

    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert not is_offline()
    with offline_mode(), pytest.raises(UserError, match="not in the local cache"):
        create_trunk("resnet18", "imagenet")
    assert not is_offline()


def test_imagenet_for_a_backbone_torchvision_lacks():
    with pytest.raises(UserError, match=r"no torchvision ImageNet weights for --backbone 'vit_tiny_patch16_224'.*"
                                        r"--pretrained default"):
        create_trunk("vit_tiny_patch16_224", "imagenet")


def test_default_through_timms_pretrained_cfg_overlay_file(tmp_path):
    """timm's own file override (``pretrained_cfg_overlay=dict(file=...)``): the weights' data config
    becomes the preprocessing ssfbench derives from it."""
    import timm

    from ssfbench.api.preprocess import preprocess_from
    from ssfbench.nn.weights import data_config

    path = tmp_path / "r18.pth"
    torch.save(torchvision_resnet18().state_dict(), path)
    trunk = timm.create_model("resnet18.tv_in1k", pretrained=True, num_classes=0,
                              pretrained_cfg_overlay={"file": str(path)})
    pre = preprocess_from(data_config(trunk), "resnet18.tv_in1k")
    assert (pre.input_size, pre.center_crop, pre.mean) == (224, 0.875, (0.485, 0.456, 0.406))


def _run(args, capsys):
    code, out, err = run_main(args, capsys)
    assert code == 0, err
    return out


def test_frozen_imagenet_row_records_the_weights(offline_caches, capsys, tmp_path):
    torch.save(torchvision_resnet18().state_dict(), offline_caches / "resnet18-f37072fd.pth")
    out_dir = tmp_path / "out"
    out = _run(["run", "--method", "frozen", "--backbone", "resnet18", "--pretrained", "imagenet",
                "--set", "input_size=32", "--out", str(out_dir), *TINY], capsys)
    assert "ResNet-18 ImageNet (torchvision)" in out
    (result_file,) = (out_dir / "results" / "runs").glob("*/synth-au.json")
    result = json.loads(result_file.read_text())
    weights = result["pretrained_weights"]
    assert weights["tag"] == "resnet18.tv_in1k" and weights["file"] == "resnet18-f37072fd.pth"
    assert result["embed_dim"] == 512 and result["role"] == "floor"
    # the weights' data config is the preprocessing (crop 0.875, ImageNet statistics); input_size overridden
    assert result["preprocess"]["center_crop"] == 0.875 and result["preprocess"]["input_size"] == 32
    record = json.loads(Path(result["checkpoint"]).with_suffix(".json").read_text())
    assert record["pretrained_weights"] == weights
    import h5py

    with h5py.File(result["cache"], "r") as f:
        assert json.loads(f.attrs["pretrained_weights"]) == weights


def test_frozen_default_preprocessing_is_the_weights_data_config(offline_caches):
    from ssfbench.pipeline.spec import RunSpec, build_method

    torch.save(torchvision_resnet18().state_dict(), offline_caches / "resnet18-f37072fd.pth")
    method = build_method(RunSpec(method="frozen", pretrained="imagenet", image_size=32))
    assert method.preprocess.to_dict() == {"input_size": 224, "mean": [0.485, 0.456, 0.406],
                                           "std": [0.229, 0.224, 0.225], "center_crop": 0.875,
                                           "source": "resnet18.tv_in1k"}
    assert method.embed_dim == 512 and not method.trainable


def test_imagenet_step0_control_is_the_frozen_row(offline_caches):
    """With --pretrained imagenet a pretrained method's step-0 control is the frozen ImageNet row:
    the same run id as `ssfbench run --method frozen --backbone resnet18 --pretrained imagenet`."""
    from ssfbench.pipeline.spec import RunSpec, build_method, init_control_spec, run_identity

    torch.save(torchvision_resnet18().state_dict(), offline_caches / "resnet18-f37072fd.pth")
    spec = RunSpec(method="ranking", overrides={"k": 2}, pretrained="imagenet", steps=5)
    ranking = build_method(spec)
    assert ranking.preprocess.input_size == 224  # the weights' data config: the methods' default too
    control = init_control_spec(spec, ranking)
    assert control.method == "frozen" and control.overrides == {}
    frozen_spec = RunSpec(method="frozen", pretrained="imagenet")
    assert run_identity(control, build_method(control), None) == \
        run_identity(frozen_spec, build_method(frozen_spec), None)
    # without --pretrained the control is still the method itself at step 0 (unchanged)
    plain = RunSpec(method="ranking", overrides={"k": 2}, steps=5)
    assert init_control_spec(plain, build_method(plain)).method == "ranking"


def test_pretrained_run_pairs_with_the_frozen_row(tmp_path, capsys):
    """End to end with a local file: the ranking run names the frozen run of the same weights as its
    step-0 control, and that control is the row `--method frozen` makes itself."""
    path = tmp_path / "r18.pth"
    torch.save(torchvision_resnet18().state_dict(), path)
    out_dir = tmp_path / "out"
    _run(["run", "--method", "ranking", "--k", "2", "--steps", "1", "--batch-size", "2", "--pretrained", str(path),
          "--out", str(out_dir), *TINY], capsys)
    runs = {p.name: json.loads((p / "synth-au.json").read_text()) for p in (out_dir / "results" / "runs").iterdir()}
    (trained,) = [r for r in runs.values() if r["method"] == "ranking"]
    (frozen,) = [r for r in runs.values() if r["method"] == "frozen"]
    assert trained["init_control"] == frozen["run_id"]
    assert trained["pretrained_weights"]["sha256"] == frozen["pretrained_weights"]["sha256"]
    _run(["run", "--method", "frozen", "--pretrained", str(path), "--out", str(out_dir), *TINY], capsys)
    assert len(list((out_dir / "results" / "runs").iterdir())) == 2  # the same row, not a new one


def test_fixed_input_size_backbone_is_one_line(tmp_path, capsys):
    code, _, err = run_main(["run", "--method", "random", "--backbone", "vit_tiny_patch16_224",
                             "--out", str(tmp_path / "out"), *TINY], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: --image-size 32: backbone 'vit_tiny_patch16_224' takes only 224 px input")


def test_frozen_is_a_listed_builtin(capsys):
    from ssfbench.api.registry import get_method

    assert get_method("frozen").name == "frozen"
    code, out, _ = run_main(["list", "methods"], capsys)
    assert code == 0 and re.search(r"^frozen\s+any timm model", out, re.M)
