"""Shared machinery of the adapters over users' copies of the real datasets.

* :class:`Problems` collects everything wrong with a copy (errors that make it unusable, rows
  skipped from the protocol, notes) instead of stopping at the first; ``open`` raises the first
  error as a one-line :class:`~ssfbench.errors.UserError` and warns about skipped rows, ``verify``
  lists them all.
* Path probing: case-insensitive lookup of the folders and files of an official layout.
* Face crops: read an image with Pillow (JPEG decoded at a reduced scale when that is enough),
  cut a square face box (from the dataset's box or landmarks, else the centre square) and resize
  it to the adapter's output size.
* Fingerprints, order-independent hash splits, the shipped fold lists and adapter options.
* :class:`RealFrames`, the base of the labelled adapters (BP4D, DISFA, EmotioNet, AffectNet).
"""

from __future__ import annotations

import abc
import csv
import hashlib
import io
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from PIL import Image

from ssfbench.data import Fold, LabeledFrames
from ssfbench.errors import UserError

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_SUFFIXES: tuple[str, ...] = (".avi", ".mp4", ".mkv", ".mov", ".wmv")
SEVERITIES: tuple[str, ...] = ("error", "skip", "note")
#: Threads that decode images (Pillow releases the GIL while decoding).
THREADS = min(4, os.cpu_count() or 1)


class DatasetWarning(UserWarning):
    """Rows of a dataset were skipped from the protocol (counted; ``verify`` lists them)."""


# =============================================================================================
# Problems
# =============================================================================================

@dataclass(frozen=True)
class Problem:
    """One thing wrong with a copy. ``severity``: ``error`` (the copy is not usable), ``skip``
    (a row left out of the protocol, counted) or ``note`` (worth knowing, changes nothing)."""

    severity: str
    kind: str
    where: str
    detail: str = ""

    def line(self) -> str:
        """``where: detail`` (or just ``where``)."""
        return f"{self.where}: {self.detail}" if self.detail else self.where


@dataclass
class Problems:
    """Every problem found in a copy, grouped by (severity, kind) in the order first seen."""

    groups: dict[tuple[str, str], list[Problem]] = field(default_factory=dict)

    def add(self, severity: str, kind: str, where: str | os.PathLike, detail: str = "") -> None:
        """Record one problem."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
        self.groups.setdefault((severity, kind), []).append(Problem(severity, kind, str(where), detail))

    def error(self, kind: str, where: str | os.PathLike, detail: str = "") -> None:
        """Record a problem that makes the copy unusable."""
        self.add("error", kind, where, detail)

    def skip(self, kind: str, where: str | os.PathLike, detail: str = "") -> None:
        """Record a row left out of the protocol."""
        self.add("skip", kind, where, detail)

    def note(self, kind: str, where: str | os.PathLike, detail: str = "") -> None:
        """Record something worth knowing that changes nothing."""
        self.add("note", kind, where, detail)

    def of(self, severity: str) -> list[tuple[str, list[Problem]]]:
        """``(kind, problems)`` of one severity, in the order first seen."""
        return [(kind, items) for (sev, kind), items in self.groups.items() if sev == severity]

    def count(self, severity: str) -> int:
        """How many problems of ``severity`` were recorded."""
        return sum(len(items) for _, items in self.of(severity))

    def counts(self, severity: str) -> dict[str, int]:
        """``kind -> count`` for one severity."""
        return {kind: len(items) for kind, items in self.of(severity)}

    @property
    def errors(self) -> list[Problem]:
        """Every error, grouped by kind."""
        return [p for _, items in self.of("error") for p in items]

    def raise_errors(self, dataset: str, root: Path | str) -> None:
        """Raise the first error as a one-line :class:`UserError` that names the file and says how
        many more there are."""
        errors = self.errors
        if not errors:
            return
        first = errors[0]
        more = len(errors) - 1
        tail = (f" (and {more} more problem{'s' if more > 1 else ''}; `ssfbench datasets verify {dataset} "
                f"--root {root}` lists them all)") if more else ""
        raise UserError(f"{dataset}: {first.kind}: {first.line()}{tail}")

    def warn_skips(self, dataset: str, root: Path | str) -> None:
        """One :class:`DatasetWarning` summarising the rows skipped from the protocol."""
        counts = self.counts("skip")
        if counts:
            parts = ", ".join(f"{kind} {n}" for kind, n in counts.items())
            warnings.warn(f"{dataset}: {sum(counts.values())} row(s) left out of the protocol ({parts}); "
                          f"`ssfbench datasets verify {dataset} --root {root}` lists them",
                          DatasetWarning, stacklevel=3)


# =============================================================================================
# Paths
# =============================================================================================

def require_root(root: Path | str | None, dataset: str) -> Path:
    """The user's copy as a ``Path``; a missing option or folder is a :class:`UserError`."""
    if root is None:
        raise UserError(f"{dataset}: no local copy given; pass --root {dataset}=PATH (the folder of your copy)")
    path = Path(root).expanduser()
    if not path.exists():
        raise UserError(f"{path}: {dataset} root not found")
    if not path.is_dir():
        raise UserError(f"{path}: {dataset} root must be a folder (or a prepared .h5 store)")
    return path


