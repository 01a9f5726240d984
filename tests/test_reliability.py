"""Faults, fast: resumable cache writes, mismatched and concurrent caches, non-finite embeddings,
a full disk, folds without positives, labels that do not fit, bad roots and weights, pretraining
resume state. Each bad input ends in one ``error:`` line (exit 2) and leaves no corrupt file.
(Real SIGKILLs of a running ``ssfbench run`` are in ``test_resume_subprocess.py``.)"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from cli_runner import run_main

import ssfbench.evaluation.cache as cache
from ssfbench.api.dataset import Fold
from ssfbench.errors import UserError
from ssfbench.evaluation.cache import (
    CacheMismatch,
    CacheMismatchWarning,
    cached_embeddings,
    partial_path,
    read_attrs,
    read_cache,
)
from ssfbench.evaluation.metrics import NoPositivesWarning
from ssfbench.results.store import write_result

ATTRS = {"method": "ranking", "checkpoint_sha256": "ab" * 32, "dataset": "synth-au", "dataset_fingerprint": "f00d",
         "preprocess": {"input_size": 32}, "ssfbench_version": "0.1.0", "protocol_version": "1"}
KEYS = np.array([f"s{i // 4}/{i:04d}" for i in range(10)])
EMB = np.random.default_rng(0).normal(size=(len(KEYS), 3)).astype(np.float32)
TINY = ["--no-init-control", "--image-size", "32", "--steps", "2", "--batch-size", "4", "--workers", "0", "--quiet",
        "--data-option", "synth-vox.identities=8", "--data-option", "synth-au.subjects=6",
        "--data-option", "synth-expr.identities=24"]


def blocks(emb: np.ndarray, size: int = 4, stop_after: int | None = None):
    """A ``compute_from`` over ``emb`` in blocks of ``size``; raises KeyboardInterrupt after
    ``stop_after`` blocks (an interrupted run); records the start rows it was called with."""
    starts: list[int] = []

    def compute_from(start: int):
        starts.append(start)
        for n, i in enumerate(range(start, len(emb), size)):
            if stop_after is not None and n == stop_after:
                raise KeyboardInterrupt
            yield emb[i:i + size]

    compute_from.starts = starts
    return compute_from


def files_under(folder: Path) -> list[str]:
    """Every file below ``folder`` (relative, sorted), lock files left out."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.suffix != ".lock")


# ---- resumable cache writes --------------------------------------------------------------------

def test_interrupted_write_resumes_from_rows_done_and_matches_uninterrupted(tmp_path):
    whole = cached_embeddings(tmp_path / "a.h5", ATTRS, KEYS, compute_from=blocks(EMB), resume_key={"bs": 4})
    path = tmp_path / "b.h5"
    with pytest.raises(KeyboardInterrupt):
        cached_embeddings(path, ATTRS, KEYS, compute_from=blocks(EMB, stop_after=2), resume_key={"bs": 4})
    assert not path.exists()  # a partial file never sits at the cache's path
    partial = partial_path(path)
    attrs = read_attrs(partial)
    assert attrs["complete"] is False and attrs["rows_done"] == 8
    with pytest.raises(CacheMismatch, match="incomplete"):
        read_cache(partial, ATTRS)
    resumed = blocks(EMB)
    got = cached_embeddings(path, ATTRS, KEYS, compute_from=resumed, resume_key={"bs": 4})
    assert resumed.starts == [8]
    assert got.tobytes() == whole.tobytes() == EMB.tobytes()
    assert not partial.exists()
    final = read_attrs(path)
    assert final["complete"] is True and "rows_done" not in final and final == read_attrs(tmp_path / "a.h5")
    np.testing.assert_array_equal(read_cache(path, ATTRS, expected_keys=KEYS)[1], KEYS)


@pytest.mark.parametrize("change", [{"resume_key": {"bs": 5}}, {"attrs": {"checkpoint_sha256": "cd" * 32}},
                                    {"overwrite": "always"}])
def test_partial_of_another_request_is_discarded(tmp_path, change):
    path = tmp_path / "c.h5"
    with pytest.raises(KeyboardInterrupt):
        cached_embeddings(path, ATTRS, KEYS, compute_from=blocks(EMB, stop_after=1), resume_key={"bs": 4})
    resumed = blocks(EMB)
    attrs = {**ATTRS, **change.get("attrs", {})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheMismatchWarning)
        cached_embeddings(path, attrs, KEYS, compute_from=resumed, resume_key=change.get("resume_key", {"bs": 4}),
                          overwrite=change.get("overwrite", "only-missing"))
    assert resumed.starts == [0]
    np.testing.assert_array_equal(read_cache(path, attrs)[0], EMB)


