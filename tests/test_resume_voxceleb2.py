"""A pretraining on VoxCeleb2 read from H.264 mp4 with the one-pass reader (2 windows per visit),
killed with SIGKILL after its first checkpoint and rerun, ends with the same best.pt weights and
history as an uninterrupted run (bitwise on CPU): the pattern of tests/test_resume_subprocess.py on
a tiny replica (6 clips of 40 frames at 32 px, a keyframe every 25 frames, B-frames). Only the
killed run is a separate process; the uninterrupted run and the resumption run in this one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_runner import run_main
from replicas import moving_texture, write_video
from test_resume_subprocess import SLOW, kill_when, run_dir, weights, without_volatile

pytestmark = pytest.mark.slow


def args(out: Path, root: Path) -> list[str]:
    """``ssfbench pretrain`` on the replica at ``root`` writing to ``out``."""
    return ["pretrain", "--method", "ranking", "--k", "2", "--steps", "4", "--image-size", "32", "--batch-size", "4",
            "--workers", "0", "--quiet", "--pretrain-data", "voxceleb2", "--root", f"voxceleb2={root}",
            "--data-option", "voxceleb2.windows_per_visit=2", "--checkpoint-every", "1", "--out", str(out)]


def in_process(out: Path, root: Path, capsys) -> str:
    """Run it here; fail unless it exits 0; returns stderr."""
    code, _, err = run_main(args(out, root), capsys)
    assert code == 0, err[-3000:]
    return err


def slowed_process(out: Path, root: Path) -> subprocess.Popen:
    """Start it as a process that sleeps 1 s before each step (numbers untouched)."""
    return subprocess.Popen([sys.executable, "-c", SLOW, "1.0", "0", *args(out, root)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=out.parent)


@pytest.fixture(scope="module")
def replica(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vox-resume") / "VoxCeleb2"
    for i in range(6):
        write_video(root / "dev" / "mp4" / f"id{i + 1:05d}" / f"clip{i:07d}" / "00001.mp4",
                    moving_texture(40, 32, seed=i), codec="libx264", gop=25)
    return root


def test_sigkill_mid_pretraining_on_mp4_then_resume_matches_uninterrupted(replica, tmp_path, capsys):
    reference = tmp_path / "reference"
    reference.mkdir()
    err = in_process(reference, replica, capsys)
    assert "the model was the bottleneck" in err or "the data pipeline was the bottleneck" in err

    out = tmp_path / "killed"
    out.mkdir()

    def past_first_save() -> bool:
        last = next((out / "runs").glob("*/last.pt"), None) if (out / "runs").exists() else None
        return last is not None and torch.load(last, weights_only=False)["state"]["step"] >= 1

    kill_when(slowed_process(out, replica), past_first_save)
    step = torch.load(run_dir(out) / "last.pt", weights_only=False)["state"]["step"]
    assert 1 <= step < 4
    assert f"at step {step}/4" in in_process(out, replica, capsys)

    got, want = weights(run_dir(out) / "best.pt"), weights(run_dir(reference) / "best.pt")
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    records = [json.loads((run_dir(o) / "best.json").read_text()) for o in (out, reference)]
    assert records[0]["sha256"] == records[1]["sha256"]
    assert [without_volatile(h, out) for h in records[0]["history"]] == \
        [without_volatile(h, reference) for h in records[1]["history"]]
    trained = [h for h in records[1]["history"] if h["step"]]
    assert trained and all(h["bottleneck"] in ("data", "model") and h["model_frames_per_s"] > 0 for h in trained)
