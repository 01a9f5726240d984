"""The HDF5 embedding cache: one file per (method run, dataset) holding ``embeddings`` float32
``[N, D]`` and ``keys`` (utf-8 frame ids, unique, dataset order), with attributes that say what
produced them (see ``CACHE_KEY_ATTRS``) and ``complete``.

A cache is written to a temporary file in the same folder and renamed onto its path only when
complete, so a reader never sees a partial file. A cache whose key attributes differ from the
request is never used silently: it is refused (:class:`CacheMismatch`) or recomputed with a
warning, depending on the ``overwrite`` policy of :func:`cached_embeddings`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
from filelock import FileLock

from ssfbench.errors import UserError

#: Attributes that must equal the request for a cache to be reused.
CACHE_KEY_ATTRS: tuple[str, ...] = (
    "method",
    "checkpoint_sha256",
    "dataset",
    "dataset_fingerprint",
    "preprocess",
    "ssfbench_version",
)

Overwrite = Literal["only-missing", "never", "always"]
OVERWRITE_POLICIES: tuple[str, ...] = ("only-missing", "never", "always")


class CacheMismatch(UserError):
    """An existing cache cannot serve the request (different attributes or keys, incomplete,
    unreadable). ``differences`` lists one ``'name: cached ..., requested ...'`` per field."""

    def __init__(self, path: str | os.PathLike, differences: Sequence[str]) -> None:
        self.path = str(path)
        self.differences = list(differences)
        super().__init__(f"{self.path}: embedding cache does not match the request: {'; '.join(self.differences)}")


class CacheMismatchWarning(UserWarning):
    """A mismatched cache is being recomputed and overwritten."""


def _canonical(name: str, value: Any) -> Any:
    """Attribute value as stored: dicts/lists as sorted-key JSON; ``preprocess`` JSON re-dumped
    canonically so key order and spacing never cause a mismatch."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    if name == "preprocess" and isinstance(value, str):
        try:
            return json.dumps(json.loads(value), sort_keys=True)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def _check_key_attrs(attrs: Mapping[str, Any]) -> None:
    """Every ``CACHE_KEY_ATTRS`` entry must be present in a request or write."""
    missing = [k for k in CACHE_KEY_ATTRS if k not in attrs]
    if missing:
        raise ValueError(f"cache attributes missing: {', '.join(missing)}")


def _check_arrays(path: Path, embeddings: np.ndarray, keys: np.ndarray) -> None:
    """Embeddings ``[N, D]`` with one unique key per row."""
    if embeddings.ndim != 2 or embeddings.shape[0] != len(keys):
        raise ValueError(f"{path}: embeddings {embeddings.shape} need one row per key ({len(keys)} keys)")
    uniq, counts = np.unique(keys, return_counts=True)
    if (counts > 1).any():
        raise UserError(f"{path}: frame keys must be unique; {uniq[counts > 1][0]!r} occurs more than once")


def _write_datasets(f: h5py.File, embeddings: np.ndarray, keys: np.ndarray) -> None:
    """The two datasets of the format."""
    f.create_dataset("embeddings", data=embeddings)
    f.create_dataset("keys", data=keys.astype(object), dtype=h5py.string_dtype("utf-8"))


def _write_attrs(f: h5py.File, attrs: Mapping[str, Any]) -> None:
    """All attributes except ``complete`` (written last by the caller)."""
    for name, value in attrs.items():
        if name != "complete":
            f.attrs[name] = _canonical(name, value)


