"""The share of frames prepared the paper's way and the † mark, and ``datasets verify`` without dlib
(a copy with full landmarks names no detector), on the layout replicas."""

from __future__ import annotations

import json
import sys

import pytest
from replicas import make_bp4d, make_disfa

from ssfbench.cli import main
from ssfbench.datasets._real_frames import NO_FACE
from ssfbench.report.compare import OFF_PROTOCOL_MARK, comparison_table
from ssfbench.report.render import caption


def _cli(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code)
    return 0


@pytest.fixture(scope="module")
def bp4d_root(tmp_path_factory):
    """BP4D without landmarks, and frames without a face: every frame falls back."""
    return make_bp4d(tmp_path_factory.mktemp("bp4d") / "BP4D").root


@pytest.fixture(scope="module")
def disfa_root(tmp_path_factory):
    """DISFA with Landmark_Points for every subject: every frame is aligned on its landmarks."""
    return make_disfa(tmp_path_factory.mktemp("disfa") / "DISFA", frames=4, landmarks=True).root


def _run(name: str, root, out, capsys) -> tuple[dict, str]:
    rc = _cli(["run", "--method", "random", "--datasets", name, "--root", f"{name}={root}", "--image-size", "32",
               "--out", str(out), "--quiet", "--device", "cpu"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    (path,) = (out / "results" / "runs").glob(f"*/{name}.json")
    return json.loads(path.read_text()), printed.out


def test_a_copy_without_landmarks_or_faces_is_marked_and_says_so_once(bp4d_root, tmp_path, capsys):
    out = tmp_path / "out"
    result, printed = _run("bp4d", bp4d_root, out, capsys)
    faces = result["face_preprocessing"]
    assert faces["frames"] == 126 and faces["paper_frames"] == 0 and faces["paper_percent"] == 0.0
    assert faces["fallback"] == {NO_FACE: 126} and faces["paper"] is False
    assert result["faces_found"] == {NO_FACE: 126}
    listed = out / "runs" / result["run_id"] / "faces-bp4d.tsv"
    assert faces["fallback_list"] == str(listed)
    lines = listed.read_text().splitlines()
    assert lines[0].startswith("# ssfbench faces of bp4d ") and len(lines) == 2 + 126
    assert lines[2].split("\t")[2] == NO_FACE and lines[2].split("\t")[1].endswith(".jpg")
    # the printout ends with one line, and no warning per frame
    last = printed.strip().splitlines()[-1]
    assert last == (f"faces: bp4d: 126 of 126 frames fell back (100 % centre-squared), not prepared the paper's "
                    f"way; row marked † (off-protocol faces); list: {listed}")
    assert "no face detected in" not in printed and printed.count("fell back") == 1
    # the row is marked in the leaderboard CSV, compare's table and caption, and the web page
    table = comparison_table("bp4d", out=out, paper="none", committed=False)
    (name,) = table.rows["name"]
    assert name.endswith(OFF_PROTOCOL_MARK) and "not the paper's: 100 % centre-squared" in list(table.rows["faces"])
    assert "off-protocol faces: 100 % centre-squared" in caption(table)
    page = tmp_path / "board.html"
    assert _cli(["compare", "--datasets", "bp4d", "--out", str(out), "--paper", "none", "--format", "html",
                 "--output", str(page)]) == 0
    assert "off-protocol faces: 100 % centre-squared" in page.read_text()
    capsys.readouterr()
    # a second run reuses the embedding cache (no frame read): the share comes from the list, unchanged
    again, printed = _run("bp4d", bp4d_root, out, capsys)
    assert again["face_preprocessing"]["fallback"] == {NO_FACE: 126} and printed.strip().splitlines()[-1] == last


def test_verify_says_the_share_and_the_likely_cause(bp4d_root, capsys):
    assert _cli(["datasets", "verify", "bp4d", "--root", str(bp4d_root)]) == 0
    out = capsys.readouterr().out
    assert "detection on 126 of them: 0 faces found, 126 without a face" in out
    assert "the paper's preprocessing: 0.0 % of frames" in out
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith("verdict: usable, but not the paper's preprocessing: 100 % of frames fall back "
                              "(likely cause: no landmark files found where the adapter looks: --set landmarks=FILE")
    assert "dlib found no face in 126 of the 126 frames it checked" in verdict


def test_a_copy_with_landmark_files_is_not_marked(disfa_root, tmp_path, capsys):
    result, printed = _run("disfa", disfa_root, tmp_path / "out", capsys)
    faces = result["face_preprocessing"]
    assert faces["paper"] is True and faces["paper_percent"] == 100.0 and faces["fallback"] == {}
    assert "detector" not in faces and "fallback_list" not in faces  # U1: nothing was detected
    assert printed.strip().splitlines()[-1].startswith("faces: disfa: all ")
    table = comparison_table("disfa", out=tmp_path / "out", paper="none", committed=False)
    assert not any(n.endswith(OFF_PROTOCOL_MARK) for n in table.rows["name"]) and "†" not in caption(table)
    # U1: verify counts the landmark rows (read per frame) and has nothing to detect
    assert _cli(["datasets", "verify", "disfa", "--root", str(disfa_root), "--quick"]) == 0
    out = capsys.readouterr().out
    rows = result["n_rows"]
    assert f"{rows} rows with landmarks, 0 to detect; the paper's preprocessing: 100.0 % of frames" in out
    assert out.strip().splitlines()[-1] == "verdict: usable"


def test_verify_without_dlib_checks_everything_else_and_names_the_pip_command(bp4d_root, monkeypatch, capsys):
    from ssfbench.faces import detection

    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` raises ImportError: the extra is absent
    detection.default_detector.cache_clear()
    try:
        assert _cli(["datasets", "verify", "bp4d", "--root", str(bp4d_root)]) == 0
        out = capsys.readouterr().out
        assert "126 usable (41 subjects)" in out and "all 126 images decoded" in out and "AU24" in out
        skipped = [ln for ln in out.splitlines() if "face check skipped" in ln]
        assert len(skipped) == 1 and "dlib is not installed (pip install 'ssfbench[faces]' enables it)" in skipped[0]
        assert out.strip().splitlines()[-1] == "verdict: usable"  # the share is unknown, not claimed
        # a run still refuses at once, in one line naming the same pip command
        assert _cli(["run", "--method", "random", "--datasets", "bp4d", "--root", f"bp4d={bp4d_root}",
                     "--quiet", "--device", "cpu", "--out", str(bp4d_root.parent / "o")]) == 2
        assert capsys.readouterr().err.strip() == "error: face detection needs dlib: pip install 'ssfbench[faces]'"
    finally:
        detection.default_detector.cache_clear()
