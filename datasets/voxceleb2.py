"""VoxCeleb2 read from its official layout: unlabeled face-track videos for pretraining, decoded
with PyAV: one forward pass per visit to a clip serves several windows.

Layout::

    <root>/dev/mp4/idNNNNN/<11-char YouTube id>/NNNNN.mp4       (5,994 speakers)
    <root>/test/mp4/idNNNNN/<11-char YouTube id>/NNNNN.mp4      (118 speakers, disjoint from dev)

``--root`` may point at the parent of ``dev``/``test`` (then ``split`` picks one, default dev), at
``dev`` or ``test`` itself, or at an ``mp4`` folder. One video per utterance; ``identity()`` is
its ``idNNNNN`` folder. The harness's pretraining split is video-level (the paper's 80/20);
:meth:`VoxCeleb2.split_identities` gives an identity-level one (no speaker on both sides), and the
official test split is identity-disjoint from dev for held-out evaluation.

Frame counts come from each mp4's header when first asked for (one container open per video);
``ssfbench datasets prepare voxceleb2 --root PATH --out index.h5`` stores the list and every count
once, and ``--root voxceleb2=index.h5`` then opens without touching the videos. ``verify`` decodes
each video to its end and compares the count with the header (a clip cut short is an error), and
checks that all clips share one frame size; reading a clip of another size than the first video's
is an error naming both. The face tracks
are already cropped (224x224, 25 fps), so frames are returned whole; ``preprocessing()`` says so.

Reading for pretraining. Decoding H.264 from a random position means seeking to the keyframe
before it and decoding forward, so one window alone costs several times its frames (BENCHMARKS.md,
"VoxCeleb2 from mp4"). The option ``windows_per_visit`` (default 4) makes the pretraining stream
draw that many windows from each visit to a clip, with independent uniform anchors, and
:meth:`read_windows` decodes them in one forward pass
(:func:`ssfbench.datasets._video_runs.decode_run`). What that changes in the window distribution:
every window's own distribution (a uniform anchor over the clip, the method's offsets) is what it
was; but a batch of B windows now holds B / windows_per_visit clips, windows_per_visit windows each,
and an epoch (every training clip visited once) has windows_per_visit times as many windows and as
few steps. Every built-in method's loss is a sum of per-window terms (its negatives are frames of the
same window), so no loss term changes; what changes is the batch's diversity: BatchNorm statistics
and the gradient average over B / windows_per_visit clips instead of B, and windows of one clip may
overlap. ``--data-option voxceleb2.windows_per_visit=1`` restores one window per clip per epoch
(and then each window is still decoded by the faster single-threaded pass).
"""

from __future__ import annotations

import json
import re
from collections import Counter, OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm.auto import tqdm

from ssfbench.api.dataset import VideoSource
from ssfbench.datasets._video import VideoReader, decoded_summary
from ssfbench.datasets._video_runs import decode_run
from ssfbench.datasets.kit import (
    Digest,
    Option,
    Problems,
    entries,
    find_child,
    relative,
    require_root,
    sample_indices,
    stable_fraction,
    subdirs,
)
from ssfbench.errors import UserError
from ssfbench.runtime.fileio import atomic_write_bytes

IDENTITY = re.compile(r"id\d+")
INDEX_FORMAT = "ssfbench.voxceleb2-index/1"
OPEN_VIDEOS = 8
_STR = h5py.string_dtype("utf-8")


def _has_identities(folder: Path) -> bool:
    return any(IDENTITY.fullmatch(d.name) for d in subdirs(folder))


