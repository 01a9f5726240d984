"""Nothing silently wrong: checkpoints, caches and results files are verified by content when reused.
Each case replays a fault a user met and asserts the one-line error or the recompute, and
that no wrong result is written."""

from __future__ import annotations

import json
import shutil
import warnings

import h5py
import numpy as np
import pytest
from cli_runner import run_main

from ssfbench.evaluation.cache import CacheMismatch, read_cache, read_complete, write_cache
from ssfbench.results.store import ResultFileWarning, load_results

TINY = ["--no-init-control", "--image-size", "32", "--workers", "0", "--quiet", "--datasets", "synth-au",
        "--data-option", "synth-vox.identities=8", "--data-option", "synth-au.subjects=6"]
ATTRS = {"method": "m", "checkpoint_sha256": "ab" * 32, "dataset": "d", "dataset_fingerprint": "f",
         "preprocess": {"input_size": 32}, "ssfbench_version": "0.1.0"}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A random-floor run at seeds 0 and 1 in one output folder: (out, {seed: result JSON path})."""
    out = tmp_path_factory.mktemp("verified") / "out"
    class Quiet:  # run_main reads the output through a capsys-like object
        def readouterr(self):
            return type("C", (), {"out": "", "err": ""})()

    for seed in (0, 1):
        code, _, err = run_main(["run", "--method", "random", "--seed", str(seed), "--out", str(out), *TINY], Quiet())
        assert code == 0, err
    paths = {r["seed"]: out / "results" / "runs" / r["run_id"] / "synth-au.json" for r in load_results(out / "results")}
    return out, paths


def _copy(out, tmp_path):
    dest = tmp_path / "out"
    shutil.copytree(out, dest)
    return dest


def _result(out, seed=0):
    return next(r for r in load_results(out / "results") if r["seed"] == seed)


def test_a_replaced_checkpoint_is_refused_naming_both_digests(two_runs, tmp_path, capsys):
    out = _copy(two_runs[0], tmp_path)
    first, other = _result(out, 0), _result(out, 1)
    shutil.copy(other["checkpoint"].replace(str(two_runs[0]), str(out)),
                first["checkpoint"].replace(str(two_runs[0]), str(out)))
    before = (out / "results" / "runs" / first["run_id"] / "synth-au.json").read_text()
    code, _, err = run_main(["run", "--method", "random", "--seed", "0", "--out", str(out), *TINY], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "best.pt: sha256 " + other["checkpoint_sha256"][:16] in err and first["checkpoint_sha256"][:16] in err
    assert "--fresh" in err
    assert (out / "results" / "runs" / first["run_id"] / "synth-au.json").read_text() == before


def _cache(out, result):
    return out / "embeddings" / result["run_id"] / "synth-au.h5"


@pytest.mark.parametrize("fault", ["flipped bytes", "fewer rows", "nan row"])
def test_a_corrupted_cache_is_recomputed_with_a_warning(two_runs, tmp_path, capsys, fault):
    out = _copy(two_runs[0], tmp_path)
    first = _result(out, 0)
    with h5py.File(_cache(out, first), "r+") as f:
        emb = f["embeddings"][...]
        if fault == "flipped bytes":
            emb.view(np.uint8).reshape(-1)[1000:1100] ^= 0x55
            f["embeddings"][...] = emb
        elif fault == "fewer rows":
            del f["embeddings"]
            f.create_dataset("embeddings", data=emb[:-3])
        else:
            emb[5] = np.nan
            f["embeddings"][...] = emb
    with pytest.warns(Warning, match="recomputing embeddings"):
        code, _, err = run_main(["run", "--method", "random", "--seed", "0", "--out", str(out), *TINY], capsys)
    assert code == 0, err
    again = _result(out, 0)
    assert again["avg"] == first["avg"] and again["mean"] == first["mean"]  # the recomputed cache: same scores
    read_complete(_cache(out, first))  # verified again


def test_a_corrupted_cache_is_refused_under_never(tmp_path):
    path = tmp_path / "c.h5"
    emb = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    write_cache(path, emb, [f"k{i}" for i in range(6)], ATTRS)
    assert read_cache(path, ATTRS)[0].tolist() == emb.tolist()
    with h5py.File(path, "r+") as f:
        f["embeddings"][2, 1] = 7.0
    with pytest.raises(CacheMismatch, match="content does not match the embeddings_sha256"):
        read_cache(path, ATTRS)


def test_an_edited_or_broken_results_file_is_skipped_naming_it(two_runs, tmp_path, capsys):
    out = _copy(two_runs[0], tmp_path)
    paths = {seed: out / "results" / "runs" / p.parent.name / p.name for seed, p in two_runs[1].items()}
    data = json.loads(paths[0].read_text())
    data["avg"] = 0.99  # edited by hand
    paths[0].write_text(json.dumps(data))
    with pytest.warns(ResultFileWarning, match=f"{paths[0].parent.name}.*avg is 0.99"):
        kept = load_results(out / "results")
    assert [r["seed"] for r in kept] == [1]
    paths[1].write_text(paths[1].read_text()[:200])  # truncated
    with pytest.warns(ResultFileWarning, match="not readable JSON"):
        assert load_results(out / "results") == []
    data.pop("labels")
    paths[0].write_text(json.dumps(data))
    with pytest.warns(ResultFileWarning, match="field 'labels' missing"):
        load_results(out / "results")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, stdout, err = run_main(["compare", "--datasets", "synth-au", "--out", str(out), "--no-committed"], capsys)
    assert code in (0, 2) and "Traceback" not in err and "99.0" not in stdout


def test_a_finished_rerun_on_a_read_only_folder_writes_nothing(two_runs, tmp_path, capsys, monkeypatch):
    import errno

    import ssfbench.api.checkpoint
    import ssfbench.results.store
    import ssfbench.runtime.fileio

    out = two_runs[0]  # not copied: results record absolute paths; nothing may change it anyway

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    for module in (ssfbench.runtime.fileio, ssfbench.results.store, ssfbench.api.checkpoint):
        monkeypatch.setattr(module, "atomic_write_bytes", read_only)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    code, stdout, err = run_main(["run", "--method", "random", "--seed", "0", "--out", str(out), *TINY], capsys)
    assert code == 0, err
    assert "synth-au: per-label F1" in stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_a_second_identical_run_waits_for_the_first(tmp_path):
    import logging
    import threading

    from filelock import FileLock

    from ssfbench.pipeline.runner import one_process_per_run

    held = FileLock(str(tmp_path / ".lock"))
    held.acquire()
    entered = threading.Event()

    def second():
        with one_process_per_run(tmp_path):
            entered.set()

    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("ssfbench.pipeline.runner")  # the CLI may have configured ssfbench's loggers
    logger.addHandler(handler)
    try:
        thread = threading.Thread(target=second)
        thread.start()
        assert not entered.wait(1.0)  # blocked while the first holds the run
        held.release()
        thread.join(10)
    finally:
        logger.removeHandler(handler)
    assert entered.is_set()
    assert any("another ssfbench process is making this run's encoder; waiting" in m for m in messages)


@pytest.mark.parametrize("args, option", [
    (["--epochs", "-1"], "--epochs"), (["--steps", "-5"], "--steps"), (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "-4"], "--batch-size"), (["--image-size", "8"], "--image-size"), (["--device", "gpu"], "--device"),
    (["--lr", "0"], "--lr"), (["--seed", "-1"], "--seed"),
])
def test_every_bad_number_is_one_line_naming_the_option(args, option, tmp_path, capsys):
    code, _, err = run_main(["run", "--method", "random", "--out", str(tmp_path / "out"), *args], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and option in err, err
    assert not (tmp_path / "out").exists()
