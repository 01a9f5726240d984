"""DISFA read from its official layout: frames decoded from the left-camera videos, AU intensity
labels binarised at intensity >= 2 for the 8 benchmark AUs, the standard subject-independent 3
folds (F1 at 0.5).

Layout (names matched case-insensitively; ``--root`` may also be a parent folder)::

    <root>/Videos_LeftCamera/LeftVideoSN001_comp.avi       (camera=right: the right-camera folder)
    <root>/ActionUnit_Labels/SN001/SN001_au1.txt           lines "frame,intensity", frame 1-based
    <root>/Landmark_Points/SN001/tmp_frame_lm/SN001_0000_lm.mat   optional, 0-based, 66x2 'pts'

Label frame ``k`` is video frame ``k - 1 + frame_offset`` (default offset 0: the 1-based label
index of the first decoded frame is 1). Frames are decoded with PyAV, seeking only where a read
jumps ahead; the last cropped frames are kept in a small cache, and ``ssfbench datasets prepare
disfa`` stores every crop once for later runs.

Faces, the paper's way (``crop=align``, the default): when every subject has landmark files
(``landmarks=auto``), each frame is aligned on its 66 landmarks (a frame without its own file uses
the nearest frame's); otherwise on the 68 landmarks of the face dlib detects (the ``[faces]``
extra). A landmark file that is not a MAT file, has no ``pts`` matrix, or holds points of another
count, NaN or points no similarity fits is an error naming the file (``verify`` reads every one).
``crop=centre`` cuts the centre square instead (not the paper's; marked in tables).
``preprocessing()`` says which.
"""

from __future__ import annotations

import bisect
import re
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ssfbench.api.dataset import Fold
from ssfbench.datasets._video import VideoReader, decoded_summary
from ssfbench.datasets.kit import (
    CROP_OPTION,
    MARGIN_OPTION,
    VIDEO_SUFFIXES,
    Option,
    RealFrames,
    descend,
    entries,
    find_child,
    find_path,
    load_parts,
    read_rows,
    read_text,
    relative,
    sample_indices,
    standard_folds,
    subdirs,
)
from ssfbench.errors import UserError
from ssfbench.faces import alignment
from ssfbench.faces.alignment import five_points

#: The 12 AUs DISFA labels, and the 8 the benchmark uses (label order).
ALL_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)
AUS: tuple[int, ...] = (1, 2, 4, 6, 9, 12, 25, 26)
#: Intensity at or above which an AU counts as present.
THRESHOLD = 2
SUBJECT = re.compile(r"SN\d{3}", re.IGNORECASE)
LABEL_FILE = re.compile(r"(SN\d{3})_au(\d+)\.txt", re.IGNORECASE)
LANDMARK_FILE = re.compile(r"(?:SN\d{3}_|l)(\d+)_lm\.mat", re.IGNORECASE)
CACHE_FRAMES = 512
OPEN_VIDEOS = 2