class VoxCeleb2(VideoSource):
    """VoxCeleb2 face-track videos (dev or test split) for pretraining."""

    name = "voxceleb2"
    summary = "VoxCeleb2 (your copy): face-track mp4s, dev/test, decoded with PyAV (pretraining videos)"
    fps = 25.0
    OPTIONS = {"split": Option(str, "dev", "dev or test, when --root holds both", ("dev", "test")),
               "windows_per_visit": Option(int, 4, "pretraining windows drawn from one decoding pass over a clip "
                                                   "(1: one window per clip per epoch)")}

    def __init__(self, root: Path, videos: list[str], *, split: str, frames: np.ndarray | None = None,
                 problems: Problems | None = None, options: dict[str, Any] | None = None) -> None:
        self.root = root
        self.videos = videos
        self.split = split
        self.identities = np.array([v.split("/", 1)[0] for v in videos], dtype=str)
        self._frames = (np.asarray(frames, np.int64) if frames is not None else np.full(len(videos), -1, np.int64))
        self.problems = problems or Problems()
        self.options = options or {}
        self._readers: OrderedDict[int, VideoReader] = OrderedDict()
        self._frame_size: tuple[int, int] | None = None  # (width, height) of the first video, once read
        self.windows_per_visit = int(self.options.get("windows_per_visit", self.OPTIONS["windows_per_visit"].default))
        if self.windows_per_visit < 1:
            raise UserError(f"{self.name}: windows_per_visit must be at least 1, got {self.windows_per_visit}")
        self.media_checked = "not decoded (--quick)"
        # the windows pretraining draws depend on windows_per_visit, so a run's identity must too
        self._fingerprint = Digest(self.name, split).strings(videos).text(self.windows_per_visit).hex()

    # ---- opening ---------------------------------------------------------------------------
    @staticmethod
    def locate(root: Path, split: str, problems: Problems) -> tuple[Path | None, str]:
        """The folder holding the ``idNNNNN`` folders and the split's name."""
        if _has_identities(root):
            name = root.parent.name if root.name.lower() == "mp4" else root.name
            return root, name.lower() if name.lower() in ("dev", "test") else "unknown"
        mp4 = find_child(root, ["mp4"])
        if mp4 is not None and _has_identities(mp4):
            return mp4, root.name.lower() if root.name.lower() in ("dev", "test") else "unknown"
        chosen = find_child(root, [split])
        if chosen is not None:
            mp4 = find_child(chosen, ["mp4"]) or chosen
            if _has_identities(mp4):
                return mp4, split
        others = [d.name for d in subdirs(root) if d.name.lower() in ("dev", "test")]
        problems.error("video folder not found", root,
                       f"expected {split}/mp4/idNNNNN/<video id>/NNNNN.mp4" +
                       (f" (found {', '.join(others)}; --set split=...)" if others else ""))
        return None, split

    @staticmethod
    def scan(base: Path, problems: Problems) -> list[str]:
        """``idNNNNN/<ytid>/NNNNN.mp4`` of every video under ``base``, sorted."""
        videos = []
        for ident in subdirs(base):
            if not IDENTITY.fullmatch(ident.name):
                problems.note("unrecognised folder", ident, "not idNNNNN; ignored")
                continue
            found = 0
            for clip in subdirs(ident):
                for e in entries(clip):
                    if e.name.lower().endswith(".mp4") and e.is_file():
                        videos.append(f"{ident.name}/{clip.name}/{e.name}")
                        found += 1
            if not found:
                problems.note("identity without videos", ident)
        if not videos:
            problems.error("no videos", base, "expected idNNNNN/<video id>/NNNNN.mp4")
        return videos

    @classmethod
    def _build(cls, root: Path | None, options: dict[str, Any]) -> VoxCeleb2:
        options = cls.resolve_options(options)
        root = require_root(root, cls.name)
        problems = Problems()
        base, split = cls.locate(root, options["split"], problems)
        videos = cls.scan(base, problems) if base is not None else []
        return cls(base or root, videos, split=split, problems=problems, options=options)

    @classmethod
    def open(cls, root: Path | None = None, *, image_size: int = 64, seed: int = 0, **options: Any) -> VoxCeleb2:
        """Open the copy at ``root`` (or an index written by ``ssfbench datasets prepare voxceleb2``)
        with the ``OPTIONS`` as keywords (``split``: dev or test picks one when ``root`` holds both).
        A copy without videos is a :class:`UserError`."""
        options = cls.resolve_options(options)
        if root is not None and Path(root).is_file() and h5py.is_hdf5(root):
            return cls.from_index(Path(root), options)
        ds = cls._build(root, options)
        ds.problems.raise_errors(cls.name, ds.root)
        return ds

    @classmethod
    def from_index(cls, path: Path, options: dict[str, Any] | None = None) -> VoxCeleb2:
        """The video list and frame counts stored by :meth:`prepare` (``options``: as for :meth:`open`;
        the split is the index's own)."""
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != INDEX_FORMAT:
                raise UserError(f"{path}: not a VoxCeleb2 index of ssfbench (format {f.attrs.get('format')!r})")
            root = Path(str(f.attrs["root"]))
            videos = f["videos"].asstr()[:].tolist()
            frames = f["frames"][:]
            split = str(f.attrs["split"])
        if not root.is_dir():
            raise UserError(f"{path}: the videos it indexes are gone ({root} not found)")
        return cls(root, videos, split=split, frames=frames, options=cls.resolve_options(options or {}))

    # ---- the VideoSource contract ----------------------------------------------------------
    def fingerprint(self) -> str:
        """Digest of the split, the sorted list of video paths and ``windows_per_visit``."""
        return self._fingerprint

    def __len__(self) -> int:
        return len(self.videos)

    def _check(self, video: int) -> None:
        if not 0 <= video < len(self):
            raise IndexError(f"video {video} out of range (0..{len(self) - 1})")

    def path(self, video: int) -> Path:
        """The mp4 file of ``video``."""
        self._check(video)
        return self.root / self.videos[video]

    def identity(self, video: int) -> str:
        """The speaker (``idNNNNN`` folder) of ``video``."""
        self._check(video)
        return str(self.identities[video])

    def _reader(self, video: int) -> VideoReader:
        reader = self._readers.pop(video, None) or VideoReader(self.path(video))
        self._readers[video] = reader
        while len(self._readers) > OPEN_VIDEOS:
            _, old = self._readers.popitem(last=False)
            old.close()
        return reader

    def num_frames(self, video: int) -> int:
        """Frames of ``video`` from its mp4 header (read once, then remembered)."""
        self._check(video)
        if self._frames[video] < 0:
            self._frames[video] = self._reader(video).num_frames
        return int(self._frames[video])

    def read_frames(self, video: int, frames: Sequence[int]) -> np.ndarray:
        """Frames ``frames`` (any order, repeats allowed) of ``video`` as uint8 ``[T, H, W, 3]``;
        only they are decoded (seeking to the keyframe before a far frame)."""
        self._check(video)
        idx = [int(f) for f in frames]
        decoded = {i: frame.to_ndarray(format="rgb24") for i, frame in self._reader(video).frames(idx)}
        if not idx:
            w, h = self._reader(video).size
            return np.zeros((0, h, w, 3), np.uint8)
        return self._same_size(video, np.stack([decoded[i] for i in idx]))

    def _same_size(self, video: int, frames: np.ndarray) -> np.ndarray:
        """``frames`` of ``video`` when their size is that of the first video (every clip of a copy
        must have one frame size to be batched); else a :class:`UserError` naming both videos."""
        if self._frame_size is None:
            reader = VideoReader(self.path(0))
            try:
                self._frame_size = reader.size
            finally:
                reader.close()
        w, h = self._frame_size
        if frames.shape[1:3] != (h, w):
            raise UserError(f"{self.path(video)}: frames of {frames.shape[2]}x{frames.shape[1]}, but "
                            f"{self.path(0)} has {w}x{h}; every clip must have one frame size (the official "
                            f"face tracks are 224x224): re-encode or remove the odd ones (`ssfbench datasets "
                            f"verify {self.name} --sample 0` lists them)")
        return frames

    def read_windows(self, video: int, windows: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Several windows of ``video`` (frame lists), decoded together in one forward pass over the
        span they cover; each as uint8 ``[T, H, W, 3]``, the same pixels :meth:`read_frames` gives."""
        self._check(video)
        decoded = decode_run(self.path(video), (f for frames in windows for f in frames))
        return [self._same_size(video, np.stack([decoded[int(f)] for f in frames])) for frames in windows]

    def preprocessing(self) -> dict[str, Any]:
        """Frames are the official face-track crops, returned whole."""
        return {"crop": "none (VoxCeleb2 face tracks are pre-cropped)"}

    def split_identities(self, val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Identity-level split: ``(train videos, validation videos)``, no speaker on both sides
        (each identity's side hashed from its id and the seed, so it never depends on the others)."""
        names = np.unique(self.identities)
        val_names = names[stable_fraction(names.tolist(), f"voxceleb2|{seed}") < val_fraction]
        val = np.isin(self.identities, val_names)
        return np.flatnonzero(~val), np.flatnonzero(val)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_readers"] = OrderedDict()
        return state

    # ---- verify and prepare ----------------------------------------------------------------
    @classmethod
    def inspect(cls, root: Path | None, *, quick: bool = False, sample: int | None = None, **options: Any):
        """Count identities and videos; unless ``quick``, decode ``sample`` videos (default 200;
        0 = all) completely. Returns a :class:`ssfbench.api.verify.Report`."""
        from ssfbench.api.verify import Report

        ds = cls._build(root, options)
        if not quick and len(ds):
            ds.check_media(200 if sample is None else sample)
        user_root = Path(root)
        facts = [("videos", f"{relative(ds.root, user_root)}: split {ds.split}, "
                            f"{len(np.unique(ds.identities))} identities, {len(ds)} videos"),
                 ("media", ds.media_checked)]
        return Report(dataset=cls.name, root=str(user_root), facts=facts, labels=[], problems=ds.problems)

    def check_media(self, sample: int | None) -> None:
        """Decode ``sample`` randomly chosen videos (all when 0) to their end; a video that does not
        decode, decodes fewer frames than its header says (cut short), or whose frame size differs
        from the most common one is an error (one per video)."""
        chosen = sample_indices(len(self), sample)
        frames = 0
        failed: set[int] = set()
        sizes: dict[int, tuple[int, int]] = {}
        for v in chosen.tolist():
            reader = VideoReader(self.path(v))
            try:
                n = reader.count_decodable()
                header = reader.num_frames
                sizes[v] = reader.size
            except UserError as exc:
                self.problems.error("unreadable video", self.path(v), str(exc).split(": ", 1)[-1])
                failed.add(v)
                continue
            finally:
                reader.close()
            frames += n
            if n == 0:
                self.problems.error("video without frames", self.path(v))
                failed.add(v)
            elif n < header:
                self.problems.error("video shorter than its header", self.path(v),
                                    f"{n} frames decode, its header says {header} (cut short?)")
                failed.add(v)
        if len(set(sizes.values())) > 1:
            common, k = Counter(sizes.values()).most_common(1)[0]
            for v, size in sizes.items():
                if size != common:
                    self.problems.error("frame size differs", self.path(v),
                                        f"{size[0]}x{size[1]}, while {k} of the {len(sizes)} videos checked are "
                                        f"{common[0]}x{common[1]}")
                    failed.add(v)
        self.media_checked = decoded_summary(len(chosen), len(self), len(failed), frames)

    @classmethod
    def prepare(cls, root: Path | None, out: Path, *, image_size: int = 0, codec: str = "", progress: bool = True,
                **options: Any) -> Path:
        """Write the video list and every frame count to the index ``out`` (atomically)."""
        if root is not None and Path(root).is_file():
            raise UserError(f"{root}: already an index; pass the folder of the original copy")
        ds = cls._build(root, options)
        ds.problems.raise_errors(cls.name, ds.root)
        counts = np.array([ds.num_frames(v) for v in tqdm(range(len(ds)), desc="index voxceleb2", unit="video",
                                                             disable=not progress)], np.int64)
        out = Path(out)

        def write(tmp: str) -> None:
            with h5py.File(tmp, "w") as f:
                f.create_dataset("videos", data=np.array(ds.videos, dtype=object), dtype=_STR)
                f.create_dataset("frames", data=counts)
                f.attrs.update({"format": INDEX_FORMAT, "root": str(ds.root.resolve()), "split": ds.split,
                                "options": json.dumps(ds.options, sort_keys=True), "complete": True})

        atomic_write_bytes(out, write)
        return out