def test_non_finite_embeddings_write_nothing(tmp_path):
    bad = EMB.copy()
    bad[6, 1] = np.nan
    bad[9, 0] = np.inf
    path = tmp_path / "c.h5"
    with pytest.raises(UserError) as err:
        cached_embeddings(path, ATTRS, KEYS, compute_from=blocks(bad))
    msg = str(err.value)
    assert "'synth-au'" in msg and "'ranking'" in msg and "NaN or infinite" in msg and "row 6" in msg
    assert "\n" not in msg
    with pytest.raises(UserError, match="NaN or infinite"):
        cached_embeddings(path, ATTRS, KEYS, lambda: bad)
    assert files_under(tmp_path) == []


def test_disk_full_is_one_line_and_leaves_no_temp(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache, "_write_rows", full)
    path = tmp_path / "c.h5"
    with pytest.raises(UserError, match=f"^disk full while writing {path}$"):
        cached_embeddings(path, ATTRS, KEYS, compute_from=blocks(EMB))
    monkeypatch.setattr(cache, "_write_datasets", full)
    with pytest.raises(UserError, match=f"^disk full while writing {path}$"):
        cached_embeddings(path, ATTRS, KEYS, lambda: EMB)
    assert files_under(tmp_path) == []


def test_disk_full_while_writing_a_checkpoint(tmp_path):
    from ssfbench.api.checkpoint import atomic_write_bytes

    def full(tmp: str) -> None:
        Path(tmp).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(UserError, match=f"^disk full while writing {tmp_path / 'last.pt'}$"):
        atomic_write_bytes(tmp_path / "last.pt", full)
    assert files_under(tmp_path) == []


# ---- mismatched and concurrent caches ----------------------------------------------------------

def test_cache_of_another_protocol_version_is_not_used(tmp_path):
    path = tmp_path / "c.h5"
    cache.write_cache(path, EMB, KEYS, {**ATTRS, "protocol_version": "0"})
    with pytest.raises(CacheMismatch, match="protocol_version: cached '0', requested '1'"):
        cached_embeddings(path, ATTRS, KEYS, lambda: EMB + 1, overwrite="never")
    with pytest.warns(CacheMismatchWarning, match="protocol_version"):
        got = cached_embeddings(path, ATTRS, KEYS, compute_from=blocks(EMB + 1))
    np.testing.assert_array_equal(got, EMB + 1)
    assert read_attrs(path)["protocol_version"] == "1"
    # a cache from before protocol versions were recorded is not used either
    with h5py.File(path, "a") as f:
        del f.attrs["protocol_version"]
    with pytest.raises(CacheMismatch, match="protocol_version: cached '<missing>'"):
        read_cache(path, ATTRS)


WRITER = """
import json, sys, time
from pathlib import Path
import numpy as np
from ssfbench.evaluation.cache import cached_embeddings
path, marker = Path(sys.argv[1]), Path(sys.argv[2])
attrs = json.loads(sys.argv[3])
keys = [f"k{i}" for i in range(40)]
def compute_from(start):
    with open(marker, "a") as f:
        f.write("computed\\n")
    for i in range(start, 40, 8):
        time.sleep(0.2)
        yield np.arange(i * 3, (i + 8) * 3, dtype=np.float32).reshape(8, 3)
emb = cached_embeddings(path, attrs, keys, compute_from=compute_from)
print(float(emb.sum()))
"""


def test_two_concurrent_writers_leave_one_valid_cache(tmp_path):
    path, marker = tmp_path / "c.h5", tmp_path / "computed.txt"
    cmd = [sys.executable, "-c", WRITER, str(path), str(marker), json.dumps(ATTRS)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0] == outs[1][0]
    assert marker.read_text().count("computed") == 1  # the second writer waited, then reused the cache
    emb, keys = read_cache(path, ATTRS, expected_keys=[f"k{i}" for i in range(40)])
    np.testing.assert_array_equal(emb, np.arange(120, dtype=np.float32).reshape(40, 3))
    assert files_under(tmp_path) == ["c.h5", "computed.txt"]


