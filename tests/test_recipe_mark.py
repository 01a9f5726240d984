"""A real-data replica run without a recipe is marked ‡; with ``--recipe paper`` it is
not, on the BP4D layout replica (tests/replicas.py).

(a) A run pretrained with the harness's own settings is marked ‡ in ``compare`` and its leaderboard
    CSV's ``recipe`` column says which settings differ from the paper's recipe.
(b) A faithful ``--recipe paper`` run (VoxCeleb2, 256 px, 50 epochs, ImageNet weights) cannot run on a
    CPU in a test: its result record is built through the code the runner uses (``apply_recipe`` ->
    ``base_spec`` -> ``build_method`` -> ``run_identity`` / ``recipe_extra``), with a torchvision-layout
    file in an offline torch hub cache standing in for the ImageNet weights, and put on the
    leaderboard with (a)'s scores: no deviation, no ‡, the recipe column says ``paper``.
(c) A ``--recipe paper`` run with overrides is marked ‡, listing exactly those overrides.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import torchvision
from cli_runner import run_main
from replicas import make_bp4d

from ssfbench.report.compare import OFF_PROTOCOL_MARK, RECIPE_MARK, comparison_table
from ssfbench.results.store import NOT_RECIPE, recipe_column, recipe_deviation

#: every BP4D frame cut to its centre square: no face detection (seconds per frame on a CPU); rows marked †
CENTRE = ["--data-option", "bp4d.crop=centre"]
TINY = ["--method", "ranking", "--k", "2", "--steps", "2", "--image-size", "32", "--batch-size", "4", "--device", "cpu",
        "--workers", "0", "--quiet", "--no-init-control", "--data-option", "synth-vox.identities=8", *CENTRE]


@pytest.fixture(scope="module")
def bp4d_root(tmp_path_factory) -> Path:
    return make_bp4d(tmp_path_factory.mktemp("bp4d") / "BP4D").root


@pytest.fixture
def imagenet_cache(offline_caches: Path) -> Path:
    """An offline torch hub cache holding a torchvision-layout resnet18 under torchvision's ImageNet file
    name (random weights): what ``--pretrained imagenet`` reads on a machine that has the weights."""
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), offline_caches / "resnet18-f37072fd.pth")
    return offline_caches


def _row(out: Path, run_id: str) -> pd.Series:
    board = pd.read_csv(out / "results" / "bp4d.csv")
    (index,) = [i for i, ids in enumerate(board["run_id"]) if run_id in str(ids).split()]
    return board.iloc[index]


def _names(out: Path) -> dict[str, str]:
    """compare's row names by run id (as ``ssfbench compare --datasets bp4d --out OUT`` prints them)."""
    table = comparison_table("bp4d", out=out, paper="none", committed=False)
    return {str(ids).split()[0]: name for name, ids in zip(table.rows["name"], table.rows["run_id"])}


