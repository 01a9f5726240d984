"""DISFA adapter on a tiny replica with real .avi videos: 1-based label frames, intensity >= 2,
case-insensitive names, frame cache and seeking, landmarks, right camera."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from replicas import frame_value, make_disfa, ramp_video, write_video

from ssfbench.api.verify import label_counts
from ssfbench.datasets.disfa import AUS, DISFA
from ssfbench.errors import UserError


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    return make_disfa(tmp_path_factory.mktemp("disfa") / "DISFA")


@pytest.fixture(scope="module")
def ds(replica):
    return DISFA.open(replica.root, image_size=16)


def _grey(image: np.ndarray) -> int:
    return int(round(image.astype(float).mean()))


def test_rows_and_threshold(ds, replica):
    assert ds.label_names == tuple(f"AU{a}" for a in AUS) and ds.metric == "f1"
    assert len(ds) == replica.rows == 27 * 8 - 1  # SN010 has one label line less
    assert {n: (p, q, u) for n, p, q, u in label_counts(ds.label_names, ds.targets)} == replica.counts
    assert (ds.targets[ds.keys == "SN001/1"] == 0).all() and (ds.targets[ds.keys == "SN001/2"] == 1).all()
    assert len(np.unique(ds.subjects)) == 27 and ds.keys[0] == "SN001/1"


def test_label_frame_k_is_video_frame_k_minus_1(ds):
    rows = [int(np.flatnonzero(ds.keys == k)[0]) for k in ("SN003/1", "SN003/5", "SN003/8", "SN001/2")]
    images = ds.read_images(rows)
    assert [abs(_grey(im) - v) <= 3 for im, v in zip(images, (frame_value(0), frame_value(4), frame_value(7),
                                                               frame_value(1)))] == [True] * 4
    assert images[0].shape == (16, 16, 3)


def test_random_access_and_cache_give_the_same_frames(replica):
    fresh = DISFA.open(replica.root, image_size=16)
    order = [30, 2, 29, 31, 0, 2]
    got = [_grey(im) for im in fresh.read_images(order)]
    want = [frame_value(int(fresh.vframes[i])) for i in order]
    assert all(abs(g - w) <= 3 for g, w in zip(got, want))
    assert np.array_equal(fresh.read_image(29), fresh.read_images([29])[0])


def test_frame_offset_and_case_insensitive_names(replica, tmp_path):
    copy = tmp_path / "disfa"
    shutil.copytree(replica.root, copy)
    (copy / "Videos_LeftCamera").rename(copy / "videos_leftcamera")
    (copy / "videos_leftcamera" / "LeftVideoSN001_comp.avi").rename(copy / "videos_leftcamera" / "leftvideosn001_COMP.AVI")
    (copy / "ActionUnit_Labels" / "SN002" / "SN002_au1.txt").rename(copy / "ActionUnit_Labels" / "SN002" / "sn002_AU1.txt")
    with pytest.warns(UserWarning, match="labelled frame beyond the video 26"):
        ds = DISFA.open(copy, image_size=16, frame_offset=1)
    assert len(ds) == 27 * 7  # the last labelled frame of each video falls beyond it (SN010 has one less)
    assert abs(_grey(ds.read_image(0)) - frame_value(1)) <= 3
    assert ds.preprocessing()["rows_skipped"]["labelled frame beyond the video"] == 26


def test_right_camera_and_landmarks(tmp_path):
    replica = make_disfa(tmp_path / "DISFA", frames=4, landmarks=True)
    from geometry import transform_points
    from replicas import DISFA_FACE

    from ssfbench.faces.alignment import template

    ds = DISFA.open(replica.root, image_size=16)
    record = ds.preprocessing()
    assert record["crop"] == "aligned" and record["paper"] is True and "66" in record["landmarks"]
    five = ds.face_points(2)
    left, top, side = DISFA_FACE
    assert five[0] == pytest.approx([left + 0.35 * side, top + 0.40 * side])  # the right eye's centre
    assert np.abs(transform_points(five, ds.matrix(five)) - template(16)).max() < 0.01
    crop, frame = ds.read_image(2), ramp_video(4)[int(ds.vframes[2])]
    # the face square x 8..24, y 4..20 of the 32x24 frame, at scale 1: the frame's own pixels
    assert np.abs(crop.astype(int) - frame[4:20, 8:24].astype(int)).mean() < 12
    assert ds.faces_found["landmarks"] == 1
    with pytest.raises(UserError, match="video folder not found"):
        DISFA.open(replica.root, camera="right")
    for sn in sorted({s for s in ds.subjects}):
        write_video(replica.root / "Videos_RightCamera" / f"RightVideo{sn}_comp.avi", ramp_video(4))
    right = DISFA.open(replica.root, camera="right", landmarks="none")  # faces detected instead
    assert right.paths[0].startswith("Videos_RightCamera/") and right.preprocessing()["landmarks"] == "none"
    assert right.fingerprint() != ds.fingerprint()


def test_verify_decodes_every_video(replica):
    report = DISFA.inspect(replica.root)
    text = report.render()
    assert report.usable and "all 27 videos decoded (216 frames)" in text
    assert "video frames without labels" in text  # SN010's extra frame is a note