def _fsync(path: str | os.PathLike) -> None:
    """Flush a file (or folder) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask_mode() -> int:
    """``0o666`` less the process umask: the mode ``open()`` would have given a new file
    (``mkstemp`` creates temporaries as 0600, which would hide shared caches from colleagues)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_cache(path: str | os.PathLike, embeddings: np.ndarray, keys: Sequence[str] | np.ndarray,
                attrs: Mapping[str, Any]) -> None:
    """Write a complete cache at ``path`` atomically: a temporary file in the same folder gets
    the data, the attributes and finally ``complete=True``, is fsynced and renamed onto ``path``.
    On any exception the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    keys = np.asarray([str(k) for k in keys], dtype=object)
    _check_key_attrs(attrs)
    _check_arrays(path, embeddings, keys)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, _umask_mode())
        with h5py.File(tmp, "w") as f:
            f.attrs["complete"] = False
            _write_datasets(f, embeddings, keys)
            _write_attrs(f, attrs)
            f.attrs["complete"] = True
            f.flush()
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        _fsync(path.parent)


def read_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """The attributes of the cache at ``path`` (plain Python values); :class:`CacheMismatch`
    if it is not a readable HDF5 file."""
    try:
        with h5py.File(path, "r") as f:
            return {k: _canonical(k, v) for k, v in f.attrs.items()}
    except OSError as e:
        raise CacheMismatch(path, [f"not a readable HDF5 embedding cache ({type(e).__name__})"]) from None


def _differences(cached: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """``'name: cached a, requested b'`` for each key attribute that differs."""
    out = []
    for name in CACHE_KEY_ATTRS:
        want = _canonical(name, expected[name])
        have = cached.get(name, "<missing>")
        if have != want:
            out.append(f"{name}: cached {have!r}, requested {want!r}")
    return out


def _key_difference(cached: np.ndarray, expected: np.ndarray) -> list[str]:
    """One line describing how the cached keys differ from the requested ones, if they do."""
    if len(cached) != len(expected):
        return [f"keys: cached {len(cached)} frames, requested {len(expected)}"]
    diff = np.flatnonzero(cached != expected)
    if diff.size:
        i = int(diff[0])
        return [f"keys: {diff.size} differ, first at row {i} (cached {cached[i]!r}, requested {expected[i]!r})"]
    return []


def read_cache(path: str | os.PathLike, expected_attrs: Mapping[str, Any], *,
               expected_keys: Sequence[str] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(embeddings float32 [N, D], keys str [N])`` of the cache at ``path`` if it is complete
    and its ``CACHE_KEY_ATTRS`` (and keys, when ``expected_keys`` is given) equal the request;
    otherwise :class:`CacheMismatch` naming the file and each differing field.
    A missing file raises :class:`UserError`."""
    if not os.path.exists(path):
        raise UserError(f"{path}: no embedding cache at this path")
    _check_key_attrs(expected_attrs)
    cached = read_attrs(path)
    if not bool(cached.get("complete", False)):
        raise CacheMismatch(path, ["complete: cached file is incomplete (interrupted write?)"])
    diffs = _differences(cached, expected_attrs)
    if diffs:
        raise CacheMismatch(path, diffs)
    try:
        with h5py.File(path, "r") as f:
            embeddings = f["embeddings"][...].astype(np.float32, copy=False)
            keys = np.asarray(f["keys"].asstr()[...], dtype=str)
    except (OSError, KeyError) as e:
        raise CacheMismatch(path, [f"datasets 'embeddings'/'keys' unreadable ({e})"]) from None
    if expected_keys is not None:
        diffs = _key_difference(keys, np.asarray([str(k) for k in expected_keys], dtype=str))
        if diffs:
            raise CacheMismatch(path, diffs)
    return embeddings, keys


def _try_read(path: Path, attrs: Mapping[str, Any], keys: np.ndarray,
              overwrite: str) -> tuple[np.ndarray | None, CacheMismatch | None]:
    """The cached embeddings if reusable, else the mismatch (``None`` when there is no file).
    Under ``never`` a mismatch is raised."""
    if overwrite == "always" or not path.exists():
        return None, None
    try:
        return read_cache(path, attrs, expected_keys=keys)[0], None
    except CacheMismatch as e:
        if overwrite == "never":
            raise
        return None, e


def _compute_checked(compute: Callable[[], np.ndarray], n: int) -> np.ndarray:
    """Run ``compute`` and check it returned one row per key."""
    emb = np.asarray(compute(), dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != n:
        raise ValueError(f"compute() returned shape {emb.shape}; expected [{n}, D]")
    return emb


def cached_embeddings(path: str | os.PathLike, attrs: Mapping[str, Any], keys: Sequence[str] | np.ndarray,
                      compute: Callable[[], np.ndarray], overwrite: Overwrite = "only-missing") -> np.ndarray:
    """Embeddings for ``keys`` from the cache at ``path``, computing and writing them when needed.

    ``only-missing``: reuse a matching complete cache; compute when absent; when present but
    mismatched, recompute and overwrite with a :class:`CacheMismatchWarning` naming the differing
    fields. ``never``: like ``only-missing`` but a mismatch raises :class:`CacheMismatch`.
    ``always``: recompute and overwrite. Writers are serialised by ``FileLock(path + '.lock')``
    and the cache is re-checked once the lock is held.
    """
    if overwrite not in OVERWRITE_POLICIES:
        raise UserError(f"overwrite: expected one of {', '.join(OVERWRITE_POLICIES)}, got {overwrite!r}")
    path = Path(path)
    keys = np.asarray([str(k) for k in keys], dtype=str)
    _check_key_attrs(attrs)
    emb, _ = _try_read(path, attrs, keys, overwrite)
    if emb is not None:
        return emb
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        emb, mismatch = _try_read(path, attrs, keys, overwrite)
        if emb is not None:
            return emb
        if mismatch is not None:
            warnings.warn(f"{path}: recomputing embeddings, the cache does not match the request "
                          f"({'; '.join(mismatch.differences)})", CacheMismatchWarning, stacklevel=2)
        emb = _compute_checked(compute, len(keys))
        write_cache(path, emb, keys, {**attrs, "complete": True})
    return emb


__all__ = [
    "CACHE_KEY_ATTRS",
    "OVERWRITE_POLICIES",
    "CacheMismatch",
    "CacheMismatchWarning",
    "write_cache",
    "read_cache",
    "read_attrs",
    "cached_embeddings",
]
