"""BatchNorm statistics of an untrained encoder, estimated on pretraining frames.

A trained encoder carries running statistics of the data it was trained on; an untrained one starts
at mean 0 / variance 1. A comparison between the two is paired only when both are evaluated with
statistics of data, so the harness re-estimates the statistics of every
untrained encoder it scores (the ``random`` floor, any method at ``--steps 0``) here: a fixed,
seeded draw of ``BN_FRAMES`` frames of the pretraining videos' training split, passed through the
method's ``embed`` in batches of ``BN_BATCH`` with every BatchNorm in training mode and a cumulative
average (``momentum=None``). No weight changes; the same seed and data give the same statistics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ssfbench.api.dataset import VideoSource
from ssfbench.api.method import Method
from ssfbench.runtime.seeds import BATCHNORM_DRAW

#: frames the statistics are estimated on, and frames per forward pass
BN_FRAMES = 2048
BN_BATCH = 128
#: the seed stream of the frame draw, :data:`ssfbench.runtime.seeds.BATCHNORM_DRAW` (this name kept for importers)
BN_STREAM = BATCHNORM_DRAW


def draw_frames(videos: VideoSource, video_ids: np.ndarray, n_frames: int, seed: int) -> list[tuple[int, int]]:
    """``n_frames`` (video, frame) pairs drawn uniformly (with replacement) from ``video_ids``, in a
    seeded order that mixes videos inside every batch."""
    rng = np.random.default_rng([seed, BATCHNORM_DRAW])
    chosen = rng.choice(np.asarray(video_ids), size=n_frames)
    return [(int(v), int(rng.integers(0, videos.num_frames(int(v))))) for v in chosen]


def _read(videos: VideoSource, pairs: list[tuple[int, int]]) -> np.ndarray:
    """uint8 ``[len(pairs), H, W, 3]``, reading each video's frames in one call."""
    by_video: dict[int, list[int]] = {}
    for i, (v, _) in enumerate(pairs):
        by_video.setdefault(v, []).append(i)
    out: np.ndarray | None = None
    for v, rows in by_video.items():
        frames = videos.read_frames(v, [pairs[i][1] for i in rows])
        if out is None:
            out = np.empty((len(pairs), *frames.shape[1:]), frames.dtype)
        out[rows] = frames
    assert out is not None
    return out


@torch.no_grad()
def reestimate_batchnorm(method: Method, videos: VideoSource, video_ids: np.ndarray, *, seed: int,
                         device: torch.device | str = "cpu", n_frames: int = BN_FRAMES,
                         batch_size: int = BN_BATCH) -> dict[str, Any] | None:
    """Replace the running statistics of every BatchNorm that ``method.embed`` passes through by
    their average over ``n_frames`` seeded frames of ``videos`` (``video_ids``: the videos to draw
    from, the pretraining training split). Returns what was done (recorded with the checkpoint), or
    None when the method has no BatchNorm."""
    norms = [m for m in method.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return None
    was_training = method.training
    momenta = [m.momentum for m in norms]
    method.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
        m.train()
    pairs = draw_frames(videos, video_ids, n_frames, seed)
    try:
        for start in range(0, len(pairs), batch_size):
            images = torch.from_numpy(_read(videos, pairs[start:start + batch_size])).to(device)
            method.embed(method.preprocess(images))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        method.train(was_training)
    return {"frames": n_frames, "batch_size": batch_size, "seed": seed, "stream": BATCHNORM_DRAW,
            "dataset": videos.name, "dataset_fingerprint": videos.fingerprint(), "split": "pretraining train videos"}
