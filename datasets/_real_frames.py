"""The base of the labelled adapters over users' copies (BP4D, DISFA, EmotioNet, AffectNet):
scanning a copy without raising, the one-line error and skip warning of ``open``, ``verify``'s
report, prepared stores, face crops per row and the fingerprint.

Faces, the paper's way by default (``crop=align``): a row with landmarks (the dataset's own, in
any scheme of :mod:`ssfbench.faces.alignment`) is aligned on them; a row without them falls back to the
adapter's :attr:`~RealFrames.FALLBACK`: its face box (AffectNet's csv) or dlib detection plus 68
landmarks (:mod:`ssfbench.faces.detection`, the ``[faces]`` extra). A frame in which no face is detected
is counted (no warning per frame) and cut to its centre square. :meth:`RealFrames.face_ways` says
how every row's face is prepared; :meth:`RealFrames.face_account` turns that into the share of
frames prepared the paper's way that every result records (and lists the frames that fell back in
the run folder); ``verify`` reports the same share. ``crop=centre`` cuts every frame to its centre
square: an explicit deviation, recorded as ``paper: false`` and marked in ``compare`` tables."""

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
from ssfbench.datasets._digest import Digest
from ssfbench.datasets._files import require_root
from ssfbench.datasets._problems import DatasetWarning, Problems
from ssfbench.errors import UserError
from ssfbench.faces import alignment
from ssfbench.faces.images import (
    center_box,
    check_image,
    crop_resize,
    read_aligned,
    read_face,
    read_rgb,
    sample_indices,
    thread_map,
)

#: how faces are cut: ``align`` = the paper's preprocessing, ``centre`` = an explicit deviation
CROP_OPTION = Option(str, "align", "align: the paper's (landmarks, else the fallback: box or detected face); "
                                   "centre: the centre square, not comparable with the paper", ("align", "centre"))
