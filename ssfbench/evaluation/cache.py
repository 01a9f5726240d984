"""The HDF5 embedding cache: one file per (method run, dataset) holding ``embeddings`` float32
``[N, D]`` and ``keys`` (utf-8 frame ids, unique, dataset order), with attributes that say what
produced them (see ``CACHE_KEY_ATTRS``) and ``complete``.

A cache is written to a temporary file in the same folder and renamed onto its path only when
complete, so a reader never sees a partial file. A cache whose key attributes differ from the
request is never used silently: it is refused (:class:`CacheMismatch`) or recomputed with a
warning, depending on the ``overwrite`` policy of :func:`cached_embeddings`. ``protocol_version``
is one of the key attributes; when a caller does not give it, the current
``ssfbench.version.PROTOCOL_VERSION`` is filled in.

Resumable writes (``cached_embeddings(..., compute_from=...)``): rows are appended block by block
to ``.<name>.partial`` beside the cache (never at its path), with ``complete=False`` and a
``rows_done`` attribute updated after each flushed block. A run killed mid-way continues from
``rows_done`` when the partial file matches the request (attributes, keys and ``resume_key``,
e.g. the batch size, so blocks fall where an uninterrupted run puts them); anything else about it
is discarded with a warning. Non-finite embeddings and a full disk end in one-line
:class:`UserError` s and remove the partial file.

Content: every complete cache carries ``embeddings_sha256`` (:func:`embeddings_digest` of its
``embeddings`` data), written last before ``complete``; a read recomputes it, and checks one key
per row and finite values, so a cache whose data were changed, truncated or corrupted after it was
written is a mismatch (recomputed with a warning, or refused under ``never``), never silently used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
from filelock import FileLock

from ssfbench import version
from ssfbench.errors import UserError, is_disk_full
from ssfbench.runtime.fileio import atomic_write_bytes, fsync_path, new_file_mode

#: Every attribute :func:`cache_attributes` writes -> whether it is part of the key (must equal the
#: request for a cache to be reused). ``face_preprocessing`` (the dataset's crop record) is written
#: for readers but not compared: ``dataset_fingerprint`` already digests the crop options and the
#: rows, so comparing it could only refuse caches the fingerprint accepts; nor is ``pretrained_weights``
#: (the backbone weights' identity, written only for a pretrained trunk), which the checkpoint's sha256
#: already covers.
CACHE_ATTRS: dict[str, bool] = {
    "method": True,
    "checkpoint_sha256": True,
    "dataset": True,
    "dataset_fingerprint": True,
    "preprocess": True,
    "face_preprocessing": False,
    "ssfbench_version": True,
    "protocol_version": True,
    "pretrained_weights": False,
}

#: Attributes that must equal the request for a cache to be reused.
CACHE_KEY_ATTRS: tuple[str, ...] = tuple(name for name, compared in CACHE_ATTRS.items() if compared)


def cache_attributes(method: Any, digest: str, dataset: Any) -> dict[str, Any]:
    """The attributes of the embedding cache of ``dataset`` by ``method`` (checkpoint sha256
    ``digest``): the names of :data:`CACHE_ATTRS` (``pretrained_weights`` only for a method on a
    pretrained trunk); a cache is reused only when the :data:`CACHE_KEY_ATTRS` among them match."""
    attrs = {"method": method.name, "checkpoint_sha256": digest, "dataset": dataset.name,
             "dataset_fingerprint": dataset.fingerprint(), "preprocess": method.preprocess.to_json(),
             "face_preprocessing": json.dumps(dataset.preprocessing(), sort_keys=True),
             "ssfbench_version": version.__version__, "protocol_version": version.PROTOCOL_VERSION}
    if getattr(method, "pretrained_weights", None):
        attrs["pretrained_weights"] = json.dumps(method.pretrained_weights, sort_keys=True)
    assert set(CACHE_KEY_ATTRS) <= set(attrs) <= set(CACHE_ATTRS), "cache_attributes and CACHE_ATTRS disagree"
    return attrs

#: ``compute_from(start)`` yields float32 blocks ``[b, D]`` of consecutive rows from row ``start``.
RowsFrom = Callable[[int], Iterator[np.ndarray]]

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


def _with_defaults(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """``attrs`` with ``protocol_version`` filled in (the current protocol) when absent."""
    return {"protocol_version": version.PROTOCOL_VERSION, **attrs}


def partial_path(path: str | os.PathLike) -> Path:
    """Where the resumable, incomplete version of the cache at ``path`` is written."""
    path = Path(path)
    return path.parent / f".{path.name}.partial"


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


def embeddings_digest(embeddings: np.ndarray) -> str:
    """sha256 over the shape and the float32 C-order bytes of ``embeddings``."""
    data = np.ascontiguousarray(embeddings, dtype=np.float32)
    h = hashlib.sha256(f"{data.shape}".encode())
    h.update(memoryview(data).cast("B"))
    return h.hexdigest()


def _content_problems(embeddings: np.ndarray, keys: np.ndarray, attrs: Mapping[str, Any]) -> list[str]:
    """What is wrong with a complete cache's data: row count, non-finite rows, content digest."""
    if embeddings.ndim != 2 or embeddings.shape[0] != len(keys):
        return [f"embeddings: {embeddings.shape[0] if embeddings.ndim else 0} rows for {len(keys)} keys"]
    bad = np.flatnonzero(~np.isfinite(embeddings).all(axis=1))
    if bad.size:
        return [f"embeddings: {bad.size} rows with NaN or infinite values (first row {int(bad[0])})"]
    recorded = attrs.get("embeddings_sha256")
    if recorded is None:
        return ["embeddings_sha256: missing (a cache without a content digest cannot be verified)"]
    if embeddings_digest(embeddings) != recorded:
        return ["embeddings: content does not match the embeddings_sha256 recorded when it was written "
                "(changed or corrupted since)"]
    return []


