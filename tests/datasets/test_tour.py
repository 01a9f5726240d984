"""A tour of bad inputs on replicas of the official layouts, one test per case: each ends
in one ``error:`` line naming the file or option and what was expected (exit code 2, nothing
written that looks like a result), or in one report line naming the file and what was left out.

L1 / T3  ``datasets prepare --out``: never replaces a file that is not a store, never writes inside
         ``--root``, and a folder is refused.
S12      a prepared store whose crops are smaller than ``--image-size`` is refused.
U3 / U4  AffectNet lists with backslash paths are read; a missing column is named.
U5       a BP4D label file split by ``;`` names the separator.
S6       AffectNet rows whose box lies outside the image: an error, never a black crop.
S7 / T1  DISFA landmark files with 67 points, NaN, degenerate points, no ``pts`` or not a MAT
         file: ``verify`` names each file, and so do ``run`` and ``prepare``.
S8       VoxCeleb2 videos cut short: decoded frames are compared with the header.
T2       VoxCeleb2 clips of mixed frame sizes: one error naming the videos (verify and reads).
U6       one report per unreadable video, and a summary that counts it.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from cli_runner import run_main
from replicas import (
    AFFECTNET_COLUMNS,
    make_affectnet,
    make_bp4d,
    make_disfa,
    make_voxceleb2,
    moving_texture,
    ramp_video,
    write_video,
)

from ssfbench.datasets.affectnet import AffectNet
from ssfbench.datasets.bp4d import BP4D
from ssfbench.datasets.disfa import DISFA
from ssfbench.datasets.voxceleb2 import VoxCeleb2
from ssfbench.errors import UserError


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip() and "%|" not in ln]  # no bars
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _errors(report) -> dict[str, list[str]]:
    return {kind: [p.line() for p in items] for kind, items in report.problems.of("error")}


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """Pristine replicas built once; each test copies the one it damages."""
    base = tmp_path_factory.mktemp("tour")
    return {"bp4d": make_bp4d(base / "BP4D").root, "affectnet": make_affectnet(base / "AffectNet").root,
            "disfa": make_disfa(base / "DISFA", landmarks=True).root,
            "voxceleb2": make_voxceleb2(base / "VoxCeleb2").root}


def _copy(bases, name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bases[name], tmp_path / name))


# ---- L1, T3: prepare --out -------------------------------------------------------------------

def test_l1_prepare_never_replaces_a_file_that_is_not_a_store(bases, tmp_path, capsys):
    root = _copy(bases, "bp4d", tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    prepare = ["datasets", "prepare", "bp4d", "--root", str(root), "--image-size", "16", "--set", "crop=centre"]
    rc, _, err = run_main([*prepare, "--out", str(notes)], capsys)
    line = _one_error_line(err)
    assert rc == 2 and "notes.txt" in line and "not a store written by ssfbench" in line
    assert notes.read_text() == "my notes\n" and sorted(p.name for p in tmp_path.iterdir()) == ["bp4d", "notes.txt"]

    label = root / "AUCoding" / "AU_OCC" / "F001_T1.csv"
    before = label.read_bytes()
    for out in (label, root / "store.h5", root / "Sequences" / "new.h5"):
        rc, _, err = run_main([*prepare, "--out", str(out)], capsys)
        line = _one_error_line(err)
        assert rc == 2 and "inside the dataset copy" in line and str(out) in line
        assert not (root / "store.h5").exists() and not (root / "Sequences" / "new.h5").exists()
    assert label.read_bytes() == before

    store = tmp_path / "bp4d-16.h5"  # one of our stores may be replaced (prepared again)
    assert run_main([*prepare, "--out", str(store)], capsys)[0] == 0
    assert run_main([*prepare, "--out", str(store)], capsys)[0] == 0
    assert BP4D.open(store, image_size=16).image_size == 16


def test_t3_prepare_out_folder_is_one_error_line(bases, tmp_path, capsys):
    folder = tmp_path / "existing"
    folder.mkdir()
    rc, _, err = run_main(["datasets", "prepare", "bp4d", "--root", str(bases["bp4d"]), "--out", str(folder)],
                          capsys)
    line = _one_error_line(err)
    assert rc == 2 and f"--out {folder}: is a folder" in line and not list(folder.iterdir())


# ---- S12: a store prepared smaller than --image-size -------------------------------------------

def test_s12_store_with_smaller_crops_than_image_size_is_refused(bases, tmp_path, capsys):
    store = tmp_path / "bp4d-16.h5"
    BP4D.prepare(bases["bp4d"], store, image_size=16, crop="centre")
    assert BP4D.open(store, image_size=16).image_size == 16  # same size, or smaller (downsampled): fine
    assert BP4D.open(store, image_size=8).image_size == 16
    with pytest.raises(UserError, match=r"holds 16-pixel face crops, smaller than --image-size 32; pass "
                                        r"--image-size 16 \(or less\), or prepare it again with --image-size 32"):
        BP4D.open(store, image_size=32, crop="centre")
    out = tmp_path / "out"
    capsys.readouterr()  # the progress bar of prepare
    rc, _, err = run_main(["run", "--method", "random", "--datasets", "bp4d", "--root", f"bp4d={store}",
                           "--image-size", "32", "--out", str(out), "--quiet", "--device", "cpu"], capsys)
    line = _one_error_line(err)
    assert rc == 2 and str(store) in line and "smaller than --image-size 32" in line
    assert not list(out.rglob("*.json")) and not list(out.rglob("*.csv"))


# ---- U5: BP4D label files with another separator -----------------------------------------------

def test_u5_bp4d_semicolon_separator_is_named(bases, tmp_path, capsys):
    root = _copy(bases, "bp4d", tmp_path)
    csv = root / "AUCoding" / "AU_OCC" / "F001_T1.csv"
    csv.write_text(csv.read_text().replace(",", ";"))
    report = BP4D.inspect(root, quick=True)
    errors = _errors(report)
    assert list(errors) == ["unrecognised separator"] and len(errors["unrecognised separator"]) == 1
    assert "F001_T1.csv line 1: fields separated by ';', expected ','" in errors["unrecognised separator"][0]
    assert not report.problems.of("note")  # no "AU missing from the header" notes
    rc, out, _ = run_main(["datasets", "verify", "bp4d", "--root", str(root), "--quick"], capsys)
    assert rc == 2 and "fields separated by ';'" in out
    with pytest.raises(UserError, match="F001_T1.csv line 1: fields separated by ';'"):
        BP4D.open(root)


def test_u5_bp4d_header_naming_no_au_is_an_error(bases, tmp_path):
    root = _copy(bases, "bp4d", tmp_path)
    csv = root / "AUCoding" / "AU_OCC" / "F001_T1.csv"
    csv.write_text("0\n" + "".join(line.split(",")[0] + "\n" for line in csv.read_text().splitlines()[1:]))
    errors = _errors(BP4D.inspect(root, quick=True))
    assert any("F001_T1.csv line 1: names no AU column" in e for e in errors["unrecognised header"])


# ---- U3, U4: AffectNet lists -------------------------------------------------------------------

def test_u3_affectnet_backslash_paths_are_read(bases, tmp_path):
    root = _copy(bases, "affectnet", tmp_path)
    reference = AffectNet.open(bases["affectnet"], image_size=16)
    lists = root / "Manually_Annotated_file_lists"
    for name in ("training.csv", "validation.csv"):
        text = (lists / name).read_text()
        (lists / name).write_text("\n".join(line.replace("/", "\\", 1) for line in text.splitlines()) + "\n")
    report = AffectNet.inspect(root, quick=True)
    assert report.usable, report.render()
    ds = AffectNet.open(root, image_size=16)
    assert np.array_equal(ds.keys, reference.keys) and np.array_equal(ds.targets, reference.targets)
    assert np.array_equal(ds.read_image(0), reference.read_image(0))


def test_u4_affectnet_missing_column_is_named(bases, tmp_path):
    root = _copy(bases, "affectnet", tmp_path)
    lists = root / "Manually_Annotated_file_lists"
    landmarks = AFFECTNET_COLUMNS.index("facial_landmarks")
    for name in ("training.csv", "validation.csv"):
        rows = [line.split(",") for line in (lists / name).read_text().splitlines()]
        (lists / name).write_text("\n".join(",".join(r[:landmarks] + r[landmarks + 1:]) for r in rows) + "\n")
    errors = _errors(AffectNet.inspect(root, quick=True))
    assert list(errors) == ["missing column"], errors  # no "expression '0.5' is not a code" per row
    training, validation = errors["missing column"]
    assert "training.csv line 1: no facial_landmarks column (the header has subDirectory_filePath," in training
    assert "validation.csv: 8 fields per line, expected 9 (subDirectory_filePath," in validation
    with pytest.raises(UserError, match="training.csv line 1: no facial_landmarks column"):
        AffectNet.open(root)


# ---- S6: AffectNet faces outside the image -----------------------------------------------------

def _affectnet_row(root: Path, i: int, edit) -> str:
    """Edit training row ``i`` of the replica (cells as a list); returns its image key."""
    rel = f"{100 + i % 3}/{hashlib.sha1(f'train{i}'.encode()).hexdigest()}.jpg"
    path = root / "Manually_Annotated_file_lists" / "training.csv"
    lines = path.read_text().splitlines()
    (n,) = [k for k, line in enumerate(lines) if line.startswith(rel + ",")]
    cells = lines[n].split(",")
    edit(cells)
    lines[n] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return rel


def _shift_landmarks(cells: list[str]) -> None:
    cells[5] = ";".join(f"{float(v) + 1000:.2f}" for v in cells[5].split(";"))


def _box_outside(cells: list[str]) -> None:
    cells[1], cells[2] = "1000", "1000"
    _shift_landmarks(cells)


def test_s6_affectnet_face_outside_the_image_is_never_a_black_crop(bases, tmp_path, capsys):
    root = _copy(bases, "affectnet", tmp_path)
    outside = _affectnet_row(root, 10, _box_outside)
    marks_out = _affectnet_row(root, 11, _shift_landmarks)
    report = AffectNet.inspect(root)
    errors = _errors(report)
    assert not report.usable and list(errors) == ["face box outside the image"]
    (line,) = errors["face box outside the image"]
    assert outside in line and "listed in training.csv line" in line and "outside the 48x40 image" in line
    (note,) = [p.line() for kind, items in report.problems.of("note") if kind.startswith("landmarks outside")
               for p in items]
    assert marks_out in note
    rc, out, _ = run_main(["datasets", "verify", "affectnet", "--root", str(root)], capsys)
    assert rc == 2 and "face box outside the image (1)" in out

    ds = AffectNet.open(root, image_size=16)
    with pytest.raises(UserError, match=f"{outside}: listed in training.csv line .*outside the 48x40 image"):
        ds.read_image(int(np.flatnonzero(ds.keys == outside)[0]))
    crop = ds.read_image(int(np.flatnonzero(ds.keys == marks_out)[0]))
    assert crop.max() > 200 and crop[..., 0].mean() > 200  # the red box, not black
    assert ds.faces_found["box"] == 1
    rc, _, err = run_main(["datasets", "prepare", "affectnet", "--root", str(root), "--image-size", "16",
                           "--out", str(tmp_path / "a.h5")], capsys)
    assert rc == 2 and outside in _one_error_line(err) and not (tmp_path / "a.h5").exists()


# ---- S7, T1: DISFA landmark files ----------------------------------------------------------------

def _damage_landmarks(root: Path) -> dict[str, Path]:
    from scipy.io import savemat

    def mat(subject: str, frame: int) -> Path:
        return root / "Landmark_Points" / subject / "tmp_frame_lm" / f"{subject}_{frame:04d}_lm.mat"

    damaged = {"67 points": mat("SN001", 0), "NaN": mat("SN002", 1), "no pts": mat("SN003", 2),
               "degenerate": mat("SN004", 3), "not a MAT file": mat("SN005", 0)}
    savemat(damaged["67 points"], {"pts": np.ones((67, 2)) * np.arange(67)[:, None]})
    pts = np.full((66, 2), 10.0) + np.arange(66)[:, None]
    pts[3, 0] = np.nan
    savemat(damaged["NaN"], {"pts": pts})
    savemat(damaged["no pts"], {"landmarks": np.zeros((66, 2))})
    savemat(damaged["degenerate"], {"pts": np.full((66, 2), 12.0)})
    damaged["not a MAT file"].write_text("these are not landmarks\n")
    return damaged


def test_s7_t1_disfa_bad_landmark_files_are_named(bases, tmp_path, capsys):
    root = _copy(bases, "disfa", tmp_path)
    damaged = _damage_landmarks(root)
    report = DISFA.inspect(root)
    errors = _errors(report)
    assert not report.usable and list(errors) == ["unusable landmark file"], errors
    lines = errors["unusable landmark file"]
    assert len(lines) == len(damaged)
    for why, path in damaged.items():
        (line,) = [ln for ln in lines if ln.startswith(str(path) + ":")]
        assert {"67 points": "67 landmarks", "NaN": "not finite", "no pts": "without a 'pts' matrix (it holds: "
                "landmarks)", "degenerate": "degenerate", "not a MAT file": "not a MAT file"}[why] in line, line

    ds = DISFA.open(root, image_size=16)
    for path in damaged.values():
        subject, frame = path.parent.parent.name, int(path.name.split("_")[1])
        row = int(np.flatnonzero((ds.subjects == subject) & (ds.vframes == frame))[0])
        with pytest.raises(UserError, match=f"^{path}: ") as err:
            ds.read_image(row)
        assert "\n" not in str(err.value)
    rc, _, err = run_main(["datasets", "prepare", "disfa", "--root", str(root), "--image-size", "16",
                           "--out", str(tmp_path / "d.h5")], capsys)
    line = _one_error_line(err)
    assert rc == 2 and "Landmark_Points" in line and "_lm.mat" in line and not (tmp_path / "d.h5").exists()


# ---- S8, T2, U6: videos ------------------------------------------------------------------------

def _faststart_mp4(path: Path, frames: np.ndarray) -> None:
    """An mp4 with its header (moov) first, as downloaded files are: cut short, it still opens."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_s8_voxceleb2_video_cut_short_is_an_error(bases, tmp_path):
    root = _copy(bases, "voxceleb2", tmp_path)
    ds = VoxCeleb2.open(root)
    cut = ds.path(1)
    _faststart_mp4(cut, moving_texture(40, 32))
    blob = cut.read_bytes()
    cut.write_bytes(blob[: len(blob) // 2])
    report = VoxCeleb2.inspect(root, sample=0)
    errors = _errors(report)
    assert list(errors) == ["video shorter than its header"]
    (line,) = errors["video shorter than its header"]
    assert line.startswith(f"{cut}: ") and "frames decode, its header says 40 (cut short?)" in line
    text = report.render()
    assert "all 6 videos decoded" not in text and "6 videos checked: 5 decoded" in text and "1 with errors" in text


def test_t2_voxceleb2_mixed_frame_sizes_are_named(bases, tmp_path):
    from ssfbench.train.windows import validation_windows

    root = _copy(bases, "voxceleb2", tmp_path)
    ds = VoxCeleb2.open(root)
    odd = 3
    write_video(ds.path(odd), ramp_video(15, 48, 40), codec="libx264")
    errors = _errors(VoxCeleb2.inspect(root, sample=0))
    assert list(errors) == ["frame size differs"]
    (line,) = errors["frame size differs"]
    assert line.startswith(f"{ds.path(odd)}: 40x48, while 5 of the 6 videos checked are 32x32")

    class Window:  # the two calls validation_windows makes of a method
        def window_span(self) -> int:
            return 2

        def sample_offsets(self, rng) -> list[int]:
            return [0, 1]

    ds = VoxCeleb2.open(root)
    message = f"{ds.path(odd)}: frames of 40x48, but {ds.path(0)} has 32x32; every clip must have one frame size"
    with pytest.raises(UserError, match=message):
        validation_windows(ds, np.arange(len(ds)), Window(), seed=0)
    with pytest.raises(UserError, match=message):
        ds.read_windows(odd, [[0, 1]])
    assert validation_windows(ds, np.array([0, 1, 2]), Window(), seed=0).shape == (3, 2, 32, 32, 3)


def test_u6_each_unreadable_video_is_reported_once(bases, tmp_path):
    root = _copy(bases, "disfa", tmp_path)
    broken = root / "Videos_LeftCamera" / "LeftVideoSN001_comp.avi"
    broken.write_bytes(b"not a video at all" * 10)
    report = DISFA.inspect(root)
    errors = _errors(report)
    assert len([e for e in errors["unreadable video"] if e.startswith(str(broken))]) == 1
    text = report.render()
    assert "all 27 videos decoded" not in text and "27 videos checked: 26 decoded" in text

    vox = _copy(bases, "voxceleb2", tmp_path)
    bad = VoxCeleb2.open(vox).path(2)
    bad.write_bytes(b"\x00" * 64)
    report = VoxCeleb2.inspect(vox, sample=0)
    assert [e.split(":")[0] for e in _errors(report)["unreadable video"]] == [str(bad)]
    text = report.render()
    assert "all 6 videos decoded" not in text and "6 videos checked: 5 decoded" in text