def entries(folder: Path) -> list[os.DirEntry]:
    """Entries of ``folder`` sorted by name ([] when it is missing or unreadable)."""
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:
        return []


def subdirs(folder: Path) -> list[Path]:
    """Sub-folders of ``folder``, sorted by name."""
    return [Path(e.path) for e in entries(folder) if e.is_dir()]


def find_child(parent: Path, names: Iterable[str], *, want_dir: bool = True) -> Path | None:
    """The first of ``names`` that exists in ``parent``, matched case-insensitively."""
    found = {e.name.lower(): e for e in entries(parent) if (e.is_dir() if want_dir else e.is_file())}
    for name in names:
        if name.lower() in found:
            return Path(found[name.lower()].path)
    return None


#: Folders with more sub-folders than this are not searched below (image trees, not layout).
MAX_FAN_OUT = 64


def descend(frontier: list[Path]) -> list[Path]:
    """The sub-folders of every folder in ``frontier``, or [] when there are too many to be layout
    folders (``MAX_FAN_OUT``): searching never walks into an image tree."""
    out = [d for f in frontier for d in subdirs(f)]
    return out if len(out) <= MAX_FAN_OUT else []


def find_path(root: Path, chains: Sequence[Sequence[str]], *, depth: int = 1) -> Path | None:
    """The first chain of folder names (each matched case-insensitively) found under ``root``, or
    under its sub-folders up to ``depth`` levels down (users point at a parent folder); shallower
    matches win."""
    frontier = [root]
    for level in range(depth + 1):
        for chain in chains:
            for base in frontier:
                node: Path | None = base
                for name in chain:
                    node = find_child(node, [name]) if node is not None else None
                if node is not None:
                    return node
        if level < depth:
            frontier = descend(frontier)
    return None


def find_parent_of(root: Path, pattern: re.Pattern, *, depth: int = 2, minimum: int = 1) -> Path | None:
    """The shallowest folder under ``root`` (``root`` included) holding at least ``minimum``
    sub-folders whose names match ``pattern``."""
    frontier = [root]
    for _ in range(depth + 1):
        for folder in frontier:
            if sum(1 for d in subdirs(folder) if pattern.fullmatch(d.name)) >= minimum:
                return folder
        frontier = descend(frontier)
    return None


def numbered_images(folder: Path) -> tuple[dict[int, str], list[str]]:
    """``{frame number: file name}`` of the images in ``folder`` whose names are a number, whatever
    the zero padding (``0643.jpg``, ``643.jpg``, ``00643.png``), and the names that clash (two files
    with the same number)."""
    out: dict[int, str] = {}
    clashes: list[str] = []
    for e in entries(folder):
        stem, suffix = os.path.splitext(e.name)
        if suffix.lower() in IMAGE_SUFFIXES and stem.isdigit() and e.is_file():
            n = int(stem)
            if n in out:
                clashes.append(e.name)
            else:
                out[n] = e.name
    return out, clashes


def read_text(path: Path, problems: Problems, digest: Digest | None = None) -> str | None:
    """The text of a label file (utf-8, BOM stripped, latin-1 as a fallback), fed to ``digest``;
    ``None`` and an error when it cannot be read."""
    try:
        blob = path.read_bytes()
    except OSError as exc:
        problems.error("unreadable label file", path, exc.strerror or str(exc))
        return None
    if digest is not None:
        digest.text(path.name).data(blob)
    try:
        return blob.decode("utf-8-sig")
    except UnicodeDecodeError:
        return blob.decode("latin-1")


