"""Real faults: ``python -m ssfbench run`` killed with SIGKILL in the middle of pretraining and of
embedding, then rerun; the outputs must equal an uninterrupted run's (bitwise on CPU). And the
same seed twice gives identical results files and leaderboard rows (except dates and paths).

The interrupted runs are slowed down (a sleep wrapped around one function, numbers untouched) so
that the kill lands mid-way on any machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

pytestmark = pytest.mark.slow

ARGS = ["run", "--method", "ranking", "--k", "2", "--datasets", "synth-au", "--steps", "4", "--image-size", "32",
        "--batch-size", "4", "--workers", "0", "--quiet", "--embed-batch-size", "24",
        "--data-option", "synth-vox.identities=8", "--data-option", "synth-au.subjects=6",
        "--no-init-control"]  # one run folder: the paired steps-0 control is a second run (tests/test_floors.py)
#: ``python -c`` program: the CLI with a sleep before each pretraining step (argv[1] s) and each
#: embedding batch (argv[2] s); the sleeps touch no RNG and no number
SLOW = """
import sys, time
import ssfbench.evaluation.embed as embed
import ssfbench.train.pretrain as pretrain
from ssfbench.cli import main
def slowed(fn, delay):
    def wrapper(*args, **kwargs):
        time.sleep(delay)
        return fn(*args, **kwargs)
    return wrapper
pretrain.jitter = slowed(pretrain.jitter, float(sys.argv[1]))
embed._embed_batch = slowed(embed._embed_batch, float(sys.argv[2]))
main(sys.argv[3:])
"""
VOLATILE = {"date", "timing", "wall_s", "elapsed_s", "train_frames_per_s", "model_frames_per_s", "data_wait_fraction",
            "bottleneck"}


def ssfbench(out: Path, *extra: str, slow: tuple[float, float] | None = None) -> subprocess.Popen:
    """Start ``ssfbench run`` (the tiny ranking run) writing to ``out``."""
    prefix = [sys.executable, "-m", "ssfbench"] if slow is None else [sys.executable, "-c", SLOW, *map(str, slow)]
    # cwd outside the checkout: `python -m` puts the cwd first on sys.path, and the source folder
    # ./ssfbench lacks the ssfbench.methods/.datasets mapping that the installed package has
    return subprocess.Popen([*prefix, *ARGS, "--out", str(out), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=out.parent)


def finish(proc: subprocess.Popen, timeout: float = 900) -> str:
    """Wait for ``proc``; fail with its stderr unless it exits 0; returns stderr."""
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return err


def kill_when(proc: subprocess.Popen, ready, timeout: float = 600) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` is true (polled); fail if it ends first."""
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, f"finished before the kill: {proc.communicate()[1][-2000:]}"
        assert time.time() < deadline, "timed out waiting to kill"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def run_dir(out: Path) -> Path:
    """The single run folder under ``out``."""
    (folder,) = (out / "runs").iterdir()
    return folder


