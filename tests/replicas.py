"""Tiny replicas of the official layouts of BP4D, DISFA, EmotioNet, AffectNet and VoxCeleb2, built
on the fly for tests (a few 32-pixel frames per subject; videos of ~12 frames written with PyAV).

Each builder writes the files exactly as the owners ship them (folder names, file names, header
styles, zero padding, codes) and returns a :class:`Replica` with the root and the counts a
correct adapter must report. Pixel contents encode where a frame came from, so tests can check
that the right frame and the right crop were read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from ssfbench.datasets import affectnet, bp4d, disfa, emotionet
from ssfbench.datasets.kit import load_parts


@dataclass
class Replica:
    """A replica's root and what an adapter must find in it."""

    root: Path
    rows: int
    subjects: int
    counts: dict[str, tuple[int, int, int]]  # label -> (positive, negative, unknown)
    extra: dict[str, Any] = field(default_factory=dict)


def template_landmarks(points: int, left: float, top: float, side: float) -> np.ndarray:
    """``points`` landmarks (68 iBUG, 66 DISFA, 49 IntraFace) of a face whose five alignment points
    (eye centres, nose tip, mouth corners) are the alignment template placed on the square
    ``left, top, side``: aligning them maps that square exactly onto the crop. Each eye's six
    points spread around its centre (their mean is the centre); the other points sit mid-face."""
    from ssfbench.faces.alignment import TEMPLATE

    five = np.array([left, top]) + TEMPLATE * side
    full = np.tile([left + side / 2, top + side / 2], (68, 1))
    spread = np.array([[-1, 0], [1, 0], [0, -0.5], [0, 0.5], [-0.5, -0.5], [0.5, 0.5]]) * side * 0.04
    full[36:42], full[42:48] = five[0] + spread, five[1] + spread
    full[30], full[48], full[54] = five[2], five[3], five[4]
    keep = {68: list(range(68)), 66: [i for i in range(68) if i not in (60, 64)],
            49: [i for i in range(17, 68) if i not in (60, 64)]}[points]
    return full[keep]


def _counts(names: tuple[str, ...], targets: np.ndarray) -> dict[str, tuple[int, int, int]]:
    t = np.asarray(targets).reshape(-1, len(names))
    return {n: (int((t[:, j] == 1).sum()), int((t[:, j] == 0).sum()), int((t[:, j] < 0).sum()))
            for j, n in enumerate(names)}


def _jpeg(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path, quality=95)


def write_video(path: Path, frames: np.ndarray, *, codec: str = "mpeg4", fps: int = 25, gop: int = 4) -> None:
    """Write uint8 ``[T, H, W, 3]`` frames as a video with PyAV (keyframe every ``gop`` frames)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"g": str(gop), "keyint_min": str(gop), "bf": "2", "crf": "1"}
        else:
            stream.codec_context.gop_size = gop
            stream.bit_rate = 8_000_000
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def frame_value(index: int) -> int:
    """The grey level of frame ``index`` (0-based) of every replica video."""
    return 8 + 16 * index


def moving_texture(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``n`` frames of a seeded random texture drifting by one pixel per frame (content an encoder
    predicts with motion, so H.264 gets reference and non-reference B-frames)."""
    texture = np.random.default_rng(seed).integers(0, 256, (size, size + n, 3), dtype=np.uint8)
    return np.stack([texture[:, i:i + size] for i in range(n)])


def ramp_video(n: int, height: int = 24, width: int = 32) -> np.ndarray:
    """``n`` uniform frames whose grey level tells their index (see :func:`frame_value`)."""
    return np.stack([np.full((height, width, 3), frame_value(i), np.uint8) for i in range(n)])


# =============================================================================================
# BP4D
# =============================================================================================

#: Subjects whose label files use the AU-named header (the rest use 0..99).
BP4D_NAMED = ("F013", "M001", "F020")
BP4D_NAMED_HEADER = [1, 1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 22, 23, 24, 27, 28,
                     29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39]


