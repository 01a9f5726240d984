"""BP4D-Spontaneous read from its official layout: AU occurrence labels for the 12 benchmark AUs
and the standard subject-independent 3 folds (F1 at 0.5).

Layout (folder names matched case-insensitively; ``--root`` may also be a parent folder)::

    <root>/AUCoding/AU_OCC/<subject>_<task>.csv      e.g. F001_T1.csv
    <root>/Sequences/<subject>/<task>/<frame>.jpg    or Sequences_2D+3D/, 2D+3D/

Label files come in two header styles, both read by header name: the original integer header
``0,1,...,99`` (column N is AU N) and the re-released named header of about 35 columns
(``1,1,2,4,5,...``; its first cell is meaningless). Column 0 is always the frame number. Files
are comma-separated; another separator (``;``, tab) is an error that names it. Codes:
0 absent, 1 present, 9 unknown (masked as -1). Frame N of a CSV is image file number
``N + frame_offset`` (default 0), found whatever its zero padding (4, 3 or 2 digits: the adapter
lists each task folder and matches numbers, not names).

Faces, the paper's way (``crop=align``, the default): aligned on 49 landmarks when a per-frame list
in JAA-Net's format is given (``landmarks=BP4D_land.txt``: per line 98 numbers ``x1 y1 ... x49 y49``,
1-based pixels; ``landmark_paths=BP4D_path.txt``: the image path of each line, e.g.
``BP4D/F001/T1/2440.jpg``, matched on subject, task and CSV frame number), else on the 68 landmarks
of the face dlib detects (the ``[faces]`` extra). Where the official distribution keeps its own 2-D
landmarks is unverified, so they are not read. ``crop=centre`` cuts the centre square instead (not
the paper's; marked in tables). ``preprocessing()`` records which.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ssfbench.api.dataset import Fold
from ssfbench.datasets.kit import (
    CROP_OPTION,
    MARGIN_OPTION,
    Option,
    RealFrames,
    entries,
    find_parent_of,
    find_path,
    load_parts,
    numbered_images,
    read_rows,
    read_text,
    relative,
    standard_folds,
    subdirs,
)
from ssfbench.errors import UserError
from ssfbench.faces.alignment import five_points

#: The 12 benchmark AUs, in label order.
AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
SUBJECT = re.compile(r"[FM]\d{3}", re.IGNORECASE)
TASK = re.compile(r"T\d+", re.IGNORECASE)
LABEL_FILE = re.compile(r"([FM]\d{3})_(T\d+)\.csv", re.IGNORECASE)
IMAGE_FOLDERS = ("Sequences", "Sequences_2D+3D", "2D+3D", "images")
CODES = {0: 0, 1: 1, 9: -1}


def header_aus(cells: list[str]) -> dict[int, int] | None:
    """``{AU number: column}`` from a header row (column 0, the frame, is skipped); ``None`` when
    the row is not a header (a cell that is not a number, or a number twice)."""
    out: dict[int, int] = {}
    for j, cell in enumerate(cells[1:], start=1):
        text = re.sub(r"^au", "", cell.strip().strip("'\"").replace(" ", ""), flags=re.IGNORECASE)
        if text == "" and j == len(cells) - 1:
            continue  # a trailing comma
        if not text.isdigit() or int(text) in out:
            return None
        out[int(text)] = j
    return out


def header_style(cells: list[str]) -> str:
    """``integer`` for the original ``0..99`` header, ``named`` for the AU-named one."""
    return "integer" if [c.strip() for c in cells] == [str(i) for i in range(len(cells))] else "named"


class BP4D(RealFrames):
    """BP4D-Spontaneous AU occurrence frames (12 AUs) with the standard 3 subject folds."""

    name = "bp4d"
    summary = "BP4D-Spontaneous (your copy): 41 subjects, 12 AUs (9 = unknown), standard 3 subject folds, F1"
    label_names = tuple(f"AU{a}" for a in AUS)
    metric = "f1"
    OPTIONS = {
        "frame_offset": Option(int, 0, "image file number = CSV frame number + this"),
        "partial": Option(bool, False, "accept a copy without all 41 standard subjects (a note, not an error)"),
        "crop": CROP_OPTION,
        "margin": MARGIN_OPTION,
        "landmarks": Option(str, "", "a per-frame 49-point landmark list in JAA-Net's format (BP4D_*_land.txt)"),
        "landmark_paths": Option(str, "", "the image path of each line of the landmark list (BP4D_*_path.txt)"),
    }

    # ---- scanning --------------------------------------------------------------------------
    def _scan(self) -> None:
        label_dir = find_path(self.root, [("AUCoding", "AU_OCC"), ("AU_OCC",)], depth=2)
        image_dir = self._image_dir()
        if label_dir is None:
            self.problems.error("label folder not found", self.root,
                                "expected AUCoding/AU_OCC/<subject>_<task>.csv (e.g. F001_T1.csv)")
        if image_dir is None:
            self.problems.error("image folder not found", self.root,
                                "expected Sequences/<subject>/<task>/<frame>.jpg (or Sequences_2D+3D)")
        if label_dir is None or image_dir is None:
            return
        label_files = self._label_files(label_dir)
        folders = {(s.name.upper(), t.name.upper()): t for s in subdirs(image_dir) if SUBJECT.fullmatch(s.name)
                   for t in subdirs(s) if TASK.fullmatch(t.name)}
        for key, folder in sorted(folders.items()):
            if key not in label_files:
                self.problems.error("images without labels", folder,
                                    f"no label file {relative(label_dir, self.root)}/{key[0]}_{key[1]}.csv")
        rows: list[pd.DataFrame] = []
        styles = {"integer": 0, "named": 0}
        unlabelled = 0
        for (subject, task), path in sorted(label_files.items(), key=lambda kv: (kv[0][0], int(kv[0][1][1:]))):
            parsed = self._read_labels(path, styles)
            if parsed is None:
                continue
            folder = folders.get((subject, task))
            if folder is None:
                self.problems.error("label file without images", path,
                                    f"no image folder {relative(image_dir, self.root)}/{subject}/{task}")
                continue
            matched, n_images = self._match_images(path, folder, parsed)
            unlabelled += n_images - len(matched)
            if len(matched):
                rows.append(matched.assign(subject=subject, task=task, folder=relative(folder, self.root)))
        self._fill(rows)
        self._check_subjects()
        self.layout = {
            "labels": f"{relative(label_dir, self.root)}: {len(label_files)} files "
                      f"(header: 0..99 integer {styles['integer']}, AU-named {styles['named']})",
            "images": f"{relative(image_dir, self.root)}: {len(folders)} task folders; {unlabelled} images "
                      f"outside the coded segments (not used)",
            "frames": f"image file number = CSV frame + {self.options['frame_offset']}",
            "crop": self._crop_note(),
        }

    def _image_dir(self) -> Path | None:
        """The folder holding ``<subject>/<task>/`` image folders."""
        named = find_path(self.root, [(n,) for n in IMAGE_FOLDERS], depth=2)
        if named is not None and any(SUBJECT.fullmatch(d.name) for d in subdirs(named)):
            return named
        return find_parent_of(self.root, SUBJECT, depth=2)

    def _label_files(self, label_dir: Path) -> dict[tuple[str, str], Path]:
        """``{(subject, task): csv}``; other files in the folder are noted."""
        out = {}
        for e in entries(label_dir):
            m = LABEL_FILE.fullmatch(e.name)
            if m and e.is_file():
                out[(m.group(1).upper(), m.group(2).upper())] = Path(e.path)
            else:
                self.problems.note("unrecognised file in the label folder", e.path,
                                   "not <subject>_<task>.csv; ignored")
        if not out:
            self.problems.error("no label files", label_dir, "expected <subject>_<task>.csv files")
        return out

    def _read_labels(self, path: Path, styles: dict[str, int]) -> pd.DataFrame | None:
        """Columns ``frame, line, AU1..AU24`` (int; -1 unknown) of the valid rows of one CSV; bad
        rows are errors."""
        text = read_text(path, self.problems, self.digest)
        if text is None:
            return None
        cells = next(csv.reader(io.StringIO(text)), [])
        if not cells:
            self.problems.error("empty label file", path, "no header and no rows")
            return None
        if len(cells) == 1 and (sep := _separator(cells[0])) is not None:
            self.problems.error("unrecognised separator", f"{path} line 1",
                                f"fields separated by {sep!r}, expected ',' (the official AU_OCC files are "
                                f"comma-separated): {cells[0][:30]}...")
            return None
        columns = header_aus(cells)
        if columns is not None and not columns:
            self.problems.error("unrecognised header", f"{path} line 1",
                                f"names no AU column (expected 0,1,...,99 or AU numbers), got {','.join(cells[:6])}")
            return None
        if columns is None:
            self.problems.error("unrecognised header", f"{path} line 1",
                                f"expected 0,1,...,99 or AU numbers, got {','.join(cells[:6])},...")
            return None
        styles[header_style(cells)] += 1
        for au in AUS:
            if au not in columns:
                self.problems.note("AU missing from the header (marked unknown)", path, f"AU{au}")
        df, lines = read_rows(path, text, self.problems, usecols=sorted({0, *columns.values()}))
        data, lines = df.iloc[1:], lines[1:]
        frame = pd.to_numeric(data[0].str.strip(), errors="coerce")
        out = pd.DataFrame({"frame": frame.to_numpy(), "line": lines})
        bad = ~(np.isfinite(out["frame"]) & (out["frame"] >= 0) & (out["frame"] % 1 == 0))
        reasons = np.where(bad, "frame number is not a non-negative integer", "")
        for au in AUS:
            if au not in columns:
                out[f"AU{au}"] = -1
                continue
            code = pd.to_numeric(data[columns[au]].str.strip(), errors="coerce").to_numpy()
            invalid = ~np.isin(code, list(CODES))
            reasons = np.where(invalid & (reasons == ""), f"AU{au} is not 0, 1 or 9", reasons)
            bad |= invalid
            out[f"AU{au}"] = np.select([code == 1, code == 0], [1, 0], -1)
        bad = np.asarray(bad)
        if bad.any():
            raws = data[bad].itertuples(index=False)
            for line, reason, raw in zip(lines[bad], reasons[bad], raws):
                self.problems.error("malformed row", f"{path} line {line}",
                                    f"{reason}: {','.join(map(str, raw))[:60]}")
        out = out[~bad].astype({"frame": np.int64})
        dup = out["frame"].duplicated(keep="first")
        for line, frame in zip(out.loc[dup, "line"], out.loc[dup, "frame"]):
            self.problems.error("malformed row", f"{path} line {line}", f"frame {frame} appears twice")
        return out[~dup]

    def _match_images(self, path: Path, folder: Path, labels: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        """The rows of ``labels`` whose image exists (with its file name) and how many images the
        folder holds. Missing images are skipped rows; none at all is an error."""
        images, clashes = numbered_images(folder)
        for name in clashes:
            self.problems.error("two images with one frame number", folder / name, "ambiguous zero padding")
        number = labels["frame"] + self.options["frame_offset"]
        files = number.map(images)
        missing = files.isna().to_numpy()
        if missing.all() and len(labels):
            self.problems.error("label file without images", path,
                                f"none of its {len(labels)} frames ({labels['frame'].min()}..{labels['frame'].max()}"
                                f" + offset {self.options['frame_offset']}) has an image in {folder}")
            return labels.iloc[:0].assign(file=""), len(images)
        for frame, line in zip(labels.loc[missing, "frame"], labels.loc[missing, "line"]):
            self.problems.skip("labelled frame without image", f"{path} line {line}",
                               f"frame {frame}: no image numbered {frame + self.options['frame_offset']} in {folder}")
        return labels[~missing].assign(file=files[~missing].to_numpy()), len(images)

    def _fill(self, rows: list[pd.DataFrame]) -> None:
        """Arrays of the protocol from the matched rows; rows of subjects in no fold are skipped."""
        if not rows:
            return
        table = pd.concat(rows, ignore_index=True)
        known = {s for part in load_parts("bp4d") for s in part}
        outside = ~table["subject"].isin(known)
        for subject, n in table.loc[outside, "subject"].value_counts().sort_index().items():
            self.problems.skip("subject in no standard fold", subject, f"{n} labelled frames not used")
        table = table[~outside]
        self.keys = (table["subject"] + "/" + table["task"] + "/" + table["frame"].astype(str)).to_numpy(str)
        self.subjects = table["subject"].to_numpy(str)
        self.targets = table[[f"AU{a}" for a in AUS]].to_numpy(np.int8)
        self.paths = (table["folder"] + "/" + table["file"]).to_numpy(str)
        self.boxes = np.full((len(table), 4), np.nan, np.float32)
        self.points = np.full((len(table), 5, 2), np.nan, np.float32)
        if self.options["landmarks"] and self.options["crop"] == "align":
            self._read_landmarks(table)

    def _read_landmarks(self, table: pd.DataFrame) -> None:
        """Five alignment points per row from the JAA-format list (``landmarks`` + ``landmark_paths``)."""
        land, names = Path(self.options["landmarks"]), self.options["landmark_paths"]
        if not names:
            raise UserError("bp4d: --data-option bp4d.landmarks needs bp4d.landmark_paths (the image path of each "
                            "line, JAA-Net's BP4D_*_path.txt)")
        paths = Path(names)
        lines = [ln for ln in _read_list(land) if ln.strip()]
        image_paths = [ln.strip() for ln in _read_list(paths) if ln.strip()]
        if len(lines) != len(image_paths):
            raise UserError(f"{land}: {len(lines)} landmark lines but {paths} names {len(image_paths)} images")
        row_of = {(s, t, int(f)): i for i, (s, t, f) in enumerate(zip(table["subject"], table["task"], table["frame"]))}
        matched = 0
        for n, (text, image) in enumerate(zip(lines, image_paths), start=1):
            parts = re.split(r"[\\/]", image)
            if len(parts) < 3 or not parts[-1].split(".")[0].isdigit():
                raise UserError(f"{paths} line {n}: expected .../<subject>/<task>/<frame>.jpg, got {image!r}")
            key = (parts[-3].upper(), parts[-2].upper(), int(parts[-1].split(".")[0]))
            try:
                values = np.array(text.split(), dtype=np.float64)
            except ValueError:
                raise UserError(f"{land} line {n}: not numbers: {text[:60]!r}") from None
            if values.size != 98:
                raise UserError(f"{land} line {n}: {values.size} numbers, expected 98 (49 points x, y)")
            row = row_of.get(key)
            if row is not None:
                self.points[row] = five_points(values.reshape(49, 2) - 1.0)  # JAA's lists are 1-based
                matched += 1
        self.digest.text("landmarks").data(land.read_bytes()).data(paths.read_bytes())
        self.landmark_source = f"{land.name}: 49 points (JAA-Net format), {matched} of {len(table)} frames"
        if matched < len(table):
            self.problems.note("frames without landmarks (face detected instead)", land,
                               f"{len(table) - matched} of {len(table)} labelled frames are not in the list")

    def _check_subjects(self) -> None:
        """Every standard subject must have frames (a note instead with ``partial``)."""
        present = set(self.subjects.tolist())
        for part in load_parts("bp4d"):
            for subject in part:
                if subject not in present:
                    how = self.problems.note if self.options["partial"] else self.problems.error
                    how("standard subject missing", subject,
                        "no labelled frames with images (the standard folds need all 41 subjects; "
                        "--set partial=true to run without)")

    # ---- protocol --------------------------------------------------------------------------
    def folds(self) -> list[Fold]:
        """The standard subject-independent 3 folds (fold1 tests part 3, fold2 part 2, fold3 part 1)."""
        return standard_folds(self.subjects, load_parts("bp4d"))

    def landmark_places(self) -> list[str]:
        """Where landmarks come from: only the ``landmarks`` option (the official files are not read)."""
        given = self.options["landmarks"]
        return [f"landmarks={given}" if given else "--set landmarks=FILE (a JAA-Net 49-point list): not given; "
                "the official 2-D landmark files are not read (location unverified)"]

    def _crop_note(self) -> str:
        if self.options["crop"] == "centre":
            return "centre square of each frame (crop=centre: not the paper's preprocessing)"
        return ("aligned on " + (self.landmark_source or "the landmarks of the face dlib detects")
                + " (official 2-D landmark files: location unverified, not read)")


def _separator(line: str) -> str | None:
    """The separator other than ',' that a one-field header line is split by (``;``, tab,
    ``|`` or blanks), or None."""
    for sep in (";", "\t", "|"):
        if sep in line:
            return sep
    return " " if len(line.split()) > 1 else None


def _read_list(path: Path) -> list[str]:
    """The lines of a text file named by a data option; missing is a one-line error."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
