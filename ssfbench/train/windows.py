"""The pretraining window stream: which frames of which videos every step of :func:`ssfbench.train.pretrain.pretrain`
trains on, and the held-out windows it validates on.

The 80/20 video-level split (:func:`split_videos`), the training windows of every step
(:class:`WindowBatches`), the fixed held-out windows (:func:`validation_windows`) and the method's input
made from a batch of windows (:func:`model_input`, with the held-out crops of :func:`validation_crops`).

The window stream is a pure function of (seed, step): which videos, which anchors and which crop
jitter a step uses never depends on what ran before, so a resumed run sees exactly the batches an
uninterrupted one would have seen.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch.utils.data import Dataset

from ssfbench.api.dataset import VideoSource, VisitsWindows
from ssfbench.api.framing import crop_side, frame_released
from ssfbench.api.method import Method
from ssfbench.errors import UserError
from ssfbench.runtime.seeds import FIXED_ANCHORS, VALIDATION_CROPS, VALIDATION_WINDOWS, VIDEO_SPLIT

#: Share of the pretraining videos held out for validation and checkpoint selection (the 80/20 split).
VALIDATION_FRACTION = 0.2


def split_videos(n_videos: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Video-level split: a seeded permutation, the last ``val_fraction`` held out."""
    perm = np.random.default_rng([seed, VIDEO_SPLIT]).permutation(n_videos)
    n_val = max(1, int(round(n_videos * val_fraction)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class WindowBatches(Dataset):
    """Item ``step`` -> uint8 ``[B / shards, T, H, W, 3]``: this shard's windows of training step ``step``.

    Epoch ``e`` visits every training video once in a seeded order, each with a fresh anchor (and
    offsets, for methods with random gaps) drawn from ``(seed, e, video)``; videos shorter than the
    method's window are skipped. ``shard = (i, n)`` keeps windows ``i, i + n, ...`` of every step
    (one shard per rank; ``(0, 1)`` keeps them all).

    A source whose ``windows_per_visit`` is W > 1 (VoxCeleb2 from mp4: one decoding pass serves
    several windows) gets W windows per visit, each with its own anchor and offsets drawn one after
    the other from the same ``(seed, e, video)`` generator (the first is the W = 1 window): a step
    visits ``ceil(B / W)`` videos and keeps the first B windows, and shards are contiguous runs of
    windows so that each rank decodes only its own visits.

    With ``anchor=fixed`` (the method's config) every training video has one window, drawn once from
    ``(seed, FIXED_ANCHORS, video)`` and the same in every epoch, and a visit takes that window alone
    (the released ranking code's dataset: one item per video).
    """

    def __init__(self, videos: VideoSource, train_ids: np.ndarray, method: Method, seed: int,
                 shard: tuple[int, int] = (0, 1)) -> None:
        self.videos, self.seed = videos, seed
        self.batch_size = method.config.batch_size
        self.shard = shard
        if self.batch_size % shard[1]:
            raise UserError(f"a batch of {self.batch_size} windows cannot be split evenly over {shard[1]} "
                            "processes; pick --batch-size as a multiple of the process count")
        self.sample_offsets = method.sample_offsets
        self.span = method.window_span()
        self.usable = np.array([v for v in train_ids if videos.num_frames(int(v)) >= self.span])
        self.fixed = method.config.anchor == "fixed"
        self.per_visit = windows_per_visit(videos, method)
        self.visits_per_step = -(-self.batch_size // self.per_visit)
        if len(self.usable) < self.visits_per_step:
            raise UserError(f"{videos.name}: only {len(self.usable)} training videos have at least {self.span} "
                            f"frames (the window), fewer than the {self.visits_per_step} a batch of "
                            f"{self.batch_size} visits")
        self.steps_per_epoch = len(self.usable) // self.visits_per_step

    def windows(self, step: int) -> list[tuple[int, list[int]]]:
        """(video, frame indices) of every example of training step ``step`` (a video's windows together)."""
        epoch, pos = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.usable))
        chosen = self.usable[order[pos * self.visits_per_step:(pos + 1) * self.visits_per_step]]
        out = []
        for v in chosen:
            rng = np.random.default_rng([self.seed, FIXED_ANCHORS, int(v)] if self.fixed else [self.seed, epoch, int(v)])
            for _ in range(self.per_visit):
                anchor = int(rng.integers(0, self.videos.num_frames(int(v)) - self.span + 1))
                out.append((int(v), [anchor + o for o in self.sample_offsets(rng)]))
        return out[:self.batch_size]

    def __len__(self) -> int:  # the stream is unbounded; DataLoader only needs a sampler
        return 2**62

    def __getitem__(self, step: int) -> torch.Tensor:
        rank, ranks = self.shard
        if self.per_visit == 1:
            mine = self.windows(step)[rank::ranks]
        else:
            share = self.batch_size // ranks
            mine = self.windows(step)[rank * share:(rank + 1) * share]
        frames: list[np.ndarray] = []
        for v, group in itertools.groupby(mine, key=lambda window: window[0]):
            frames += self.videos.read_windows(v, [f for _, f in group])
        return torch.from_numpy(np.stack(frames))


def windows_per_visit(videos: VideoSource, method: Method) -> int:
    """Windows one visit of a training video takes: the source's ``windows_per_visit``, or 1 with
    ``anchor=fixed`` (one window per video)."""
    if method.config.anchor == "fixed" or not isinstance(videos, VisitsWindows):
        return 1
    return max(1, int(videos.windows_per_visit))


def validation_windows(videos: VideoSource, val_ids: np.ndarray, method: Method, seed: int) -> np.ndarray:
    """Fixed windows (one per held-out video, drawn from the seed) as uint8 ``[V, T, H, W, 3]``."""
    span = method.window_span()
    out = []
    for v in val_ids:
        n = videos.num_frames(int(v))
        if n < span:
            continue
        rng = np.random.default_rng([seed, VALIDATION_WINDOWS, int(v)])
        anchor = int(rng.integers(0, n - span + 1))
        out.append(videos.read_frames(int(v), [anchor + o for o in method.sample_offsets(rng)]))
    if not out:
        raise UserError(f"{videos.name}: no held-out video has at least {span} frames (the window)")
    return np.stack(out)


def model_input(method: Method, frames: torch.Tensor, seed: int, generator: torch.Generator) -> torch.Tensor:
    """uint8 windows ``[B, T, H, W, 3]`` -> the method's float input ``[B, T, 3, S, S]``: its
    preprocessing, or with ``framing=released`` the released code's crop per image
    (:func:`ssfbench.api.framing.frame_released`, side from ``seed``, boxes from ``generator``)."""
    if method.config.framing == "released":
        return frame_released(frames, method.preprocess, crop_side(seed), generator)
    return method.preprocess(frames)


def validation_crops(seed: int) -> torch.Generator:
    """The generator of the held-out windows' crops with ``framing=released``: the same every epoch."""
    return torch.Generator().manual_seed(int(np.random.default_rng([seed, VALIDATION_CROPS]).integers(2**62)))


__all__ = ["VALIDATION_FRACTION", "split_videos", "WindowBatches", "windows_per_visit", "validation_windows",
           "model_input", "validation_crops"]