def bp4d_width(subject: str) -> int:
    """Zero padding of a subject's image names: 4 digits, 3 for M009-M018, 2 for F013."""
    if subject == "F013":
        return 2
    return 3 if subject[0] == "M" and int(subject[1:]) >= 9 else 4


#: the face square of every BP4D replica frame (40x32: x 0..32, y 4..36), where the landmarks put it
BP4D_FACE = (0.0, 4.0, 32.0)


def make_bp4d(root: Path, *, frames: int = 3, seed: int = 0, images_dir: str = "Sequences",
              landmarks: bool = False) -> Replica:
    """All 41 subjects, task T1 (F001 also T3), ``frames`` labelled frames each starting at frame
    10 (images 8..10+frames exist, so a few are unlabelled), both header styles, mixed padding,
    random 0/1 codes with 9s (AU24 entirely 9 for the named-header subjects). ``landmarks``: also
    JAA-Net's lists ``BP4D_land.txt`` (49 points, 1-based, placing the face on :data:`BP4D_FACE`)
    and ``BP4D_path.txt`` for every labelled frame but the last of M018 (left to detection)."""
    rng = np.random.default_rng(seed)
    subjects = sorted(s for part in load_parts("bp4d") for s in part)
    labels_dir = root / "AUCoding" / "AU_OCC"
    labels_dir.mkdir(parents=True)
    targets, listed = [], []
    for subject in subjects:
        for task in ("T1", "T3") if subject == "F001" else ("T1",):
            codes = rng.choice([0, 1, 9], p=[0.5, 0.4, 0.1], size=(frames, len(bp4d.AUS)))
            codes[0, :] = 1 - np.arange(len(bp4d.AUS)) % 2  # every AU has positives and negatives
            codes[1, :] = np.arange(len(bp4d.AUS)) % 2
            if subject in BP4D_NAMED:
                codes[:, bp4d.AUS.index(24)] = 9
            _bp4d_csv(labels_dir / f"{subject}_{task}.csv", subject in BP4D_NAMED, range(10, 10 + frames), codes)
            width = bp4d_width(subject)
            for n in range(8, 12 + frames):
                img = np.zeros((40, 32, 3), np.uint8)
                img[4:36, :, 0] = n * 10
                img[:, :, 1] = 200 if subject[0] == "F" else 50
                _jpeg(root / images_dir / subject / task / f"{n:0{width}d}.jpg", img)
            targets.append(np.select([codes == 1, codes == 0], [1, 0], -1))
            listed.extend(f"BP4D/{subject}/{task}/{n:04d}.jpg" for n in range(10, 10 + frames))
    if landmarks:
        listed = listed[:-1]
        points = " ".join(f"{v + 1:.3f}" for v in template_landmarks(49, *BP4D_FACE).ravel())
        (root / "BP4D_land.txt").write_text("".join(points + "\n" for _ in listed))
        (root / "BP4D_path.txt").write_text("".join(p + "\n" for p in listed))
    t = np.concatenate(targets)
    return Replica(root, len(t), len(subjects), _counts(bp4d.BP4D.label_names, t),
                   {"landmark_list": len(listed)} if landmarks else {})


def _bp4d_csv(path: Path, named: bool, frames: range, codes: np.ndarray) -> None:
    """One AU_OCC file: integer header 0..99 (AU N in column N) or the named ~35-column header."""
    header = BP4D_NAMED_HEADER if named else list(range(100))
    lines = [",".join(map(str, header))]
    for frame, row in zip(frames, codes):
        values = {au: int(c) for au, c in zip(bp4d.AUS, row)}
        cells = [frame] + [values.get(au, 9 if not named else 0) for au in header[1:]]
        lines.append(",".join(map(str, cells)))
    path.write_text("\n".join(lines) + "\n")


# =============================================================================================
# DISFA
# =============================================================================================

