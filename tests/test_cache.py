"""The HDF5 embedding cache: round trip, refusal of mismatched or incomplete files, the
overwrite policies, and atomic writes."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

import ssfbench.evaluation.cache as cache
from ssfbench.evaluation.cache import (
    CACHE_KEY_ATTRS,
    CacheMismatch,
    CacheMismatchWarning,
    cached_embeddings,
    read_attrs,
    read_cache,
    write_cache,
)

ATTRS = {
    "method": "ranking",
    "checkpoint_sha256": "ab" * 32,
    "dataset": "synthetic",
    "dataset_fingerprint": "f00d",
    "preprocess": {"input_size": 64, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
    "ssfbench_version": "0.1.0",
    "protocol_version": "1",
}
KEYS = np.array(["s1/0001", "s1/0002", "s2/0001", "é/0003"])


def _emb(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(len(KEYS), 5)).astype(np.float32)


class Calls:
    def __init__(self, value: np.ndarray) -> None:
        self.value, self.n = value, 0

    def __call__(self) -> np.ndarray:
        self.n += 1
        return self.value


def test_round_trip(tmp_path: Path) -> None:
    p = tmp_path / "c.h5"
    emb = _emb()
    write_cache(p, emb, KEYS, ATTRS)
    got, keys = read_cache(p, ATTRS, expected_keys=KEYS)
    np.testing.assert_array_equal(got, emb)
    assert got.dtype == np.float32 and list(keys) == list(KEYS)
    attrs = read_attrs(p)
    assert attrs["complete"] is True
    assert json.loads(attrs["preprocess"]) == ATTRS["preprocess"]
    for k in CACHE_KEY_ATTRS:
        if k != "preprocess":
            assert attrs[k] == ATTRS[k]
    with h5py.File(p) as f:
        assert f["embeddings"].dtype == np.float32 and f["keys"].dtype.kind == "O"


def test_preprocess_json_key_order_does_not_matter(tmp_path: Path) -> None:
    p = tmp_path / "c.h5"
    write_cache(p, _emb(), KEYS, ATTRS)
    reordered = json.dumps({"std": [0.5] * 3, "mean": [0.5] * 3, "input_size": 64})
    read_cache(p, {**ATTRS, "preprocess": reordered})


def test_mismatch_names_file_and_each_field(tmp_path: Path) -> None:
    p = tmp_path / "c.h5"
    write_cache(p, _emb(), KEYS, ATTRS)
    with pytest.raises(CacheMismatch) as e:
        read_cache(p, {**ATTRS, "method": "npair", "dataset_fingerprint": "beef"})
    msg = str(e.value)
    assert str(p) in msg and "\n" not in msg
    assert "method: cached 'ranking', requested 'npair'" in msg
    assert "dataset_fingerprint: cached 'f00d', requested 'beef'" in msg
    assert "checkpoint_sha256" not in msg


def test_key_mismatch_refused(tmp_path: Path) -> None:
    p = tmp_path / "c.h5"
    write_cache(p, _emb(), KEYS, ATTRS)
    with pytest.raises(CacheMismatch, match="keys"):
        read_cache(p, ATTRS, expected_keys=KEYS[::-1])
    with pytest.raises(CacheMismatch, match="keys: cached 4 frames, requested 3"):
        read_cache(p, ATTRS, expected_keys=KEYS[:3])


def test_incomplete_file_refused(tmp_path: Path) -> None:
    p = tmp_path / "c.h5"
    write_cache(p, _emb(), KEYS, ATTRS)
    with h5py.File(p, "a") as f:
        f.attrs["complete"] = False
    with pytest.raises(CacheMismatch, match="incomplete"):
        read_cache(p, ATTRS)


def test_not_hdf5_refused(tmp_path: Path) -> None:
    p = tmp_path / "c.h5"
    p.write_text("not hdf5")
    with pytest.raises(CacheMismatch, match="not a readable HDF5"):
        read_cache(p, ATTRS)


def test_duplicate_keys_refused(tmp_path: Path) -> None:
    with pytest.raises(cache.UserError, match="unique"):
        write_cache(tmp_path / "c.h5", _emb(), ["a", "b", "a", "c"], ATTRS)


def test_only_missing_computes_once_then_reuses(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "c.h5"
    compute = Calls(_emb())
    first = cached_embeddings(p, ATTRS, KEYS, compute)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = cached_embeddings(p, ATTRS, KEYS, compute)
    assert compute.n == 1
    np.testing.assert_array_equal(first, second)


def test_only_missing_recomputes_mismatch_with_warning(tmp_path: Path) -> None:
    p = tmp_path / "c.h5"
    write_cache(p, _emb(0), KEYS, ATTRS)
    compute = Calls(_emb(1))
    request = {**ATTRS, "checkpoint_sha256": "cd" * 32}
    with pytest.warns(CacheMismatchWarning, match="checkpoint_sha256: cached"):
        got = cached_embeddings(p, request, KEYS, compute)
    assert compute.n == 1
    np.testing.assert_array_equal(got, _emb(1))
    np.testing.assert_array_equal(read_cache(p, request)[0], _emb(1))


def test_never_raises_on_mismatch_and_keeps_file(tmp_path: Path) -> None:
    p = tmp_path / "c.h5"
    write_cache(p, _emb(0), KEYS, ATTRS)
    compute = Calls(_emb(1))
    with pytest.raises(CacheMismatch, match="method: cached 'ranking', requested 'tcae'"):
        cached_embeddings(p, {**ATTRS, "method": "tcae"}, KEYS, compute, overwrite="never")
    assert compute.n == 0
    np.testing.assert_array_equal(read_cache(p, ATTRS)[0], _emb(0))
    # an absent cache is still computed under "never"
    cached_embeddings(tmp_path / "new.h5", ATTRS, KEYS, compute, overwrite="never")
    assert compute.n == 1


def test_always_recomputes(tmp_path: Path) -> None:
    p = tmp_path / "c.h5"
    write_cache(p, _emb(0), KEYS, ATTRS)
    compute = Calls(_emb(1))
    np.testing.assert_array_equal(cached_embeddings(p, ATTRS, KEYS, compute, overwrite="always"), _emb(1))
    assert compute.n == 1


def test_bad_policy_is_user_error(tmp_path: Path) -> None:
    with pytest.raises(cache.UserError, match="overwrite"):
        cached_embeddings(tmp_path / "c.h5", ATTRS, KEYS, Calls(_emb()), overwrite="sometimes")


def test_failed_write_leaves_no_temp_file_and_old_cache_intact(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "c.h5"
    write_cache(p, _emb(0), KEYS, ATTRS)

    def boom(f: h5py.File, attrs: dict) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cache, "_write_attrs", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_cache(p, _emb(1), KEYS, ATTRS)
    with pytest.raises(RuntimeError):
        write_cache(tmp_path / "fresh.h5", _emb(1), KEYS, ATTRS)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["c.h5"]
    np.testing.assert_array_equal(read_cache(p, ATTRS)[0], _emb(0))
