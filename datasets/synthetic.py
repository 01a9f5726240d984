"""The embedded synthetic benchmark: procedurally drawn faces whose facial action units (AUs) are
known exactly, deterministic from a seed, no downloads.

Three registered datasets share one renderer:

* ``synth-vox`` (:class:`SynthVox`): unlabeled talking-face videos for pretraining
  (VoxCeleb-like: one identity per video, expression events, speech mouth motion, blinks, gaze,
  calm head-pose drift; lighting and background constant within a video).
* ``synth-au`` (:class:`SynthAU`): BP4D-like labelled frames (14 AUs, occurrence = intensity >= 2)
  of subjects that never appear in ``synth-vox``; 3 subject-independent folds, metric F1.
* ``synth-expr`` (:class:`SynthExpr`): AffectNet-like still images of 8 expressions built from
  prototypical AU combinations; one identity-disjoint train/test split, metric AUC.

This module holds the three datasets (which generator draws which person, video and image; labels,
folds, fingerprints, options). The pieces they are built from have a module each:
:mod:`~ssfbench.datasets._synth_render` (render parameters -> pixels, sensor noise, the generator
keys), :mod:`~ssfbench.datasets._synth_dynamics` (identities, scenes, talking-face trajectories,
expressions of stills) and :mod:`~ssfbench.datasets._synth_preview` (the preview grid); their
public names are importable from here too. Every frame is a dict of per-frame parameters; the
trajectories of a whole video are simulated at once (cheap) and only the frames asked for are
rendered. Sensor noise of a frame comes from a generator keyed by (dataset, video, frame), so pixels
never depend on call order.

The world is kinder than real video (only the face moves much inside a video, cues are purely
geometric); report results on it as such.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ssfbench.api.dataset import Fold, LabeledFrames, VideoSource
from ssfbench.api.settings import Option
from ssfbench.datasets._synth_dynamics import (
    EXPRESSION_WEIGHTS,
    EXPRESSIONS,
    FPS,
    sample_expression,
    sample_identity,
    sample_scene,
    simulate_video,
    still_state,
)
from ssfbench.datasets._synth_render import (
    AUS,
    compose,
    concat_params,
    frame_noise,
    neutral_state,
    render_frames,
    synth_rng,
    take_rows,
)
from ssfbench.errors import UserError
from ssfbench.runtime.seeds import (
    SYNTH_AU,
    SYNTH_EXPR,
    SYNTH_FOLDS,
    SYNTH_IDENTITY,
    SYNTH_IMAGE,
    SYNTH_VIDEO,
    SYNTH_VOX,
)

#: Bump whenever the rendered pixels or labels change (part of every fingerprint).
SYNTH_VERSION = "synth-1"
AU_NAMES: tuple[str, ...] = tuple(f"AU{a}" for a in AUS)
#: Occurrence threshold on intensity (0..5).
THRESHOLD = 2.0


def _fingerprint(name: str, seed: int, image_size: int, options: dict) -> str:
    """sha256 (16 hex chars) over the renderer version, dataset name, seed, image size and size options."""
    blob = json.dumps({"version": SYNTH_VERSION, "name": name, "seed": seed, "image_size": image_size,
                       "options": options}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class SynthVox(VideoSource):
    """Unlabeled synthetic talking-face videos for pretraining (one identity per video)."""

    name = "synth-vox"
    summary = "synthetic talking faces (200 identities x 2 videos x 150 frames, 25 fps), rendered on the fly"
    OPTIONS: ClassVar[dict[str, Option]] = {
        "identities": Option(int, 200, "speakers, one synthetic person each"),
        "videos_per_identity": Option(int, 2, "videos per speaker"),
        "frames": Option(int, 150, "frames per video (25 fps)"),
        "pose_drift": Option(bool, True, "slow, small head-pose drift; false holds the pose at the video's mean "
                                         "(the same videos otherwise: the pretext-audit variant)"),
        "speech": Option(bool, True, "speech mouth motion (AU25/26); false removes it (the same videos otherwise)"),
    }

    def __init__(self, image_size: int = 64, seed: int = 0, **options: Any) -> None:
        opts = self.resolve_options(options)
        self.image_size, self.seed = int(image_size), int(seed)
        self.identities, self.videos_per_identity, self.frames = opts["identities"], opts["videos_per_identity"], opts["frames"]
        self.pose_drift, self.speech = opts["pose_drift"], opts["speech"]
        self._video_cache = lru_cache(maxsize=1024)(self._simulate)

    @classmethod
    def open(cls, root: Path | None = None, *, image_size: int = 64, seed: int = 0, **options: Any) -> VideoSource:
        """Open the synthetic video set (``options``: see :attr:`OPTIONS`), rendered on the fly; or,
        when ``root`` is a store written by :meth:`prepare` for the same options, read from that store
        (the same pixels, no rendering)."""
        source = cls(image_size, seed, **options)
        if root is None:
            return source
        from ssfbench.datasets._prepared_videos import VideoStore

        store = VideoStore(Path(root), cls.name)
        if store.fingerprint() != source.fingerprint():
            raise UserError(f"{root}: this store was rendered with other options than requested (image size "
                            f"{store.image_size}, requested {image_size}; or other seed/identities/frames); "
                            f"prepare it again with the same --image-size and --set options")
        return store

    @classmethod
    def prepare(cls, root: Path | None, out: Path, *, image_size: int = 64, codec: str = "raw", progress: bool = True,
                **options: Any) -> Path:
        """Render every frame once into a prepared video store at ``out`` (lossless, so runs that read
        it are the same runs as rendering on the fly); ``options`` are those of :meth:`open`."""
        from ssfbench.datasets._prepared_videos import write_video_store

        if codec != "raw":
            raise UserError(f"{cls.name}: frames are stored raw (lossless); --codec {codec} is not available")
        try:
            source = cls.open(image_size=image_size, **options)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{cls.name}: bad option ({exc})") from None
        return write_video_store(source, out, progress=progress)

    def fingerprint(self) -> str:
        """Digest of version, name, seed, image size and size options."""
        options = {"identities": self.identities, "videos_per_identity": self.videos_per_identity, "frames": self.frames}
        options.update({k: False for k in ("pose_drift", "speech") if not getattr(self, k)})  # default: unchanged
        return _fingerprint(self.name, self.seed, self.image_size, options)

    def __len__(self) -> int:
        return self.identities * self.videos_per_identity

    def num_frames(self, video: int) -> int:
        """Every video has ``frames`` frames."""
        self._check(video)
        return self.frames

    def identity(self, video: int) -> str:
        """Speaker of ``video``, e.g. ``"id0007"``."""
        self._check(video)
        return f"id{video // self.videos_per_identity:04d}"

    def _check(self, video: int) -> None:
        if not 0 <= video < len(self):
            raise IndexError(f"video {video} out of range (0..{len(self) - 1})")

    def _simulate(self, video: int) -> dict[str, np.ndarray]:
        """Render params of every frame of ``video`` (trajectories are cheap; cached)."""
        ident = sample_identity(synth_rng(SYNTH_VOX, self.seed, SYNTH_IDENTITY, video // self.videos_per_identity))
        rng = synth_rng(SYNTH_VOX, self.seed, SYNTH_VIDEO, video)
        scene = sample_scene(rng)
        return compose(ident, scene, simulate_video(rng, self.frames, pose_drift=self.pose_drift, speech=self.speech))

    def params(self, video: int) -> dict[str, np.ndarray]:
        """Render params (identity, scene, per-frame state incl. ``au`` intensities) of all frames."""
        self._check(video)
        return self._video_cache(int(video))

    def intensities(self, video: int) -> np.ndarray:
        """True AU intensities ``[T, 14]`` of ``video`` (not for training; for inspection)."""
        return self.params(video)["au"]

    def read_frames(self, video: int, frames: Sequence[int]) -> np.ndarray:
        """Render frames ``frames`` of ``video`` as uint8 ``[len(frames), S, S, 3]``."""
        idx = np.asarray(frames, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.frames):
            raise IndexError(f"frames out of range (0..{self.frames - 1})")
        p = take_rows(self.params(video), idx)
        noise = frame_noise(SYNTH_VOX, self.seed, video, idx.tolist(), self.image_size)
        return render_frames(p, self.image_size, noise)


class _RenderedFrames(LabeledFrames):
    """Labelled rows whose render params are precomputed at open; images rendered on demand."""

    stream: int
    image_size: int
    seed: int
    intensities: np.ndarray
    _params: dict[str, np.ndarray]
    _noise_key: np.ndarray  # [N, 2] (video or image id, frame)

    def read_image(self, index: int) -> np.ndarray:
        """Row ``index`` as uint8 ``[S, S, 3]``."""
        return self.read_images([index])[0]

    def read_images(self, indices: Sequence[int]) -> list[np.ndarray]:
        """Render rows ``indices`` in one vectorised batch."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            return []
        if idx.min() < 0 or idx.max() >= len(self):
            raise IndexError(f"row out of range (0..{len(self) - 1})")
        noise = np.stack([frame_noise(self.stream, self.seed, int(v), [int(f)], self.image_size)[0]
                          for v, f in self._noise_key[idx]])
        return list(render_frames(take_rows(self._params, idx), self.image_size, noise))

    def preprocessing(self) -> dict:
        """Rendered as aligned face crops."""
        return {"crop": "aligned (synthetic)", "renderer": SYNTH_VERSION}