def read_rows(path: Path, text: str, problems: Problems, *, sep: str = ",",
              usecols: Sequence[int] | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Every line of a delimited label file as a frame of strings (only the columns ``usecols``,
    labelled by position, when given) and the 1-based line number of each row. Lines with more
    or fewer fields than the first line are recorded as malformed rows (errors) and left out;
    blank lines are dropped."""
    widths = np.array([len(row) for row in csv.reader(io.StringIO(text), delimiter=sep)], np.int64)
    filled = np.flatnonzero(widths > 0)
    if not len(filled):
        return pd.DataFrame(), np.zeros(0, np.int64)
    expected = int(widths[filled[0]])
    for i in np.flatnonzero((widths > 0) & (widths != expected)):
        problems.error("malformed row", f"{path} line {i + 1}", f"{widths[i]} fields, expected {expected}")
    keep = np.flatnonzero(widths == expected)
    skip = np.flatnonzero(widths != expected).tolist()
    df = pd.read_csv(io.StringIO(text), sep=sep, header=None, dtype=object, keep_default_na=False,
                     skip_blank_lines=False, skiprows=skip, usecols=usecols)
    if len(df) != len(keep):  # quoting spread a row over lines: fall back to pandas' own rows
        df = pd.read_csv(io.StringIO(text), sep=sep, header=None, dtype=object, keep_default_na=False,
                         on_bad_lines="skip", usecols=usecols)
        keep = np.arange(len(df))
    return df.fillna("").reset_index(drop=True), keep + 1


def relative(path: str | Path, root: Path) -> str:
    """``path`` relative to ``root`` when it lies under it (for short reports)."""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


# =============================================================================================
# Faces
# =============================================================================================

Box = tuple[float, float, float, float]  # left, top, right, bottom in original-image pixels


def center_box(width: int, height: int) -> Box:
    """The largest centred square of a ``width`` x ``height`` image."""
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return (left, top, left + side, top + side)


def square_box(x: float, y: float, w: float, h: float, scale: float = 1.0) -> Box:
    """The square of side ``max(w, h) * scale`` centred on the box ``x, y, w, h``."""
    cx, cy = x + w / 2, y + h / 2
    half = max(w, h) * scale / 2
    return (cx - half, cy - half, cx + half, cy + half)


def landmark_box(points: np.ndarray, scale: float = 1.3) -> Box:
    """The square of side ``scale`` x the larger extent of ``points`` ([K, 2] x, y), centred on
    their bounding box."""
    lo, hi = points.min(0), points.max(0)
    return square_box(float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]), scale)


def crop_resize(image: Image.Image, box: Box, size: int) -> np.ndarray:
    """``box`` of ``image`` (RGB) resized to ``size`` x ``size`` (antialiased bilinear) as uint8
    ``[size, size, 3]``; parts of the box outside the image are black."""
    left, top, right, bottom = box
    if left >= 0 and top >= 0 and right <= image.width and bottom <= image.height:
        out = image.resize((size, size), Image.BILINEAR, box=(left, top, right, bottom))
    else:
        out = image.crop((round(left), round(top), round(right), round(bottom))).resize((size, size), Image.BILINEAR)
    return np.asarray(out, dtype=np.uint8)


def read_face(path: str | Path, box: Box | None, size: int) -> np.ndarray:
    """The face crop of the image at ``path``: ``box`` (original pixels; ``None`` = centre square)
    resized to ``size``. JPEGs are decoded at the smallest scale that still covers ``size``. A
    missing or corrupt file is a :class:`UserError` naming it."""
    try:
        with Image.open(path) as im:
            width, height = im.size
            box = box if box is not None else center_box(width, height)
            side = max(box[2] - box[0], box[3] - box[1], 1.0)
            if im.format == "JPEG":
                factor = min(1.0, size / side)
                im.draft("RGB", (max(1, math.ceil(width * factor)), max(1, math.ceil(height * factor))))
            rx, ry = im.size[0] / width, im.size[1] / height
            rgb = im.convert("RGB")
            return crop_resize(rgb, (box[0] * rx, box[1] * ry, box[2] * rx, box[3] * ry), size)
    except FileNotFoundError:
        raise UserError(f"{path}: image not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: unreadable image ({exc})") from None


def check_image(path: str | Path) -> str | None:
    """``None`` when the image at ``path`` decodes completely, else why not (decoded at a reduced
    scale where the format allows, so a check costs a fraction of a full read)."""
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                im.draft("RGB", (max(1, im.size[0] // 8), max(1, im.size[1] // 8)))
            im.load()
    except FileNotFoundError:
        return "not found"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"unreadable ({exc})"
    return None


def thread_map(fn: Callable[[Any], Any], items: Sequence[Any], threads: int = THREADS) -> list[Any]:
    """``[fn(x) for x in items]`` computed by up to ``threads`` threads (in order; the first
    exception is raised)."""
    if len(items) < 4 or threads < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(fn, items))


def sample_indices(n: int, sample: int | None, seed: int = 0) -> np.ndarray:
    """All of ``range(n)`` when ``sample`` is None or 0 or at least ``n``, else ``sample`` of them
    chosen at random (seeded), sorted."""
    if not sample or sample >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))


# =============================================================================================
# Fingerprints, splits, folds, options
# =============================================================================================

class Digest:
    """A sha256 fed with text, bytes and lists of strings; ``hex()`` is 16 hex chars."""

    def __init__(self, *parts: str) -> None:
        self._h = hashlib.sha256()
        for part in parts:
            self.text(part)

    def text(self, value: Any) -> Digest:
        """Feed ``str(value)`` and a separator."""
        self._h.update(str(value).encode())
        self._h.update(b"\0")
        return self

    def data(self, blob: bytes) -> Digest:
        """Feed raw bytes (with their length, so boundaries count)."""
        self._h.update(len(blob).to_bytes(8, "little"))
        self._h.update(blob)
        return self

    def strings(self, values: Iterable[str]) -> Digest:
        """Feed every string of ``values`` in order."""
        self._h.update("\0".join(values).encode())
        self._h.update(b"\1")
        return self

    def hex(self) -> str:
        """The first 16 hex chars of the digest."""
        return self._h.hexdigest()[:16]


def stable_fraction(keys: Sequence[str], salt: str) -> np.ndarray:
    """A number in [0, 1) per key from a hash of ``salt|key``: splits built on it do not depend on
    row order or on which other rows exist (a partial download keeps every image's side)."""
    out = np.empty(len(keys), dtype=np.float64)
    for i, key in enumerate(keys):
        digest = hashlib.blake2b(f"{salt}|{key}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "big") / 2.0**64
    return out


def load_parts(dataset: str) -> list[tuple[str, ...]]:
    """The subject parts of a standard k-fold protocol, read from the shipped ``folds/<dataset>.txt``
    (lines ``partN: SUBJ SUBJ ...``; ``#`` starts a comment)."""
    text = resources.files("ssfbench.datasets").joinpath("folds", f"{dataset}.txt").read_text(encoding="utf-8")
    parts: list[tuple[str, ...]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        label, sep, names = line.partition(":")
        if not sep or not re.fullmatch(r"part\d+", label.strip()):
            raise ValueError(f"folds/{dataset}.txt: bad line {raw!r}")
        parts.append(tuple(names.split()))
    return parts


def standard_folds(subjects: np.ndarray, parts: Sequence[Sequence[str]]) -> list[Fold]:
    """Subject-independent folds from parts: fold ``i`` (1-based) tests part ``P+1-i`` and trains on
    the other parts (fold1 tests part3, fold2 part2, fold3 part1, as ME-GraphAU and JAA-Net do).
    Rows of subjects in no part are in no fold."""
    folds = []
    for i in range(len(parts)):
        test_part = len(parts) - 1 - i
        train_subjects = [s for j, p in enumerate(parts) if j != test_part for s in p]
        test = np.isin(subjects, list(parts[test_part]))
        train = np.isin(subjects, train_subjects)
        folds.append(Fold(f"fold{i + 1}", np.flatnonzero(train), np.flatnonzero(test)))
    return folds


@dataclass(frozen=True)
class Option:
    """One adapter option (``--set KEY=VALUE`` on the command line, a keyword of ``open``)."""

    type: type
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None


def _convert(value: Any, kind: type) -> Any:
    if kind is bool and isinstance(value, str):
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    return kind(value)


def resolve_options(dataset: str, spec: dict[str, Option], given: dict[str, Any]) -> dict[str, Any]:
    """Defaults of ``spec`` overridden by ``given`` (strings converted); unknown keys and bad
    values are a :class:`UserError`."""
    out = {k: o.default for k, o in spec.items()}
    for key, value in given.items():
        key = key.replace("-", "_")
        if key not in spec:
            known = ", ".join(f"{k} ({o.help})" for k, o in spec.items()) or "none"
            raise UserError(f"{dataset}: no option {key!r} (options: {known})")
        try:
            value = _convert(value, spec[key].type)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{dataset}: option {key}: {exc}") from None
        if spec[key].choices is not None and value not in spec[key].choices:
            raise UserError(f"{dataset}: option {key} must be one of {', '.join(map(str, spec[key].choices))}, "
                            f"got {value!r}")
        out[key] = value
    return out


# =============================================================================================
# Base adapter
# =============================================================================================

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
    ADAPTER_VERSION: ClassVar[str] = "1"

    def __init__(self, root: Path, *, image_size: int = 64, seed: int = 0, **options: Any) -> None:
        self.root = root
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.options = resolve_options(self.name, self.OPTIONS, options)
        self.problems = Problems()
        self.layout: dict[str, str] = {}
        self.digest = Digest(self.name, self.ADAPTER_VERSION, str(sorted(self.options.items())), str(self.seed))
        self.keys = np.array([], dtype=str)
        self.subjects = np.array([], dtype=str)
        self.targets = np.zeros((0, len(self.label_names)), np.int8)
        self.paths = np.array([], dtype=str)
        self.boxes = np.zeros((0, 4), np.float32)
        self.media_checked = "not decoded (--quick)"
        self._scan()
        self.digest.text(self.image_size).text(sorted(self.crop_record().items()))
        self.digest.strings(self.keys.tolist()).strings(self.paths.tolist())
        self._fingerprint = self.digest.hex()

    # ---- construction ----------------------------------------------------------------------
    @abc.abstractmethod
    def _scan(self) -> None:
        """Read labels and list images; fill the arrays; record problems (never raise on data)."""

    @classmethod
    def open(cls, root: Path | None = None, *, image_size: int = 64, seed: int = 0) -> LabeledFrames:
        """Open the copy at ``root`` (or a store written by ``ssfbench datasets prepare``). Any error
        in the copy raises a one-line :class:`UserError` naming the file; skipped rows are counted
        and warned about (:class:`DatasetWarning`). Adapters with options override this with their
        options as keyword-only parameters (what ``run --data-option NAME.KEY=VALUE`` passes)."""
        return cls._open(root, image_size=image_size, seed=seed)

    @classmethod
    def _open(cls, root: Path | None, *, image_size: int = 64, seed: int = 0, **options: Any) -> LabeledFrames:
        """:meth:`open` with options as a dict (validated against ``OPTIONS``)."""
        from ssfbench.datasets._prepared import is_prepared, open_prepared

        if root is not None and is_prepared(root):
            store = open_prepared(Path(root), cls.name)
            wanted = {k: v for k, v in resolve_options(cls.name, cls.OPTIONS, options).items()
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
        them); returns a :class:`ssfbench.verify.Report` listing every problem."""
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
        """Row ``index`` as a uint8 ``[S, S, 3]`` face crop (``S`` = the ``image_size`` opened with)."""
        box = self.boxes[index]
        return read_face(self.root / self.paths[index], None if np.isnan(box[0]) else tuple(map(float, box)),
                         self.image_size)

    def read_images(self, indices: Sequence[int]) -> list[np.ndarray]:
        """Rows ``indices``, decoded by a few threads (Pillow releases the GIL while decoding)."""
        return thread_map(self.read_image, [int(i) for i in indices])

    def crop_record(self) -> dict[str, Any]:
        """How faces are cropped (subclasses describe their source of boxes)."""
        return {"crop": "center-square", "output_size": self.image_size, "resample": "bilinear (antialiased)"}

    def preprocessing(self) -> dict[str, Any]:
        """The face-crop choice plus the rows left out of the protocol (recorded in cache attributes)."""
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
        return facts

    def report(self):
        """The :class:`ssfbench.verify.Report` of this copy."""
        from ssfbench.verify import Report, label_counts

        return Report(dataset=self.name, root=str(self.root), facts=self.report_facts(),
                      labels=label_counts(self.label_names, self.targets), problems=self.problems)
