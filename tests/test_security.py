"""No file runs code unless the user trusts it.

A ``.pth`` whose unpickling would create a marker file is given to ``--weights``, ``--pretrained``,
``rerun`` and as a run's resume ``last.pt``: no marker appears, each ends in one ``error:`` line
(exit 2) naming the file and the opt-in. With ``--trust-weights`` (or after ``ssfbench weights
convert``) the authors' layouts that do hold pickled objects load.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from cli_runner import run_main

from ssfbench.api.checkpoint import load_weights
from ssfbench.api.registry import get_method
from ssfbench.errors import UserError
from ssfbench.runtime.safeload import UnsafeFileError, read_torch_file, trusting

TINY = ["--no-init-control", "--image-size", "32", "--steps", "2", "--batch-size", "4", "--workers", "0", "--quiet",
        "--data-option", "synth-vox.identities=8", "--data-option", "synth-au.subjects=6",
        "--datasets", "synth-au"]
#: TINY for a run that loads --weights (nothing is pretrained: --steps would be refused)
TINY_LOADED = [x for i, x in enumerate(TINY) if x != "--steps" and TINY[i - 1] != "--steps"]


class _Marker:
    """Unpickling this creates ``path`` (a stand-in for ``os.system``)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _evil(tmp_path: Path, name: str = "evil.pth", wrap=lambda obj: {"state_dict": obj}) -> tuple[Path, Path]:
    marker = tmp_path / "PWNED"
    path = tmp_path / name
    torch.save(wrap(_Marker(marker)), path)
    return path, marker


def _one_refusal(code: int, err: str, path: Path) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert str(path) in err and "pickled Python objects" in err and "--trust-weights" in err, err
    assert "ssfbench weights convert" in err, err


def test_the_refusal_is_not_vacuous_trusting_runs_the_code(tmp_path):
    path, marker = _evil(tmp_path)
    with pytest.raises(UnsafeFileError, match="builtins.open|io.open"):
        read_torch_file(path, "weights file")
    assert not marker.exists()
    with trusting():
        read_torch_file(path, "weights file")
    assert marker.exists()  # what --trust-weights means: the file's code runs


def test_weights_refused_without_running_code(tmp_path, capsys):
    path, marker = _evil(tmp_path)
    out = tmp_path / "out"
    code, _, err = run_main(["run", "--method", "ranking", "--k", "2", "--weights", str(path), "--out", str(out),
                             *TINY_LOADED], capsys)
    _one_refusal(code, err, path)
    assert not marker.exists() and not (out / "results").exists()


def test_pretrained_refused_without_running_code(tmp_path, capsys):
    path, marker = _evil(tmp_path, wrap=lambda obj: {"conv1.weight": obj})
    out = tmp_path / "out"
    code, _, err = run_main(["run", "--method", "ranking", "--k", "2", "--pretrained", str(path), "--out", str(out),
                             *TINY], capsys)
    _one_refusal(code, err, path)
    assert not marker.exists() and not (out / "results").exists()


def test_rerun_of_a_result_pointing_at_it_refused(tmp_path, capsys):
    path, marker = _evil(tmp_path)
    out = tmp_path / "out"
    result = tmp_path / "synth-au.json"
    result.write_text(json.dumps({"rerun": {"argv": ["ssfbench", "run", "--method", "ranking", "--k", "2",
                                                      "--weights", str(path), "--out", str(out), *TINY_LOADED]}}))
    code, _, err = run_main(["rerun", str(result)], capsys)
    _one_refusal(code, err, path)
    assert not marker.exists() and not (out / "results").exists()


def test_rerun_does_not_inherit_trust(tmp_path, capsys):
    path, marker = _evil(tmp_path)
    out = tmp_path / "out"
    result = tmp_path / "synth-au.json"
    result.write_text(json.dumps({"rerun": {"argv": ["ssfbench", "run", "--method", "ranking", "--k", "2",
                                                      "--trust-weights", "--weights", str(path), "--out", str(out),
                                                      *TINY_LOADED]}}))
    code, _, err = run_main(["rerun", str(result)], capsys)
    assert code == 2 and not marker.exists()
    assert "warning:" in err and "does not: add --trust-weights" in err
    assert err.splitlines()[-1].startswith("error: ") and "pickled Python objects" in err


