"""EmotioNet (AU subset) read from its distribution: label lists plus the images the user
downloaded from their URLs; 11 AUs (999 = unknown, masked), ROC-AUC.

What is looked for under ``--root`` (names matched case-insensitively, at any depth):

* the challenge training lists ``dataFile_*.txt``: tab-separated, no header, each line
  ``url <TAB> orig_url <TAB> AU1 ... AU60``;
* the 2020 manually annotated set ``EmotioNet_FACS_aws_2020_24600.csv`` (export the ``.xlsx`` to
  csv): columns ``URL``, ``URL orig`` and ``'AU 1'`` ... (quotes and spaces in headers and URL
  cells are stripped);
* the downloaded images, flat (file name only) or nested (``N_0000000001/N_..._00001.jpg``, or the
  URL's whole path): each URL is matched by its file name, preferring a copy whose folders match
  the URL; when the URL's file is missing its ``URL orig`` file name is tried.

Codes: 1 present, 0 absent, 999 unknown. Images never downloaded are counted and reported as
rows left out of the protocol (expect many: URLs die); rows whose image exists are used.

Split (the paper's supplement, section 1): the annotated training images (the challenge lists)
are split at random 80/20 into training and validation, and the independent manually annotated
set (about 25,000 images) is the test set. The split hashes each image's id with the seed, so it
does not depend on which images were downloaded. The probe trains on the training part and is
scored on the test set (one fold, ``test``); the validation part is exposed as ``splits == "val"``
for model selection and is not used by the fixed-hyper-parameter probe. ``split=manual-only``
(an explicit deviation) uses the 2020 set alone, 80/20 into training and test.

Faces, the paper's way (``crop=align``, the default): each image's largest face is detected with
dlib (the paper's tool; the ``[faces]`` extra) and aligned on its 68 landmarks; an image without a
detected face is counted and cut to its centre square. ``crop=centre`` cuts the centre square of
every image instead (not the paper's; marked in tables). ``preprocessing()`` records it.
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ssfbench.api.dataset import Fold
from ssfbench.datasets.kit import (
    CROP_OPTION,
    IMAGE_SUFFIXES,
    MARGIN_OPTION,
    Option,
    RealFrames,
    read_rows,
    read_text,
    relative,
    stable_fraction,
)

#: The 11 evaluation AUs of the challenge code, in label order.
AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 9, 12, 17, 20, 25, 26)
UNKNOWN = 999
TRAIN_FRACTION = 0.8
LIST_FILE = re.compile(r"datafile.*\.txt", re.IGNORECASE)


def clean_cell(text: str) -> str:
    """A header or URL cell without quotes and surrounding spaces."""
    return text.strip().strip("'\"").strip()


def header_name(text: str) -> str:
    """Normalised header: quotes and spaces removed (``'AU 1'`` -> ``AU1``, ``URL orig`` -> ``URLorig``)."""
    return clean_cell(text).replace("'", "").replace('"', "").replace(" ", "")


def image_id(url: str) -> str:
    """The id of an image from its URL: the path after ``/Images/`` without the extension
    (``N_0000000001/N_0000000001_00001``), else the last two path parts."""
    path = url.split("?", 1)[0]
    m = re.search(r"/images/(.+)$", path, re.IGNORECASE)
    tail = m.group(1) if m else "/".join(path.rstrip("/").split("/")[-2:])
    return os.path.splitext(tail)[0]


class EmotioNet(RealFrames):
    """EmotioNet AU images (11 AUs, 999 masked): 80/20 train/val of the training lists, 2020 test set."""

    name = "emotionet"
    summary = "EmotioNet (your download): 11 AUs (999 = unknown), train/val 80/20 + 2020 manual test set, AUC"
    label_names = tuple(f"AU{a}" for a in AUS)
    metric = "auc"
    OPTIONS = {
        "split": Option(str, "paper", "paper: lists 80/20 train/val + 2020 csv test; manual-only: 2020 csv 80/20",
                        ("paper", "manual-only")),
        "crop": CROP_OPTION,
        "margin": MARGIN_OPTION,
    }

    # ---- scanning --------------------------------------------------------------------------
    def _scan(self) -> None:
        self.splits = np.array([], dtype=str)
        lists, manual, images = self._walk()
        self._index = images
        paper = self.options["split"] == "paper"
        if paper and not lists:
            self.problems.error("training lists not found", self.root,
                                "expected dataFile_*.txt (tab-separated url, orig_url, AU1..AU60); "
                                "--set split=manual-only uses the 2020 set alone")
        if not manual:
            self.problems.error("test set not found", self.root,
                                "expected EmotioNet_FACS_aws_2020_24600.csv (export the .xlsx to csv)")
        pool = pd.concat([self._read_list(p) for p in lists], ignore_index=True) if paper and lists else None
        test = pd.concat([self._read_manual(p) for p in manual], ignore_index=True) if manual else None
        if not paper and lists:
            self.problems.note("training lists not used (split=manual-only)", lists[0], f"{len(lists)} file(s)")
        pool, test = self._dedupe(pool), self._dedupe(test)
        if pool is not None and test is not None:
            both = pool["key"].isin(set(test["key"]))
            for key in pool.loc[both, "key"]:
                self.problems.skip("image in both the training lists and the test set (kept in test)", key)
            pool = pool[~both]
        table = self._assign_splits(pool, test)
        table = self._resolve(table)
        self._fill(table)
        self.layout = {
            "training lists": ", ".join(relative(p, self.root) for p in lists) or "none",
            "test set": ", ".join(relative(p, self.root) for p in manual) or "none",
            "images": f"{sum(len(v) for v in images.values())} image files found under the root",
            "split": ("paper: training lists 80/20 train/val, 2020 manual set = test" if paper
                      else "manual-only: 2020 manual set 80/20 train/test (not the paper's protocol)"),
            "sizes": ", ".join(f"{s} {int((self.splits == s).sum())}" for s in ("train", "val", "test")),
            "crop": ("centre square of each image (crop=centre: not the paper's preprocessing)"
                     if self.options["crop"] == "centre" else
                     "the largest face dlib detects, aligned on its 68 landmarks (no face: centre square, counted)"),
        }

    def _walk(self) -> tuple[list[Path], list[Path], dict[str, list[str]]]:
        """Label files and ``{file name: [paths relative to root]}`` of every image under the root."""
        lists, manual, xlsx = [], [], []
        images: dict[str, list[str]] = {}
        for folder, dirs, files in os.walk(self.root):
            dirs.sort()
            for name in sorted(files):
                low = name.lower()
                if low.endswith(IMAGE_SUFFIXES):
                    images.setdefault(name, []).append(relative(Path(folder) / name, self.root))
                elif LIST_FILE.fullmatch(name):
                    lists.append(Path(folder) / name)
                elif "emotionet" in low and low.endswith(".csv"):
                    manual.append(Path(folder) / name)
                elif "emotionet" in low and low.endswith((".xlsx", ".xls")):
                    xlsx.append(Path(folder) / name)
        stems = {p.stem.lower() for p in manual}
        for path in xlsx:
            if path.stem.lower() not in stems:
                self.problems.error("label file in Excel format", path, "save it as .csv next to it (same name)")
        return lists, manual, images

    def _codes(self, path: Path, frame: pd.DataFrame, lines: np.ndarray, columns: dict[int, int],
               url_col: int, orig_col: int | None, source: str) -> pd.DataFrame:
        """Rows ``url, orig, key, line, AU..`` from raw cells; bad rows are errors."""
        url = frame[url_col].map(clean_cell)
        out = pd.DataFrame({"url": url.to_numpy(), "line": lines, "source": source,
                            "orig": frame[orig_col].map(clean_cell).to_numpy() if orig_col is not None else ""})
        bad = np.array(out["url"] == "", dtype=bool)
        reasons = np.where(bad, "empty URL", "")
        for au in AUS:
            code = pd.to_numeric(frame[columns[au]].str.strip(), errors="coerce").to_numpy()
            invalid = ~np.isin(code, [0, 1, UNKNOWN])
            reasons = np.where(invalid & (reasons == ""), f"AU{au} is not 0, 1 or 999", reasons)
            bad |= invalid
            out[f"AU{au}"] = np.select([code == 1, code == 0], [1, 0], -1).astype(np.int8)
        for line, reason in zip(lines[bad], reasons[bad]):
            self.problems.error("malformed row", f"{path} line {line}", reason)
        out = out[~bad].reset_index(drop=True)
        out["key"] = out["url"].map(image_id)
        return out

    def _read_list(self, path: Path) -> pd.DataFrame:
        """One tab-separated challenge list (no header)."""
        text = read_text(path, self.problems, self.digest)
        first = next(csv.reader(io.StringIO(text or ""), delimiter="\t"), [])
        if len(first) < 2 + max(AUS):
            if text:
                self.problems.error("too few columns", f"{path} line 1", f"{len(first)} tab-separated fields; "
                                    "expected url, orig_url, AU1..AU60")
            return pd.DataFrame()
        df, lines = read_rows(path, text or "", self.problems, sep="\t", usecols=[0, 1, *(a + 1 for a in AUS)])
        return self._codes(path, df, lines, {a: a + 1 for a in AUS}, 0, 1, "lists")

    def _read_manual(self, path: Path) -> pd.DataFrame:
        """The 2020 manual csv (header row with ``URL``, ``URL orig``, ``'AU 1'``...)."""
        text = read_text(path, self.problems, self.digest)
        df, lines = read_rows(path, text or "", self.problems)
        if df.empty:
            if text is not None:
                self.problems.error("empty label file", path, "no header and no rows")
            return pd.DataFrame()
        names = [header_name(c) for c in df.iloc[0]]
        index = {n.upper(): j for j, n in reversed(list(enumerate(names)))}
        missing = [f"AU{a}" for a in AUS if f"AU{a}" not in index]
        if "URL" not in index or missing:
            self.problems.error("unrecognised header", f"{path} line {lines[0]}",
                                f"missing column(s) {', '.join((['URL'] if 'URL' not in index else []) + missing)}")
            return pd.DataFrame()
        return self._codes(path, df.iloc[1:], lines[1:], {a: index[f"AU{a}"] for a in AUS}, index["URL"],
                           index.get("URLORIG"), "manual")

    def _dedupe(self, table: pd.DataFrame | None) -> pd.DataFrame | None:
        """Keep the first row of each image id; the others are skipped rows."""
        if table is None or table.empty:
            return None
        dup = table["key"].duplicated(keep="first")
        for key, line in zip(table.loc[dup, "key"], table.loc[dup, "line"]):
            self.problems.skip("image listed twice (first kept)", key, f"again at line {line}")
        return table[~dup]

    def _assign_splits(self, pool: pd.DataFrame | None, test: pd.DataFrame | None) -> pd.DataFrame:
        """``split`` column: train/val from the lists (80/20, hashed), test from the 2020 set; with
        ``split=manual-only`` the 2020 set is split 80/20 into train and test."""
        parts = []
        salt = f"emotionet|{self.seed}"
        if pool is not None and not pool.empty:
            frac = stable_fraction(pool["key"].tolist(), salt)
            parts.append(pool.assign(split=np.where(frac < TRAIN_FRACTION, "train", "val")))
        if test is not None and not test.empty:
            if self.options["split"] == "paper":
                parts.append(test.assign(split="test"))
            else:
                frac = stable_fraction(test["key"].tolist(), salt)
                parts.append(test.assign(split=np.where(frac < TRAIN_FRACTION, "train", "test")))
        if not parts:
            return pd.DataFrame(columns=["key", "url", "orig", "line", "split"])
        order = {"train": 0, "val": 1, "test": 2}
        table = pd.concat(parts, ignore_index=True)
        return table.iloc[np.argsort(table["split"].map(order).to_numpy(), kind="stable")].reset_index(drop=True)

    def _local(self, url: str, orig: str) -> str | None:
        """The downloaded copy of ``url`` (or of ``orig``), relative to the root."""
        for candidate in (url, orig):
            if not candidate:
                continue
            name = candidate.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            paths = self._index.get(name)
            if paths:
                suffix = image_id(candidate)
                return next((p for p in paths if os.path.splitext(p)[0].endswith(suffix)), paths[0])
        return None

    def _resolve(self, table: pd.DataFrame) -> pd.DataFrame:
        """Rows whose image was downloaded (``path`` added); the others are skipped rows."""
        if table.empty:
            return table.assign(path=pd.Series(dtype=str))
        paths = [self._local(u, o) for u, o in zip(table["url"], table["orig"])]
        table = table.assign(path=paths)
        missing = table["path"].isna()
        for key, url in zip(table.loc[missing, "key"], table.loc[missing, "url"]):
            self.problems.skip("image not downloaded", key, url)
        used = set(table.loc[~missing, "path"])
        unused = sum(len(v) for v in self._index.values()) - len(used)
        if unused > 0:
            self.problems.note("downloaded images in no list (not used)", self.root, f"{unused} image file(s)")
        for split in table["split"].unique():
            in_split = (table["split"] == split).to_numpy()
            if missing.to_numpy()[in_split].all():
                self.problems.error("no images downloaded", self.root,
                                    f"none of the {int(in_split.sum())} {split} images was found under the root")
        return table[~missing]

    def _fill(self, table: pd.DataFrame) -> None:
        if table.empty:
            return
        self.keys = table["key"].to_numpy(str)
        self.subjects = self.keys.copy()
        self.targets = table[[f"AU{a}" for a in AUS]].to_numpy(np.int8)
        self.paths = table["path"].to_numpy(str)
        self.splits = table["split"].to_numpy(str)
        for split in ("train", "test"):
            if not (self.splits == split).any():
                self.problems.error("empty split", self.root, f"no usable {split} images (the fold needs both)")
        self.boxes = np.full((len(table), 4), np.nan, np.float32)

    # ---- protocol --------------------------------------------------------------------------
    def folds(self) -> list[Fold]:
        """One fold: train on the training part, test on the test set (validation not used)."""
        return [Fold("test", np.flatnonzero(self.splits == "train"), np.flatnonzero(self.splits == "test"))]