def weights(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint."""
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def weights_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of every tensor (not over the file)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def without_volatile(obj, out: Path):
    """``obj`` with timestamps and timings dropped and ``out`` replaced by ``<OUT>``."""
    if isinstance(obj, dict):
        return {k: without_volatile(v, out) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [without_volatile(v, out) for v in obj]
    if isinstance(obj, str):
        return obj.replace(str(out), "<OUT>")
    return obj


def result(out: Path) -> dict:
    """The synth-au result JSON of the run in ``out``, volatile fields removed."""
    (path,) = (out / "results" / "runs").glob("*/synth-au.json")
    return without_volatile(json.loads(path.read_text()), out)


def cache_contents(out: Path) -> tuple[bytes, list[str], dict]:
    """(embeddings bytes, keys, attributes) of the run's synth-au cache."""
    (path,) = (out / "embeddings").glob("*/synth-au.h5")
    with h5py.File(path, "r") as f:
        return (f["embeddings"][...].tobytes(), list(f["keys"].asstr()[...]),
                {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()})


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> tuple[Path, Path]:
    """Two uninterrupted runs of the same command and seed into two folders (run concurrently)."""
    base = tmp_path_factory.mktemp("twins")
    outs = (base / "a", base / "b")
    procs = [ssfbench(out) for out in outs]
    for proc in procs:
        finish(proc)
    return outs


def test_same_seed_twice_gives_identical_results_and_leaderboards(twins):
    a, b = twins
    ra, rb = result(a), result(b)
    assert ra == rb
    assert ra["seed"] == 0 and ra["data_seed"] == 0 and ra["probe"]["seed"] == 0
    assert ra["rerun"]["argv"][:2] == ["ssfbench", "run"] and "--out" in ra["rerun"]["argv"]
    assert {"ssfbench", "torch", "timm", "numpy", "python"} <= set(ra["versions"])
    assert isinstance(ra["torch_threads"], int) and ra["torch_threads"] >= 1
    assert ra["cpu_kernels"]["torch"] and isinstance(ra["cpu_kernels"]["numpy"], list)
    board_a, board_b = (pd.read_csv(out / "results" / "synth-au.csv").drop(columns="date") for out in twins)
    pd.testing.assert_frame_equal(board_a, board_b)
    preds = [np.load(next((out / "results" / "runs").glob("*/synth-au.predictions.npz"))) for out in twins]
    for name in preds[0].files:
        np.testing.assert_array_equal(preds[0][name], preds[1][name])
    assert cache_contents(a) == cache_contents(b)


def test_sigkill_mid_pretraining_then_resume_matches_uninterrupted(twins, tmp_path):
    out = tmp_path / "killed"

    def past_first_save() -> bool:
        last = next((out / "runs").glob("*/last.pt"), None) if (out / "runs").exists() else None
        return last is not None and torch.load(last, weights_only=False)["state"]["step"] >= 1

    kill_when(ssfbench(out, "--checkpoint-every", "1", slow=(1.0, 0.0)), past_first_save)
    folder = run_dir(out)
    step = torch.load(folder / "last.pt", weights_only=False)["state"]["step"]
    assert 1 <= step < 4
    record = folder / "best.json"
    assert not (record.is_file() and json.loads(record.read_text()).get("completed"))
    assert not list((out / "results").glob("**/*.json")) if (out / "results").exists() else True

    err = finish(ssfbench(out, "--checkpoint-every", "1"))
    assert f"at step {step}/4" in err
    reference = run_dir(twins[0])
    got, want = weights(folder / "best.pt"), weights(reference / "best.pt")
    assert got.keys() == want.keys()
    for name in want:
        assert torch.equal(got[name], want[name]), name
    assert weights_sha256(got) == weights_sha256(want)
    assert json.loads(record.read_text())["sha256"] == json.loads((reference / "best.json").read_text())["sha256"]
    history = [without_volatile(h, out) for h in json.loads(record.read_text())["history"]]
    assert history == [without_volatile(h, out) for h in json.loads((reference / "best.json").read_text())["history"]]
    assert result(out)["avg"] == result(twins[0])["avg"]
    assert result(out)["scores_per_fold"] == result(twins[0])["scores_per_fold"]


def test_sigkill_mid_embedding_then_resume_matches_uninterrupted(twins, tmp_path):
    out = tmp_path / "killed"
    shutil.copytree(twins[0] / "runs", out / "runs")  # the trained encoder; only embedding remains
    partials = lambda: list((out / "embeddings").glob("*/.synth-au.h5.partial"))  # noqa: E731

    def some_rows_written() -> bool:
        for path in partials():
            try:
                with h5py.File(path, "r", locking=False) as f:
                    return int(f.attrs.get("rows_done", 0)) >= 48
            except (OSError, KeyError):
                return False
        return False

    kill_when(ssfbench(out, slow=(0.0, 0.3)), some_rows_written)
    (partial,) = partials()
    assert not (partial.parent / "synth-au.h5").exists()
    with h5py.File(partial, "r") as f:
        done = int(f.attrs["rows_done"])
        assert not f.attrs["complete"] and 48 <= done < 360

    finish(ssfbench(out))
    assert not partial.exists()
    assert cache_contents(out) == cache_contents(twins[0])
    assert result(out)["scores_per_fold"] == result(twins[0])["scores_per_fold"]
