"""The stages of ``run`` as commands: ``pretrain`` -> ``embed`` -> ``probe`` give the results
``run`` gives, each stage reusing the last one's output; ``probe`` never trains or embeds and
names the missing file and the stage to run; methods without stages refuse them in one line."""

from __future__ import annotations

import json
from pathlib import Path

from cli_runner import run_main

TINY = ["--no-init-control", "--method", "ranking", "--k", "1", "--image-size", "32", "--steps", "2", "--batch-size", "4",
        "--workers", "0", "--quiet", "--data-option", "synth-vox.identities=8", "--datasets", "synth-au",
        "--data-option", "synth-au.subjects=6"]


def _result(out: Path) -> dict:
    (path,) = out.glob("results/runs/*/synth-au.json")
    return json.loads(path.read_text())


def _files(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*")
            if p.is_file() and "results" not in p.parts and p.suffix != ".lock"}


def test_probe_before_the_earlier_stages_names_what_is_missing(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_main(["probe", *TINY, "--out", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "best.pt: no finished encoder for this run; run `ssfbench pretrain`" in err
    assert not list(out.glob("runs/*/*.pt"))

    assert run_main(["pretrain", *TINY, "--out", str(out)], capsys)[0] == 0
    code, _, err = run_main(["probe", *TINY, "--out", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "synth-au.h5: no embedding cache at this path; run `ssfbench embed`" in err
    assert not (out / "embeddings").exists() and not (out / "results").exists()


def test_stages_give_the_results_of_run_and_probe_only_reads(tmp_path, capsys):
    staged, whole = tmp_path / "staged", tmp_path / "whole"
    code, printed, _ = run_main(["pretrain", *TINY, "--out", str(staged)], capsys)
    assert code == 0 and printed.startswith("checkpoint:")
    code, printed, _ = run_main(["embed", *TINY, "--out", str(staged)], capsys)
    assert code == 0 and "embeddings of synth-au:" in printed and not (staged / "results").exists()
    before = _files(staged)
    code, printed, _ = run_main(["probe", *TINY, "--out", str(staged)], capsys)
    assert code == 0 and "synth-au: per-label F1" in printed
    assert _files(staged) == before  # checkpoint and cache untouched
    for destructive in (["--fresh"], ["--overwrite", "always"]):
        code, _, err = run_main(["probe", *TINY, *destructive, "--out", str(staged)], capsys)
        assert code == 2 and err.count("\n") == 1 and "probe never pretrains or embeds" in err
    assert _files(staged) == before

    assert run_main(["run", *TINY, "--out", str(whole)], capsys)[0] == 0
    got, want = _result(staged), _result(whole)
    assert got["run_id"] == want["run_id"] and got["checkpoint_sha256"] == want["checkpoint_sha256"]
    assert got["scores_per_fold"] == want["scores_per_fold"]
    assert (staged / "results" / "synth-au.csv").is_file()


def test_probe_refuses_a_cache_that_does_not_match(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_main(["embed", *TINY, "--out", str(out)], capsys)[0] == 0
    other = [a if a != "synth-au.subjects=6" else "synth-au.subjects=5" for a in TINY]  # same run, other data
    code, _, err = run_main(["probe", *other, "--out", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "synth-au.h5: embedding cache does not match the request: dataset_fingerprint" in err
    assert "run `ssfbench embed`" in err


def test_a_method_without_stages_refuses_them(tmp_path, capsys):
    for stage in ("pretrain", "embed", "probe"):
        code, _, err = run_main([stage, "--method", "supervised", "--steps", "1", "--image-size", "16", "--quiet",
                                 "--datasets", "synth-au", "--out", str(tmp_path)], capsys)
        assert code == 2 and err.count("\n") == 1
        assert "method 'supervised' trains one encoder per fold on the labels" in err and "`ssfbench run`" in err