class DISFA(RealFrames):
    """DISFA AU frames (8 AUs, intensity >= 2) decoded from the videos, standard 3 subject folds."""

    name = "disfa"
    summary = "DISFA (your copy): 27 subjects, 8 AUs (intensity >= 2), left camera videos, 3 subject folds, F1"
    label_names = tuple(f"AU{a}" for a in AUS)
    metric = "f1"
    OPTIONS = {
        "camera": Option(str, "left", "which camera's videos", ("left", "right")),
        "frame_offset": Option(int, 0, "video frame index = label frame - 1 + this"),
        "landmarks": Option(str, "auto", "align on Landmark_Points when every subject has them (none: detect)",
                            ("auto", "none")),
        "crop": CROP_OPTION,
        "margin": MARGIN_OPTION,
        "partial": Option(bool, False, "accept a copy without all 27 standard subjects (a note, not an error)"),
    }

    # ---- scanning --------------------------------------------------------------------------
    def _scan(self) -> None:
        self._videos: dict[str, Path] = {}
        self._landmarks: dict[str, dict[int, Path]] = {}
        self._landmark_keys: dict[str, list[int]] = {}
        self._readers: OrderedDict[str, VideoReader] = OrderedDict()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.vframes = np.zeros(0, np.int64)
        label_dir = find_path(self.root, [("ActionUnit_Labels",), ("ActionUnit_Label",), ("AU_Labels",)], depth=2)
        video_dir = self._video_dir()
        camera = self.options["camera"]
        if label_dir is None:
            self.problems.error("label folder not found", self.root,
                                "expected ActionUnit_Labels/SN001/SN001_au1.txt")
        if video_dir is None:
            self.problems.error("video folder not found", self.root,
                                f"expected Videos_{camera.capitalize()}Camera/{camera.capitalize()}VideoSN001_comp.avi")
        if label_dir is None or video_dir is None:
            return
        self._videos = self._find_videos(video_dir)
        label_dirs = {d.name.upper(): d for d in subdirs(label_dir) if SUBJECT.fullmatch(d.name)}
        for subject in sorted(set(self._videos) - set(label_dirs)):
            self.problems.error("video without labels", self._videos[subject],
                                f"no label folder {relative(label_dir, self.root)}/{subject}")
        tables = []
        for subject, folder in sorted(label_dirs.items()):
            labels = self._read_subject(subject, folder)
            if labels is None:
                continue
            if subject not in self._videos:
                self.problems.error("labels without video", folder, f"no {camera}-camera video of {subject} "
                                    f"in {relative(video_dir, self.root)}")
                continue
            labels = self._match_video(subject, labels)
            if len(labels):
                tables.append(labels.assign(subject=subject))
        self._fill(tables)
        self._check_subjects()
        self._load_landmarks()
        self.layout = {
            "labels": f"{relative(label_dir, self.root)}: {len(label_dirs)} subjects",
            "videos": f"{relative(video_dir, self.root)}: {len(self._videos)} {camera}-camera videos",
            "frames": f"video frame = label frame - 1 + {self.options['frame_offset']}; "
                      f"positive = intensity >= {THRESHOLD}",
            "crop": ("centre square of each frame (crop=centre: not the paper's preprocessing)"
                     if self.options["crop"] == "centre" else
                     f"aligned on {self.landmark_source or 'the landmarks of the face dlib detects'}"),
        }

    def _video_dir(self) -> Path | None:
        """The camera's video folder (its name holds 'video' or 'camera' and the camera side)."""
        side = self.options["camera"]
        frontier, found = [self.root], []
        for _ in range(3):
            for folder in frontier:
                for d in subdirs(folder):
                    low = d.name.lower()
                    if side in low and ("video" in low or "camera" in low):
                        found.append(d)
            if found:
                return found[0]
            frontier = descend(frontier)
        return None

    def _find_videos(self, video_dir: Path) -> dict[str, Path]:
        """``{subject: video}``; two videos of one subject are an error unless one is ``_comp``."""
        by_subject: dict[str, list[Path]] = {}
        for e in entries(video_dir):
            m = SUBJECT.search(e.name)
            if e.is_file() and m and e.name.lower().endswith(VIDEO_SUFFIXES):
                by_subject.setdefault(m.group(0).upper(), []).append(Path(e.path))
        out = {}
        for subject, paths in by_subject.items():
            if len(paths) > 1:
                comp = [p for p in paths if "_comp" in p.name.lower()]
                if len(comp) != 1:
                    self.problems.error("two videos of one subject", paths[0],
                                        f"also {', '.join(p.name for p in paths[1:])}")
                    continue
                paths = comp
            out[subject] = paths[0]
        if not out:
            self.problems.error("no videos", video_dir, "expected files like LeftVideoSN001_comp.avi")
        return out

    def _read_au_file(self, path: Path) -> pd.Series | None:
        """``intensity`` indexed by 1-based frame for one ``SNxxx_auN.txt``; bad rows are errors."""
        text = read_text(path, self.problems, self.digest)
        if text is None:
            return None
        df, lines = read_rows(path, text, self.problems)
        if df.empty:
            self.problems.error("empty label file", path, "no rows")
            return None
        frame = pd.to_numeric(df[0].str.strip(), errors="coerce").to_numpy()
        value = (pd.to_numeric(df[1].str.strip(), errors="coerce").to_numpy() if df.shape[1] > 1
                 else np.full(len(df), np.nan))
        extra = (df.iloc[:, 2:] != "").any(axis=1).to_numpy() if df.shape[1] > 2 else np.zeros(len(df), bool)
        bad_frame = ~(np.isfinite(frame) & (frame >= 1) & (frame % 1 == 0))
        bad_value = ~np.isin(value, np.arange(6))
        bad = bad_frame | bad_value | extra
        for i in np.flatnonzero(bad):
            why = ("frame is not an integer >= 1" if bad_frame[i] else "more than 2 fields" if extra[i]
                   else "intensity is not an integer 0..5")
            self.problems.error("malformed row", f"{path} line {lines[i]}", f"{why}: {','.join(df.iloc[i])[:40]}")
        series = pd.Series(value[~bad].astype(np.int64), index=frame[~bad].astype(np.int64))
        dup = series.index.duplicated()
        for f in series.index[dup]:
            self.problems.error("malformed row", path, f"frame {f} appears twice")
        return series[~dup]

    def _read_subject(self, subject: str, folder: Path) -> pd.DataFrame | None:
        """Columns ``frame, AU1..AU26`` (0/1, -1 where an AU file lacks the frame) of one subject."""
        files = {}
        for e in entries(folder):
            m = LABEL_FILE.fullmatch(e.name)
            if m and m.group(1).upper() == subject:
                files[int(m.group(2))] = Path(e.path)
        series = {}
        for au in AUS:
            if au not in files:
                self.problems.error("AU label file missing", folder, f"no {subject}_au{au}.txt")
                continue
            s = self._read_au_file(files[au])
            if s is not None:
                series[au] = s
        if len(series) < len(AUS):
            return None
        frames = sorted(set().union(*(s.index for s in series.values())))
        out = pd.DataFrame({"frame": np.asarray(frames, np.int64)})
        for au, s in series.items():
            values = s.reindex(frames).to_numpy(dtype=np.float64)
            missing = np.isnan(values)
            if missing.any():
                self.problems.skip("AU label missing for a frame (masked)", files[au],
                                   f"{int(missing.sum())} frame(s) labelled in other AU files, "
                                   f"e.g. frame {frames[int(np.flatnonzero(missing)[0])]}")
            out[f"AU{au}"] = np.where(missing, -1, values >= THRESHOLD).astype(np.int8)
        return out

    def _match_video(self, subject: str, labels: pd.DataFrame) -> pd.DataFrame:
        """The label rows whose frame the video has (``vframe`` added); others are skipped."""
        video = self._videos[subject]
        reader = VideoReader(video)
        try:
            n = reader.num_frames
        except UserError as exc:
            self.problems.error("unreadable video", video, str(exc).split(": ", 1)[-1])
            return labels.iloc[:0]
        finally:
            reader.close()
        vframe = labels["frame"].to_numpy() - 1 + self.options["frame_offset"]
        inside = (vframe >= 0) & (vframe < n)
        if not inside.any():
            self.problems.error("labels without video frames", video,
                                f"none of the {len(labels)} labelled frames is among its {n} frames")
            return labels.iloc[:0]
        if not inside.all():
            frames = labels["frame"].to_numpy()[~inside]
            self.problems.skip("labelled frame beyond the video", video,
                               f"{len(frames)} frame(s) {frames.min()}..{frames.max()} (video has {n} frames)")
        if n > inside.sum():
            self.problems.note("video frames without labels", video, f"{n - int(inside.sum())} of {n} not used")
        return labels[inside].assign(vframe=vframe[inside])

    def _fill(self, tables: list[pd.DataFrame]) -> None:
        if not tables:
            return
        table = pd.concat(tables, ignore_index=True)
        known = {s for part in load_parts("disfa") for s in part}
        outside = ~table["subject"].isin(known)
        for subject, n in table.loc[outside, "subject"].value_counts().sort_index().items():
            self.problems.skip("subject in no standard fold", subject, f"{n} labelled frames not used")
        table = table[~outside]
        self.keys = (table["subject"] + "/" + table["frame"].astype(str)).to_numpy(str)
        self.subjects = table["subject"].to_numpy(str)
        self.targets = table[[f"AU{a}" for a in AUS]].to_numpy(np.int8)
        self.vframes = table["vframe"].to_numpy(np.int64)
        self.paths = np.array([relative(self._videos[s], self.root) for s in self.subjects], dtype=str)
        self.boxes = np.full((len(table), 4), np.nan, np.float32)

    def _check_subjects(self) -> None:
        present = set(self.subjects.tolist())
        for part in load_parts("disfa"):
            for subject in part:
                if subject not in present:
                    how = self.problems.note if self.options["partial"] else self.problems.error
                    how("standard subject missing", subject,
                        "no labelled frames with video (the standard folds need all 27 subjects; "
                        "--set partial=true to run without)")

    def _load_landmarks(self) -> None:
        """Index the landmark files when every subject with rows has some (``landmarks=auto``)."""
        if self.options["landmarks"] == "none" or self.options["crop"] == "centre" or not len(self):
            return
        lm_dir = find_path(self.root, [("Landmark_Points",), ("Landmarks",)], depth=2)
        if lm_dir is None:
            return
        index: dict[str, dict[int, Path]] = {}
        for subject in np.unique(self.subjects):
            folder = find_child(lm_dir, [subject])
            inner = find_child(folder, ["tmp_frame_lm"]) if folder is not None else None
            files = {}
            for e in entries(inner or folder) if folder is not None else []:
                m = LANDMARK_FILE.fullmatch(e.name)
                if m:
                    files[int(m.group(1))] = Path(e.path)
            if not files:
                self.problems.note("landmarks incomplete (faces detected instead)", lm_dir / subject,
                                   "no landmark files for this subject; every frame's face is detected")
                return
            index[subject] = files
        self._landmarks = index
        self.landmark_source = "Landmark_Points (66 points)"
        substituted = 0
        for subject, vframe in zip(self.subjects, self.vframes):
            substituted += int(vframe) not in index[subject]
        if substituted:
            self.problems.note("frames without their own landmark file", lm_dir,
                               f"{substituted} frame(s) use the nearest frame's landmarks")
        self.digest.text("landmarks").strings(sorted(str(p) for f in index.values() for p in f.values()))

    # ---- protocol --------------------------------------------------------------------------
    def folds(self) -> list[Fold]:
        """The standard subject-independent 3 folds (fold1 tests part 3, fold2 part 2, fold3 part 1)."""
        return standard_folds(self.subjects, load_parts("disfa"))

    # ---- reading ---------------------------------------------------------------------------
    def _reader(self, subject: str) -> VideoReader:
        reader = self._readers.pop(subject, None) or VideoReader(self._videos[subject])
        self._readers[subject] = reader
        while len(self._readers) > OPEN_VIDEOS:
            _, old = self._readers.popitem(last=False)
            old.close()
        return reader

    def has_landmarks(self) -> np.ndarray:
        """Rows whose subject has landmark files (read per frame by :meth:`face_points`)."""
        return np.isin(self.subjects, list(self._landmarks))

    def landmark_places(self) -> list[str]:
        """Where the landmark files are looked for."""
        return [f"{self.root}/Landmark_Points (or Landmarks, up to 2 folders down)/<subject>/tmp_frame_lm/"
                "<subject>_<frame>_lm.mat"]

    def face_points(self, index: int) -> np.ndarray | None:
        """The five alignment points of row ``index`` from its frame's 66 landmarks (the nearest
        frame's file when it has none), or None without landmarks."""
        files = self._landmarks.get(self.subjects[index])
        if not files:
            return None
        return self._landmark_points(self._landmark_path(index))

    def _landmark_path(self, index: int) -> Path:
        """The landmark file of row ``index``: its frame's, else the nearest frame's."""
        files = self._landmarks[self.subjects[index]]
        vframe = int(self.vframes[index])
        keys = self._landmark_keys.get(self.subjects[index]) or self._landmark_keys.setdefault(
            self.subjects[index], sorted(files))
        k = bisect.bisect_left(keys, vframe)
        return files[min(keys[max(0, k - 1):k + 1], key=lambda x: abs(x - vframe))]

    def _landmark_points(self, path: Path) -> np.ndarray:
        """The five alignment points of the landmark file ``path``; a file that is not a MAT file,
        has no ``pts`` matrix, holds points of no known scheme, NaN, or points no similarity fits
        is a :class:`UserError` naming the file."""
        from scipy.io import loadmat

        try:
            mat = loadmat(path)
        except Exception as exc:  # noqa: BLE001 - scipy's reader fails in many ways on a file that is not MAT
            raise UserError(f"{path}: unreadable landmark file (not a MAT file: {exc})") from None
        if "pts" not in mat:
            names = ", ".join(k for k in mat if not k.startswith("__")) or "none"
            raise UserError(f"{path}: landmark file without a 'pts' matrix (it holds: {names})")
        pts = np.asarray(mat["pts"])
        if pts.ndim != 2 or pts.shape[1] != 2 or not np.issubdtype(pts.dtype, np.number):
            raise UserError(f"{path}: 'pts' is a {'x'.join(map(str, pts.shape))} {pts.dtype} array, "
                            "expected 66x2 numbers")
        if not np.isfinite(pts.astype(np.float64)).all():
            raise UserError(f"{path}: unusable landmarks (not finite: NaN or inf in 'pts')")
        try:
            five = five_points(pts.astype(np.float64))
            alignment.alignment_matrix(five, self.image_size, self.options.get("margin", alignment.MARGIN))
        except ValueError as exc:
            raise UserError(f"{path}: unusable landmarks ({exc})") from None
        return five

    def read_image(self, index: int) -> np.ndarray:
        """Row ``index``: its video frame, cropped and resized to uint8 ``[S, S, 3]``."""
        return self.read_images([index])[0]

    def read_images(self, indices: Sequence[int]) -> list[np.ndarray]:
        """Rows ``indices``, decoding each subject's frames in one forward pass."""
        out: list[np.ndarray | None] = [self._cache.get(int(i)) for i in indices]
        todo: dict[str, dict[int, list[int]]] = {}
        for pos, i in enumerate(indices):
            if out[pos] is None:
                todo.setdefault(self.subjects[i], {}).setdefault(int(self.vframes[i]), []).append(pos)
        for subject, wanted in todo.items():
            for vframe, frame in self._reader(subject).frames(sorted(wanted)):
                image = frame.to_ndarray(format="rgb24")
                first = wanted[vframe][0]
                crop = self.crop_array(image, int(indices[first]), f"{self._videos[subject]} frame {vframe}")
                for pos in wanted[vframe]:
                    out[pos] = crop
        for pos, i in enumerate(indices):
            self._cache[int(i)] = out[pos]
            self._cache.move_to_end(int(i))
        while len(self._cache) > CACHE_FRAMES:
            self._cache.popitem(last=False)
        return out  # type: ignore[return-value]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_readers"], state["_cache"] = OrderedDict(), OrderedDict()
        return state

    # ---- verification ----------------------------------------------------------------------
    def check_media(self, sample: int | None = None) -> None:
        """Decode every video (or ``sample`` of them) to its end; a corrupt video, or one with
        fewer decodable frames than the labels need, is an error."""
        subjects = sorted(self._videos)
        chosen = sample_indices(len(subjects), sample)
        total = failed = 0
        reported = {p.where for p in self.problems.errors if p.kind == "unreadable video"}
        for i in chosen:
            subject = subjects[i]
            video = self._videos[subject]
            if str(video) in reported:  # the scan could not open it: one report per video
                failed += 1
                continue
            try:
                n = VideoReader(video).count_decodable()
            except UserError as exc:
                self.problems.error("unreadable video", video, str(exc).split(": ", 1)[-1])
                failed += 1
                continue
            total += n
            rows = self.vframes[self.subjects == subject]
            if len(rows) and rows.max() >= n:
                self.problems.error("video shorter than its labels", video,
                                    f"{n} decodable frames; labels need frame index {int(rows.max())}")
                failed += 1
        self.media_checked = decoded_summary(len(chosen), len(subjects), failed, total)
        self.check_landmarks(sample)
        self.check_faces(sample)

    def check_landmarks(self, sample: int | None = None) -> None:
        """Read the landmark file of every row (or of ``sample`` of the files the rows use): each
        unreadable or unusable one is an error naming the file (what a run would refuse)."""
        if not self._landmarks or not self.aligned:
            return
        used = sorted({self._landmark_path(i) for i in range(len(self))})
        for k in sample_indices(len(used), sample).tolist():
            try:
                self._landmark_points(used[k])
            except UserError as exc:
                where, _, why = str(exc).partition(": ")
                self.problems.error("unusable landmark file", where, why)

