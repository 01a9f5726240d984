"""AffectNet (manually annotated part) read from its official layout: 8 expression classes one-hot
(codes 8-10 dropped and counted), faces cut from the csv's boxes, ROC-AUC per class.

Layout (names matched case-insensitively; ``--root`` may also be a parent folder)::

    <root>/Manually_Annotated_file_lists/training.csv    with or without a header row
    <root>/Manually_Annotated_file_lists/validation.csv
    <root>/Manually_Annotated_Images/<subDirectory_filePath>      (or Manual_Annot/Manually_Annotated_Images)

Columns, in order: ``subDirectory_filePath, face_x, face_y, face_width, face_height,
facial_landmarks, expression, valence, arousal``. Rows holding ``NULL`` are counted and skipped;
expression codes 8 (None), 9 (Uncertain) and 10 (No-Face) are counted and dropped; anything else
unparsable is an error. ``Automatically_Annotated`` lists are never read.

Split (the paper's supplement, section 1): the 8-class subset of ``training.csv`` is split at
random 85/15 into training and test (about 287,000 / 58,000 images), and ``validation.csv``
(about 4,000 images) is the separate validation set. The split hashes each image path with the
seed (order- and download-independent). The probe trains on the 85% and is scored on the 15%
(one fold, ``test``); the validation set is exposed as ``splits == "val"`` and not used by the
fixed-hyper-parameter probe.

Faces (``crop=align``, the default): aligned on the csv's 68 landmarks (iBUG order); a row whose
landmarks are missing, not 136 numbers, or not all inside the image (of the five alignment points)
falls back to its csv box, made square (side = the larger of width and height, same centre; parts
outside the image are black). A box that does not overlap its image at all is an error naming the
image and the list line (``verify`` lists every one), never an all-black crop. Lists with a header
are read by column name (a missing column is named); lists without one need all 9 columns; paths
written with backslashes are read. ``crop=centre`` cuts the
centre square instead (not the paper's; marked in tables). ``preprocessing()`` records it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ssfbench.api.dataset import Fold
from ssfbench.datasets.kit import (
    CROP_OPTION,
    MARGIN_OPTION,
    Option,
    RealFrames,
    entries,
    find_path,
    read_aligned,
    read_face,
    read_rows,
    read_text,
    relative,
    sample_indices,
    square_box,
    stable_fraction,
    thread_map,
)
from ssfbench.errors import UserError
from ssfbench.faces.alignment import five_points

COLUMNS: tuple[str, ...] = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                            "facial_landmarks", "expression", "valence", "arousal")
#: The 8 classes (codes 0..7), in label order.
CLASSES: tuple[str, ...] = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
DROPPED = {8: "None", 9: "Uncertain", 10: "No-Face"}
TRAIN_FRACTION = 0.85
LIST_FOLDERS = ("Manually_Annotated_file_lists", "Manually_Annotated_file_list", "Manual_Annot")
IMAGE_CHAINS = (("Manually_Annotated_Images",), ("Manual_Annot", "Manually_Annotated_Images"),
                ("Manually_Annotated", "Manually_Annotated_Images"))


class AffectNet(RealFrames):
    """AffectNet manually annotated images, 8 classes one-hot; 85/15 of training.csv, validation.csv as val."""

    name = "affectnet"
    summary = "AffectNet (your copy): 8 expressions (codes 8-10 dropped), training.csv 85/15 + validation.csv, AUC"
    label_names = CLASSES
    metric = "auc"
    OPTIONS: dict[str, Option] = {"crop": CROP_OPTION, "margin": MARGIN_OPTION}
    FALLBACK = "box"

    # ---- scanning --------------------------------------------------------------------------
    def _scan(self) -> None:
        self.splits = np.array([], dtype=str)
        self.sources = np.array([], dtype=str)  # "<list> line <n>" of every row
        self._listing: dict[str, set[str] | None] = {}
        training, validation = self._find_lists()
        if training is None:
            self.problems.error("training list not found", self.root,
                                "expected Manually_Annotated_file_lists/training.csv")
            return
        if validation is None:
            self.problems.note("validation list not found", self.root,
                               "validation.csv is the paper's validation set; the probe does not need it")
        tables = [t for t in (self._read_list(training, "pool"),
                              self._read_list(validation, "val") if validation else None) if t is not None]
        table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
        image_dir = self._image_dir(table)
        if image_dir is None:
            self.problems.error("label file without images", training,
                                "no Manually_Annotated_Images folder holding its images under the root")
            return
        table = self._resolve(table, image_dir)
        self._fill(table, image_dir)
        self.layout = {
            "lists": ", ".join(relative(p, self.root) for p in (training, validation) if p is not None),
            "images": relative(image_dir, self.root) or ".",
            "split": "training.csv 85/15 train/test (hashed), validation.csv = val",
            "sizes": ", ".join(f"{s} {int((self.splits == s).sum())}" for s in ("train", "val", "test")),
            "crop": ("centre square of each image (crop=centre: not the paper's preprocessing)"
                     if self.options["crop"] == "centre" else
                     f"aligned on the csv's 68 landmarks ({self.face_summary()['box']} rows without them: "
                     "the csv box, squared)"),
        }

    def landmark_places(self) -> list[str]:
        """Where the landmarks come from."""
        return ["the facial_landmarks column of training.csv / validation.csv"]

    def _find_lists(self) -> tuple[Path | None, Path | None]:
        """``training.csv`` and ``validation.csv`` of the manually annotated part."""
        found: dict[str, Path] = {}
        for folder, dirs, files in os.walk(self.root):
            rel = Path(folder).relative_to(self.root)
            dirs[:] = sorted(d for d in dirs if "automatic" not in d.lower()
                             and not d.lower().endswith("_images") and len(rel.parts) < 3)
            for name in sorted(files):
                low = name.lower()
                if low in ("training.csv", "validation.csv") and low not in found:
                    found[low] = Path(folder) / name
        return found.get("training.csv"), found.get("validation.csv")

    def _read_list(self, path: Path, split: str) -> pd.DataFrame | None:
        """Valid rows of one list; NULL rows and codes 8-10 are skipped, bad rows are errors."""
        text = read_text(path, self.problems, self.digest)
        if text is None:
            return None
        df, lines = read_rows(path, text, self.problems)
        if df.empty:
            self.problems.error("empty label file", path, "no rows")
            return None
        if df.iloc[0, 0].strip() == COLUMNS[0]:  # a header: columns are found by name
            names = [str(c).strip() for c in df.iloc[0]]
            missing = [c for c in COLUMNS[:7] if c not in names]
            if missing:
                self.problems.error("missing column", f"{path} line 1",
                                    f"no {', '.join(missing)} column (the header has {','.join(names)})")
                return None
            df, lines = df.iloc[1:], lines[1:]
            df = pd.DataFrame({j: df[names.index(c)] if c in names else "" for j, c in enumerate(COLUMNS)})
        elif df.shape[1] < len(COLUMNS):
            self.problems.error("missing column", path,
                                f"{df.shape[1]} fields per line, expected {len(COLUMNS)} ({','.join(COLUMNS)})")
            return None
        df = df.reindex(columns=range(len(COLUMNS)), fill_value="")
        cells = df.apply(lambda col: col.str.strip())
        null = (cells == "NULL").any(axis=1).to_numpy()
        for line in lines[null]:
            self.problems.skip("NULL row", f"{path} line {line}")
        cells, lines = cells[~null], lines[~null]
        code = pd.to_numeric(cells[6], errors="coerce").to_numpy()
        box = np.stack([pd.to_numeric(cells[j], errors="coerce").to_numpy(np.float64) for j in (1, 2, 3, 4)], 1) \
            if len(cells) else np.zeros((0, 4))
        bad_code = ~np.isin(code, np.arange(11))
        bad_box = ~np.isfinite(box).all(1) | (box[:, 2] <= 0) | (box[:, 3] <= 0)
        bad_path = (cells[0] == "").to_numpy()
        for i in np.flatnonzero(bad_code | bad_box | bad_path):
            why = ("empty subDirectory_filePath" if bad_path[i] else
                   f"expression {cells.iloc[i, 6]!r} is not a code 0..10" if bad_code[i] else
                   "face box is not four numbers with positive width and height")
            self.problems.error("malformed row", f"{path} line {lines[i]}", why)
        good = ~(bad_code | bad_box | bad_path)
        dropped = good & np.isin(code, list(DROPPED))
        for line, c in zip(lines[dropped], code[dropped]):
            self.problems.skip("expression code 8-10 dropped", f"{path} line {line}", f"code {int(c)} ({DROPPED[int(c)]})")
        keep = good & ~dropped
        keys = cells[0].str.replace("\\", "/", regex=False)  # lists written on Windows
        return pd.DataFrame({"key": keys.to_numpy()[keep], "line": lines[keep], "file": path.name,
                             "code": code[keep].astype(np.int64), "x": box[keep, 0], "y": box[keep, 1],
                             "w": box[keep, 2], "h": box[keep, 3], "split": split,
                             "landmarks": cells[5].to_numpy()[keep]})

    def _image_dir(self, table: pd.DataFrame) -> Path | None:
        """The folder under which the rows' ``subDirectory_filePath`` resolve (tried on a few rows)."""
        named = find_path(self.root, IMAGE_CHAINS, depth=2)
        candidates = [named, self.root] if named is not None else [self.root]
        probe = table["key"].head(20).tolist() if not table.empty else []
        for folder in candidates:
            if not probe or any((folder / key).is_file() for key in probe):
                return folder
        return None

    def _exists(self, image_dir: Path, key: str) -> bool:
        """Whether ``image_dir/key`` exists (each sub-folder listed once)."""
        sub, _, name = key.replace("\\", "/").rpartition("/")
        if sub not in self._listing:
            listed = entries(image_dir / sub)
            self._listing[sub] = {e.name for e in listed} if listed else None
        names = self._listing[sub]
        return names is not None and name in names

    def _resolve(self, table: pd.DataFrame, image_dir: Path) -> pd.DataFrame:
        """Rows whose image exists, duplicates removed, with the hashed split; the others are skipped."""
        if table.empty:
            return table
        dup = table["key"].duplicated(keep="first").to_numpy()
        for key, file, line in zip(table["key"][dup], table["file"][dup], table["line"][dup]):
            self.problems.skip("image listed twice (first kept)", f"{file} line {line}", key)
        table = table[~dup]
        exists = np.array([self._exists(image_dir, k) for k in table["key"]], bool)
        for key, file, line in zip(table["key"][~exists], table["file"][~exists], table["line"][~exists]):
            self.problems.skip("image missing", image_dir / key, f"listed in {file} line {line}")
        if not exists.any():
            self.problems.error("label file without images", image_dir, "none of the listed images exists")
        table = table[exists]
        frac = stable_fraction(table["key"].tolist(), f"affectnet|{self.seed}")
        split = np.where(table["split"] == "val", "val", np.where(frac < TRAIN_FRACTION, "train", "test"))
        table = table.assign(split=split)
        order = {"train": 0, "val": 1, "test": 2}
        return table.iloc[np.argsort(table["split"].map(order).to_numpy(), kind="stable")]

    def _fill(self, table: pd.DataFrame, image_dir: Path) -> None:
        if table.empty:
            return
        prefix = relative(image_dir, self.root)
        prefix = "" if prefix == "." else prefix + "/"
        self.keys = table["key"].to_numpy(str)
        self.subjects = self.keys.copy()
        self.targets = np.eye(len(CLASSES), dtype=np.int8)[table["code"].to_numpy()]
        self.paths = (prefix + table["key"]).to_numpy(str)
        self.splits = table["split"].to_numpy(str)
        self.sources = (table["file"] + " line " + table["line"].astype(str)).to_numpy(str)
        for split in ("train", "test"):
            if not (self.splits == split).any():
                self.problems.error("empty split", self.root, f"no usable {split} images (the fold needs both)")
        self.boxes = np.array([square_box(x, y, w, h) for x, y, w, h in table[["x", "y", "w", "h"]].to_numpy()],
                              np.float32).reshape(-1, 4)
        self.points = np.stack([_five(text) for text in table["landmarks"]]).astype(np.float32).reshape(-1, 5, 2)
        self.landmark_source = "csv facial_landmarks (68 points)"

    # ---- faces outside the image ------------------------------------------------------------
    def _face_fit(self, index: int, width: int, height: int) -> str:
        """How row ``index``'s face fits its ``width`` x ``height`` image: ``landmarks`` (all five
        alignment points inside it), ``box`` (no landmarks, or some outside: the csv box, which
        overlaps the image) or ``outside`` (the box does not overlap the image: the crop would be black)."""
        points = self.face_points(index)
        if points is not None and ((points >= 0) & (points <= (width, height))).all():
            return "landmarks"
        left, top, right, bottom = map(float, self.boxes[index])
        return "box" if left < width and top < height and right > 0 and bottom > 0 else "outside"

    def _outside_message(self, index: int, width: int, height: int) -> str:
        box = ", ".join(f"{v:g}" for v in self.boxes[index])
        return (f"listed in {self.sources[index]}: its face box (left, top, right, bottom = {box}) lies outside "
                f"the {width}x{height} image" + (" and so do its landmarks" if self.face_points(index) is not None
                                                  else ""))

    def read_image(self, index: int) -> np.ndarray:
        """Row ``index`` as a uint8 face crop: aligned on its landmarks when all five alignment points
        lie in the image, else its csv box; a box outside the image is a :class:`UserError` naming the
        file and the list line (never an all-black crop)."""
        if not self.aligned:
            return super().read_image(index)
        path = self.root / self.paths[index]
        width, height = image_size(path)
        fit = self._face_fit(index, width, height)
        if fit == "outside":
            raise UserError(f"{path}: {self._outside_message(index, width, height)}")
        if fit == "landmarks":
            self._count("landmarks", index)
            return read_aligned(path, self.matrix(self.face_points(index), index), self.image_size)
        self._count("box", index)
        return read_face(path, tuple(map(float, self.boxes[index])), self.image_size)

    def check_media(self, sample: int | None = None) -> None:
        """Decode the images (see :meth:`RealFrames.check_media`), then check every row's face
        against its image's size: landmarks outside it are a note (the box is used), a box outside
        it an error."""
        super().check_media(sample)
        if not self.aligned or not len(self):
            return
        rows = sample_indices(len(self), sample)

        def size(index: int) -> tuple[int, int] | None:
            try:
                return image_size(self.root / self.paths[index])
            except UserError:
                return None  # unreadable: reported by the decoding check

        for index, wh in zip(rows.tolist(), thread_map(size, rows.tolist())):
            if wh is None:
                continue
            fit = self._face_fit(index, *wh)
            if fit == "outside":
                self.problems.error("face box outside the image", self.root / self.paths[index],
                                    self._outside_message(index, *wh))
            elif fit == "box" and self.face_points(index) is not None:
                self.problems.note("landmarks outside the image (the csv box is used)",
                                   self.root / self.paths[index], f"listed in {self.sources[index]}")

    # ---- protocol --------------------------------------------------------------------------
    def folds(self) -> list[Fold]:
        """One fold: train on 85% of training.csv, test on the other 15% (validation not used)."""
        return [Fold("test", np.flatnonzero(self.splits == "train"), np.flatnonzero(self.splits == "test"))]



def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of the image at ``path`` as displayed (EXIF rotations by 90 degrees
    swap them), read from its header only. A missing or corrupt file is a :class:`UserError`."""
    try:
        with Image.open(path) as im:
            width, height = im.size
            if im.getexif().get(0x0112) in (5, 6, 7, 8):
                width, height = height, width
            return width, height
    except FileNotFoundError:
        raise UserError(f"{path}: image not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: unreadable image ({exc})") from None


def _five(text: str) -> np.ndarray:
    """The five alignment points of a csv ``facial_landmarks`` cell (136 numbers ``x1;y1;...``),
    NaN when the cell is empty or malformed (the row then falls back to its box)."""
    try:
        values = np.array([float(v) for v in text.split(";") if v.strip()], dtype=np.float64)
    except ValueError:
        values = np.zeros(0)
    if values.size != 136 or not np.isfinite(values).all():
        return np.full((5, 2), np.nan)
    return five_points(values.reshape(68, 2))
