"""Face geometry and detection on real faces that scikit-image ships (``astronaut()``, 512 x 512,
and ``lfw_subset()``: 100 faces and 100 non-faces of 25 x 25), and ``ssfbench faces align``."""

from __future__ import annotations

import json
from pathlib import Path

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
    assert lines == [f"error: no face found in any of the 1 input image(s); dlib's frontal detector misses faces "
                     f"smaller than about 40 px ({tmp_path / 'o'}/faces.json lists them)"]
    assert f"no face: {tmp_path / 'wall.png'}" in err  # named even when no image had a face
    assert not list((tmp_path / "o").glob("*.png"))
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


def _exif_rotated(image: np.ndarray, path) -> None:
    """``image`` saved as a JPEG whose pixels lie on their side, with the EXIF tag that turns them upright."""
    sideways = Image.fromarray(image).transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # upright = rotate the stored pixels 90 degrees clockwise
    sideways.save(path, quality=95, exif=exif.tobytes())


def test_one_oriented_reader_for_datasets_and_faces_align(astronaut, tmp_path):
    """S9: an EXIF-rotated photo is read upright by the datasets' reader and by faces align alike."""
    from ssfbench.faces.images import read_face, read_rgb
    from ssfbench.faces.photos import read_rgb as align_read

    _exif_rotated(astronaut, tmp_path / "rotated.jpg")
    upright, factor = read_rgb(tmp_path / "rotated.jpg")
    assert upright.shape == (512, 512, 3) and factor == 1.0
    assert np.abs(upright.astype(int) - astronaut).mean() < 6  # JPEG error only, not a sideways image
    assert np.array_equal(align_read(tmp_path / "rotated.jpg"), upright)
    # a face box in upright pixels cuts the same place from the rotated file as from an upright copy
    Image.fromarray(astronaut).save(tmp_path / "upright.png")
    box = (160.0, 60.0, 280.0, 180.0)
    got, want = read_face(tmp_path / "rotated.jpg", box, 32), read_face(tmp_path / "upright.png", box, 32)
    assert np.abs(got.astype(int) - want).mean() < 6
    assert default_detector().detect(upright)  # the dataset path now finds the face, as faces align does


def test_16_bit_grey_frames_are_scaled_not_clipped_to_white(tmp_path):
    """S1: Pillow alone reads a 16-bit grey PNG as solid white; the reader scales it to 8 bits."""
    from ssfbench.faces.images import check_image, read_face, read_rgb

    ramp = (np.arange(64 * 48).reshape(48, 64) * 21).astype(np.uint16)  # 0 .. 64491
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as im:
        assert im.mode == "I;16" and (np.asarray(im.convert("RGB")) == 255).mean() > 0.9  # the bug: clipped
    rgb = read_rgb(tmp_path / "deep.png")[0]
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb[..., 0], ((ramp.astype(int) + 128) // 257).astype(np.uint8))
    assert read_face(tmp_path / "deep.png", None, 16).std() > 30 and check_image(tmp_path / "deep.png") is None
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(tmp_path / "float.tif")
    assert "32-bit float image" in check_image(tmp_path / "float.tif")


def test_faces_align_names_are_unique_across_folders(astronaut, tmp_path, capsys):
    """S2: a/x.jpg, a/x_2.jpg and b/x.jpg get three different crops, and faces.json maps each to its own."""
    for rel in ("a/x.jpg", "a/x_2.jpg", "b/x.jpg"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        Image.fromarray(astronaut[::2, ::2]).save(tmp_path / rel, quality=95)
    out = tmp_path / "out"
    rc, _, err = run_main(["faces", "align", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out),
                           "--image-size", "32", "--quiet"], capsys)
    assert rc == 0, err
    images = json.loads((out / "faces.json").read_text())["images"]
    crops = [f["crop"] for image in images for f in image["faces"]]
    assert len(set(crops)) == len(crops) >= 3 and sorted(p.name for p in out.glob("*.png")) == sorted(crops)
    firsts = [image["faces"][0]["crop"] for image in images]
    assert dict(zip([Path(i["path"]).relative_to(tmp_path).as_posix() for i in images], firsts)) == {
        "a/x.jpg": "x-0.png", "a/x_2.jpg": "x_2-0.png", "b/x.jpg": "x_3-0.png"}


def test_faces_align_into_its_input_folder_twice_never_aligns_its_own_crops(astronaut, tmp_path, capsys):
    """S3 and U15: --out inside the input folder is not read back; a rerun removes the previous index
    and crops before writing; a zero-byte image is skipped and named, the others aligned."""
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(astronaut[::2, ::2]).save(photos / "face.png")
    (photos / "empty.jpg").write_bytes(b"")
    out = photos / "aligned"
    for _ in range(2):
        rc, stdout, err = run_main(["faces", "align", str(photos), "--out", str(out), "--image-size", "32",
                                    "--quiet"], capsys)
        assert rc == 0, err
        assert f"warning: {photos / 'empty.jpg'}: skipped, unreadable image" in err
        assert "face(s) from 1 of 2 image(s), 1 unreadable skipped" in stdout
        index = json.loads((out / "faces.json").read_text())
        assert [Path(i["path"]).name for i in index["images"]] == ["empty.jpg", "face.png"]
        crops = [f["crop"] for f in index["images"][1]["faces"]]
        assert "error" in index["images"][0] and sorted(p.name for p in out.iterdir()) == sorted([*crops, "faces.json"])
    # a rerun that fails before writing (no image left) leaves no stale index behind the crops
    (photos / "face.png").unlink()
    rc, _, err = run_main(["faces", "align", str(photos), "--out", str(out), "--quiet"], capsys)
    assert rc == 2 and err.count("error:") == 1
    assert not (out / "face-0.png").exists() and json.loads((out / "faces.json").read_text())["images"][0]["error"]