MARGIN_OPTION = Option(float, alignment.MARGIN, "context around the alignment template (0 = the template)")
NO_FACE = "no face detected (centre square)"
#: how a row's face is prepared under ``crop=centre`` (every row)
CENTRE_CHOSEN = "centre square (crop=centre)"
#: the file in the run folder listing the frames whose faces fell back (``{dataset}`` filled in)
FALLBACK_LIST = "faces-{dataset}.tsv"
#: ``verify`` calls a copy "usable, but not the paper's preprocessing" when more than this share
#: (percent) of its frames fall back
MOSTLY_FALLBACK = 50.0


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
            if store.image_size < int(image_size):  # its crops would be upsampled, the result say otherwise
                raise UserError(f"{root}: holds {store.image_size}-pixel face crops, smaller than --image-size "
                                f"{image_size}; pass --image-size {store.image_size} (or less), or prepare it "
                                f"again with --image-size {image_size}")
            return store
        ds = cls(require_root(root, cls.name), image_size=image_size, seed=seed, **options)
        ds.problems.raise_errors(cls.name, ds.root)
        ds.problems.warn_skips(cls.name, ds.root)
        if ds.needs_detector():  # one line naming the pip command before any work, not at the first frame
            from ssfbench.faces.detection import default_detector

            default_detector()
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
        self._count(NO_FACE, index)  # no warning per frame: the run's printout ends with one line
        return _centre(image, size)

    def _count(self, how: str, index: int) -> None:
        """Record how row ``index``'s face was found."""
        with self._face_lock:
            self._face_of[index] = how

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

    def has_landmarks(self) -> np.ndarray:
        """bool ``[N]``: the rows aligned on the dataset's own landmarks (known without decoding;
        an adapter whose landmarks are read per frame overrides it)."""
        return np.isfinite(self.points).all(axis=(1, 2))

    def _to_detect(self) -> np.ndarray:
        """bool ``[N]``: the rows whose face is detected (no landmarks, and no box to fall back on)."""
        rows = ~self.has_landmarks()
        if self.FALLBACK == "box" and len(self.boxes) == len(self):
            rows &= ~np.isfinite(self.boxes).all(axis=1)
        return rows

    def needs_detector(self) -> bool:
        """Whether some row will be cropped around a detected face."""
        if not self.aligned or not len(self):
            return False
        return bool(self._to_detect().any())

    def face_summary(self) -> dict[str, int]:
        """Rows with landmarks, with a face box to fall back on, and left to detect."""
        has_points = self.has_landmarks()
        detect = self._to_detect()
        return {"landmarks": int(has_points.sum()), "box": int((~has_points & ~detect).sum()),
                "detect": int(detect.sum())}

    def landmark_places(self) -> list[str]:
        """Where this adapter looks for the dataset's landmarks (named when a copy has none)."""
        return []

    def face_ways(self, complete: bool = False) -> np.ndarray:
        """How every row's face is prepared (object ``[N]``): ``landmarks``, ``detected`` (the paper's
        way), ``box``, :data:`NO_FACE` or :data:`CENTRE_CHOSEN`; ``""`` for a row to detect that this
        process has not read, unless ``complete``, which reads (detects) those rows first."""
        ways = np.full(len(self), "", dtype=object)
        if not self.aligned:
            ways[:] = CENTRE_CHOSEN
            return ways
        detect = self._to_detect()
        ways[self.has_landmarks()] = "landmarks"
        ways[~self.has_landmarks() & ~detect] = "box"
        with self._face_lock:
            seen = dict(self._face_of)
        for row, how in seen.items():
            if detect[row]:
                ways[row] = how
        missing = np.flatnonzero(ways == "")
        if complete and len(missing):
            for start in range(0, len(missing), 64):
                self.read_images(missing[start:start + 64].tolist())
            return self.face_ways()
        return ways

    def _ways_from_list(self, path: Path, ways: np.ndarray) -> np.ndarray:
        """``ways`` completed from the fallback list an earlier run wrote for this very dataset version
        (same fingerprint), or unchanged when ``path`` is not such a list."""
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return ways
        if not lines or lines[0] != _list_header(self):
            return ways
        fell = {line.split("\t")[0]: line.split("\t")[-1] for line in lines[2:] if line}
        out = ways.copy()
        for row in np.flatnonzero(ways == ""):
            out[row] = fell.get(str(self.keys[row]), "detected")
        return out

    def fallback_list(self, folder: Path) -> Path:
        """Where :meth:`face_account` lists the rows that fell back, in the run folder ``folder``."""
        return Path(folder) / FALLBACK_LIST.format(dataset=self.name)

    def face_account(self, folder: Path | None = None) -> dict[str, int]:
        """How the face of every row is prepared, counted (``{way: rows}``, every row once): from the
        rows read in this process, else from the list in ``folder`` (the run folder) an earlier run of
        the same dataset version wrote, else by reading the missing rows now. Writes that list
        (:data:`FALLBACK_LIST`: a header, then one ``key, image, how`` line per frame that fell back)
        into ``folder`` when given."""
        from ssfbench.runtime.fileio import atomic_write_bytes

        ways = self.face_ways()
        path = self.fallback_list(folder) if folder is not None else None
        if (ways == "").any() and path is not None and path.is_file():
            ways = self._ways_from_list(path, ways)
        if (ways == "").any():
            ways = self.face_ways(complete=True)
        if path is not None:
            fell = np.flatnonzero((ways != "landmarks") & (ways != "detected"))
            body = [_list_header(self), "key\timage\thow",
                    *(f"{self.keys[i]}\t{self.paths[i] if i < len(self.paths) else ''}\t{ways[i]}" for i in fell)]
            data = ("\n".join(body) + "\n").encode("utf-8")
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, lambda tmp: Path(tmp).write_bytes(data))
        return dict(sorted(Counter(ways.tolist()).items()))

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
        if self.needs_detector():  # only when some row is detected: a copy with full landmarks names no detector
            from ssfbench.faces.detection import INSTALL, available, default_detector

            record.update(default_detector().record() if available() else {"detector": f"not installed ({INSTALL})"})
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
        """Under ``crop=align``, look for the face in every row to detect (or ``sample`` of them), so
        the report says how many have one (:meth:`face_report`). Without dlib the check is skipped
        (the report says so and names the pip command); everything else is still verified."""
        if not self.needs_detector():
            return
        from ssfbench.faces.detection import INSTALL, available

        if not available():
            self._face_check_skipped = f"face check skipped: dlib is not installed ({INSTALL} enables it)"
            return
        rows = np.flatnonzero(self._to_detect())
        chosen = rows[sample_indices(len(rows), sample)]
        def look(index: int) -> None:
            try:
                self.read_images([index])
            except UserError:
                pass  # an unreadable image: check_media reports it

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DatasetWarning)
            for index in chosen.tolist():  # one at a time: video readers are not thread-safe
                look(index)
        self._faces_checked = len(chosen)

    def paper_share(self) -> tuple[float | None, bool]:
        """The percentage of rows whose face is prepared the paper's way (landmarks, or detected and
        aligned) as far as this process knows it, and whether it is estimated from a sample of the
        rows to detect; ``None`` when rows to detect were not looked at."""
        if not len(self):
            return None, False
        if not self.aligned:
            return 0.0, False
        ways = self.face_ways()
        detect = self._to_detect()
        known = ways[detect] != ""
        paper = float((ways == "landmarks").sum())
        if detect.any():
            if not known.any():
                return None, False
            paper += detect.sum() * float((ways[detect] == "detected").sum()) / known.sum()
        return 100.0 * paper / len(self), bool(detect.any() and not known.all())

    def not_paper_cause(self) -> str:
        """Why frames fall back, as far as the report can tell (for ``verify``'s verdict)."""
        if not self.aligned:
            return "crop=centre cuts every frame to its centre square"
        summary, causes = self.face_summary(), []
        if summary["landmarks"] < len(self):
            places = self.landmark_places()
            if summary["landmarks"] == 0 and places:
                causes.append("no landmark files found where the adapter looks: " + "; ".join(places))
            elif places:
                causes.append(f"{len(self) - summary['landmarks']} rows have no landmarks "
                              f"(looked in: {'; '.join(places)})")
        if summary["box"]:
            causes.append(f"{summary['box']} rows have only a face box (cut square, not aligned)")
        ways = self.face_ways()[self._to_detect()]
        looked = int((ways != "").sum())
        if looked:
            causes.append(f"dlib found no face in {int((ways == NO_FACE).sum())} of the {looked} frames it checked")
        return "; ".join(causes) or "unknown"

    def face_report(self) -> str:
        """One line: rows with landmarks / a box / to detect, what detection found when checked, and
        the share of frames prepared the paper's way."""
        summary = self.face_summary()
        if not self.aligned:
            return ("crop=centre: the centre square of every frame (not the paper's preprocessing; "
                    "0 % of frames prepared the paper's way)")
        text = f"{summary['landmarks']} rows with landmarks"
        if self.FALLBACK == "box":
            text += f", {summary['box']} with the face box only"
        if summary["detect"] or self.FALLBACK != "box":
            text += f", {summary['detect']} to detect"
        checked = getattr(self, "_faces_checked", 0)
        if checked:
            ways = self.face_ways()[self._to_detect()]
            text += (f"; detection on {checked} of them: {int((ways == 'detected').sum())} faces found, "
                     f"{int((ways == NO_FACE).sum())} without a face (centre square)")
        skipped = getattr(self, "_face_check_skipped", None)
        if skipped:
            text += f"; {skipped}"
        share, estimated = self.paper_share()
        if share is not None:
            text += (f"; the paper's preprocessing: {share:.1f} % of frames"
                     + (f" (estimated from the {checked} checked)" if estimated else ""))
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

        facts = self.report_facts()
        share, _ = self.paper_share()
        extra = {"paper_share": share}
        if share is not None and 100.0 - share > MOSTLY_FALLBACK:
            extra["not_paper"] = f"{100.0 - share:.0f} % of frames fall back (likely cause: {self.not_paper_cause()})"
        return Report(dataset=self.name, root=str(self.root), facts=facts,
                      labels=label_counts(self.label_names, self.targets), problems=self.problems, extra=extra)


def _list_header(ds: RealFrames) -> str:
    """The first line of a fallback list: which dataset version it describes."""
    return f"# ssfbench faces of {ds.name} {ds.fingerprint()}: frames not prepared the paper's way"


def _centre(image: np.ndarray, size: int) -> np.ndarray:
    """The centre square of a decoded frame, resized to ``size``."""
    return crop_resize(Image.fromarray(image), center_box(image.shape[1], image.shape[0]), size)


__all__ = ["RealFrames", "CROP_OPTION", "MARGIN_OPTION", "NO_FACE"]
