"""Bad command-line inputs a new user tried (S4, T8, U2 of the tour), replayed through the command line.

- S4: ``run --weights <a k=2 checkpoint>`` takes the checkpoint's settings (the row says k=2, the JSON
  records k=2 and the checkpoint's batch); an option that contradicts the checkpoint, ``--steps``,
  ``--epochs`` and ``--recipe`` are one ``error:`` line naming both values, and nothing is written.
- T8: from a read-only working directory (simulated: tests run as root, so chmod does not bite) and
  with an output path through a regular file, every writing command ends in one ``error:`` line
  naming the path and the reason, exit 2; ``--debug`` adds the traceback.
- U2: a warning the CLI shows is one ``warning: ...`` line, not Python's ``file.py:169: Category:``
  plus a source line.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_main

from ssfbench.api.checkpoint import save_checkpoint
from ssfbench.errors import UserError
from ssfbench.pipeline.spec import RunSpec, build_method

TINY_EVAL = ["--workers", "0", "--quiet", "--no-init-control", "--data-option", "synth-au.subjects=6",
             "--datasets", "synth-au"]


# ---- S4: --weights runs are the checkpoint's ---------------------------------------------------------

@pytest.fixture(scope="module")
def k2_checkpoint(tmp_path_factory) -> Path:
    """An ssfbench checkpoint of ranking k=2, batch 4, 32 px (untrained: its record is what matters)."""
    path = tmp_path_factory.mktemp("weights") / "k2.pt"
    spec = RunSpec(method="ranking", overrides={"k": 2, "batch_size": 4}, image_size=32)
    save_checkpoint(build_method(spec), path)
    return path


def test_s4_weights_run_takes_the_checkpoints_settings(k2_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_main(["run", "--method", "ranking", "--weights", str(k2_checkpoint), "--out", str(out),
                                  *TINY_EVAL], capsys)
    assert code == 0, err
    assert "Ranking k=2" in stdout and "Ranking k=1" not in stdout
    (result,) = (out / "results" / "runs").glob("*/synth-au.json")
    record = json.loads(result.read_text())
    assert record["method_config"]["k"] == 2 and record["method_config"]["batch_size"] == 4
    assert record["image_size"] == 32 and record["display_name"] == "Ranking k=2"
    assert "k2" in result.parent.name and "--k" not in record["rerun"]["argv"]


@pytest.mark.parametrize(("args", "expected"), [
    (["--k", "1"], "error: --k 1: {w} was trained with k=2; leave --k out (the checkpoint's settings are used) "
                   "or give --k 2\n"),
    (["--k", "2", "4"], "error: --k 2 4: {w} was trained with k=2;"),
    (["--batch-size", "16"], "error: --batch-size 16: {w} was trained with batch_size=4;"),
    (["--set", "margin=0.1"], "error: --set margin=0.1: {w} was trained with margin=0.03;"),
    (["--image-size", "64"], "error: --image-size 64: {w} was trained with image-size 32;"),
    (["--backbone", "resnet34"], "error: --backbone resnet34: {w} was trained with backbone resnet18;"),
    (["--steps", "5"], "error: --steps 5: nothing is pretrained with --weights {w} (the encoder is loaded from it); "
                       "leave --steps out\n"),
    (["--epochs", "1"], "error: --epochs 1: nothing is pretrained with --weights {w}"),
    (["--recipe", "paper"], "error: --recipe paper: a recipe says how to pretrain, and --weights {w} is loaded"),
])
def test_s4_contradicting_options_are_refused(k2_checkpoint, tmp_path, capsys, args, expected):
    out = tmp_path / "out"
    code, _, err = run_main(["run", "--method", "ranking", "--weights", str(k2_checkpoint), "--out", str(out),
                             *args, *TINY_EVAL], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith(expected.format(w=k2_checkpoint)), err
    assert not out.exists()


def test_s4_agreeing_options_and_python_api(k2_checkpoint):
    from ssfbench.pipeline.sweep import base_spec

    spec = base_spec("ranking", weights=k2_checkpoint, ks=(2,), batch_size=4)  # agreeing values are fine
    assert spec.image_size == 32 and spec.overrides == {"batch_size": 4}
    spec = base_spec("ranking", weights=k2_checkpoint)
    assert spec.overrides == {"k": 2, "batch_size": 4} and spec.image_size == 32
    with pytest.raises(UserError, match="--steps 3: nothing is pretrained"):
        base_spec("ranking", weights=k2_checkpoint, steps=3)
    with pytest.raises(UserError, match="--image-size 48: .* was trained with image-size 32"):
        base_spec("ranking", weights=k2_checkpoint, image_size=48)


def test_s4_released_layouts_keep_the_given_settings(tmp_path):
    import torch

    from ssfbench.pipeline.sweep import base_spec

    path = tmp_path / "released.pth"
    torch.save(build_method(RunSpec(method="ranking")).state_dict(), path)  # a bare state dict: no record
    spec = base_spec("ranking", weights=path, ks=(4,), image_size=48)
    assert spec.overrides == {} and spec.image_size == 48


# ---- T8: unwritable outputs --------------------------------------------------------------------------

def _face_image(folder: Path) -> Path:
    from PIL import Image

    path = folder / "photo.png"
    Image.fromarray(np.full((48, 48, 3), 128, np.uint8)).save(path)
    return path


def _commands(inputs: Path) -> dict[str, list[str]]:
    """Each T8 command, writing to its default (relative) output paths."""
    return {
        "synth preview": ["synth", "preview", "--out", "preview.png", "--videos", "1", "--times", "2"],
        "datasets prepare": ["datasets", "prepare", "synth-vox", "--image-size", "16", "--set", "identities=5"],
        "compare --plot": ["compare", "--datasets", "synth-au", "--plot", "plot.png"],
        "compare --format html": ["compare", "--datasets", "synth-au", "--format", "html", "--output", "page.html"],
        "faces align": ["faces", "align", str(_face_image(inputs)), "--out", "aligned", "--quiet"],
        "bench": ["bench", "--device", "cpu", "--no-probe", "--no-render", "--identities", "5", "--steps", "8",
                  "--rounds", "1", "--workers", "0"],
    }


@pytest.fixture
def read_only_cwd(tmp_path, monkeypatch) -> Path:
    """A working directory where creating a folder or a file fails as on a read-only file system
    (EROFS). Root ignores permission bits, so the two ways ssfbench creates things are refused there:
    ``Path.mkdir`` and ``tempfile.mkstemp`` (every file is written through a temporary one)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    real_mkdir, real_mkstemp = Path.mkdir, tempfile.mkstemp

    def inside(path: str | os.PathLike) -> bool:
        return Path(os.path.abspath(path)).is_relative_to(folder)

    def mkdir(self, mode=0o777, parents=False, exist_ok=False):
        if inside(self) and not self.is_dir():
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, mode, parents, exist_ok)

    def mkstemp(suffix=None, prefix=None, dir=None, text=False):
        if dir is not None and inside(dir):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.path.join(dir, f"{prefix}XXXX{suffix}"))
        return real_mkstemp(suffix, prefix, dir, text)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.chdir(folder)
    return folder


