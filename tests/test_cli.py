"""The CLI end to end at tiny size, and its one-line errors (exit 2, no traceback)."""

from __future__ import annotations

import json

import pytest
from cli_runner import run_main
from click.testing import CliRunner

from ssfbench.cli import cli, expand_list_options

TINY = ["--image-size", "32", "--steps", "2", "--batch-size", "4", "--workers", "0", "--quiet",
        "--data-option", "synth-vox.identities=8", "--data-option", "synth-au.subjects=6",
        "--data-option", "synth-expr.identities=24"]


def test_list_options_expand_space_separated_values():
    assert expand_list_options(["compare", "--datasets", "a", "b", "--format", "md"]) == [
        "compare", "--datasets", "a", "--datasets", "b", "--format", "md"]
    assert expand_list_options(["run", "--k", "1", "2", "--out", "x"]) == ["run", "--k", "1", "--k", "2", "--out", "x"]


@pytest.mark.parametrize("args, fragment", [
    (["run", "--method", "rankng"], "did you mean 'ranking'"),
    (["run", "--method", "ranking", "--datasets", "synth-aux"], "unknown dataset 'synth-aux'"),
    (["run", "--method", "ranking", "--k", "0"], "--k must be >= 1"),
    (["run", "--method", "ranking", "--set", "bogus=1"], "has no setting 'bogus'"),
    (["run", "--method", "random", "--weights", "/nonexistent.pt"], "weights file not found"),
])
def test_bad_input_is_one_line_exit_2(args, fragment, capsys):
    code, out, err = run_main(args, capsys)
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_window_longer_than_every_video_is_one_line(tmp_path, capsys):
    # n=200 frames at k=1 cannot fit in the 150-frame synthetic videos
    code, _, err = run_main(["run", "--method", "ranking", "--set", "n=200", "--out", str(tmp_path), *TINY], capsys)
    assert code == 2 and "have at least 202 frames" in err and err.count("\n") == 1


def test_unwritable_out_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = run_main(["run", "--method", "random", "--out", str(blocker / "sub"), *TINY], capsys)
    assert code == 2 and "cannot write the output folder" in err and err.count("\n") == 1


def test_run_end_to_end_tiny(tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = run_main(["run", "--method", "ranking", "--k", "2", "--out", str(out), *TINY], capsys)
    assert code == 0
    assert "synth-au: per-label F1" in stdout and "synth-expr: per-label AUC" in stdout
    results = sorted((out / "results" / "runs").glob("ranking-k2-steps2-*/*.json"))
    assert [p.name for p in results] == ["synth-au.json", "synth-expr.json"]
    controls = sorted((out / "results" / "runs").glob("ranking-k2-steps0-*/*.json"))  # its step-0 control
    assert [p.name for p in controls] == ["synth-au.json", "synth-expr.json"]
    au = json.loads(results[0].read_text())
    assert au["method"] == "ranking" and au["variant"].startswith("k=2")
    assert set(au["scores_per_fold"]) == {"fold1", "fold2", "fold3"}
    assert len(au["labels"]) == 14 and 0.0 <= au["avg"] <= 1.0
    assert (out / "results" / "synth-au.csv").is_file()
    run_dir = out / "runs" / au["run_id"]
    meta = json.loads((run_dir / "best.json").read_text())
    assert meta["completed"] and meta["preprocess"]["input_size"] == 32 and "ranking_accuracy" in meta["selected"]
    # a second identical run reuses the checkpoint and the caches (no retraining: same sha256)
    code, _, _ = run_main(["run", "--method", "ranking", "--k", "2", "--out", str(out), *TINY], capsys)
    again = json.loads(results[0].read_text())
    assert again["checkpoint_sha256"] == au["checkpoint_sha256"] and again["avg"] == au["avg"]


def test_help_lists_the_commands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "synth", "list"):
        assert command in result.output
