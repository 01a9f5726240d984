"""The CLI end to end at tiny size, its one-line errors (exit 2, no traceback unless --debug),
Ctrl-C (exit 130) and its logging setup."""

from __future__ import annotations

import json
import logging

import click
import pytest
from cli_runner import run_main
from click.testing import CliRunner

import ssfbench.pipeline.runner
from ssfbench.cli import INTERRUPTED, cli
from ssfbench.cli.diagnostics import DEBUG_ENV, configure_logging, exception_chain
from ssfbench.cli.options import expand_list_options

TINY = ["--image-size", "32", "--steps", "2", "--batch-size", "4", "--workers", "0", "--quiet",
        "--data-option", "synth-vox.identities=8", "--data-option", "synth-au.subjects=6",
        "--data-option", "synth-expr.identities=24"]


@pytest.fixture(autouse=True)
def _no_debug_from_the_environment(monkeypatch):
    """These tests pin the default output; a developer's SSFBENCH_DEBUG must not change it."""
    monkeypatch.delenv(DEBUG_ENV, raising=False)


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


BAD_SETTING = ["run", "--method", "ranking", "--set", "bogus=1"]  # a UserError raised `from None` over a KeyError


def test_debug_adds_the_full_traceback_after_the_error_line(capsys):
    code, _, err = run_main(["--debug", *BAD_SETTING], capsys)
    assert code == 2
    lines = err.splitlines()
    assert lines[0].startswith("error: method 'ranking' has no setting 'bogus'")
    assert "Traceback (most recent call last):" in err
    assert "KeyError: 'bogus'" in err  # the context that `raise ... from None` hides
    assert "raised 'from None'" in err
    assert lines[-1].startswith("ssfbench.errors.UserError: method 'ranking' has no setting 'bogus'")


def test_debug_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv(DEBUG_ENV, "1")
    code, _, err = run_main(BAD_SETTING, capsys)
    assert code == 2 and err.startswith("error: ") and "Traceback" in err and "KeyError: 'bogus'" in err


@pytest.mark.parametrize("value", ["", "0", "false"])
def test_debug_off_is_one_line(monkeypatch, capsys, value):
    monkeypatch.setenv(DEBUG_ENV, value)
    code, _, err = run_main(BAD_SETTING, capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err


def test_debug_is_in_the_help():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0 and "--debug" in result.output and DEBUG_ENV in result.output


def test_exception_chain_walks_causes_and_hidden_contexts():
    def raise_chain():
        try:
            try:
                raise KeyError("inner")
            except KeyError:
                raise ValueError("middle") from None
        except ValueError as exc:
            raise RuntimeError("outer") from exc

    with pytest.raises(RuntimeError) as info:
        raise_chain()
    chain = exception_chain(info.value)
    assert [type(e) for e, _ in chain] == [KeyError, ValueError, RuntimeError]
    assert "another exception occurred" in chain[0][1] and "from None" in chain[0][1]
    assert "direct cause" in chain[1][1] and chain[2][1] is None


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, click.exceptions.Abort])
def test_ctrl_c_says_how_to_resume_and_exits_130(monkeypatch, tmp_path, capsys, interrupt):
    def interrupted(spec):
        raise interrupt()

    monkeypatch.setattr(ssfbench.pipeline.runner, "run", interrupted)
    code, _, err = run_main(["run", "--method", "random", "--out", str(tmp_path), "--device", "cpu",
                             "--workers", "0"], capsys)
    assert code == 130
    assert err.strip().splitlines() == [INTERRUPTED]  # click may add a blank line closing the ^C echo
    assert INTERRUPTED == "interrupted: rerun the same command to resume"


def test_library_logging_reaches_stderr_as_bare_lines(capsys):
    log = logging.getLogger("ssfbench.some_module")
    try:
        configure_logging(debug=False)
        configure_logging(debug=False)  # idempotent: one handler, one line per message
        log.info("resuming from last.pt")
        log.debug("not shown")
        assert capsys.readouterr().err == "resuming from last.pt\n"
        configure_logging(debug=True)
        log.debug("shown with --debug")
        assert capsys.readouterr().err == "shown with --debug\n"
    finally:
        configure_logging(debug=False)


def test_debug_flag_sets_debug_logging(capsys):
    try:
        code, _, _ = run_main(["--debug", "list", "datasets"], capsys)
        assert code == 0 and logging.getLogger("ssfbench").level == logging.DEBUG
        code, _, _ = run_main(["list", "datasets"], capsys)
        assert code == 0 and logging.getLogger("ssfbench").level == logging.INFO
    finally:
        configure_logging(debug=False)
