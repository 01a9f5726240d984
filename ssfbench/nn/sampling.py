"""Which frames of a video one training example takes."""

from __future__ import annotations


def ranking_window(anchor: int, k: int, n: int) -> list[int]:
    """Frame indices of one ranking example: ``[a, a+1, a+1+k, ..., a+1+n*k]`` (anchor, sibling,
    then ``n`` frames at interval ``k`` after the sibling)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return [anchor, anchor + 1] + [anchor + 1 + i * k for i in range(1, n + 1)]