def test_a_replica_run_without_a_recipe_is_marked(bp4d_root, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_main(["run", *TINY, "--datasets", "bp4d", "--root", f"bp4d={bp4d_root}", "--out", str(out)],
                            capsys)
    assert code == 0, err
    (path,) = (out / "results" / "runs").glob("*/bp4d.json")
    result = json.loads(path.read_text())
    assert result["recipe"]["name"] is None
    reason = recipe_deviation(result)
    assert reason == (f"{NOT_RECIPE}: anchor per_epoch (paper fixed), batch_size 4 (paper 48), distance euclidean "
                      "(paper squared), epochs 2 steps (paper 50), forward_passes 1 (paper 3), framing whole (paper "
                      "released), image_size 32 (paper 256), pretrain_data synth-vox (paper voxceleb2), pretrained "
                      "null (paper imagenet), select best (paper last)")
    assert _row(out, result["run_id"])["recipe"] == reason  # the leaderboard CSV says what differs
    name = _names(out)[result["run_id"]]
    assert name.endswith(RECIPE_MARK) and OFF_PROTOCOL_MARK in name  # ‡, beside † (crop=centre)
    code, printed, err = run_main(["compare", "--datasets", "bp4d", "--out", str(out), "--paper", "none",
                                   "--no-committed", "--no-init-gains"], capsys)
    assert code == 0, err
    assert f"{name} " in printed and "not the paper's recipe:" in printed and "epochs 2 steps (paper 50)" in printed


def test_a_faithful_paper_recipe_record_is_not_marked(bp4d_root, imagenet_cache, tmp_path, capsys):
    from ssfbench.pipeline.provenance import recipe_extra
    from ssfbench.pipeline.spec import build_method, run_identity
    from ssfbench.pipeline.sweep import apply_recipe, base_spec
    from ssfbench.results.store import result_path, write_leaderboards

    out = tmp_path / "out"
    code, _, err = run_main(["run", *TINY, "--datasets", "bp4d", "--root", f"bp4d={bp4d_root}", "--out", str(out)],
                            capsys)
    assert code == 0, err
    (path,) = (out / "results" / "runs").glob("*/bp4d.json")
    measured = json.loads(path.read_text())
    # `ssfbench run --method ranking --k 2 --recipe paper --datasets bp4d` as ssfbench.run builds it
    chosen = {"backbone": "resnet18", "pretrained": None, "pretrain_data": "synth-vox", "image_size": None,
              "batch_size": None, "epochs": None, "lr": None, "precision": "auto", "steps": None}
    applied, settings, record = apply_recipe("paper", "ranking", chosen, {})
    assert record["overrides"] == {} and applied["epochs"] == 50 and applied["image_size"] == 256
    spec = base_spec("ranking", ks=(2,), epochs=applied["epochs"], image_size=applied["image_size"],
                     backbone=applied["backbone"], pretrained=applied["pretrained"],
                     pretrain_data=applied["pretrain_data"], settings=settings, lr=applied["lr"],
                     batch_size=applied["batch_size"], precision=applied["precision"], recipe=record,
                     datasets=("bp4d",), roots={"bp4d": bp4d_root}, out=out, device="cpu")
    spec.overrides = {**spec.overrides, "k": 2}  # what sweep() sets for --k 2
    spec.steps = 50 * 22_000  # sweep() sets epochs_to_steps of the opened VoxCeleb2; a stand-in (the record keeps 50 epochs)
    method = build_method(spec)
    assert method.pretrained_weights["source"] == "torchvision" and method.config.forward_passes == 3
    extra = recipe_extra(spec, method, {"pretrain": {"precision": "fp32"}})
    assert extra["recipe"]["name"] == "paper" and extra["recipe"]["deviations"] == {}
    assert extra["recipe"]["settings"] == {k: v for k, v in record["settings"].items()}
    config_hash, variant, run_id = run_identity(spec, method, "voxceleb2 (not opened in this test)")
    faithful = {**measured, **extra, "run_id": run_id, "config_hash": config_hash, "variant": variant,
                "method_config": method.config.to_dict(), "image_size": spec.image_size}
    assert recipe_deviation(faithful) is None and recipe_column(faithful) == "paper"
    target = result_path(out / "results", run_id, "bp4d")
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(faithful))
    write_leaderboards(out / "results")
    assert _row(out, run_id)["recipe"] == "paper"
    names = _names(out)
    assert not names[run_id].endswith(RECIPE_MARK) and RECIPE_MARK.strip() not in names[run_id]
    assert names[measured["run_id"]].endswith(RECIPE_MARK)  # the run beside it still is
    assert "recipe=paper" in variant


def test_a_paper_recipe_run_with_overrides_lists_exactly_them(bp4d_root, tmp_path, capsys):
    """The ImageNet trunk is replaced by a local file (its data config would embed at 224 px, minutes on a
    CPU), so ``pretrained`` is one of the overrides too."""
    trunk = tmp_path / "resnet18-tv.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), trunk)
    out = tmp_path / "out"
    code, _, err = run_main(["run", "--method", "ranking", "--recipe", "paper", "--steps", "2", "--image-size", "32",
                             "--batch-size", "4", "--pretrain-data", "synth-vox", "--pretrained", str(trunk),
                             "--data-option",
                             "synth-vox.identities=8", "--datasets", "bp4d", "--root", f"bp4d={bp4d_root}",
                             "--device", "cpu", "--workers", "0", "--quiet", "--no-init-control", *CENTRE,
                             "--out", str(out)],
                            capsys)
    assert code == 0, err
    (path,) = (out / "results" / "runs").glob("*/bp4d.json")
    result = json.loads(path.read_text())
    assert result["recipe"]["overrides"] == {"steps": 2, "image_size": 32, "batch_size": 4,
                                             "pretrain_data": "synth-vox", "pretrained": str(trunk)}
    assert set(result["recipe"]["deviations"]) == {"epochs", "image_size", "batch_size", "pretrain_data", "pretrained"}
    reason = (f"{NOT_RECIPE}: batch_size 4 (paper 48), epochs 2 steps (paper 50), image_size 32 (paper 256), "
              f"pretrain_data synth-vox (paper voxceleb2), pretrained {trunk} (paper imagenet)")
    assert recipe_deviation(result) == reason and _row(out, result["run_id"])["recipe"] == reason
    assert _names(out)[result["run_id"]].endswith(RECIPE_MARK)
