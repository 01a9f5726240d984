"""The base of the labelled adapters over users' copies (BP4D, DISFA, EmotioNet, AffectNet):
scanning a copy without raising, the one-line error and skip warning of ``open``, ``verify``'s
report, prepared stores, face crops per row and the fingerprint.

Faces, the paper's way by default (``crop=align``): a row with landmarks (the dataset's own, in
any scheme of :mod:`ssfbench.faces.alignment`) is aligned on them; a row without them falls back to the
adapter's :attr:`~RealFrames.FALLBACK`: its face box (AffectNet's csv) or dlib detection plus 68
landmarks (:mod:`ssfbench.faces.detection`, the ``[faces]`` extra). A frame in which no face is detected
is counted, warned about once per dataset and cut to its centre square (``verify`` and
``prepare`` report the count). ``crop=centre`` cuts every frame to its centre square: an explicit
deviation, recorded as ``paper: false`` and marked in ``compare`` tables."""

from __future__ import annotations

import abc
import threading
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from ssfbench.api.dataset import LabeledFrames
from ssfbench.api.settings import Option
from ssfbench.datasets._crops import (
    center_box,
    check_image,
    crop_resize,
    read_aligned,
    read_face,
    read_rgb,
    sample_indices,
    thread_map,
)
from ssfbench.datasets._digest import Digest
from ssfbench.datasets._files import require_root
from ssfbench.datasets._problems import DatasetWarning, Problems
from ssfbench.errors import UserError
from ssfbench.faces import alignment

#: how faces are cut: ``align`` = the paper's preprocessing, ``centre`` = an explicit deviation
CROP_OPTION = Option(str, "align", "align: the paper's (landmarks, else the fallback: box or detected face); "
                                   "centre: the centre square, not comparable with the paper", ("align", "centre"))
MARGIN_OPTION = Option(float, alignment.MARGIN, "context around the alignment template (0 = the template)")
NO_FACE = "no face detected (centre square)"


