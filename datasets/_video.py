"""Frame-accurate reading of video files with PyAV, decoding only what is asked for.

A :class:`VideoReader` keeps its container open and remembers where its decoder stands: frames
just ahead are reached by decoding forward, frames further away or behind by seeking to the
keyframe before them (frame index <-> timestamp through the stream's time base and frame rate,
which holds for the constant-frame-rate videos of DISFA and VoxCeleb2). Streams whose frames
carry no timestamps are decoded from the start, counting. Failures are :class:`UserError`\\ s
naming the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from ssfbench.errors import UserError

#: Decode forward instead of seeking when the next wanted frame is at most this far ahead.
SEEK_GAP = 24


def decoded_summary(checked: int, total: int, failed: int, frames: int) -> str:
    """``verify``'s line about decoding ``checked`` of ``total`` videos, ``failed`` of which had a
    problem (each listed as an error), ``frames`` decoded from the others."""
    what = "all" if checked == total else f"a random sample of {checked} of"
    if not failed:
        return f"{what} {total} videos decoded ({frames} frames)"
    return (f"{what} {total} videos checked: {checked - failed} decoded ({frames} frames), "
            f"{failed} with errors (listed below)")


class DecodeCount:
    """Frames this process has decoded with PyAV so far (what the read benchmarks divide by)."""

    frames = 0


class VideoReader:
    """One video file; :meth:`frames` yields only the frames asked for."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._container: Any = None
        self._stream: Any = None
        self._decoder: Iterator[tuple[int, av.VideoFrame]] | None = None
        self._position = 0  # index of the next frame the decoder yields
        self._sequential = False
        self._frames: int | None = None

    # ---- opening ---------------------------------------------------------------------------
    def _open(self) -> None:
        if self._container is not None:
            return
        if not self.path.is_file():
            raise UserError(f"{self.path}: video not found")
        try:
            container = av.open(str(self.path))
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise UserError(f"{self.path}: unreadable video ({exc})") from None
        if not container.streams.video:
            container.close()
            raise UserError(f"{self.path}: no video stream")
        self._container = container
        self._stream = container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        self.fps = Fraction(rate) if rate else Fraction(25)
        self._start = self._stream.start_time or 0
        self._decoder = None

    def close(self) -> None:
        """Close the container (it is reopened on the next read)."""
        if self._container is not None:
            self._container.close()
        self._container = self._stream = self._decoder = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_container=None, _stream=None, _decoder=None)
        return state

    # ---- facts -----------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        """Frames according to the container header (counted by demuxing when it has none)."""
        if self._frames is None:
            self._open()
            n = int(self._stream.frames or 0)
            if n <= 0:
                n = self._count_packets()
            self._frames = n
        return self._frames

    def _count_packets(self) -> int:
        try:
            n = sum(1 for p in self._container.demux(self._stream) if p.size)
        except av.FFmpegError as exc:
            raise UserError(f"{self.path}: unreadable video ({exc})") from None
        self.close()
        return n

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames."""
        self._open()
        return int(self._stream.width), int(self._stream.height)

    def count_decodable(self) -> int:
        """Decode the whole video and count its frames (the thorough check ``verify`` runs)."""
        self.close()
        self._open()
        n = 0
        try:
            for _ in self._container.decode(self._stream):
                n += 1
        except (av.FFmpegError, ValueError) as exc:
            raise UserError(f"{self.path}: corrupt video after {n} frames ({exc})") from None
        finally:
            self.close()
        return n

    # ---- decoding --------------------------------------------------------------------------
    def _index(self, frame: av.VideoFrame, counter: int) -> int:
        if self._sequential or frame.pts is None:
            return counter
        seconds = (frame.pts - self._start) * self._stream.time_base
        return int(round(seconds * self.fps))

    def _decode(self) -> Iterator[tuple[int, av.VideoFrame]]:
        """``(index, frame)`` from wherever the container stands, until the end."""
        counter = 0
        try:
            for frame in self._container.decode(self._stream):
                DecodeCount.frames += 1
                index = self._index(frame, counter)
                counter = index + 1
                yield index, frame
        except (av.FFmpegError, ValueError) as exc:
            raise UserError(f"{self.path}: corrupt video near frame {counter} ({exc})") from None

    def _restart(self, target: int) -> None:
        """Position the decoder at or before frame ``target``: seek to the keyframe before it, or
        decode from the start when the stream cannot seek or has no timestamps."""
        if target > 0 and not self._sequential:
            pts = self._start + int(round(target / self.fps / self._stream.time_base))
            try:
                self._container.seek(pts, stream=self._stream, backward=True, any_frame=False)
                decoder = self._decode()
                first = next(decoder, None)
            except (av.FFmpegError, UserError):
                first = None
            if first is not None and first[1].pts is None:
                self._sequential = True
            elif first is not None and first[0] <= target:
                self._decoder = _prepend(first, decoder)
                self._position = first[0]
                return
        self.close()
        self._open()
        self._decoder = self._decode()
        self._position = 0

    def frames(self, indices: Sequence[int]) -> Iterator[tuple[int, av.VideoFrame]]:
        """``(index, frame)`` for every distinct index in ``indices``, in increasing order; an index
        the video does not have is a :class:`UserError`."""
        wanted = sorted({int(i) for i in indices})
        if not wanted:
            return
        if wanted[0] < 0:
            raise UserError(f"{self.path}: frame {wanted[0]} does not exist")
        self._open()
        if self._decoder is None or wanted[0] < self._position:
            self._restart(wanted[0])
        k = 0
        reached = -1  # the wanted frame the decoder was last positioned for (it then only decodes forward)
        while k < len(wanted):
            if wanted[k] - self._position > SEEK_GAP and reached != wanted[k]:
                self._restart(wanted[k])  # lands on the keyframe before it, which can be further back than SEEK_GAP
                reached = wanted[k]
            got = next(self._decoder, None)
            if got is None:
                self._decoder = None
                raise UserError(f"{self.path}: frame {wanted[k]} could not be decoded "
                                f"(the video ends before it; its header says {self.num_frames} frames)")
            index, frame = got
            self._position = index + 1
            if index > wanted[k]:
                self._decoder = None
                raise UserError(f"{self.path}: frame {wanted[k]} is missing from the stream")
            if index == wanted[k]:
                yield index, frame
                k += 1


def _prepend(first: tuple[int, av.VideoFrame], rest: Iterator[tuple[int, av.VideoFrame]]
             ) -> Iterator[tuple[int, av.VideoFrame]]:
    yield first
    yield from rest
