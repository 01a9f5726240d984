"""Face geometry and detection on real faces that scikit-image ships (``astronaut()``, 512 x 512,
and ``lfw_subset()``: 100 faces and 100 non-faces of 25 x 25), and ``ssfbench faces align``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_runner import run_main
from geometry import transform_points
from PIL import Image
from replicas import template_landmarks
from skimage import data
from skimage.transform import SimilarityTransform, warp

from ssfbench.faces.alignment import align, five_points, template
from ssfbench.faces.detection import default_detector


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.mark.parametrize("points", [68, 66, 49])
def test_every_scheme_reduces_to_the_same_five_points(points):
    five = five_points(template_landmarks(points, 10, 20, 100))
    assert np.allclose(five, np.array([10, 20]) + np.array(
        [[0.35, 0.40], [0.65, 0.40], [0.50, 0.58], [0.38, 0.72], [0.62, 0.72]]) * 100)
    with pytest.raises(ValueError, match="expected one of 68, 66, 49, 5 points"):
        five_points(np.zeros((50, 2)))


def test_the_detected_face_is_aligned_eyes_level_on_the_template(astronaut):
    faces = default_detector().detect(astronaut)
    assert faces and faces[0].landmarks.shape == (68, 2)
    x0, y0, x1, y1 = faces[0].box  # the astronaut's face: about x 175..266, y 76..167
    assert 150 < x0 < 200 and 240 < x1 < 290 and 50 < y0 < 100 and 140 < y1 < 190
    aligned = align(astronaut, faces[0].landmarks, 256)
    # detect again in the crop: its eye centres are level and on the template's, within a few pixels
    again = default_detector().detect(aligned.crop)
    assert again
    eyes = five_points(again[0].landmarks)[:2]
    assert abs(eyes[0, 1] - eyes[1, 1]) < 4
    # within 8 px at 256 (measured 6.3: the least-squares fit trades the eyes against nose and mouth)
    assert np.abs(eyes - template(256)[:2]).max() < 8


def test_a_face_rotated_and_scaled_by_a_known_transform_comes_back_to_the_same_crop(astronaut):
    reference = align(astronaut, default_detector().detect(astronaut)[0].landmarks, 128)
    known = SimilarityTransform(scale=0.8, rotation=np.deg2rad(20), translation=(120, -60))
    moved = (warp(astronaut, known.inverse, output_shape=(512, 512)) * 255).round().astype(np.uint8)
    faces = default_detector().detect(moved)
    assert faces
    back = align(moved, faces[0].landmarks, 128)
    # the crop matrix of the moved image is the reference's composed with the inverse transform
    composed = np.vstack([reference.matrix, [0, 0, 1]]) @ np.linalg.inv(known.params)
    corners = np.array([[0, 0], [511, 0], [0, 511], [511, 511]], float)
    assert np.abs(transform_points(corners, back.matrix) - transform_points(corners, composed[:2])).max() < 4
    middle = (slice(24, 104), slice(24, 104))
    assert np.abs(back.crop[middle].astype(int) - reference.crop[middle].astype(int)).mean() < 12


def test_lfw_faces_are_found_and_non_faces_are_not():
    images = data.lfw_subset()  # first 100 faces, then 100 non-faces; 25 x 25 grey in [0, 1]

    def upscaled(i: int) -> np.ndarray:
        grey = Image.fromarray((images[i] * 255).astype(np.uint8)).convert("RGB")
        return np.asarray(grey.resize((100, 100), Image.BICUBIC))

    found = sum(bool(default_detector().detect(upscaled(i))) for i in range(100))
    false = sum(bool(default_detector().detect(upscaled(i))) for i in range(100, 200))
    assert found >= 85 and false == 0  # measured: 91 and 0


def test_faces_align_writes_crops_and_faces_json(astronaut, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(astronaut).save(photos / "astronaut.png")
    Image.fromarray(np.full((60, 80, 3), 128, np.uint8)).save(photos / "wall.png")
    out = tmp_path / "aligned"
    rc, _, err = run_main(["faces", "align", str(photos), "--out", str(out), "--image-size", "96", "--quiet",
                           "--preview", str(tmp_path / "grid.png")], capsys)
    assert rc == 0
    assert f"no face: {photos / 'wall.png'}" in err
    index = json.loads((out / "faces.json").read_text())
    (first, second) = index["images"]
    assert first["path"].endswith("astronaut.png") and second["faces"] == []
    face = first["faces"][0]
    assert face["crop"] == "astronaut-0.png" and len(face["landmarks"]) == 68 and len(face["matrix"]) == 2
    assert Image.open(out / "astronaut-0.png").size == (96, 96) and (tmp_path / "grid.png").is_file()
    eyes = transform_points(five_points(np.array(face["landmarks"])), np.array(face["matrix"]))[:2]
    assert np.abs(eyes - template(96)[:2]).max() < 4


def test_no_face_anywhere_is_one_error_line(tmp_path, capsys):
    Image.fromarray(np.full((60, 80, 3), 128, np.uint8)).save(tmp_path / "wall.png")
    rc, _, err = run_main(["faces", "align", str(tmp_path / "wall.png"), "--out", str(tmp_path / "o"), "--quiet"], capsys)
    assert rc == 2
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert lines == ["error: no face found in any of the 1 input image(s) (dlib's frontal detector; "
                     "faces smaller than about 40 px are missed)"]
    rc, _, err = run_main(["faces", "align", str(tmp_path / "nothing.png"), "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and err.strip() == f"error: {tmp_path / 'nothing.png'}: no such image or folder"


def test_a_missing_faces_extra_is_one_line_naming_the_pip_command(monkeypatch):
    import sys

    from ssfbench.errors import UserError
    from ssfbench.faces import detection

    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib now raises ImportError
    detection.default_detector.cache_clear()
    try:
        with pytest.raises(UserError, match=r"^face detection needs dlib: pip install 'ssfbench\[faces\]'$"):
            detection.default_detector()
    finally:
        detection.default_detector.cache_clear()