class RealFrames(LabeledFrames):
    """A labelled dataset read from a user's copy in its official layout.

    Subclasses set the class attributes, ``OPTIONS`` and implement :meth:`_scan`, which fills
    ``keys``, ``subjects``, ``targets``, ``paths`` (image path per row, relative to ``root``),
    ``boxes`` (float32 ``[N, 4]`` face boxes; NaN = centre square), ``layout`` (what was found
    where, for the report) and records every problem in ``problems`` without raising, feeding
    label bytes and the image list into ``digest``. Scanning reads labels and lists folders; it
    never decodes an image (``verify`` does).
    """

    OPTIONS: ClassVar[dict[str, Option]] = {}
    #: Bump when the rows, labels or crops an adapter produces change (part of the fingerprint).
    ADAPTER_VERSION: ClassVar[str] = "2"
    #: what a row without landmarks falls back to under ``crop=align``: ``detect`` or ``box``
    FALLBACK: ClassVar[str] = "detect"

    def __init__(self, root: Path, *, image_size: int = 64, seed: int = 0, **options: Any) -> None:
        self.root = root
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.options = self.resolve_options(options)
        self.problems = Problems()
        self.layout: dict[str, str] = {}
        self.digest = Digest(self.name, self.ADAPTER_VERSION, str(sorted(self.options.items())), str(self.seed))
        self.keys = np.array([], dtype=str)
        self.subjects = np.array([], dtype=str)
        self.targets = np.zeros((0, len(self.label_names)), np.int8)
        self.paths = np.array([], dtype=str)
        self.boxes = np.zeros((0, 4), np.float32)
        #: five alignment points per row (``[N, 5, 2]`` x, y; NaN = none), filled by ``_scan``
        self.points = np.zeros((0, 5, 2), np.float32)
        #: where the landmarks come from (None: no row has them)
        self.landmark_source: str | None = None
        self.media_checked = "not decoded (--quick)"
        self._face_of: dict[int, str] = {}  # row -> how its face was found, for the rows read so far
        self._face_lock = threading.Lock()
        self._no_face_seen = False
        self._scan()
        if len(self.points) != len(self.keys):
            self.points = np.full((len(self.keys), 5, 2), np.nan, np.float32)
        self.digest.text(self.image_size).text(sorted(self.crop_record().items()))
        self.digest.strings(self.keys.tolist()).strings(self.paths.tolist())
        self._fingerprint = self.digest.hex()

    # ---- construction ----------------------------------------------------------------------
    @abc.abstractmethod
    def _scan(self) -> None:
        """Read labels and list images; fill the arrays; record problems (never raise on data)."""

    @classmethod
    def open(cls, root: Path | None = None, *, image_size: int = 64, seed: int = 0, **options: Any) -> LabeledFrames:
        """Open the copy at ``root`` (or a store written by ``ssfbench datasets prepare``) with the
        adapter's ``OPTIONS`` as keywords (what ``run --data-option NAME.KEY=VALUE`` passes). Any error
        in the copy raises a one-line :class:`UserError` naming the file; skipped rows are counted
        and warned about (:class:`~ssfbench.datasets._problems.DatasetWarning`)."""
        return cls._open(root, image_size=image_size, seed=seed, **options)

    @classmethod
    def _open(cls, root: Path | None, *, image_size: int = 64, seed: int = 0, **options: Any) -> LabeledFrames:
        """:meth:`open` (options validated against ``OPTIONS``)."""
        from ssfbench.datasets._prepared import is_prepared, open_prepared

        if root is not None and is_prepared(root):
            store = open_prepared(Path(root), cls.name)
            wanted = {k: v for k, v in cls.resolve_options(options).items()
                      if v != cls.OPTIONS[k].default}
            stored = store.source_options()
            for key, value in wanted.items():
                if stored.get(key) != value:
                    raise UserError(f"{root}: prepared with {key}={stored.get(key)!r}, not {value!r}; "
                                    f"prepare it again with --set {key}={value}")
            return store
        ds = cls(require_root(root, cls.name), image_size=image_size, seed=seed, **options)
        ds.problems.raise_errors(cls.name, ds.root)
        ds.problems.warn_skips(cls.name, ds.root)
        return ds

    @classmethod
    def inspect(cls, root: Path | None, *, image_size: int = 64, seed: int = 0, quick: bool = False,
                sample: int | None = None, **options: Any):
        """Scan the copy at ``root`` and, unless ``quick``, decode its images (all, or ``sample`` of
        them); returns a :class:`ssfbench.api.verify.Report` listing every problem."""
        ds = cls(require_root(root, cls.name), image_size=image_size, seed=seed, **options)
        if not quick:
            ds.check_media(sample)
        return ds.report()

    @classmethod
    def prepare(cls, root: Path | None, out: Path, *, image_size: int = 256, codec: str = "jpeg", seed: int = 0,
                **options: Any) -> Path:
        """Decode and crop every row of the copy at ``root`` into the store ``out`` (see
        :mod:`ssfbench.datasets._prepared`); a copy with errors is refused like ``open`` refuses it."""
        from ssfbench.datasets._prepared import is_prepared, write_prepared

        if root is not None and is_prepared(root):
            raise UserError(f"{root}: already a prepared store; pass the folder of the original copy")
        ds = cls._open(root, image_size=image_size, seed=seed, **options)
        return write_prepared(ds, out, codec=codec)

    # ---- the LabeledFrames contract --------------------------------------------------------
    def fingerprint(self) -> str:
        """Digest of the label files' bytes, the rows (keys and image paths), options and crop."""
        return self._fingerprint

    def read_image(self, index: int) -> np.ndarray:
        """Row ``index`` as a uint8 ``[S, S, 3]`` face crop (``S`` = the ``image_size`` opened with),
        prepared as :meth:`preprocessing` says."""
        path = self.root / self.paths[index]
        if not self.aligned:
            return read_face(path, None, self.image_size)
        points = self.face_points(index)
        if points is not None:
            self._count("landmarks", index)
            return read_aligned(path, self.matrix(points, index), self.image_size)
        if self.FALLBACK == "box" and np.isfinite(self.boxes[index]).all():
            self._count("box", index)
            return read_face(path, tuple(map(float, self.boxes[index])), self.image_size)
        return self.crop_array(read_rgb(path)[0], index, str(path))

    def read_images(self, indices: Sequence[int]) -> list[np.ndarray]:
        """Rows ``indices``, decoded by a few threads (Pillow releases the GIL while decoding)."""
        return thread_map(self.read_image, [int(i) for i in indices])

    # ---- faces -----------------------------------------------------------------------------
    @property
    def aligned(self) -> bool:
        """Whether faces are prepared the paper's way (``crop=align``)."""
        return self.options.get("crop", "align") == "align"

    def face_points(self, index: int) -> np.ndarray | None:
        """The five alignment points of row ``index`` (source pixels), or None when it has none."""
        pts = self.points[index]
        return pts.astype(np.float64) if np.isfinite(pts).all() else None

    def matrix(self, points: np.ndarray, index: int | None = None) -> np.ndarray:
        """The source -> crop alignment matrix for ``points`` (of row ``index``) at this dataset's
        size and margin; landmarks no similarity fits are a :class:`UserError` naming the row."""
        try:
            return alignment.alignment_matrix(points, self.image_size, self.options.get("margin", alignment.MARGIN))
        except ValueError as exc:
            row = f" row {self.keys[index]}" if index is not None else ""
            raise UserError(f"{self.name}{row}: {exc}") from None

    def crop_array(self, image: np.ndarray, index: int, where: str) -> np.ndarray:
        """The crop of row ``index`` from its decoded frame ``image`` (uint8 RGB): aligned on its
        landmarks, else the fallback (box, or the largest detected face), else the centre square
        (counted, and warned about once naming ``where``)."""
        size = self.image_size
        if not self.aligned:
            return _centre(image, size)
        points = self.face_points(index)
        if points is not None:
            self._count("landmarks", index)
            return alignment.warp(image, self.matrix(points, index), size)
        if self.FALLBACK == "box" and np.isfinite(self.boxes[index]).all():
            self._count("box", index)
            return crop_resize(Image.fromarray(image), tuple(map(float, self.boxes[index])), size)
        from ssfbench.faces.detection import default_detector

        faces = default_detector().detect(image)
        if faces:
            self._count("detected", index)
            return alignment.warp(image, self.matrix(faces[0].landmarks), size)
        if self._count(NO_FACE, index):
            warnings.warn(f"{self.name}: no face detected in {where} (the centre square is used; such frames are "
                          f"counted in the results' face_preprocessing and by `ssfbench datasets verify`)",
                          DatasetWarning, stacklevel=2)
        return _centre(image, size)

    def _count(self, how: str, index: int) -> bool:
        """Record how row ``index``'s face was found; True the first time any row had no face."""
        with self._face_lock:
            self._face_of[index] = how
            first, self._no_face_seen = how == NO_FACE and not self._no_face_seen, self._no_face_seen or how == NO_FACE
            return first

    def __getstate__(self) -> dict[str, Any]:
        """Picklable for data-loader workers (the lock is recreated; a worker counts its own reads)."""
        state = dict(self.__dict__)
        state.pop("_face_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._face_lock = threading.Lock()

    @property
    def faces_found(self) -> Counter[str]:
        """How the face of every row read so far was found (each row counted once)."""
        with self._face_lock:
            return Counter(self._face_of.values())

    def needs_detector(self) -> bool:
        """Whether some row will be cropped around a detected face."""
        if not self.aligned or self.FALLBACK != "detect" or not len(self):
            return False
        return not np.isfinite(self.points).all()

    def face_summary(self) -> dict[str, int]:
        """Rows with landmarks, with a face box to fall back on, and left to detect."""
        has_points = np.isfinite(self.points).all(axis=(1, 2))
        has_box = np.isfinite(self.boxes).all(axis=1) & ~has_points if self.FALLBACK == "box" else np.zeros(len(self), bool)
        return {"landmarks": int(has_points.sum()), "box": int(has_box.sum()),
                "detect": int(len(self) - has_points.sum() - has_box.sum())}

    def crop_record(self) -> dict[str, Any]:
        """How faces are cut (part of the fingerprint; :meth:`preprocessing` adds the counts)."""
        if not self.aligned:
            return {"crop": "center-square", "paper": False, "output_size": self.image_size,
                    "resample": "bilinear (antialiased)",
                    "note": "crop=centre: the centre square of every frame (not the paper's preprocessing)"}
        record = {"crop": "aligned", "paper": True, "landmarks": self.landmark_source or "none",
                  **alignment.record(self.image_size, self.options.get("margin", alignment.MARGIN))}
        if self.FALLBACK == "box":
            record["without_landmarks"] = "the face box, squared (no alignment)"
        else:
            record["without_landmarks"] = "detected: dlib + 68 landmarks, aligned; no face: centre square (counted)"
            if self.needs_detector():
                from ssfbench.faces.detection import default_detector

                record.update(default_detector().record())
        return record

    def preprocessing(self) -> dict[str, Any]:
        """The face-crop choice and the rows left out of the protocol (recorded in cache attributes,
        prepared stores and results; how the faces read were found is ``faces_found``, apart,
        because it grows while reading)."""
        return {**self.crop_record(), "rows_skipped": self.problems.counts("skip")}

    # ---- verification ----------------------------------------------------------------------
    def check_media(self, sample: int | None = None) -> None:
        """Decode every image of the protocol (or ``sample`` of them); each failure is an error."""
        unique = sorted(set(self.paths.tolist()))
        chosen = sample_indices(len(unique), sample)
        paths = [self.root / unique[i] for i in chosen]
        for path, why in zip(paths, thread_map(check_image, paths)):
            if why is not None:
                self.problems.error("unreadable image", path, why)
        what = "all" if len(chosen) == len(unique) else f"a random sample of {len(chosen)} of"
        self.media_checked = f"{what} {len(unique)} images decoded"
        self.check_faces(sample)

    def check_faces(self, sample: int | None = None) -> None:
        """Under ``crop=align``, look for the face in every row without landmarks (or ``sample`` of
        them), so the report says how many have one (:meth:`face_report`)."""
        if not self.needs_detector():
            return
        rows = np.flatnonzero(~np.isfinite(self.points).all(axis=(1, 2)))
        chosen = rows[sample_indices(len(rows), sample)]
        def look(index: int) -> None:
            try:
                self.read_images([index])
            except UserError:
                pass  # an unreadable image: check_media reports it

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DatasetWarning)  # the report counts them instead
            for index in chosen.tolist():  # one at a time: video readers are not thread-safe
                look(index)
        self._faces_checked = len(chosen)

    def face_report(self) -> str:
        """One line: rows with landmarks / a box / to detect, and what detection found when checked."""
        summary = self.face_summary()
        if not self.aligned:
            return "crop=centre: the centre square of every frame (not the paper's preprocessing)"
        text = f"{summary['landmarks']} rows with landmarks"
        if self.FALLBACK == "box":
            text += f", {summary['box']} with the face box only"
        else:
            text += f", {summary['detect']} to detect"
            checked = getattr(self, "_faces_checked", 0)
            if checked:
                found = self.faces_found
                text += (f"; detection on {checked} of them: {found['detected']} faces found, "
                         f"{found[NO_FACE]} without a face (centre square)")
        return text

    def report_facts(self) -> list[tuple[str, str]]:
        """Lines of the report above the label table (subclasses add their own)."""
        n_sub = len(np.unique(self.subjects))
        who = f"{n_sub} subjects" if n_sub < len(self) else "no subject ids: each image is its own group"
        facts = [*self.layout.items(), ("rows", f"{len(self)} usable ({who}); "
                                                f"{self.problems.count('skip')} left out of the protocol")]
        folds = self.folds() if len(self) else []
        facts.append(("folds", " | ".join(f"{f.name}: train {len(f.train)} test {len(f.test)}" for f in folds)
                      or "none"))
        facts.append(("media", self.media_checked))
        facts.append(("faces", self.face_report()))
        return facts

    def report(self):
        """The :class:`ssfbench.api.verify.Report` of this copy."""
        from ssfbench.api.verify import Report, label_counts

        return Report(dataset=self.name, root=str(self.root), facts=self.report_facts(),
                      labels=label_counts(self.label_names, self.targets), problems=self.problems)


def _centre(image: np.ndarray, size: int) -> np.ndarray:
    """The centre square of a decoded frame, resized to ``size``."""
    return crop_resize(Image.fromarray(image), center_box(image.shape[1], image.shape[0]), size)


__all__ = ["RealFrames", "CROP_OPTION", "MARGIN_OPTION", "NO_FACE"]