def _write_datasets(f: h5py.File, embeddings: np.ndarray, keys: np.ndarray) -> None:
    """The two datasets of the format."""
    f.create_dataset("embeddings", data=embeddings)
    f.create_dataset("keys", data=keys.astype(object), dtype=h5py.string_dtype("utf-8"))


def _write_attrs(f: h5py.File, attrs: Mapping[str, Any]) -> None:
    """All attributes except ``complete`` (written last by the caller)."""
    for name, value in attrs.items():
        if name != "complete":
            f.attrs[name] = _canonical(name, value)


def write_cache(path: str | os.PathLike, embeddings: np.ndarray, keys: Sequence[str] | np.ndarray,
                attrs: Mapping[str, Any]) -> None:
    """Write a complete cache at ``path`` atomically (:func:`~ssfbench.runtime.fileio.atomic_write_bytes`):
    a temporary file in the same folder gets the data, the attributes and finally ``complete=True``,
    is fsynced and renamed onto ``path``; on any exception ``path`` is left as it was."""
    path = Path(path)
    attrs = _with_defaults(attrs)
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    keys = np.asarray([str(k) for k in keys], dtype=object)
    _check_key_attrs(attrs)
    _check_arrays(path, embeddings, keys)

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["complete"] = False
            _write_datasets(f, embeddings, keys)
            _write_attrs(f, attrs)
            f.attrs["embeddings_sha256"] = embeddings_digest(embeddings)
            f.attrs["complete"] = True
            f.flush()

    atomic_write_bytes(path, write)


def read_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """The attributes of the cache at ``path`` (plain Python values); :class:`CacheMismatch`
    if it is not a readable HDF5 file."""
    try:
        with h5py.File(path, "r") as f:
            return {k: _canonical(k, v) for k, v in f.attrs.items()}
    except OSError as e:
        raise CacheMismatch(path, [f"not a readable HDF5 embedding cache ({type(e).__name__})"]) from None


