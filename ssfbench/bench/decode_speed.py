"""How fast VoxCeleb2 can be read from mp4, per CPU core (BENCHMARKS.md, "VoxCeleb2 from mp4").

:func:`write_h264_clips` lays out synthetic talking-face clips as VoxCeleb2 ships them
(``dev/mp4/idNNNNN/<ytid>/00001.mp4``): ``synth-vox`` faces rendered at 64 px, scaled to 224 px,
with a little seeded sensor noise, encoded by PyAV's libx264 at 25 fps with its default settings
(CRF 23, B-frames) and a keyframe every ``gop`` frames (100 = 4 s, like a YouTube upload).

:func:`reader_rate` draws the windows of real pretraining steps (:class:`ssfbench.train.windows.WindowBatches`)
in one process pinned to one core, and returns windows/s and decoded frames per delivered frame.
Two readers: :func:`per_window_reads`, the earlier reading (each window on its own through
:class:`~ssfbench.datasets._video.VideoReader`, no reader kept between visits, as in an epoch
over a million clips), and :class:`~ssfbench.datasets.voxceleb2.VoxCeleb2` as it reads now.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ssfbench.api.method import Method
from ssfbench.datasets._video import DecodeCount
from ssfbench.runtime.fileio import atomic_write_bytes

if TYPE_CHECKING:  # the plugin is imported where it is used, never with this module
    from ssfbench.datasets.voxceleb2 import VoxCeleb2

#: what the clips of :func:`write_h264_clips` look like (recorded next to every measurement)
CLIP_FORMAT = "synth-vox faces 64 px -> {size} px bilinear + N(0, 2) noise, libx264 CRF 23, 25 fps, keyframe every {gop}"


def per_window_reads(root: Path) -> VoxCeleb2:
    """VoxCeleb2 at ``root`` read as it was first: every window decoded on its own by a fresh
    :class:`~ssfbench.datasets._video.VideoReader` (seek to the keyframe before it, decode forward,
    PyAV's automatic decoder threads), one window per visit."""
    from ssfbench.datasets.voxceleb2 import VoxCeleb2

    class PerWindowReads(VoxCeleb2):
        def read_windows(self, video: int, windows: Sequence[Sequence[int]]) -> list[np.ndarray]:
            """Each window through :meth:`read_frames`, the clip closed after each (no reuse across visits)."""
            out = []
            for frames in windows:
                out.append(self.read_frames(video, frames))
                self._readers.pop(video).close()
            return out

    return PerWindowReads.open(root, windows_per_visit=1)


def _encode(path: Path, frames: np.ndarray, gop: int) -> None:
    """``frames`` (uint8 ``[T, S, S, 3]``) as an H.264 mp4 at 25 fps, keyframe every ``gop`` frames."""
    import av

    def write(tmp: str) -> None:
        with av.open(tmp, "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.height, stream.width = frames.shape[1:3]
            stream.pix_fmt = "yuv420p"
            stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)

    atomic_write_bytes(path, write)


def write_h264_clips(root: Path, *, clips: int = 16, frames: int = 200, size: int = 224, gop: int = 100,
                     seed: int = 0) -> Path:
    """``clips`` talking-face clips (one speaker each) of ``frames`` frames under ``root`` in the
    VoxCeleb2 layout (see the module's docstring); clips already there are kept (each file is
    written atomically, so an interrupted call resumes). Returns ``root``."""
    import torch.nn.functional as F

    from ssfbench.datasets.synthetic import SynthVox

    faces = SynthVox(image_size=64, seed=seed, identities=clips, videos_per_identity=1, frames=frames)
    for v in range(clips):
        ytid = hashlib.md5(f"{seed}-{v}".encode()).hexdigest()[:11]
        path = root / "dev" / "mp4" / f"id{v + 1:05d}" / ytid / "00001.mp4"
        if path.is_file():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        x = torch.from_numpy(faces.read_frames(v, range(frames))).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False).permute(0, 2, 3, 1).numpy()
        x += np.random.default_rng([seed, v]).normal(0.0, 2.0, x.shape)
        _encode(path, x.clip(0, 255).astype(np.uint8), gop)
    return root


@contextmanager
def one_core() -> Iterator[None]:
    """Pin this process to one of its cores and torch to one thread for the block (per-core rates)."""
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    threads = torch.get_num_threads()
    if affinity:
        os.sched_setaffinity(0, {min(affinity)})
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if affinity:
            os.sched_setaffinity(0, affinity)


