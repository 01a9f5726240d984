"""Decoding one run of a clip for several windows at once: the fast PyAV path of VoxCeleb2.

:func:`decode_run` opens the video, seeks once to the keyframe before the first wanted frame and
decodes forward to the last one, in a single decoder thread (a training job gets its parallelism
from DataLoader workers, one clip each, so a thread pool per clip only adds overhead: measured in
BENCHMARKS.md). Two things make it cheaper than asking :class:`~ssfbench.datasets._video.VideoReader`
for each window on its own:

- the keyframe run-up and the container open are paid once per run, not once per window;
- in H.264 streams of an mp4 (length-prefixed NAL units), packets of frames that no other frame
  references (``nal_ref_idc == 0``, e.g. the non-reference B-frames of x264's default B-pyramid)
  and that nobody asked for are dropped before they reach the decoder. Dropping them cannot change
  any other frame: by definition nothing is predicted from them.

Frames come out exactly as a full decode of the clip gives them (``tests/datasets/
test_video_runs.py`` compares pixels). Streams it cannot index by timestamp fall back to
:class:`VideoReader`, which always works.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np

from ssfbench.datasets._video import DecodeCount, VideoReader
from ssfbench.errors import UserError

#: NAL unit types of coded slices (non-IDR and IDR)
_SLICES = (1, 5)


def _nal_length_size(stream: av.video.stream.VideoStream) -> int:
    """Bytes of the NAL length prefix of an H.264 stream in mp4 (avcC), 0 when it is not one."""
    extra = stream.codec_context.extradata
    if stream.codec_context.name != "h264" or not extra or extra[0] != 1 or len(extra) < 5:
        return 0
    return (extra[4] & 3) + 1


def is_unreferenced(packet: bytes, length_size: int) -> bool:
    """Whether the first coded slice of an H.264 access unit (length-prefixed NAL units) has
    ``nal_ref_idc == 0``, i.e. no other frame is predicted from it."""
    i = 0
    while i + length_size < len(packet):
        size = int.from_bytes(packet[i:i + length_size], "big")
        header = packet[i + length_size]
        if header & 31 in _SLICES:
            return (header >> 5) & 3 == 0
        i += length_size + size
    return False


def decode_run(path: Path, frames: Iterable[int]) -> dict[int, np.ndarray]:
    """``{index: uint8 [H, W, 3] RGB}`` for every distinct frame in ``frames`` of the video at
    ``path``, decoded in one forward pass (see the module's docstring). A frame the video does not
    have is a :class:`UserError` naming the file."""
    wanted = sorted({int(f) for f in frames})
    if not wanted:
        return {}
    if wanted[0] < 0:
        raise UserError(f"{path}: frame {wanted[0]} does not exist")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable video ({exc})") from None
    try:
        if not container.streams.video:
            raise UserError(f"{path}: no video stream")
        stream = container.streams.video[0]
        if stream.time_base is None or not (stream.average_rate or stream.guessed_rate):
            return _fallback(path, wanted)
        return _forward(container, stream, path, wanted)
    finally:
        container.close()


def _fallback(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    """The frames through :class:`VideoReader` (streams without timestamps)."""
    reader = VideoReader(path)
    try:
        return {i: f.to_ndarray(format="rgb24") for i, f in reader.frames(wanted)}
    finally:
        reader.close()


def _forward(container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path,
             wanted: list[int]) -> dict[int, np.ndarray]:
    """Seek once, then demux and decode forward until every wanted frame came out."""
    stream.thread_type = "SLICE"
    stream.codec_context.thread_count = 1
    fps = float(stream.average_rate or stream.guessed_rate)
    start = stream.start_time or 0
    to_index = float(stream.time_base) * fps
    want = set(wanted)
    length_size = _nal_length_size(stream)
    if wanted[0] > 0:
        container.seek(start + int(round(wanted[0] / to_index)), stream=stream, backward=True, any_frame=False)
    out: dict[int, np.ndarray] = {}
    try:
        for packet in container.demux(stream):
            if (length_size and packet.pts is not None and packet.size
                    and int(round((packet.pts - start) * to_index)) not in want
                    and is_unreferenced(bytes(packet), length_size)):
                continue
            for frame in packet.decode():
                DecodeCount.frames += 1
                index = None if frame.pts is None else int(round((frame.pts - start) * to_index))
                if index is None or (not out and index > wanted[0]):  # no timestamps, or a seek too far
                    return _fallback(path, wanted)
                if index in want:
                    out[index] = frame.to_ndarray(format="rgb24")
            if len(out) == len(want):
                break
    except (av.FFmpegError, ValueError) as exc:
        raise UserError(f"{path}: corrupt video ({exc})") from None
    missing = [i for i in wanted if i not in out]
    if missing:
        raise UserError(f"{path}: frame {missing[0]} could not be decoded (the video has "
                        f"{stream.frames or 'fewer'} frames)")
    return out


__all__ = ["decode_run", "is_unreferenced"]
