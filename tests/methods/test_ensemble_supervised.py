"""The ensemble row (``run --method ranking --k 1 2``) and the supervised ceiling row, end to end at
tiny size through the CLI, plus the per-fold training's use of training rows only."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from ssfbench.api.registry import get_dataset
from ssfbench.cli import main
from ssfbench.errors import UserError
from ssfbench.evaluation.protocol import probe_dataset
from ssfbench.pipeline.ensemble import ensemble
from ssfbench.pipeline.spec import RunSpec
from ssfbench.results.store import read_leaderboard

AU_OPTIONS = {"subjects": 3, "videos_per_subject": 1, "frames": 20}
TINY = ["--no-init-control", "--backbone", "test_resnet", "--image-size", "32", "--steps", "2", "--batch-size", "4", "--workers", "0",
        "--quiet", "--datasets", "synth-au",
        "--data-option", "synth-vox.identities=5", "--data-option", "synth-vox.videos_per_identity=1",
        "--data-option", "synth-vox.frames=20",
        *[arg for k, v in AU_OPTIONS.items() for arg in ("--data-option", f"synth-au.{k}={v}")]]


def run_main(args: list[str]) -> None:
    try:
        main(args)
    except SystemExit as exc:
        assert exc.code in (0, None), f"exit {exc.code}"


def results_by_run(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in (out / "results" / "runs").glob("*/synth-au.json")}


def tiny_au():
    return get_dataset("synth-au").open(image_size=32, **AU_OPTIONS)


def test_ensemble_row_concatenates_the_member_embeddings(tmp_path):
    out = tmp_path / "out"
    run_main(["run", "--method", "ranking", "--k", "1", "2", "--set", "n=2", "--out", str(out), *TINY])
    results = results_by_run(out)
    assert len(results) == 3
    ens = next(r for r in results.values() if "ensemble" in r)
    k1 = next(r for r in results.values() if r["variant"].startswith("k=1 "))
    k2 = next(r for r in results.values() if r["variant"].startswith("k=2 "))
    assert ens["display_name"] == "Ranking Ensemble" and ens["method"] == "ranking"
    assert ens["variant"].startswith("k=1+2 ") and ens["variant"].split()[1:] == k1["variant"].split()[1:]
    assert ens["ensemble"]["members"] == [k1["run_id"], k2["run_id"]]
    expected_hash = hashlib.sha256(json.dumps({"ensemble": [k1["config_hash"], k2["config_hash"]]}).encode()).hexdigest()
    assert ens["config_hash"] == expected_hash and ens["config_hash"] not in (k1["config_hash"], k2["config_hash"])
    assert ens["embed_dim"] == k1["embed_dim"] + k2["embed_dim"] == 512
    # the row is exactly the probe on the concatenated member caches
    parts = []
    for member in (k1, k2):
        with h5py.File(member["cache"], "r") as f:
            parts.append(f["embeddings"][...])
    again = probe_dataset(np.concatenate(parts, axis=1), tiny_au(), seed=0)
    assert again["mean"] == pytest.approx(ens["mean"], nan_ok=True)
    board = read_leaderboard(out / "results" / "synth-au.csv")
    assert "Ranking Ensemble" in set(board["display_name"]) and len(board) == 3

    # the same command again reuses the members (same checkpoints) and reproduces the row
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/best.pt")}
    run_main(["run", "--method", "ranking", "--k", "1", "2", "--set", "n=2", "--out", str(out), *TINY])
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/best.pt")} == stamps
    assert results_by_run(out)[ens["run_id"]]["mean"] == pytest.approx(ens["mean"], nan_ok=True)


def test_ensemble_is_paired_with_the_ensemble_of_its_members_controls(tmp_path, capsys):
    """With step-0 controls, --k 1 2 also ensembles the members' controls, and compare shows the
    ensemble row's gain over that (its own initialisation)."""
    out = tmp_path / "out"
    with_controls = [a for a in TINY if a != "--no-init-control"]
    run_main(["run", "--method", "ranking", "--k", "1", "2", "--set", "n=2", "--out", str(out), *with_controls])
    results = results_by_run(out)
    ensembles = {r["variant"].split()[1]: r for r in results.values() if "ensemble" in r}
    assert set(ensembles) == {"steps=2", "steps=0"}
    members = [results[m] for m in ensembles["steps=2"]["ensemble"]["members"]]
    assert ensembles["steps=0"]["ensemble"]["members"] == [m["init_control"] for m in members]
    capsys.readouterr()
    run_main(["compare", "--datasets", "synth-au", "--out", str(out), "--no-committed", "--resamples", "20"])
    row = next(line for line in capsys.readouterr().out.splitlines() if "Ensemble" in line and "steps=2" in line)
    assert "[" in row.split("|")[-3]


