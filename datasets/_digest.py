"""Digests of what an adapter reads: :class:`Digest` (fingerprints) and :func:`stable_fraction`
(order-independent hash splits)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


class Digest:
    """A sha256 fed with text, bytes and lists of strings; ``hex()`` is 16 hex chars."""

    def __init__(self, *parts: str) -> None:
        self._h = hashlib.sha256()
        for part in parts:
            self.text(part)

    def text(self, value: Any) -> Digest:
        """Feed ``str(value)`` and a separator."""
        self._h.update(str(value).encode())
        self._h.update(b"\0")
        return self

    def data(self, blob: bytes) -> Digest:
        """Feed raw bytes (with their length, so boundaries count)."""
        self._h.update(len(blob).to_bytes(8, "little"))
        self._h.update(blob)
        return self

    def strings(self, values: Iterable[str]) -> Digest:
        """Feed every string of ``values`` in order."""
        self._h.update("\0".join(values).encode())
        self._h.update(b"\1")
        return self

    def hex(self) -> str:
        """The first 16 hex chars of the digest."""
        return self._h.hexdigest()[:16]


def stable_fraction(keys: Sequence[str], salt: str) -> np.ndarray:
    """A number in [0, 1) per key from a hash of ``salt|key``: splits built on it do not depend on
    row order or on which other rows exist (a partial download keeps every image's side)."""
    out = np.empty(len(keys), dtype=np.float64)
    for i, key in enumerate(keys):
        digest = hashlib.blake2b(f"{salt}|{key}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "big") / 2.0**64
    return out


__all__ = ["Digest", "stable_fraction"]