class SynthAU(_RenderedFrames):
    """BP4D-like labelled frames: 14 AU occurrences (intensity >= 2), 3 subject-independent folds."""

    name = "synth-au"
    summary = "synthetic BP4D-like AU frames (60 subjects, 14 AUs, 3 subject-independent folds, F1)"
    label_names = AU_NAMES
    metric = "f1"
    stream = SYNTH_AU
    OPTIONS: ClassVar[dict[str, Option]] = {
        "subjects": Option(int, 60, "subjects, split into 3 folds (at least 3)"),
        "videos_per_subject": Option(int, 2, "videos per subject"),
        "frames": Option(int, 150, "frames per video (25 fps)"),
        "stride": Option(int, 5, "every stride-th frame of a video is a row"),
    }

    def __init__(self, image_size: int = 64, seed: int = 0, **options: Any) -> None:
        opts = self.resolve_options(options)
        self.image_size, self.seed = int(image_size), int(seed)
        self.n_subjects, self.videos_per_subject = opts["subjects"], opts["videos_per_subject"]
        self.frames, self.stride = opts["frames"], opts["stride"]
        if self.n_subjects < 3:
            raise ValueError("synth-au needs at least 3 subjects (3 folds)")
        keep = np.arange(0, self.frames, self.stride)
        parts, keys, subj, nkey = [], [], [], []
        for s in range(self.n_subjects):
            ident = sample_identity(synth_rng(self.stream, self.seed, SYNTH_IDENTITY, s))
            for j in range(self.videos_per_subject):
                vid = s * self.videos_per_subject + j
                rng = synth_rng(self.stream, self.seed, SYNTH_VIDEO, vid)
                scene = sample_scene(rng)
                parts.append(take_rows(compose(ident, scene, simulate_video(rng, self.frames)), keep))
                keys += [f"S{s + 1:03d}/v{j + 1}/{f:04d}" for f in keep]
                subj += [f"S{s + 1:03d}"] * len(keep)
                nkey += [(vid, int(f)) for f in keep]
        self._params = concat_params(parts)
        self._noise_key = np.asarray(nkey, np.int64)
        self.keys, self.subjects = np.asarray(keys), np.asarray(subj)
        self.intensities = self._params["au"].astype(np.float32)
        self.targets = (self.intensities >= THRESHOLD).astype(np.int8)

    @classmethod
    def open(cls, root: Path | None = None, *, image_size: int = 64, seed: int = 0, **options: Any) -> SynthAU:
        """Open the synthetic AU set (``root`` is ignored; ``options``: see :attr:`OPTIONS`)."""
        return cls(image_size, seed, **options)

    def fingerprint(self) -> str:
        """Digest of version, name, seed, image size and size options."""
        return _fingerprint(self.name, self.seed, self.image_size, {
            "subjects": self.n_subjects, "videos_per_subject": self.videos_per_subject,
            "frames": self.frames, "stride": self.stride})

    def folds(self) -> list[Fold]:
        """3 subject-independent folds: subjects shuffled (seeded) and split in thirds; fold i tests part i."""
        names = np.unique(self.subjects)
        perm = synth_rng(self.stream, self.seed, SYNTH_FOLDS).permutation(len(names))
        parts = np.array_split(names[perm], 3)
        out = []
        for i, part in enumerate(parts):
            test = np.isin(self.subjects, part)
            out.append(Fold(f"fold{i + 1}", np.flatnonzero(~test), np.flatnonzero(test)))
        return out