def make_disfa(root: Path, *, frames: int = 8, seed: int = 0, landmarks: bool = False) -> Replica:
    """All 27 subjects: ``Videos_LeftCamera/LeftVideoSNxxx_comp.avi`` (mpeg4, ``frames`` frames of
    32x24 whose grey level encodes the index) and ``ActionUnit_Labels/SNxxx/SNxxx_auN.txt`` for the
    12 labelled AUs (1-based frames, intensity 0..5); SN010 has one label line less (as the real
    one); optional ``Landmark_Points`` (66 points per frame)."""
    rng = np.random.default_rng(seed)
    subjects = sorted(s for part in load_parts("disfa") for s in part)
    targets = []
    for subject in subjects:
        write_video(root / "Videos_LeftCamera" / f"LeftVideo{subject}_comp.avi", ramp_video(frames))
        n_labels = frames - 1 if subject == "SN010" else frames
        intensity = rng.integers(0, 6, size=(n_labels, len(disfa.ALL_AUS)))
        intensity[0], intensity[1] = 0, 3
        for j, au in enumerate(disfa.ALL_AUS):
            folder = root / "ActionUnit_Labels" / subject
            folder.mkdir(parents=True, exist_ok=True)
            lines = [f"{k + 1},{intensity[k, j]}" for k in range(n_labels)]
            (folder / f"{subject}_au{au}.txt").write_text("\n".join(lines) + "\n")
        cols = [disfa.ALL_AUS.index(a) for a in disfa.AUS]
        targets.append((intensity[:, cols] >= 2).astype(np.int8))
        if landmarks:
            _disfa_landmarks(root / "Landmark_Points" / subject / "tmp_frame_lm", subject, frames)
    t = np.concatenate(targets)
    return Replica(root, len(t), len(subjects), _counts(disfa.DISFA.label_names, t))


#: the face square of every DISFA replica frame (32x24: x 8..24, y 4..20), where the landmarks put it
DISFA_FACE = (8.0, 4.0, 16.0)


def _disfa_landmarks(folder: Path, subject: str, frames: int) -> None:
    """66 points placing the face on :data:`DISFA_FACE` in every frame (0-based, 4-digit names)."""
    from scipy.io import savemat

    folder.mkdir(parents=True, exist_ok=True)
    pts = template_landmarks(66, *DISFA_FACE)
    for i in range(frames):
        savemat(folder / f"{subject}_{i:04d}_lm.mat", {"pts": pts})


# =============================================================================================
# EmotioNet
# =============================================================================================

def _emotionet_url(n: int) -> str:
    return f"http://emotionet.s3.amazonaws.com/emotionet/Images/N_{n:010d}/N_{n:010d}_{n:05d}.jpg"


def make_emotionet(root: Path, *, train: int = 30, test: int = 10, missing: tuple[int, ...] = (3, 31),
                   seed: int = 0) -> Replica:
    """A tab-separated challenge list ``dataFile_1001.txt`` of ``train`` images and the 2020 manual
    csv of ``test`` images (quoted ``'AU 1'`` headers, quoted URLs), codes 0/1/999; images
    downloaded flat into ``images/`` (even numbers) or nested ``images/N_.../`` (odd), except the
    image numbers in ``missing``."""
    rng = np.random.default_rng(seed)
    n_au = 60
    rows_train, rows_test, t_train, t_test = [], [], [], []
    for n in range(train + test):
        codes = rng.choice([0, 1, 999], p=[0.5, 0.4, 0.1], size=n_au)
        if n % 7 == 0:
            codes[emotionet.AUS[0] - 1] = 999
        (rows_train if n < train else rows_test).append((_emotionet_url(n), codes))
        if n not in missing:
            row = [codes[a - 1] for a in emotionet.AUS]
            (t_train if n < train else t_test).append(np.select([np.array(row) == 1, np.array(row) == 0], [1, 0], -1))
            img = np.full((40, 48, 3), 5 * (n % 50), np.uint8)
            name = f"N_{n:010d}_{n:05d}.jpg"
            _jpeg(root / "images" / (name if n % 2 == 0 else f"N_{n:010d}/{name}"), img)
    lists = root / "lists"
    lists.mkdir(parents=True)
    (lists / "dataFile_1001.txt").write_text("".join(
        "\t".join([url, url.replace("amazonaws", "orig")] + [str(c) for c in codes]) + "\n"
        for url, codes in rows_train))
    header = ["URL", "URL orig"] + [f"'AU {a}'" for a in range(1, n_au + 1)]
    body = [",".join([f"'{url}'", f"'{url}'"] + [str(c) for c in codes]) for url, codes in rows_test]
    (root / "EmotioNet_FACS_aws_2020_24600.csv").write_text("\n".join([",".join(header), *body]) + "\n")
    t = np.concatenate([np.stack(t_train), np.stack(t_test)])
    return Replica(root, len(t), len(t), _counts(emotionet.EmotioNet.label_names, t),
                   {"train_pool": len(t_train), "test": len(t_test), "missing": len(missing)})


