"""Configuration files (``--config run.toml``) and ``ssfbench rerun``: a file gives the run id of the
equivalent command line, command-line flags win, bad keys are one line, and a result's recorded
command comes back as a configuration and reruns."""

from __future__ import annotations

import json
from pathlib import Path

from cli_runner import run_main

from ssfbench.cli.config import tomllib  # the standard library's, or tomli on Python 3.10

TINY = ["--image-size", "32", "--batch-size", "4", "--workers", "0", "--quiet", "--no-init-control",
        "--data-option", "synth-vox.identities=8", "--data-option", "synth-expr.identities=24"]
COMMAND = ["--method", "ranking", "--k", "2", "--steps", "2", "--seeds", "0", *TINY]
CONFIG = """\
method = "ranking"
k = 2                       # one value for a list option
steps = 7                   # the command line's --steps 2 wins
image_size = 32             # underscores read as dashes
batch-size = 4
workers = "0"
quiet = true
init-control = false
seeds = [0]
data-option = ["synth-vox.identities=8", "synth-expr.identities=24"]
"""


def _run_ids(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "runs").iterdir())


def test_config_file_gives_the_run_id_of_the_command_line_and_rerun_reproduces_it(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    code, _, err = run_main(["pretrain", *COMMAND, "--out", str(a)], capsys)
    assert code == 0, err
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    code, _, err = run_main(["pretrain", "--config", str(config), "--steps", "2", "--out", str(b)], capsys)
    assert code == 0, err
    assert _run_ids(a) == _run_ids(b) and len(_run_ids(a)) == 1
    [run_id] = _run_ids(a)

    # a result made by `run` (its recorded command line) back as a configuration, then rerun
    argv = ["ssfbench", "run", *COMMAND, "--datasets", "synth-expr", "--out", str(a)]
    result = tmp_path / "synth-expr.json"
    result.write_text(json.dumps({"run_id": run_id, "dataset": "synth-expr", "seed": 0,
                                  "rerun": {"argv": argv, "git": {"commit": "abc"}}}))
    code, printed, err = run_main(["rerun", str(result), "--print-config"], capsys)
    assert code == 0, err
    assert tomllib.loads(printed) == {
        "method": "ranking", "k": [2], "steps": 2, "image-size": 32, "seeds": [0], "datasets": ["synth-expr"],
        "data-option": ["synth-vox.identities=8", "synth-expr.identities=24"], "batch-size": 4, "out": str(a),
        "workers": "0", "init-control": False, "quiet": True}
    code, _, err = run_main(["rerun", str(result)], capsys)  # reuses the checkpoint: embeds and probes synth-expr
    assert code == 0, err
    made = json.loads((a / "results" / "runs" / run_id / "synth-expr.json").read_text())
    assert made["rerun"]["argv"][:4] == ["ssfbench", "run", "--method", "ranking"]  # the command, not a file
    assert _run_ids(a) == [run_id]


def test_unknown_key_bad_value_and_bad_toml_are_one_line(tmp_path, capsys):
    config = tmp_path / "run.toml"
    for text, fragment in [('method = "ranking"\nstepz = 3\n', "unknown key 'stepz'"),
                           ('method = "ranking"\nsteps = [1, 2]\n', "key 'steps': --steps takes one value"),
                           ('method = "ranking"\nquiet = "yes"\n', "key 'quiet': expected true or false"),
                           ('method = "ranking"\nsteps = -1\n', "Invalid value for '--steps'"),
                           ("method = \n", "not valid TOML")]:
        config.write_text(text)
        code, _, err = run_main(["run", "--config", str(config), "--out", str(tmp_path)], capsys)
        assert code == 2 and fragment in err and err.count("\n") == 1 and "Traceback" not in err, (text, err)
        if "key" in fragment:
            assert str(config) in err


def test_rerun_refuses_what_run_did_not_make(tmp_path, capsys):
    result = tmp_path / "r.json"
    result.write_text(json.dumps({"rerun": {"argv": ["ssfbench", "synth", "calibrate"]}}))
    code, _, err = run_main(["rerun", str(result), "--print-config"], capsys)
    assert code == 2 and "not an `ssfbench run` command" in err and err.count("\n") == 1
    code, _, err = run_main(["rerun", str(tmp_path / "missing.json")], capsys)
    assert code == 2 and "not a readable results JSON" in err


def test_toml_values_round_trip():
    from ssfbench.cli.config import to_toml

    options = {"method": 'odd "name" \\ ü', "k": [1, 2], "lr": 0.001, "quiet": True, "set": ["a=b c"], "steps": None}
    assert tomllib.loads(to_toml(options, comments=("a comment",))) == {k: v for k, v in options.items() if v is not None}