def read_complete(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(embeddings float32 [N, D], keys str [N], attributes)`` of a complete cache, whatever it was
    made for (the caller checks the attributes it cares about); :class:`UserError` naming the file
    when it is missing, incomplete, unreadable or its row counts disagree."""
    if not os.path.exists(path):
        raise UserError(f"{path}: no embedding cache at this path")
    attrs = read_attrs(path)
    if not bool(attrs.get("complete", False)):
        raise UserError(f"{path}: embedding cache is incomplete (interrupted write?)")
    try:
        with h5py.File(path, "r") as f:
            embeddings = f["embeddings"][...].astype(np.float32, copy=False)
            keys = np.asarray(f["keys"].asstr()[...], dtype=str)
    except (OSError, KeyError) as e:
        raise UserError(f"{path}: not a readable embedding cache ({type(e).__name__})") from None
    problems = _content_problems(embeddings, keys, attrs)
    if problems:
        raise UserError(f"{path}: embedding cache cannot be used: {'; '.join(problems)}")
    return embeddings, keys, attrs


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
    expected_attrs = _with_defaults(expected_attrs)
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
    problems = _content_problems(embeddings, keys, cached)
    if problems:
        raise CacheMismatch(path, problems)
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


def _check_finite(block: np.ndarray, start: int, attrs: Mapping[str, Any], path: Path | None = None) -> None:
    """One-line :class:`UserError` naming the dataset, method, first bad row and the cache file
    that was not written if ``block`` (rows from ``start``) holds NaN or infinite values."""
    bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
    if bad.size:
        where = f"; no cache written at {path}" if path is not None else "; no cache written"
        raise UserError(f"dataset {attrs.get('dataset')!r}: method {attrs.get('method')!r} produced NaN or infinite "
                        f"embeddings ({bad.size} rows, first row {start + int(bad[0])}){where}")


def _compute_checked(compute: Callable[[], np.ndarray], n: int, attrs: Mapping[str, Any], path: Path) -> np.ndarray:
    """Run ``compute`` and check it returned one finite row per key."""
    emb = np.asarray(compute(), dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != n:
        raise ValueError(f"compute() returned shape {emb.shape}; expected [{n}, D]")
    _check_finite(emb, 0, attrs, path)
    return emb


def _resume_attrs(resume_key: Mapping[str, Any] | None) -> dict[str, Any]:
    """``resume_key`` as ``resume_<name>`` attributes of a partial file."""
    return {f"resume_{k}": _canonical(k, v) for k, v in (resume_key or {}).items()}


def _resumable_rows(partial: Path, attrs: Mapping[str, Any], keys: np.ndarray,
                    resume_key: Mapping[str, Any] | None) -> int:
    """Rows already written to ``partial`` when it can be continued for this request, else 0
    (after removing it with a :class:`CacheMismatchWarning`)."""
    reason = None
    try:
        with h5py.File(partial, "r") as f:
            cached = {k: _canonical(k, v) for k, v in f.attrs.items()}
            done = int(cached.get("rows_done", 0))
            diffs = _differences(cached, attrs)
            diffs += [f"{k}: partial {cached.get(k)!r}, requested {v!r}"
                      for k, v in _resume_attrs(resume_key).items() if cached.get(k) != v]
            if not diffs:
                diffs = _key_difference(np.asarray(f["keys"].asstr()[...], dtype=str), keys)
            if not diffs and done and ("embeddings" not in f or f["embeddings"].shape[0] != len(keys)):
                diffs = ["embeddings: missing or of the wrong length"]
            reason = "; ".join(diffs) or None
    except (OSError, KeyError, ValueError) as e:
        reason, done = f"unreadable ({type(e).__name__})", 0
    if reason is None and 0 <= done <= len(keys):
        return done
    warnings.warn(f"{partial}: discarding the partial embeddings of an earlier run ({reason or 'bad rows_done'})",
                  CacheMismatchWarning, stacklevel=4)
    partial.unlink(missing_ok=True)
    return 0


def _start_partial(partial: Path, attrs: Mapping[str, Any], keys: np.ndarray,
                   resume_key: Mapping[str, Any] | None) -> None:
    """Create an empty partial file: keys, attributes, ``rows_done=0``, ``complete=False``."""
    tmp = partial.with_name(partial.name + ".new")
    with h5py.File(tmp, "w") as f:
        f.attrs["complete"] = False
        f.create_dataset("keys", data=keys.astype(object), dtype=h5py.string_dtype("utf-8"))
        _write_attrs(f, {**attrs, **_resume_attrs(resume_key)})
        f.attrs["rows_done"] = 0
    os.chmod(tmp, new_file_mode())
    os.replace(tmp, partial)


def _write_rows(f: h5py.File, start: int, block: np.ndarray) -> None:
    """Write ``block`` at rows ``start:`` and flush, then advance ``rows_done`` and flush again,
    so ``rows_done`` never counts rows that are not in the file."""
    if "embeddings" not in f:
        f.create_dataset("embeddings", shape=(len(f["keys"]), block.shape[1]), dtype=np.float32)
    f["embeddings"][start:start + len(block)] = block
    f.flush()
    f.attrs["rows_done"] = start + len(block)
    f.flush()


def _fill_partial(path: Path, partial: Path, attrs: Mapping[str, Any], n: int, start: int,
                  compute_from: RowsFrom) -> None:
    """Append the rows ``compute_from(start)`` yields until all ``n`` are written; then mark the
    file complete (the resume bookkeeping removed) and fsync it."""
    with h5py.File(partial, "r+") as f:
        done = start
        for block in compute_from(start) if start < n else ():
            block = np.ascontiguousarray(block, dtype=np.float32)
            if block.ndim != 2 or done + len(block) > n:
                raise ValueError(f"compute_from yielded a block of shape {block.shape} at row {done} of {n}")
            _check_finite(block, done, attrs, path)
            _write_rows(f, done, block)
            done += len(block)
        if done != n or "embeddings" not in f:
            raise ValueError(f"compute_from stopped at row {done} of {n}")
        for name in [k for k in f.attrs if k == "rows_done" or k.startswith("resume_")]:
            del f.attrs[name]
        f.attrs["embeddings_sha256"] = embeddings_digest(f["embeddings"][...])
        f.attrs["complete"] = True
        f.flush()
    fsync_path(partial)


def _write_resumable(path: Path, attrs: Mapping[str, Any], keys: np.ndarray, compute_from: RowsFrom,
                     resume_key: Mapping[str, Any] | None, restart: bool) -> np.ndarray:
    """Compute the cache at ``path`` through its partial file (continued when it matches, unless
    ``restart``), rename it onto ``path`` and return the embeddings. On an error the partial file
    is removed; on an interruption (KeyboardInterrupt, SIGKILL) it stays for the next run."""
    partial = partial_path(path)
    if restart:
        partial.unlink(missing_ok=True)
    start = _resumable_rows(partial, attrs, keys, resume_key) if partial.exists() else 0
    try:
        if start == 0:
            _start_partial(partial, attrs, keys, resume_key)
        _fill_partial(path, partial, attrs, len(keys), start, compute_from)
        os.replace(partial, path)
    except Exception as exc:
        partial.unlink(missing_ok=True)
        partial.with_name(partial.name + ".new").unlink(missing_ok=True)
        if is_disk_full(exc):
            raise UserError(f"disk full while writing {path}") from None
        raise
    with contextlib.suppress(OSError):
        fsync_path(path.parent)
    with h5py.File(path, "r") as f:
        return f["embeddings"][...]


def cached_embeddings(path: str | os.PathLike, attrs: Mapping[str, Any], keys: Sequence[str] | np.ndarray,
                      compute: Callable[[], np.ndarray] | None = None, overwrite: Overwrite = "only-missing", *,
                      compute_from: RowsFrom | None = None,
                      resume_key: Mapping[str, Any] | None = None) -> np.ndarray:
    """Embeddings for ``keys`` from the cache at ``path``, computing and writing them when needed.

    Give ``compute()`` (all rows at once, written atomically) or ``compute_from(start)`` (blocks
    of rows from ``start``, written resumably through :func:`partial_path`; ``resume_key`` holds
    what must also match for a partial file to be continued). Non-finite embeddings raise a
    one-line :class:`UserError` and write nothing.

    ``only-missing``: reuse a matching complete cache; compute when absent; when present but
    mismatched, recompute and overwrite with a :class:`CacheMismatchWarning` naming the differing
    fields. ``never``: like ``only-missing`` but a mismatch raises :class:`CacheMismatch`.
    ``always``: recompute and overwrite (and discard a partial file). Writers are serialised by
    ``FileLock(path + '.lock')`` and the cache is re-checked once the lock is held.
    """
    if overwrite not in OVERWRITE_POLICIES:
        raise UserError(f"overwrite: expected one of {', '.join(OVERWRITE_POLICIES)}, got {overwrite!r}")
    if (compute is None) == (compute_from is None):
        raise ValueError("give exactly one of compute and compute_from")
    path = Path(path)
    keys = np.asarray([str(k) for k in keys], dtype=str)
    attrs = _with_defaults(attrs)
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
        if compute_from is not None:
            return _write_resumable(path, attrs, keys, compute_from, resume_key, overwrite == "always")
        emb = _compute_checked(compute, len(keys), attrs, path)
        write_cache(path, emb, keys, {**attrs, "complete": True})
    return emb


__all__ = [
    "CACHE_ATTRS",
    "CACHE_KEY_ATTRS",
    "cache_attributes",
    "OVERWRITE_POLICIES",
    "CacheMismatch",
    "CacheMismatchWarning",
    "write_cache",
    "read_cache",
    "read_attrs",
    "cached_embeddings",
    "partial_path",
    "read_complete",
    "embeddings_digest",
]