def test_replaced_resume_state_refused_without_running_code(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["pretrain", "--method", "ranking", "--k", "2", "--out", str(out), *TINY]
    code, _, err = run_main(args, capsys)
    assert code == 0, err
    (run_dir,) = (out / "runs").iterdir()
    last = run_dir / "last.pt"
    assert last.is_file()
    for name in ("best.pt", "best.json"):  # an interrupted run: the next command resumes from last.pt
        (run_dir / name).unlink()
    path, marker = _evil(tmp_path, wrap=lambda obj: {"state": {"step": obj}})
    last.write_bytes(path.read_bytes())
    code, _, err = run_main(args, capsys)
    _one_refusal(code, err, last)
    assert "--fresh" in err and not marker.exists() and not (run_dir / "best.pt").exists()


def test_our_checkpoints_and_resume_states_load_weights_only(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_main(["pretrain", "--method", "ranking", "--k", "2", "--out", str(out), *TINY], capsys)
    assert code == 0, err
    (run_dir,) = (out / "runs").iterdir()
    for name in ("best.pt", "last.pt"):
        torch.load(run_dir / name, weights_only=True)  # no allowlist needed: tensors and plain data


# ---- the authors' layouts --------------------------------------------------------------------------

def _released_models():
    """tests/methods/test_fabnet_tcae.py's independent re-creation of the authors' modules."""
    name = "released_fabnet_tcae_models"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "methods" / "test_fabnet_tcae.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _embeds(method, ref) -> bool:
    method.eval()
    x = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.equal(method.embed(x), ref.encoder(x).flatten(1))


def test_training_checkpoint_with_options_object_loads_without_flag(tmp_path):
    """The authors' training checkpoints hold ``opts`` (an argparse.Namespace): plain data, allowlisted."""
    models = _released_models()
    ref = models._randomise(models.ReleasedFabNet(), seed=1)
    path = tmp_path / "epoch100.pth"
    torch.save({"state_dict_model": ref.state_dict(), "epoch": 100,
                "opts": argparse.Namespace(lr=1e-4, num_views=2, crop_size=180)}, path)
    method = get_method("fabnet")(image_size=256)
    load_weights(method, path)
    assert _embeds(method, ref)


def test_pickled_model_object_needs_trust_or_conversion(tmp_path, capsys):
    models = _released_models()
    ref = models._randomise(models.ReleasedFabNet(), seed=2)
    path = tmp_path / "fabnet_model.pth"
    torch.save({"state_dict_model": ref, "epoch": 3}, path)  # the model object itself, pickled

    with pytest.raises(UnsafeFileError, match="ReleasedFabNet"):
        load_weights(get_method("fabnet")(image_size=256), path)
    with trusting():
        trusted = get_method("fabnet")(image_size=256)
        load_weights(trusted, path)
    assert _embeds(trusted, ref)

    converted = tmp_path / "fabnet_model.safetensors"
    code, _, err = run_main(["weights", "convert", str(path), "--out", str(converted)], capsys)
    _one_refusal(code, err, path)
    assert not converted.exists()
    code, out, err = run_main(["weights", "convert", str(path), "--trust-weights", "--out", str(converted)], capsys)
    assert code == 0 and converted.is_file() and err == "", err
    plain = get_method("fabnet")(image_size=256)
    load_weights(plain, converted)  # no flag: a .safetensors file runs no code
    assert _embeds(plain, ref)
    assert read_torch_file(converted, "weights file")["epoch"] == 3


def test_converted_checkpoint_keeps_the_record(tmp_path, capsys):
    """An ssfbench checkpoint converted to .safetensors still rebuilds its method."""
    from ssfbench.api.checkpoint import load_checkpoint, save_checkpoint

    method = get_method("ranking")(image_size=32)
    save_checkpoint(method, tmp_path / "best.pt")
    code, _, err = run_main(["weights", "convert", str(tmp_path / "best.pt"), "--out", str(tmp_path / "b.safetensors")],
                            capsys)
    assert code == 0, err
    loaded, _ = load_checkpoint(tmp_path / "b.safetensors")
    for key, value in method.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_convert_refuses_bad_out(tmp_path, capsys):
    path = tmp_path / "w.pth"
    torch.save({"a": torch.zeros(1)}, path)
    code, _, err = run_main(["weights", "convert", str(path), "--out", str(tmp_path / "w.pt")], capsys)
    assert code == 2 and err.startswith("error: --out:") and err.count("\n") == 1
    with pytest.raises(UserError, match="not found"):
        read_torch_file(tmp_path / "missing.pth", "weights file")


# ---- bad inputs a new user tried ---------------------------------------------------------------

def test_u12_negative_list_values_name_the_option(capsys):
    code, _, err = run_main(["run", "--method", "ranking", "--k", "-1"], capsys)
    assert code == 2 and err == "error: --k must be >= 1, got -1\n"
    code, _, err = run_main(["run", "--method", "ranking", "--seeds", "-1"], capsys)
    assert code == 2 and err.count("\n") == 1 and "'--seeds': -1 is not in the range x>=0" in err


def test_s10_t4_config_values_and_encoding(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('method = "ranking"\nimage-size = 32.5\n')
    code, _, err = run_main(["run", "--config", str(config), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and err == f"error: {config}: key 'image-size': --image-size takes an integer, got 32.5\n"
    config.write_text('method = "ranking"\n', encoding="utf-16")
    code, _, err = run_main(["run", "--config", str(config), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and err.count("\n") == 1 and "is not UTF-8 text" in err
    assert not (tmp_path / "out").exists()


def test_u8_rerun_of_a_string_argv_is_refused(tmp_path, capsys):
    result = tmp_path / "r.json"
    result.write_text(json.dumps({"rerun": {"argv": "ssfbench run --method ranking"}}))
    code, _, err = run_main(["rerun", str(result)], capsys)
    assert code == 2 and err.count("\n") == 1 and "must be a JSON array of strings, got str" in err


def test_u7_rerun_says_what_differs():
    import ssfbench
    from ssfbench.cli.rerun import provenance_differences

    lines = provenance_differences({"rerun": {"git": {"commit": "0" * 40, "dirty": True}},
                                    "protocol_version": "1", "schema": "ssfbench.result/2"})
    text = " | ".join(lines)
    assert "uncommitted changes to commit 000000000000" in text
    assert f"protocol 1, rerun under {ssfbench.PROTOCOL_VERSION}" in text and "result schema ssfbench.result/2" in text
    assert provenance_differences({"protocol_version": ssfbench.PROTOCOL_VERSION}) == []


def test_u14_long_run_ids_are_bounded_short_ones_unchanged():
    from ssfbench.pipeline.spec import MAX_RUN_ID, RunSpec, build_method, run_identity

    spec = RunSpec(method="ranking", overrides={"k": 2})
    method = build_method(spec)
    assert run_identity(spec, method, "f")[2] == "ranking-k2-resnet18-" + run_identity(spec, method, "f")[0][:8] + "-seed0"
    long = RunSpec(method="ranking", overrides={"k": 2},
                   dataset_options={"synth-vox": {f"option_{i}": "x" * 20 for i in range(12)}})
    config_hash, variant, run_id = run_identity(long, build_method(long), "f")
    assert len(variant) > 255 and len(run_id.encode()) <= MAX_RUN_ID
    assert run_id.endswith(f"~-resnet18-{config_hash[:8]}-seed0")


def test_u13_non_finite_loss_before_any_update_does_not_blame_the_lr():
    from ssfbench.train.steps import divergence_message

    assert "lower --lr" not in divergence_message("pretraining", 0, float("nan"))
    assert "before any update" in divergence_message("pretraining", 0, float("nan"))
    assert divergence_message("pretraining", 5, float("inf")).endswith("lower --lr")


# ---- the other commands that read weight files -----------------------------------------------------

def test_retrieve_refuses_an_unsafe_checkpoint_and_takes_the_opt_in(tmp_path, capsys):
    path, marker = _evil(tmp_path)
    grid = tmp_path / "grid.png"
    args = ["retrieve", "--checkpoint", str(path), "--dataset", "synth-au", "--out", str(grid),
            "--from", str(tmp_path / "out"), "--data-option", "synth-au.subjects=6"]
    code, _, err = run_main(args, capsys)
    _one_refusal(code, err, path)
    assert not marker.exists() and not grid.exists()
    code, _, err = run_main([*args, "--trust-weights"], capsys)
    assert marker.exists()  # trusted: the file was unpickled in full (and then is not an ssfbench checkpoint)
    assert code == 2 and "not an ssfbench checkpoint" in err and not grid.exists()


def test_mock_run_reads_weights_under_its_opt_in(tmp_path, capsys, monkeypatch):
    from types import SimpleNamespace

    import ssfbench.pipeline.mockrun as mockrun

    path, marker = _evil(tmp_path)

    def reads_a_weights_file(*args, **kwargs):  # a plugin whose setting names a weights file
        read_torch_file(path, "weights file")
        return SimpleNamespace(lines=lambda: ["PASS read"], warnings=[], ok=True)

    monkeypatch.setattr(mockrun, "mock_run", reads_a_weights_file)
    code, _, err = run_main(["mock-run", "--method", "ranking"], capsys)
    _one_refusal(code, err, path)
    assert not marker.exists()
    code, out, err = run_main(["mock-run", "--method", "ranking", "--trust-weights"], capsys)
    assert code == 0 and out == "PASS read\n" and marker.exists(), err
