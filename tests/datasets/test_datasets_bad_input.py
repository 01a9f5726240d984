"""Damaged copies: every problem produces a one-line message naming the file, ``open`` refuses
the copy, and ``verify`` lists every problem (not just the first) and exits 2."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from replicas import make_affectnet, make_bp4d, make_disfa, make_emotionet, make_voxceleb2

from ssfbench.cli import main
from ssfbench.datasets.affectnet import AffectNet
from ssfbench.datasets.bp4d import BP4D
from ssfbench.datasets.disfa import DISFA
from ssfbench.datasets.emotionet import EmotioNet
from ssfbench.datasets.voxceleb2 import VoxCeleb2
from ssfbench.errors import UserError

ADAPTERS = (BP4D, DISFA, EmotioNet, AffectNet, VoxCeleb2)


def _errors(report) -> dict[str, list[str]]:
    return {kind: [p.line() for p in items] for kind, items in report.problems.of("error")}


def _truncate(path, keep: float = 0.5) -> None:
    blob = path.read_bytes()
    path.write_bytes(blob[: int(len(blob) * keep)])


@pytest.mark.parametrize("cls", ADAPTERS, ids=lambda c: c.name)
def test_missing_root(cls, tmp_path):
    with pytest.raises(UserError, match=f"{tmp_path / 'nope'}: {cls.name} root not found"):
        cls.open(tmp_path / "nope")
    with pytest.raises(UserError, match=f"pass --root {cls.name}=PATH"):
        cls.open(None)
    with pytest.raises(UserError) as err:
        cls.open(tmp_path)  # an empty folder: the layout is not there
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)


@pytest.fixture
def bp4d_damaged(tmp_path):
    root = make_bp4d(tmp_path / "BP4D").root
    shutil.rmtree(root / "Sequences" / "F002" / "T1")                       # label file without images
    (root / "AUCoding" / "AU_OCC" / "F003_T1.csv").unlink()                 # images without labels
    csv = root / "AUCoding" / "AU_OCC" / "F004_T1.csv"
    lines = csv.read_text().splitlines()
    lines[1] = lines[1].replace(",0,", ",x,", 1)                            # malformed row (line 2)
    lines.append(lines[2] + ",0")                                           # malformed row: 101 fields (line 5)
    csv.write_text("\n".join(lines) + "\n")
    (root / "Sequences" / "F005" / "T1" / "0010.jpg").write_bytes(b"not a jpeg")   # corrupt image
    _truncate(root / "Sequences" / "F006" / "T1" / "0011.jpg", 0.4)                # truncated image
    return root


def test_bp4d_open_names_the_first_problem_and_counts_the_rest(bp4d_damaged):
    with pytest.raises(UserError) as err:
        BP4D.open(bp4d_damaged)
    message = str(err.value)
    assert "\n" not in message and "more problems" in message and "ssfbench datasets verify bp4d" in message
    assert "images without labels" in message and "F003/T1" in message


def test_bp4d_verify_lists_everything(bp4d_damaged):
    report = BP4D.inspect(bp4d_damaged)
    errors = _errors(report)
    assert not report.usable
    assert any("F002_T1.csv" in line for line in errors["label file without images"])
    assert any("Sequences/F003/T1" in line for line in errors["images without labels"])
    malformed = errors["malformed row"]
    assert any("F004_T1.csv line 2: AU" in line for line in malformed)
    assert any("F004_T1.csv line 5: 101 fields, expected 100" in line for line in malformed)
    unreadable = " ".join(errors["unreadable image"])
    assert "F005/T1/0010.jpg" in unreadable and "F006/T1/0011.jpg" in unreadable
    assert {"standard subject missing"} <= set(errors)  # F003 lost its only task
    assert "verdict: NOT usable" in report.render()


def test_bp4d_cli_verify_exit_2_lists_all(bp4d_damaged, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["datasets", "verify", "bp4d", "--root", str(bp4d_damaged)])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    for needle in ("F002_T1.csv", "Sequences/F003/T1", "F004_T1.csv line 2", "F005/T1/0010.jpg", "F006/T1/0011.jpg"):
        assert needle in captured.out
    assert captured.err.startswith("error: bp4d: the copy at") and captured.err.count("\n") == 1


def test_corrupt_image_read_names_the_file(tmp_path):
    root = make_bp4d(tmp_path / "BP4D").root
    (root / "Sequences" / "F005" / "T1" / "0010.jpg").write_bytes(b"not a jpeg")
    ds = BP4D.open(root)  # scanning does not decode images
    row = int(np.flatnonzero(ds.keys == "F005/T1/10")[0])
    with pytest.raises(UserError, match=r"F005/T1/0010\.jpg: unreadable image"):
        ds.read_image(row)


def test_disfa_damage(tmp_path):
    root = make_disfa(tmp_path / "DISFA").root
    videos, labels = root / "Videos_LeftCamera", root / "ActionUnit_Labels"
    (videos / "LeftVideoSN005_comp.avi").write_bytes(b"\x00" * 100)           # corrupt video
    au1 = labels / "SN006" / "SN006_au1.txt"
    lines = au1.read_text().splitlines()
    lines[2] = "3,7"                                                           # malformed row: intensity 7
    au1.write_text("\n".join(lines) + "\n")
    (labels / "SN007" / "SN007_au4.txt").unlink()                              # missing AU file
    (videos / "LeftVideoSN008_comp.avi").unlink()                              # labels without video
    shutil.rmtree(labels / "SN009")                                            # video without labels
    with pytest.raises(UserError, match="SN005_comp.avi|SN006_au1.txt|SN007|SN008|SN009"):
        DISFA.open(root)
    errors = _errors(DISFA.inspect(root))
    assert any("LeftVideoSN005_comp.avi" in line for line in errors["unreadable video"])
    assert f"{au1} line 3: intensity is not an integer 0..5: 3,7" in errors["malformed row"]
    assert any("SN007_au4.txt" in line for line in errors["AU label file missing"])
    assert any("ActionUnit_Labels/SN008" in line for line in errors["labels without video"])
    assert any("LeftVideoSN009_comp.avi" in line for line in errors["video without labels"])


def test_disfa_truncated_video_is_caught_by_verify(tmp_path):
    root = make_disfa(tmp_path / "DISFA").root
    _truncate(root / "Videos_LeftCamera" / "LeftVideoSN011_comp.avi", 0.5)
    report = DISFA.inspect(root)
    assert not report.usable
    assert any("LeftVideoSN011_comp.avi" in p.where for p in report.problems.errors)


def test_emotionet_damage(tmp_path):
    root = make_emotionet(tmp_path / "E").root
    lst = root / "lists" / "dataFile_1001.txt"
    rows = lst.read_text().splitlines()
    cells = rows[4].split("\t")
    cells[2] = "5"
    rows[4] = "\t".join(cells)
    lst.write_text("\n".join(rows) + "\n")
    (root / "images" / "N_0000000002_00002.jpg").write_bytes(b"garbage")
    (root / "EmotioNet_extra.xlsx").write_bytes(b"PK")
    errors = _errors(EmotioNet.inspect(root))
    assert errors["malformed row"] == [f"{lst} line 5: AU1 is not 0, 1 or 999"]
    assert any("N_0000000002_00002.jpg" in line for line in errors["unreadable image"])
    assert any("EmotioNet_extra.xlsx" in line for line in errors["label file in Excel format"])
    shutil.rmtree(root / "images")
    errors = _errors(EmotioNet.inspect(root, quick=True))
    assert len(errors["no images downloaded"]) == 3  # train, val and test
    with pytest.raises(UserError, match="EmotioNet_extra.xlsx.*and 4 more problems"):
        EmotioNet.open(root)


def test_affectnet_damage(tmp_path):
    root = make_affectnet(tmp_path / "A").root
    training = root / "Manually_Annotated_file_lists" / "training.csv"
    rows = training.read_text().splitlines()
    cells = rows[12].split(",")
    cells[6] = "abc"
    rows[12] = ",".join(cells)
    training.write_text("\n".join(rows) + "\n")
    victim = sorted((root / "Manually_Annotated_Images").rglob("*.jpg"))[0]
    victim.write_bytes(b"garbage")
    errors = _errors(AffectNet.inspect(root))
    assert errors["malformed row"] == [f"{training} line 13: expression 'abc' is not a code 0..10"]
    assert any(victim.name in line for line in errors["unreadable image"])
    training.write_text("\n".join(rows[:12] + rows[13:]) + "\n")
    shutil.rmtree(root / "Manually_Annotated_Images")
    with pytest.raises(UserError, match="label file without images: .*training.csv: no Manually_Annotated_Images"):
        AffectNet.open(root)


def test_voxceleb2_corrupt_video(tmp_path):
    root = make_voxceleb2(tmp_path / "V", identities=2, videos=1, test_ids=0).root
    bad = next((root / "dev" / "mp4" / "id00002").rglob("*.mp4"))
    bad.write_bytes(b"\x00\x01" * 50)
    report = VoxCeleb2.inspect(root, sample=0)
    assert [p.where for p in report.problems.errors] == [str(bad)]
    vox = VoxCeleb2.open(root)  # listing does not decode
    with pytest.raises(UserError, match=f"{bad}: unreadable video"):
        vox.read_frames(vox.videos.index(str(bad.relative_to(root / "dev" / "mp4"))), [0])