def reader_rate(videos: VoxCeleb2, method: Method, windows: int = 64, seed: int = 0) -> dict[str, float]:
    """``{"windows_per_s", "decoded_per_used"}`` of ``videos`` delivering the windows of the first
    pretraining steps (at least ``windows`` windows) of ``method``, on one core."""
    from ssfbench.train.windows import WindowBatches

    stream = WindowBatches(videos, np.arange(len(videos)), method, seed)
    steps = -(-windows // stream.batch_size)
    with one_core():
        decoded = DecodeCount.frames
        start = time.perf_counter()
        shapes = [stream[s].shape for s in range(steps)]
        seconds = time.perf_counter() - start
        decoded = DecodeCount.frames - decoded
    delivered = sum(int(np.prod(s[:2])) for s in shapes)
    return {"windows_per_s": sum(s[0] for s in shapes) / seconds, "decoded_per_used": decoded / delivered}


def compare_readers(root: Path, method: Method, *, windows: int = 64, rounds: int = 3,
                    per_visit: Sequence[int] = (1, 4, 8)) -> list[dict[str, Any]]:
    """One row per reader (the first reader, then the new one at each ``per_visit``): windows/s on
    one core and decoded frames per used frame, medians of ``rounds`` alternating measurements,
    and each new reader's speed-up over the old one measured in the same rounds."""
    from ssfbench.datasets.voxceleb2 import VoxCeleb2

    readers: dict[str, VoxCeleb2] = {"before (one window per visit, VideoReader)": per_window_reads(root)}
    readers.update({f"one pass per visit, {w} window{'s' * (w > 1)}": VoxCeleb2.open(root, windows_per_visit=w)
                    for w in per_visit})
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in readers}
    for r in range(rounds):
        for name, videos in readers.items():
            runs[name].append(reader_rate(videos, method, windows, seed=r))
    old = np.array([m["windows_per_s"] for m in runs[next(iter(readers))]])
    rows: list[dict[str, Any]] = []
    frames = len(method.frame_offsets())
    for name, measured in runs.items():
        rate = np.array([m["windows_per_s"] for m in measured])
        rows.append({"reader": name, "new": name != next(iter(readers)),
                     "windows_per_visit": readers[name].windows_per_visit, "windows_per_s": float(np.median(rate)),
                     "frames_per_s": float(np.median(rate)) * frames,
                     "decoded_per_used": float(np.median([m["decoded_per_used"] for m in measured])),
                     "speedup": float(np.median(rate / old))})
    return rows


def voxceleb2_rows(folder: Path, *, device: str = "cpu", rounds: int = 3, windows: int = 64, model_steps: int = 3,
                   model_batch: int | None = None, progress: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """The "VoxCeleb2 from mp4" rows of ``ssfbench bench``: each reader's windows/s on one core
    (``pipeline``) against the first, one-window-per-visit reader (``reference``), decoded frames per used
    frame, and the cores one GPU needs at that rate (published GPU rate, :mod:`ssfbench.runtime.feeding`);
    then the ranking encoder's own training rate at 224 px on ``device`` (batches of ``model_batch``
    windows: 4 on a CPU, 32 on a GPU unless given), and the cores that rate needs."""
    from ssfbench.api.registry import get_method
    from ssfbench.bench.speed import model_train_rate
    from ssfbench.datasets.voxceleb2 import VoxCeleb2
    from ssfbench.runtime.feeding import GPU_RESNET18_224, Rate, cores_per_gpu
    from ssfbench.train.windows import WindowBatches

    def ranking(batch_size: int = 16) -> Method:
        torch.manual_seed(0)
        cls = get_method("ranking")
        return cls(cls.Config(k=2, batch_size=batch_size), image_size=224)

    root = folder / "voxceleb2-h264-224"
    progress(f"VoxCeleb2 from mp4: clips in {root} (written once), readers on one core ({rounds} rounds)")
    write_h264_clips(root)
    fmt = CLIP_FORMAT.format(size=224, gop=100)
    rows: list[dict[str, Any]] = []
    compared = compare_readers(root, ranking(), windows=windows, rounds=rounds)
    for r in compared:
        per_core = Rate(float(r["frames_per_s"]), "measured")
        rows.append({"what": f"VoxCeleb2 from mp4: {r['reader']}", "pipeline": r["windows_per_s"],
                     "reference": compared[0]["windows_per_s"], "ratio": r["speedup"], "unit": "windows/s (1 core)",
                     "target": None, "decoded_per_used": r["decoded_per_used"], "frames_per_s": r["frames_per_s"],
                     "cores_per_gpu": cores_per_gpu(GPU_RESNET18_224, per_core), "gpu_rate": GPU_RESNET18_224.source,
                     "clips": fmt})
    from ssfbench.runtime.device import resolve_device

    batch = model_batch or (32 if resolve_device(device).type == "cuda" else 4)
    progress(f"VoxCeleb2 from mp4: the ranking encoder's training at 224 px on {device}, {batch} windows a step")
    method = ranking(batch_size=batch)
    # any batch of real windows will do for the model alone: 2 clips' worth, so 16 clips always suffice
    windows_224 = WindowBatches(VoxCeleb2.open(root, windows_per_visit=max(1, batch // 2)), np.arange(16), method, 0)[0]
    model = model_train_rate(method, windows_224, model_steps, device)
    default = VoxCeleb2.OPTIONS["windows_per_visit"].default
    now = next(r for r in compared if r["new"] and r["windows_per_visit"] == default)
    rows.append({"what": f"VoxCeleb2 from mp4: default reader (1 core) vs ranking encoder training at 224 px "
                         f"({batch} windows x 12 frames a step)",
                 "pipeline": now["frames_per_s"], "reference": model, "ratio": now["frames_per_s"] / model,
                 "unit": "frames/s", "target": None, "cores_for_this_model": model / now["frames_per_s"],
                 "cores_for_this_model_before": model / compared[0]["frames_per_s"]})
    return rows


__all__ = ["CLIP_FORMAT", "per_window_reads", "write_h264_clips", "one_core", "reader_rate", "compare_readers",
           "voxceleb2_rows"]
