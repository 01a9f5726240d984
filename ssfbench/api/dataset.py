"""Dataset interfaces the harness reads: unlabeled videos for pretraining and labelled frames
for the linear probe. Adapters (``ssfbench.datasets.*``) subclass one of the two.

Images cross these interfaces as ``uint8`` RGB arrays ``[H, W, 3]`` (frames of one video as
``[T, H, W, 3]``); resizing and normalisation to a method's input happen in the harness
(``ssfbench.api.preprocess``), so an adapter never needs to know which method is being evaluated.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

from ssfbench.api.settings import Option, resolve_options


@dataclass(frozen=True)
class Fold:
    """One train/test partition of a labelled dataset (row indices into the dataset)."""

    name: str
    train: np.ndarray
    test: np.ndarray


class Dataset(abc.ABC):
    """What every registered dataset has: a name, a one-line summary and a fingerprint."""

    name: ClassVar[str]
    summary: ClassVar[str]
    kind: ClassVar[Literal["videos", "frames"]]
    #: The dataset's options, declared once: ``{"key": Option(type, default, help[, choices])}``.
    #: ``open`` takes them as keywords; ``run --data-option NAME.KEY=VALUE`` and ``datasets
    #: verify|prepare --set KEY=VALUE`` accept exactly these (:meth:`resolve_options`).
    OPTIONS: ClassVar[Mapping[str, Option]] = {}

    @classmethod
    @abc.abstractmethod
    def open(cls, root: Path | None = None, *, image_size: int = 64, seed: int = 0, **options: Any) -> Dataset:
        """Open the dataset. ``root`` is the user's copy (ignored by synthetic datasets);
        ``image_size`` and ``seed`` only matter for data rendered on the fly; ``options`` are
        keywords of :attr:`OPTIONS` (an unknown one or a bad value is a ``UserError``)."""

    @classmethod
    def resolve_options(cls, given: Mapping[str, Any], *, defaults: bool = True, source: str = "") -> dict[str, Any]:
        """``given`` checked against :attr:`OPTIONS` and cast to the declared types, on top of the
        declared defaults (``defaults=False``: the given options alone); see
        :func:`ssfbench.api.settings.resolve_options`."""
        return resolve_options(cls.name, cls.OPTIONS, given, defaults=defaults, source=source)

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A short hex digest that changes whenever the data the harness would read changes."""


class VideoSource(Dataset):
    """Unlabeled talking-face videos for pretraining."""

    kind = "videos"
    fps: float = 25.0
    #: Windows the pretraining stream draws from one visit to a video (see
    #: :class:`ssfbench.train.windows.WindowBatches`); 1 for sources whose frames cost the same however
    #: they are grouped (renderers, prepared stores), more where one read serves several windows.
    windows_per_visit: int = 1

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of videos."""

    @abc.abstractmethod
    def num_frames(self, video: int) -> int:
        """Number of frames of video ``video``."""

    @abc.abstractmethod
    def identity(self, video: int) -> str:
        """The speaker of video ``video`` (for identity-level splits)."""

    @abc.abstractmethod
    def read_frames(self, video: int, frames: Sequence[int]) -> np.ndarray:
        """Frames ``frames`` of video ``video`` as uint8 ``[len(frames), H, W, 3]``."""

    def read_windows(self, video: int, windows: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Several windows of one video, each as :meth:`read_frames` gives it; sources that can
        read them together more cheaply (one decoding pass) override it."""
        return [self.read_frames(video, frames) for frames in windows]


class LabeledFrames(Dataset):
    """Labelled face images for the probe: one row per frame.

    Subclasses set ``label_names``, ``metric`` and fill ``keys`` (unique frame ids, in dataset
    order), ``subjects`` and ``targets`` (int8 ``[N, C]``: 1 present, 0 absent, -1 unknown).
    """

    kind = "frames"
    label_names: tuple[str, ...]
    metric: Literal["f1", "auc"]
    keys: np.ndarray
    subjects: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)

    @abc.abstractmethod
    def folds(self) -> list[Fold]:
        """The protocol's train/test partitions (subject-independent where the protocol says so)."""

    @abc.abstractmethod
    def read_image(self, index: int) -> np.ndarray:
        """Row ``index`` as a uint8 ``[H, W, 3]`` face crop."""

    def read_images(self, indices: Sequence[int]) -> list[np.ndarray]:
        """Several rows at once; adapters that can batch (a renderer, a video decoder) override it."""
        return [self.read_image(int(i)) for i in indices]

    def preprocessing(self) -> dict:
        """How faces were cropped before the harness resizes them (recorded in cache attributes)."""
        return {"crop": "none"}


# ---- optional capabilities ----------------------------------------------------------------------
# An adapter has one of these when it has the member; the harness asks with ``isinstance`` (the
# Protocols are runtime-checkable: the check is the presence of the member, the types are for readers
# and mypy).


@runtime_checkable
class Inspectable(Protocol):
    """A dataset read from the user's copy that ``ssfbench datasets verify`` can check: the class has
    ``inspect(root, *, quick, sample, **options) -> ssfbench.api.verify.Report``."""

    @classmethod
    def inspect(cls, root: Path | None, *, quick: bool = False, sample: int | None = None, **options: Any) -> Any:
        """Check the copy at ``root`` without stopping at the first problem; returns a ``Report``."""
        ...


@runtime_checkable
class Preparable(Protocol):
    """A dataset ``ssfbench datasets prepare`` can write into a store that later runs read instead:
    the class has ``prepare(root, out, *, image_size, codec, **options) -> Path``."""

    @classmethod
    def prepare(cls, root: Path | None, out: Path, **kwargs: Any) -> Path:
        """Write the prepared store of the copy at ``root`` to ``out``; returns its path."""
        ...


@runtime_checkable
class TrueIntensities(Protocol):
    """Labelled frames that know the true AU intensity of every row (the synthetic datasets):
    ``intensities`` float ``[N, C]``, what ``ssfbench synth calibrate`` probes for the ceiling."""

    intensities: np.ndarray


@runtime_checkable
class CountsFaces(Protocol):
    """A dataset that counts how the face of every row read so far was found (landmarks, boxes,
    detection, centre crop): ``faces_found`` maps each way to its count; recorded in results."""

    @property
    def faces_found(self) -> Mapping[str, int]:
        ...


@runtime_checkable
class AccountsFaces(Protocol):
    """A real dataset that accounts for the face of every row (how it was prepared: landmarks,
    detection, or a fallback) and lists the rows that fell back in a run folder; recorded in results
    and read by the † mark."""

    def face_account(self, folder: Path | None = None) -> dict[str, int]:
        ...

    def fallback_list(self, folder: Path) -> Path:
        ...


@runtime_checkable
class VisitsWindows(Protocol):
    """A video source that serves several pretraining windows from one visit to a video
    (:attr:`VideoSource.windows_per_visit`)."""

    windows_per_visit: int


__all__ = ["Fold", "Dataset", "VideoSource", "LabeledFrames", "Inspectable", "Preparable", "TrueIntensities",
           "CountsFaces", "VisitsWindows"]