class SynthExpr(_RenderedFrames):
    """AffectNet-like still images of 8 expressions from AU prototypes; identity-disjoint 75/25 split."""

    name = "synth-expr"
    summary = "synthetic AffectNet-like expressions (8 classes, 400 identities x 8 stills, 75/25 split, AUC)"
    label_names = EXPRESSIONS
    metric = "auc"
    stream = SYNTH_EXPR
    OPTIONS: ClassVar[dict[str, Option]] = {
        "identities": Option(int, 400, "people (at least 2: train and test)"),
        "images_per_identity": Option(int, 8, "still images per person"),
        "test_fraction": Option(float, 0.25, "share of the people in the test set"),
    }

    def __init__(self, image_size: int = 64, seed: int = 0, **options: Any) -> None:
        opts = self.resolve_options(options)
        self.image_size, self.seed = int(image_size), int(seed)
        self.identities, self.images_per_identity = opts["identities"], opts["images_per_identity"]
        self.test_fraction = opts["test_fraction"]
        if self.identities < 2:
            raise ValueError("synth-expr needs at least 2 identities (train/test)")
        parts, labels = [], []
        for s in range(self.identities):
            ident = sample_identity(synth_rng(self.stream, self.seed, SYNTH_IDENTITY, s))
            for j in range(self.images_per_identity):
                rng = synth_rng(self.stream, self.seed, SYNTH_IMAGE, s, j)
                label = int(rng.choice(len(EXPRESSIONS), p=EXPRESSION_WEIGHTS))
                parts.append(compose(ident, sample_scene(rng), still_state(rng, label)))
                labels.append(label)
        n = len(labels)
        self._params = concat_params(parts)
        self._noise_key = np.stack([np.arange(n), np.zeros(n, np.int64)], 1)
        subj = np.repeat(np.arange(self.identities), self.images_per_identity)
        self.subjects = np.array([f"E{s + 1:04d}" for s in subj])
        self.keys = np.array([f"E{s + 1:04d}/{j:02d}" for s in range(self.identities)
                              for j in range(self.images_per_identity)])
        self.classes = np.asarray(labels, np.int64)
        self.targets = np.eye(len(EXPRESSIONS), dtype=np.int8)[self.classes]
        self.intensities = self._params["au"].astype(np.float32)

    @classmethod
    def open(cls, root: Path | None = None, *, image_size: int = 64, seed: int = 0, **options: Any) -> SynthExpr:
        """Open the synthetic expression set (``root`` is ignored; ``options``: see :attr:`OPTIONS`)."""
        return cls(image_size, seed, **options)

    def fingerprint(self) -> str:
        """Digest of version, name, seed, image size and size options."""
        return _fingerprint(self.name, self.seed, self.image_size, {
            "identities": self.identities, "images_per_identity": self.images_per_identity,
            "test_fraction": self.test_fraction})

    def folds(self) -> list[Fold]:
        """One identity-disjoint split: a seeded ``test_fraction`` of identities is the test set."""
        names = np.unique(self.subjects)
        perm = synth_rng(self.stream, self.seed, SYNTH_FOLDS).permutation(len(names))
        n_test = min(max(1, round(len(names) * self.test_fraction)), len(names) - 1)
        test = np.isin(self.subjects, names[perm[:n_test]])
        return [Fold("test", np.flatnonzero(~test), np.flatnonzero(test))]


__all__ = ["SYNTH_VERSION", "AUS", "AU_NAMES", "EXPRESSIONS", "THRESHOLD", "FPS", "SynthVox", "SynthAU", "SynthExpr",
           "sample_identity", "sample_scene", "neutral_state", "compose", "concat_params", "render_frames",
           "frame_noise", "simulate_video", "sample_expression", "still_state", "synth_rng", "take_rows"]