@pytest.mark.parametrize("name", ["synth preview", "datasets prepare", "compare --plot", "compare --format html",
                                  "faces align", "bench"])
def test_t8_read_only_working_directory_is_one_error_line(name, read_only_cwd, tmp_path, capsys):
    args = _commands(tmp_path)[name]
    code, _, err = run_main(args, capsys)
    lines = err.splitlines()
    assert code == 2 and lines[-1].startswith("error: ") and "Traceback" not in err, err
    assert lines[-1].endswith(": Read-only file system"), err
    assert ".tmp" not in lines[-1]  # the file asked for, not the temporary one beside it
    assert [line for line in lines if line.startswith("error:")] == lines[-1:]
    assert list(read_only_cwd.iterdir()) == []  # nothing was written around the simulation


@pytest.mark.parametrize("name", ["synth preview", "compare --plot", "compare --format html", "faces align"])
def test_t8_output_through_a_regular_file_is_one_error_line(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("f").write_text("a file, not a folder\n")
    args = [a.replace("preview.png", "f/preview.png").replace("plot.png", "f/plot.png")
            .replace("page.html", "f/page.html").replace("aligned", "f/aligned") for a in _commands(tmp_path)[name]]
    code, _, err = run_main(args, capsys)
    line = err.splitlines()[-1]
    assert code == 2 and line.startswith("error: ") and "Traceback" not in err, err
    assert line.startswith(("error: f: ", "error: f/", "error: --plot: folder f", "error: --output: folder f")), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "photo.png"]


def test_t8_debug_keeps_the_traceback(read_only_cwd, tmp_path, capsys):
    code, _, err = run_main(["--debug", *_commands(tmp_path)["synth preview"]], capsys)
    assert code == 2 and err.startswith("error: preview.png: Read-only file system\n") and "Traceback" in err


def test_t8_an_os_error_without_a_file_stays_a_bug_report(monkeypatch):
    from ssfbench.cli import main

    def broken(*args, **kwargs):
        raise OSError("something else")

    monkeypatch.setattr("ssfbench.cli.cli.main", broken)
    with pytest.raises(OSError, match="something else"):
        main(["list", "methods"])


# ---- U2: warnings as one line ------------------------------------------------------------------------

def test_u2_warnings_print_as_one_line(tmp_path):
    out = tmp_path / "out"
    (out / "results" / "runs" / "x").mkdir(parents=True)
    (out / "results" / "runs" / "x" / "synth-au.json").write_text("{bad")
    done = subprocess.run([sys.executable, "-m", "ssfbench", "compare", "--out", str(out), "--datasets", "synth-au"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": ""}, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "synth-au.json" in line]
    assert lines == [f"warning: {out}/results/runs/x/synth-au.json: skipped, not readable JSON (JSONDecodeError)"]
    assert "ResultFileWarning" not in done.stderr and ".py:" not in done.stderr


def test_u2_warning_line_for_ours_for_others_and_in_debug():
    from ssfbench.cli.diagnostics import one_line_warnings, warning_line
    from ssfbench.datasets._problems import DatasetWarning

    assert warning_line("bp4d: 2 rows skipped", DatasetWarning, "/x/bp4d.py", 169) == \
        "warning: bp4d: 2 rows skipped\n"
    assert warning_line("two\nlines", FutureWarning, "/site-packages/timm/models.py", 3) == \
        "warning: two; lines (FutureWarning from models)\n"
    assert warning_line("m", DatasetWarning, "/x/bp4d.py", 169, debug=True) == \
        "warning: m (DatasetWarning at /x/bp4d.py:169)\n"
    saved = warnings.formatwarning
    with one_line_warnings():
        assert warnings.formatwarning("m", DatasetWarning, "/x/bp4d.py", 1, "source line") == "warning: m\n"
        with pytest.warns(DatasetWarning, match="still recorded"):  # recording code still gets the objects
            warnings.warn("still recorded", DatasetWarning, stacklevel=1)
    assert warnings.formatwarning is saved
