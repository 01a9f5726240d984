"""Prepared video stores: every frame of a video source decoded (or rendered) once into one HDF5
file, so pretraining reads windows at disk speed instead of paying the decoder or renderer each
step (``ssfbench datasets prepare synth-vox --image-size 64 --out synth-vox-64.h5``, then
``--root synth-vox=synth-vox-64.h5``).

Layout (format ``ssfbench.prepared-videos/1``): ``frames`` uint8 ``[total, S, S, 3]`` (contiguous,
lossless), ``offsets`` int64 ``[V + 1]`` (video ``v`` is ``frames[offsets[v]:offsets[v + 1]]``),
``identities`` utf-8 ``[V]``; attributes name the dataset and carry the source's fingerprint,
which the store reports as its own: the pixels are the source's, bit for bit, so a run that reads
the store is the same run as one that decodes the source.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm.auto import tqdm

from ssfbench.api.dataset import VideoSource
from ssfbench.datasets._prepared import ProcessLocalFile
from ssfbench.errors import UserError
from ssfbench.runtime.fileio import atomic_write_bytes

FORMAT = "ssfbench.prepared-videos/1"
_STR = h5py.string_dtype("utf-8")


def write_video_store(videos: VideoSource, out: Path, *, progress: bool = True) -> Path:
    """Read every frame of every video of ``videos`` once and write the store ``out`` atomically."""
    counts = np.array([videos.num_frames(v) for v in range(len(videos))], np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    first = videos.read_frames(0, [0])
    out = Path(out)

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            frames = f.create_dataset("frames", shape=(int(offsets[-1]), *first.shape[1:]), dtype=np.uint8)
            for v in tqdm(range(len(videos)), desc=f"prepare {videos.name}", unit="video", disable=not progress):
                frames[offsets[v]:offsets[v + 1]] = videos.read_frames(v, range(int(counts[v])))
            f.create_dataset("offsets", data=offsets)
            f.create_dataset("identities", data=np.array([videos.identity(v) for v in range(len(videos))],
                                                         dtype=object), dtype=_STR)
            f.attrs.update({"format": FORMAT, "dataset": videos.name, "source_fingerprint": videos.fingerprint(),
                            "fps": float(videos.fps), "image_size": int(first.shape[1]),
                            "preprocessing": json.dumps(getattr(videos, "preprocessing", dict)(), sort_keys=True),
                            "complete": True})

    atomic_write_bytes(out, write)
    return out


def is_video_store(path: Path | str) -> bool:
    """True when ``path`` is an HDF5 file in the prepared-videos format."""
    path = Path(path)
    if not (path.is_file() and h5py.is_hdf5(path)):
        return False
    with h5py.File(path, "r") as f:
        return f.attrs.get("format") == FORMAT


class VideoStore(VideoSource):
    """A video source read from a prepared store (frames exactly as the source gave them)."""

    def __init__(self, path: Path, expected: str) -> None:
        self.path = Path(path)
        try:
            with h5py.File(self.path, "r") as f:
                attrs = dict(f.attrs)
                self.offsets = f["offsets"][:]
                self.identities = f["identities"].asstr()[:].astype(str)
        except (OSError, KeyError) as exc:
            raise UserError(f"{path}: unreadable prepared video store ({exc})") from None
        if attrs.get("format") != FORMAT or not attrs.get("complete"):
            raise UserError(f"{path}: not a complete prepared video store (format {attrs.get('format')!r}, "
                            f"expected {FORMAT})")
        if attrs.get("dataset") != expected:
            raise UserError(f"{path}: a prepared store of {attrs.get('dataset')!r}, not of {expected!r}")
        self.name = str(attrs["dataset"])
        self.fps = float(attrs["fps"])
        self.image_size = int(attrs["image_size"])
        self._fingerprint = str(attrs["source_fingerprint"])
        self._preprocessing = json.loads(attrs.get("preprocessing", "{}"))
        self._store = ProcessLocalFile(self.path)

    @classmethod
    def open(cls, root: Path | None = None, *, image_size: int = 64, seed: int = 0) -> VideoStore:
        """Open a store by path (the dataset name is read from the file)."""
        if root is None or not is_video_store(root):
            raise UserError(f"{root}: not a prepared video store")
        with h5py.File(root, "r") as f:
            return cls(Path(root), str(f.attrs["dataset"]))

    def fingerprint(self) -> str:
        """The source's fingerprint (the store holds its pixels unchanged)."""
        return self._fingerprint

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def _check(self, video: int) -> None:
        if not 0 <= video < len(self):
            raise IndexError(f"video {video} out of range (0..{len(self) - 1})")

    def num_frames(self, video: int) -> int:
        """Frames stored for ``video``."""
        self._check(video)
        return int(self.offsets[video + 1] - self.offsets[video])

    def identity(self, video: int) -> str:
        """The speaker of ``video``, as the source named it."""
        self._check(video)
        return str(self.identities[video])

    def read_frames(self, video: int, frames: Sequence[int]) -> np.ndarray:
        """Frames ``frames`` of ``video`` as uint8 ``[T, S, S, 3]``: one contiguous read of the span
        they cover (a window's frames lie close together)."""
        idx = np.asarray(frames, dtype=np.int64).reshape(-1)
        n = self.num_frames(video)
        if idx.size == 0:
            return np.zeros((0, self.image_size, self.image_size, 3), np.uint8)
        if idx.min() < 0 or idx.max() >= n:
            raise IndexError(f"frames out of range (0..{n - 1})")
        lo, hi = int(idx.min()), int(idx.max())
        base = int(self.offsets[video])
        return self._store["frames"][base + lo:base + hi + 1][idx - lo]

    def preprocessing(self) -> dict[str, Any]:
        """The source's record plus where the frames come from."""
        return {**self._preprocessing, "prepared_store": self.path.name}


__all__ = ["FORMAT", "write_video_store", "is_video_store", "VideoStore"]
