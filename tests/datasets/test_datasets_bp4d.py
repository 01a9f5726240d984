"""BP4D adapter on a tiny replica: both header styles, mixed zero padding, code 9, frame offset,
faces aligned on a JAA-format 49-point list or detected (the centre square, counted, when no face
is found), the explicit centre crop, standard folds, partial copies."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
from replicas import BP4D_FACE, BP4D_NAMED, bp4d_width, make_bp4d

from ssfbench.api.verify import label_counts
from ssfbench.datasets.bp4d import AUS, BP4D, header_aus
from ssfbench.errors import UserError


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    return make_bp4d(tmp_path_factory.mktemp("bp4d") / "BP4D")


@pytest.fixture(scope="module")
def ds(replica):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean copy opens without warnings
        return BP4D.open(replica.root, image_size=32)


def test_rows_labels_and_codes(ds, replica):
    assert len(ds) == replica.rows == 42 * 3
    assert ds.label_names == tuple(f"AU{a}" for a in AUS) and ds.metric == "f1"
    assert ds.targets.dtype == np.int8 and set(np.unique(ds.targets)) == {-1, 0, 1}
    assert {n: (p, q, u) for n, p, q, u in label_counts(ds.label_names, ds.targets)} == replica.counts
    assert len(set(ds.keys)) == len(ds) and ds.keys[0] == "F001/T1/10"
    assert ds.keys[3] == "F001/T3/10"  # tasks in numeric order within a subject
    assert len(np.unique(ds.subjects)) == 41


def test_both_header_styles_are_read_by_name(ds):
    named = np.isin(ds.subjects, BP4D_NAMED)
    assert (ds.targets[named, AUS.index(24)] == -1).all()  # all-9 column in the named files
    assert (ds.targets[~named, AUS.index(24)] >= 0).any()
    assert header_aus(["1", "1", "2", "4"]) == {1: 1, 2: 2, 4: 3}
    assert header_aus([str(i) for i in range(100)])[24] == 24
    assert header_aus(["2440", "0", "0", "9"]) is None  # a data row is no header
    report = BP4D.inspect(ds.root, quick=True)
    assert "0..99 integer 39, AU-named 3" in report.render()


def test_mixed_zero_padding_resolves_to_the_right_files(ds):
    for subject in ("F001", "M009", "M018", "F013"):
        row = int(np.flatnonzero(ds.subjects == subject)[0])
        assert ds.paths[row].endswith(f"/{subject}/T1/{10:0{bp4d_width(subject)}d}.jpg")


def test_frame_to_file_mapping_and_faces_detected_else_centre_square(ds, replica):
    from ssfbench.datasets._real_frames import NO_FACE

    # no landmark list: dlib looks for a face; the replica's frames have none, so each is counted
    # and cut to its centre square (no warning per frame: the run prints one line)
    image = ds.read_image(0)  # F001/T1 frame 10 -> file 0010.jpg: red = 100 in rows 4..35 of a 40x32 image
    assert ds.face_ways()[0] == NO_FACE
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert abs(int(image[:, :, 0].mean()) - 100) <= 3 and abs(int(image[:, :, 1].mean()) - 200) <= 3
    assert ds.faces_found[NO_FACE] >= 1 and ds.face_summary()["detect"] == len(ds)
    shifted = BP4D.open(replica.root, image_size=32, frame_offset=-2, crop="centre")
    assert shifted.paths[0].endswith("F001/T1/0008.jpg")
    assert abs(int(shifted.read_image(0)[:, :, 0].mean()) - 80) <= 3
    assert shifted.fingerprint() != ds.fingerprint()
    record = ds.preprocessing()
    assert record["crop"] == "aligned" and record["paper"] is True and record["output_size"] == 32
    assert record["landmarks"] == "none" and "dlib" in record["detector"]
    assert shifted.preprocessing()["crop"] == "center-square" and shifted.preprocessing()["paper"] is False
    assert np.array_equal(np.stack(ds.read_images([5, 0])), np.stack([ds.read_image(5), ds.read_image(0)]))


def test_aligned_on_a_jaa_landmark_list(tmp_path):
    from geometry import transform_points

    from ssfbench.faces.alignment import template

    replica = make_bp4d(tmp_path / "BP4D", frames=2, landmarks=True)
    lists = {"landmarks": str(replica.root / "BP4D_land.txt"), "landmark_paths": str(replica.root / "BP4D_path.txt")}
    ds = BP4D.open(replica.root, image_size=32, **lists)
    assert ds.face_summary() == {"landmarks": len(ds) - 1, "box": 0, "detect": 1}
    five = ds.face_points(0)
    assert np.abs(transform_points(five, ds.matrix(five)) - template(32)).max() < 0.01
    left, top, side = BP4D_FACE  # the face square is the red band x 0..32, y 4..36: the crop is all red
    image = ds.read_image(0)
    assert abs(int(image[:, :, 0].mean()) - 100) <= 3 and image[1:-1, :, 0].min() >= 90  # (JPEG blurs the edge rows)
    assert "49 points" in ds.preprocessing()["landmarks"] and ds.faces_found["landmarks"] == 1
    assert ds.fingerprint() != BP4D.open(replica.root, image_size=32).fingerprint()
    report = BP4D.inspect(replica.root, **lists).render()  # verify: how many frames have landmarks or a face
    assert f"{len(ds) - 1} rows with landmarks, 1 to detect; detection on 1 of them: 0 faces found, " \
           "1 without a face (centre square)" in report
    with pytest.raises(UserError, match="needs bp4d.landmark_paths"):
        BP4D.open(replica.root, image_size=32, landmarks=lists["landmarks"])
    (tmp_path / "short.txt").write_text("1 2 3\n")
    with pytest.raises(UserError, match=r"short.txt: 1 landmark lines but .* names \d+ images"):
        BP4D.open(replica.root, image_size=32, landmarks=str(tmp_path / "short.txt"),
                  landmark_paths=lists["landmark_paths"])


def test_options_through_run_data_option(replica):
    from ssfbench.pipeline.spec import RunSpec, open_dataset

    spec = RunSpec(method="random", image_size=32, roots={"bp4d": replica.root},
                   dataset_options={"bp4d": {"frame_offset": -2}})
    assert open_dataset("bp4d", spec).paths[0].endswith("F001/T1/0008.jpg")
    spec.dataset_options = {"bp4d": {"offset": 1}}
    with pytest.raises(UserError, match="has no option 'offset'"):
        open_dataset("bp4d", spec)


def test_standard_folds(ds):
    folds = ds.folds()
    part3 = {"F007", "F015", "F006", "F019", "M006", "M009", "F012", "M003", "F004", "F021", "F017", "M015", "F014"}
    assert set(ds.subjects[folds[0].test]) == part3
    assert not set(ds.subjects[folds[0].train]) & part3
    assert sum(len(f.test) for f in folds) == len(ds)


def test_fingerprint_follows_label_bytes(replica, tmp_path, ds):
    copy = tmp_path / "BP4D"
    shutil.copytree(replica.root, copy)
    assert BP4D.open(copy, image_size=32).fingerprint() == ds.fingerprint()
    csv = copy / "AUCoding" / "AU_OCC" / "F002_T1.csv"
    lines = csv.read_text().splitlines()
    cells = lines[1].split(",")
    cells[1] = "0" if cells[1] == "1" else "1"
    csv.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    assert BP4D.open(copy, image_size=32).fingerprint() != ds.fingerprint()


def test_missing_subject_is_an_error_unless_partial(replica, tmp_path):
    copy = tmp_path / "BP4D"
    shutil.copytree(replica.root, copy)
    shutil.rmtree(copy / "Sequences" / "M005")
    (copy / "AUCoding" / "AU_OCC" / "M005_T1.csv").unlink()
    with pytest.raises(UserError, match="standard subject missing: M005"):
        BP4D.open(copy)
    ds = BP4D.open(copy, partial="true")
    assert "M005" not in set(ds.subjects) and len(ds) == 41 * 3
    with pytest.raises(UserError, match="no option 'offset'"):
        BP4D.inspect(copy, quick=True, offset=1)


def test_missing_images_are_skipped_and_counted(replica, tmp_path):
    copy = tmp_path / "BP4D"
    shutil.copytree(replica.root, copy)
    (copy / "Sequences" / "F003" / "T1" / "0011.jpg").unlink()
    with pytest.warns(UserWarning, match="1 row.*labelled frame without image 1"):
        ds = BP4D.open(copy)
    assert len(ds) == 42 * 3 - 1 and "F003/T1/11" not in set(ds.keys)
    assert ds.preprocessing()["rows_skipped"] == {"labelled frame without image": 1}
    text = BP4D.inspect(copy, quick=True).render()
    assert "F003_T1.csv line 3: frame 11: no image numbered 11" in text and "verdict: usable" in text