def test_ensemble_refuses_per_fold_members(tmp_path):
    from ssfbench.results.records import RunOutput

    member = RunOutput(run_id="supervised-default-seed0")  # label-trained: no single checkpoint
    with pytest.raises(UserError, match="one encoder per fold"):
        ensemble([member, RunOutput(run_id="supervised-default-seed1")], RunSpec(method="supervised", out=tmp_path))
    with pytest.raises(UserError, match="at least 2 member runs"):
        ensemble([member], RunSpec(method="supervised", out=tmp_path))


def test_supervised_row_trains_one_encoder_per_fold(tmp_path):
    out = tmp_path / "out"
    run_main(["run", "--method", "supervised", "--out", str(out), *TINY])
    (result,) = results_by_run(out).values()
    assert result["display_name"] == "Supervised" and result["method"] == "supervised"
    folds = tiny_au().folds()
    assert set(result["scores_per_fold"]) == {f.name for f in folds}
    assert len(set(result["checkpoint_sha256"].values())) == len(folds)  # three different encoders
    # fold encoders are keyed by the dataset's version: other data never reuses them
    assert f"/folds/synth-au-{tiny_au().fingerprint()[:8]}/" in result["checkpoint"]["fold1"]
    embeddings = []
    for fold in folds:
        record = json.loads(Path(result["checkpoint"][fold.name]).with_suffix(".json").read_text())
        assert record["completed"] and record["fold"] == fold.name
        assert record["config"]["num_labels"] == 14
        assert record["finetune"]["train_rows"] == len(fold.train) and len(record["finetune"]["train_loss"]) == 2
        with h5py.File(result["cache"][fold.name], "r") as f:
            assert f.attrs["checkpoint_sha256"] == result["checkpoint_sha256"][fold.name]
            embeddings.append(f["embeddings"][...])
    assert not np.array_equal(embeddings[0], embeddings[1])
    assert "Supervised" in set(read_leaderboard(out / "results" / "synth-au.csv")["display_name"])

    # rerun: fold checkpoints are reused, not retrained
    run_main(["run", "--method", "supervised", "--out", str(out), *TINY])
    (again,) = results_by_run(out).values()
    assert again["checkpoint_sha256"] == result["checkpoint_sha256"]


def test_per_fold_training_reads_only_the_folds_training_rows(tmp_path):
    from ssfbench.pipeline.spec import build_method
    from ssfbench.train.finetune import FinetuneSettings, finetune

    ds = tiny_au()
    seen: list[int] = []
    original = ds.read_images
    ds.read_images = lambda rows: (seen.extend(int(r) for r in rows), original(rows))[1]
    fold = ds.folds()[1]
    method = build_method(RunSpec(method="supervised", backbone="test_resnet", image_size=32,
                                  overrides={"batch_size": 4}), num_labels=len(ds.label_names))
    finetune(method, ds, fold.train, FinetuneSettings(steps=3, device="cpu", progress=False), tmp_path / "f.pt")
    assert len(seen) == 12 and set(seen) <= set(fold.train.tolist())
    assert not set(seen) & set(fold.test.tolist())


def test_supervised_refuses_weights_with_one_line(tmp_path, capsys):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    with pytest.raises(SystemExit) as exc:
        main(["run", "--method", "supervised", "--weights", str(weights), "--out", str(tmp_path / "o"), *TINY])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--pretrained" in err and err.count("\n") == 1
