"""The Python API (``ssfbench.evaluate``, ``ssfbench.run``, ``ssfbench.leaderboard``), the
``torchscript`` method, and what the harness says about broken embeddings: a constant one is one
``warning:`` line (run and mock-run), a wrong batch size one ``error:`` line naming the method and the
shapes with nothing written that looks like a result. Tiny synthetic data throughout (32 px)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from cli_runner import run_main
from torch import nn

import ssfbench
from ssfbench.errors import UserError

SIZE = 32
TINY_AU = {"synth-au": {"subjects": 6, "videos_per_subject": 1, "frames": 40}}
TINY_AU_ARGS = ["--image-size", str(SIZE), "--datasets", "synth-au", "--workers", "0", "--quiet",
                "--data-option", "synth-au.subjects=6", "--data-option", "synth-au.videos_per_subject=1",
                "--data-option", "synth-au.frames=40"]


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten())


def _evaluate(encoder, out: Path, name: str, **kw):
    return ssfbench.evaluate(encoder, name=name, datasets=("synth-au",), preprocess=ssfbench.Preprocess(input_size=SIZE),
                             out=out, data_options=TINY_AU, device="cpu", progress=False, workers=0, **kw)


def _pooled(x: torch.Tensor) -> torch.Tensor:
    return F.adaptive_avg_pool2d(x, 4).flatten(1)


def test_import_is_light_and_exports_the_api():
    code = "import sys, ssfbench; assert 'torch' not in sys.modules; print(sorted(ssfbench.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in ("evaluate", "run", "leaderboard", "Preprocess", "Result", "Method", "MethodConfig", "Encoder"):
        assert f"'{name}'" in out
    assert ssfbench.Method.__name__ == "Method" and ssfbench.Encoder.__name__ == "Encoder"
    assert (Path(ssfbench.__file__).parent / "py.typed").is_file()


def test_evaluate_a_module_and_a_function_writes_results_and_compare_rows(tmp_path, capsys):
    out = tmp_path / "out"
    net = _net()
    (mod,) = _evaluate(net, out, "Tiny conv")
    (fn,) = _evaluate(_pooled, out, "Pooled pixels")
    assert isinstance(mod, ssfbench.Result) and mod.display_name == "Tiny conv" and mod.method == "python"
    assert mod["embed_dim"] == 32 and fn["embed_dim"] == 48 and mod.run_id != fn.run_id
    for r in (mod, fn):
        saved = json.loads((out / "results" / "runs" / r.run_id / "synth-au.json").read_text())
        assert saved["scores_per_fold"] == r.scores_per_fold and len(saved["scores_per_fold"]) == 3
        assert Path(r["cache"]).is_file()
    board = ssfbench.leaderboard("synth-au", out=out, committed=False)
    assert sorted(board["name"]) == ["Pooled pixels (size=32) [pooled]", "Tiny conv (size=32) [Sequential]"]
    assert set(board["origin"]) == {"your runs"} and board["avg"].notna().all()
    code, printed, _ = run_main(["compare", "--datasets", "synth-au", "--out", str(out)], capsys)
    assert code == 0 and "Tiny conv" in printed and "Pooled pixels" in printed

    # the same module again: the same run, its cache reused; other weights: another run
    cache = Path(mod["cache"])
    stamp = cache.stat().st_mtime_ns
    (again,) = _evaluate(net, out, "Tiny conv")
    assert again.run_id == mod.run_id and again.scores_per_fold == mod.scores_per_fold
    assert cache.stat().st_mtime_ns == stamp
    (other,) = _evaluate(_net(seed=1), out, "Tiny conv")
    assert other.run_id != mod.run_id


def test_a_function_changed_behind_its_digest_is_refused(tmp_path):
    scale = {"w": 1.0}

    def scaled(x: torch.Tensor) -> torch.Tensor:
        return _pooled(x) * scale["w"]  # reads a dict the digest does not cover

    (first,) = _evaluate(scaled, tmp_path, "Scaled")
    scale["w"] = 2.0
    with pytest.raises(UserError, match="gives other embeddings of the probe batch.*identity="):
        _evaluate(scaled, tmp_path, "Scaled")
    (second,) = _evaluate(scaled, tmp_path, "Scaled", identity="w=2")
    assert second.run_id != first.run_id


def test_evaluate_refuses_an_encoder_with_another_batch_size(tmp_path):
    with pytest.raises(UserError, match=r"encoder 'Bad': returned shape \(1, 48\) for a batch of shape \(2, 3, 32, 32\)"):
        _evaluate(lambda x: _pooled(x)[:1], tmp_path, "Bad")
    assert not (tmp_path / "results").exists()


def test_torchscript_gives_the_scores_of_evaluate(tmp_path, capsys):
    net = _net().eval()
    path = tmp_path / "enc.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(net)
        torch.jit.save(scripted, str(path))
    out = tmp_path / "out"
    code, printed, err = run_main(["run", "--method", "torchscript", "--weights", str(path), "--set",
                                   f"input_size={SIZE}", "--out", str(out), *TINY_AU_ARGS], capsys)
    assert code == 0, err
    (cli_result,) = [json.loads(p.read_text()) for p in out.glob("results/runs/torchscript-*/synth-au.json")]
    assert cli_result["display_name"] == "TorchScript enc" and cli_result["backbone"] == "torchscript"
    (api_result,) = _evaluate(scripted, tmp_path / "api", "Scripted")
    assert api_result.scores_per_fold == cli_result["scores_per_fold"]


def test_torchscript_needs_a_torchscript_file(tmp_path, capsys):
    code, _, err = run_main(["run", "--method", "torchscript", "--out", str(tmp_path), *TINY_AU_ARGS], capsys)
    assert code == 2 and err.count("\n") == 1 and "give it with --weights FILE" in err
    pickle = tmp_path / "state.pt"
    torch.save({"w": torch.zeros(1)}, pickle)
    code, _, err = run_main(["run", "--method", "torchscript", "--weights", str(pickle), "--out", str(tmp_path),
                             *TINY_AU_ARGS], capsys)
    assert code == 2 and err.count("\n") == 1 and f"{pickle}: not a readable TorchScript archive" in err
    code, _, err = run_main(["run", "--method", "torchscript", "--weights", str(pickle), "--bn-stats", "data",
                             "--out", str(tmp_path), *TINY_AU_ARGS], capsys)
    assert code == 2 and err.count("\n") == 1 and "evaluates its file as saved" in err
    assert not (tmp_path / "results").exists()


def test_run_equals_the_command(tmp_path, capsys):
    opts = {"synth-vox": {"identities": 8}, **TINY_AU}
    api = ssfbench.run("ranking", k=(1, 2), steps=1, image_size=SIZE, datasets=("synth-au",), data_options=opts,
                       batch_size=4, out=tmp_path / "api", progress=False, init_control=False, device="cpu",
                       workers=0)
    args = ["run", "--method", "ranking", "--k", "1", "2", "--steps", "1", "--batch-size", "4", "--no-init-control",
            "--data-option", "synth-vox.identities=8", "--out", str(tmp_path / "cli"), "--device", "cpu", *TINY_AU_ARGS]
    code, printed, err = run_main(args, capsys)
    assert code == 0, err
    assert [r.variant.split()[0] for r in api] == ["k=1", "k=2", "k=1+2"]
    for r in api:
        cli = json.loads((tmp_path / "cli" / "results" / "runs" / r.run_id / "synth-au.json").read_text())
        assert cli["scores_per_fold"] == r.scores_per_fold
        assert cli.get("checkpoint_sha256") == r.get("checkpoint_sha256")
    assert api[0]["rerun"]["argv"][:4] == ["ssfbench", "run", "--method", "ranking"]


# ---- plugins with broken embeddings -----------------------------------------------------------------

PLUGIN = '''
import torch
import torch.nn.functional as F
from ssfbench import Method

class _Floor(Method):
    summary = "test plugin"
    trainable = False
    def build(self):
        pass
    @property
    def embed_dim(self):
        return 48

class Constant(_Floor):
    name = "constant"
    def embed(self, images):
        return torch.ones(len(images), 48)

class FirstRow(_Floor):
    name = "first-row"
    def embed(self, images):
        return F.adaptive_avg_pool2d(images, 4).flatten(1)[:1]

class FirstTwo(_Floor):
    name = "first-two"
    def embed(self, images):
        return F.adaptive_avg_pool2d(images, 4).flatten(1)[:2]
'''


@pytest.fixture
def broken(install_plugin):
    install_plugin("ssfbench-broken", "brokenembed", PLUGIN, {
        "constant": "brokenembed:Constant", "first-row": "brokenembed:FirstRow", "first-two": "brokenembed:FirstTwo"})


def test_a_constant_embedding_is_one_warning_line(broken, tmp_path, capsys):
    code, _, err = run_main(["run", "--method", "constant", "--out", str(tmp_path), *TINY_AU_ARGS], capsys)
    assert code == 0
    lines = [ln for ln in err.splitlines() if "same embedding" in ln]
    assert len(lines) == 1 and lines[0].startswith("warning: run constant-") and ": synth-au: " in lines[0]
    code, printed, err = run_main(["mock-run", "--method", "constant", "--image-size", str(SIZE)], capsys)
    assert code == 0 and any(ln.startswith("WARN  embedding varies across images") for ln in printed.splitlines())
    assert [ln for ln in err.splitlines() if ln.startswith("warning:")] == [
        "warning: method 'constant': every image of synth-au gets the same embedding (zero variance over 4 "
        "images); the probe can then only guess a constant"]


@pytest.mark.parametrize("method, shape", [("first-row", "(1, 48) for 2 images"), ("first-two", "(2, 48) for a batch of ")])
def test_an_embedding_of_another_batch_size_is_one_error_line(broken, tmp_path, capsys, method, shape):
    code, _, err = run_main(["run", "--method", method, "--out", str(tmp_path), *TINY_AU_ARGS], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: method '{method}': embed returned shape {shape}") and "one row per image" in err
    assert not (tmp_path / "results").exists() and not list(tmp_path.rglob("*.h5"))