# ---- folds without positives -------------------------------------------------------------------

@dataclass
class TinyLabels:
    """A labelled dataset of 12 rows, 2 labels, 2 folds; label ``B`` is never positive in fold2's test rows."""

    name: str = "tiny"
    metric: str = "f1"
    label_names: tuple[str, ...] = ("A", "B")

    def __post_init__(self) -> None:
        self.keys = np.array([f"r{i}" for i in range(12)])
        self.subjects = np.repeat(["s1", "s2"], 6)
        self.targets = np.zeros((12, 2), dtype=np.int8)
        self.targets[[0, 2, 6, 8, 10], 0] = 1
        self.targets[[1, 3], 1] = 1
        self.targets[11, 1] = -1

    def fingerprint(self) -> str:
        return "tiny"

    def folds(self) -> list[Fold]:
        a, b = np.arange(6), np.arange(6, 12)
        return [Fold("fold1", b, a), Fold("fold2", a, b)]


def test_fold_without_positives_is_scored_warned_and_recorded(tmp_path):
    from ssfbench.evaluation.protocol import probe_dataset

    ds = TinyLabels()
    x = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    with pytest.warns(NoPositivesWarning) as caught:
        scores = probe_dataset(x, ds, seed=0)
    assert scores["scores_per_fold"]["fold2"]["B"] == 0.0  # F1 is defined: 0.0
    expected = ["tiny fold1: label B has no positives among the known training rows; the probe cannot learn it",
                "tiny fold2: label B has no positives among the known test rows; F1 set to 0.0"]
    assert scores["warnings"] == expected
    assert [str(w.message) for w in caught] == expected
    from ssfbench.pipeline.provenance import result_record

    record = result_record(run_id="r", config_hash="c", method="m", variant="", display_name="M", backbone="b",
                           source="ssfbench", role="floor", dataset=ds, seed=0, scores=scores)
    path = write_result(tmp_path, record)
    assert json.loads(path.read_text())["warnings"] == expected


# ---- labels, roots, weights, NaN embeddings, full disk through the CLI ------------------------------

def test_labels_that_do_not_match_the_images(tmp_path):
    from ssfbench.evaluation.protocol import check_labels
    from ssfbench.pipeline.spec import RunSpec, open_dataset

    ds = open_dataset("synth-au", RunSpec(method="random", image_size=32, dataset_options={"synth-au": {"subjects": 6}}))
    check_labels(ds)
    ds.targets = ds.targets[:-1]
    with pytest.raises(UserError, match=r"'synth-au': labels do not match the images: targets \(\d+, 14\), expected"):
        check_labels(ds)
    ds = TinyLabels()
    ds.targets[0, 0] = 9
    with pytest.raises(UserError, match="labels must be 1"):
        check_labels(ds)


def test_bp4d_labels_without_images_is_one_line(tmp_path, capsys):
    import shutil

    from replicas import make_bp4d

    root = make_bp4d(tmp_path / "BP4D", frames=2).root
    shutil.rmtree(root / "Sequences" / "F002" / "T1")
    out = tmp_path / "out"
    code, _, err = run_main(["run", "--method", "random", "--datasets", "bp4d", "--root", f"bp4d={root}",
                             "--out", str(out), *TINY], capsys)
    assert code == 2 and err.startswith("error: ") and "F002" in err and err.count("\n") == 1
    assert not out.exists() or files_under(out) == []


@pytest.mark.parametrize("kind", ["missing", "a file", "unreadable"])
def test_bad_dataset_root_is_one_line(tmp_path, capsys, kind):
    import os

    root = tmp_path / "BP4D"
    if kind == "a file":
        root.write_text("not a folder")
    elif kind == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("root reads every folder")
        root.mkdir()
        root.chmod(0)
    out = tmp_path / "out"
    try:
        code, _, err = run_main(["run", "--method", "random", "--datasets", "bp4d", "--root", f"bp4d={root}",
                                 "--out", str(out), *TINY], capsys)
    finally:
        if root.is_dir():
            root.chmod(0o755)
    assert code == 2 and str(root) in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() or files_under(out) == []


def test_unknown_dataset_name_suggests(capsys):
    code, _, err = run_main(["run", "--method", "random", "--datasets", "synth-ua"], capsys)
    assert code == 2 and "did you mean 'synth-au'" in err and err.count("\n") == 1