# =============================================================================================
# AffectNet
# =============================================================================================

AFFECTNET_COLUMNS = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                     "facial_landmarks", "expression", "valence", "arousal"]


def make_affectnet(root: Path, *, train: int = 40, val: int = 8, seed: int = 0) -> Replica:
    """``Manually_Annotated_file_lists/training.csv`` (with header) and ``validation.csv`` (without),
    images ``Manually_Annotated_Images/<n>/<sha>.jpg`` of 48x40 (blue) with the face box painted red;
    the 68 landmarks place the face on the box's square (x 8..32, y 4..28), except on training row
    9, whose landmarks cell is empty (its box is the fallback); training has one NULL row and one
    row each of codes 8, 9 and 10."""
    rng = np.random.default_rng(seed)
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True)
    labels = {"train": [], "val": []}
    for split, n_rows, fname, header in (("train", train, "training.csv", True), ("val", val, "validation.csv", False)):
        lines = [",".join(AFFECTNET_COLUMNS)] if header else []
        for i in range(n_rows):
            code = int(rng.integers(0, 8)) if i >= 8 else i % 8  # every class appears
            if split == "train" and i in (5, 6, 7):
                code = {5: 8, 6: 9, 7: 10}[i]
            sha = hashlib.sha1(f"{split}{i}".encode()).hexdigest()
            rel = f"{100 + i % 3}/{sha}.jpg"
            x, y, w, h = 8, 6, 24, 20
            img = np.zeros((40, 48, 3), np.uint8)
            img[:, :, 2] = 255
            img[y:y + h, x:x + w] = (255, 0, 0)
            _jpeg(root / "Manually_Annotated_Images" / rel, img)
            marks = ";".join(f"{v:.2f}" for v in template_landmarks(68, 8, 4, 24).ravel())
            if split == "train" and i == 9:
                marks = ""
            lines.append(",".join(map(str, [rel, x, y, w, h, marks, code, 0.5, -0.25])))
            if code < 8:
                labels[split].append(code)
        if split == "train":
            lines.insert(3, "NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL")
        (lists / fname).write_text("\n".join(lines) + "\n")
    classes = np.array(labels["train"] + labels["val"])
    t = np.eye(8, dtype=np.int8)[classes]
    return Replica(root, len(t), len(t), _counts(affectnet.AffectNet.label_names, t),
                   {"train_pool": len(labels["train"]), "val": len(labels["val"]), "null": 1, "dropped": 3})


# =============================================================================================
# VoxCeleb2
# =============================================================================================

def make_voxceleb2(root: Path, *, identities: int = 3, videos: int = 2, frames: int = 14, test_ids: int = 1) -> Replica:
    """``dev/mp4/idXXXXX/<11-char id>/NNNNN.mp4`` (H.264, 32x32, grey level = frame index) for
    ``identities`` speakers with ``videos`` utterances each, frame count ``frames + video``; and
    ``test/mp4/`` with ``test_ids`` more speakers."""
    count = 0
    for split, ids, first in (("dev", identities, 1), ("test", test_ids, 9001)):
        for i in range(ids):
            for v in range(videos):
                yt = hashlib.md5(f"{split}{i}{v}".encode()).hexdigest()[:11]
                path = root / split / "mp4" / f"id{first + i:05d}" / yt / f"{v + 1:05d}.mp4"
                write_video(path, ramp_video(frames + v, 32, 32), codec="libx264")
                count += split == "dev"
    return Replica(root, count, identities, {})
