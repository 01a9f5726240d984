"""AffectNet adapter on a tiny replica: header / no header, NULL row and codes 8-10 counted, 8
classes one-hot, box crop, the paper's 85/15 split with validation.csv apart."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from replicas import make_affectnet

from ssfbench.api.verify import label_counts
from ssfbench.datasets.affectnet import AffectNet


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    return make_affectnet(tmp_path_factory.mktemp("affectnet") / "AffectNet")


@pytest.fixture(scope="module")
def ds(replica):
    with pytest.warns(UserWarning, match=r"NULL row 1, expression code 8-10 dropped 3"):
        return AffectNet.open(replica.root, image_size=16)


def test_rows_classes_and_counts(ds, replica):
    assert ds.label_names == ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
    assert ds.metric == "auc" and len(ds) == replica.rows == 45
    assert (ds.targets.sum(1) == 1).all() and ds.targets.dtype == np.int8
    assert {n: (p, q, u) for n, p, q, u in label_counts(ds.label_names, ds.targets)} == replica.counts
    assert ds.preprocessing()["rows_skipped"] == {"NULL row": 1, "expression code 8-10 dropped": 3}


def test_report_names_each_skipped_row(replica):
    text = AffectNet.inspect(replica.root, quick=True).render()
    assert "training.csv line 4" in text  # the NULL row
    assert "line 8: code 8 (None)" in text and "line 10: code 10 (No-Face)" in text
    assert "verdict: usable" in text


def test_aligned_on_the_csv_landmarks_with_the_box_as_fallback(ds, replica):
    from geometry import transform_points

    from ssfbench.faces.alignment import template

    # the landmarks put the face on the square x 8..32, y 4..28 around the red 24x20 box at (8, 6)
    image = ds.read_image(0)
    assert image.shape == (16, 16, 3)
    assert image[8, 8, 0] > 200 and image[8, 8, 2] < 60
    assert image[0, 8, 2] > 150  # the square reaches 2 px above the box: blue there
    five = ds.face_points(0)
    assert np.abs(transform_points(five, ds.matrix(five)) - template(16)).max() < 0.01
    record = ds.preprocessing()
    assert record["crop"] == "aligned" and record["paper"] is True and "68" in record["landmarks"]
    empty = [i for i in range(len(ds)) if ds.face_points(i) is None]
    assert len(empty) == 1 and ds.face_summary() == {"landmarks": len(ds) - 1, "box": 1, "detect": 0}
    boxed = ds.read_image(empty[0]).astype(int)  # the same square, from the box (resampled differently)
    assert np.abs(boxed - image).mean() < 20 and boxed[8, 8, 0] > 200
    assert ds.faces_found["box"] == 1 and ds.faces_found["landmarks"] >= 1


def test_centre_crop_is_an_explicit_deviation(replica):
    with pytest.warns(UserWarning):
        centre = AffectNet.open(replica.root, image_size=16, crop="centre")
    record = centre.preprocessing()
    assert record["crop"] == "center-square" and record["paper"] is False
    crop = centre.read_image(0)  # the centre square of 48x40 (x 4..44, y 0..40) around the red box (8..32, 6..26)
    assert crop[0, 8, 2] > 150 and crop[8, 2, 0] > 200 and crop[8, 14, 2] > 150


def test_split_85_15_and_validation_apart(ds, replica):
    assert (ds.splits == "val").sum() == replica.extra["val"] == 8
    pool = (ds.splits != "val").sum()
    assert pool == replica.extra["train_pool"] and 0 < (ds.splits == "test").sum() < pool / 2
    (fold,) = ds.folds()
    assert set(ds.splits[fold.train]) == {"train"} and set(ds.splits[fold.test]) == {"test"}


def test_validation_list_without_header_and_missing_image(replica, tmp_path):
    assert not (replica.root / "Manually_Annotated_file_lists" / "validation.csv").read_text().startswith("sub")
    copy = tmp_path / "a"
    shutil.copytree(replica.root, copy)
    victim = next((copy / "Manually_Annotated_Images").rglob("*.jpg"))
    victim.unlink()
    with pytest.warns(UserWarning, match="image missing 1"):
        ds = AffectNet.open(copy)
    assert len(ds) == 44