def test_incompatible_weights_is_one_line_and_writes_no_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    torch.save({"encoder.trunk.conv1.weight": torch.zeros(3, 3)}, bad)
    out = tmp_path / "out"
    loaded = [x for i, x in enumerate(TINY) if "--steps" not in (x, TINY[i - 1])]  # nothing is pretrained
    code, _, err = run_main(["run", "--method", "ranking", "--weights", str(bad), "--datasets", "synth-au",
                             "--out", str(out), *loaded], capsys)
    assert code == 2 and "weights do not fit method 'ranking'" in err and err.count("\n") == 1
    assert not list(out.rglob("*.pt")) and not list(out.rglob("*.h5"))


def test_nan_embeddings_from_a_method_is_one_line_and_no_cache(tmp_path, capsys, monkeypatch):
    from ssfbench.api.registry import get_method

    cls = get_method("random")
    monkeypatch.setattr(cls, "embed", lambda self, images: torch.full((len(images), 256), float("nan")))
    out = tmp_path / "out"
    code, _, err = run_main(["run", "--method", "random", "--datasets", "synth-au", "--out", str(out), *TINY], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "dataset 'synth-au': method 'random' produced NaN or infinite embeddings" in err
    assert files_under(out / "embeddings") == [] and not (out / "results").exists()


def test_embedding_of_the_wrong_width_is_one_line_naming_the_method(tmp_path, capsys, monkeypatch):
    from ssfbench.api.registry import get_method

    cls = get_method("random")
    monkeypatch.setattr(cls, "embed", lambda self, images: torch.zeros((len(images), 8)))
    out = tmp_path / "out"
    code, _, err = run_main(["run", "--method", "random", "--datasets", "synth-au", "--out", str(out), *TINY], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "method 'random': embed returned shape (2, 8)" in err and "(2, 256)" in err
    assert files_under(out / "embeddings") == [] and not (out / "results").exists()


def test_disk_full_through_the_cli(tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache, "_write_rows", full)
    out = tmp_path / "out"
    code, _, err = run_main(["run", "--method", "random", "--datasets", "synth-au", "--out", str(out), *TINY], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: disk full while writing ") and err.rstrip().endswith("synth-au.h5")
    assert files_under(out / "embeddings") == []


# ---- pretraining resume state --------------------------------------------------------------------

def test_unreadable_resume_state_suggests_fresh_and_fresh_discards_it(tmp_path):
    from ssfbench.pipeline.spec import RunSpec, build_method, open_dataset
    from ssfbench.train.pretrain import PretrainSettings, pretrain

    spec = RunSpec(method="ranking", image_size=32, overrides={"batch_size": 4, "n": 2},
                   dataset_options={"synth-vox": {"identities": 8}})
    videos = open_dataset("synth-vox", spec)
    (tmp_path / "last.pt").write_bytes(b"truncated")
    settings = PretrainSettings(steps=1, num_workers=0, progress=False, device="cpu")
    with pytest.raises(UserError, match=r"last\.pt: cannot resume from this file .*--fresh"):
        pretrain(build_method(spec), videos, settings, tmp_path)
    settings.resume = False
    result = pretrain(build_method(spec), videos, settings, tmp_path)
    saved = torch.load(tmp_path / "last.pt", weights_only=False)
    assert saved["state"]["step"] == 1 and set(saved["rng"]) >= {"torch", "numpy", "python"}
    assert result.best_path.is_file()


def test_fresh_discards_the_run_checkpoints_and_gives_the_same_checkpoint(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["run", "--method", "random", "--datasets", "synth-au", "--out", str(out), *TINY]
    assert run_main(args, capsys)[0] == 0
    (folder,) = (out / "runs").iterdir()
    first = json.loads((folder / "best.json").read_text())["sha256"]
    (folder / "last.pt").write_bytes(b"stale resume state")
    assert run_main([*args, "--fresh"], capsys)[0] == 0
    assert not (folder / "last.pt").exists()
    assert json.loads((folder / "best.json").read_text())["sha256"] == first  # same seed, same bytes
    (result,) = (out / "results" / "runs").glob("*/synth-au.json")
    rerun = json.loads(result.read_text())["rerun"]
    assert rerun["argv"] == ["ssfbench", *args]  # the same result again: nothing new written
    assert rerun["git"] is None or len(rerun["git"]["commit"]) == 40
