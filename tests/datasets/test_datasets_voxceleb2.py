"""VoxCeleb2 adapter on a tiny replica of real H.264 mp4s: roots at parent/dev/test/mp4, frame
counts, exact frames through seeking, identity split, index store, pretraining windows."""

from __future__ import annotations

import numpy as np
import pytest
from replicas import frame_value, make_voxceleb2, ramp_video, write_video

from ssfbench.datasets.voxceleb2 import VoxCeleb2
from ssfbench.errors import UserError


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    return make_voxceleb2(tmp_path_factory.mktemp("vox") / "VoxCeleb2")


def test_roots_and_listing(replica):
    dev = VoxCeleb2.open(replica.root)
    assert dev.split == "dev" and len(dev) == replica.rows == 6
    assert dev.videos[0].startswith("id00001/") and dev.videos[0].endswith(".mp4")
    assert [dev.identity(v) for v in range(len(dev))] == ["id00001"] * 2 + ["id00002"] * 2 + ["id00003"] * 2
    assert VoxCeleb2.open(replica.root / "dev").fingerprint() == dev.fingerprint()
    assert VoxCeleb2.open(replica.root / "dev" / "mp4").fingerprint() == dev.fingerprint()
    test = VoxCeleb2.open(replica.root, split="test")
    assert test.split == "test" and {test.identity(v) for v in range(len(test))} == {"id09001"}
    assert VoxCeleb2.open(replica.root / "test").fingerprint() == test.fingerprint() != dev.fingerprint()
    with pytest.raises(UserError, match="video folder not found"):
        VoxCeleb2.open(replica.root / "dev" / "mp4" / "id00001")


def test_frames_are_exact_and_only_what_is_asked(replica):
    vox = VoxCeleb2.open(replica.root)
    v = next(i for i in range(len(vox)) if vox.videos[i].endswith("00002.mp4"))
    assert vox.num_frames(v) == 15
    frames = vox.read_frames(v, [14, 0, 7, 7, 3])
    assert frames.shape == (5, 32, 32, 3) and frames.dtype == np.uint8
    assert [abs(int(round(f.mean())) - frame_value(i)) <= 3 for f, i in zip(frames, (14, 0, 7, 7, 3))] == [True] * 5
    with pytest.raises(UserError, match="frame 15 could not be decoded"):
        vox.read_frames(v, [15])
    assert vox.preprocessing()["crop"].startswith("none")


def test_seeking_in_a_longer_video(tmp_path):
    path = tmp_path / "v" / "dev" / "mp4" / "id00001" / "abcdefghijk" / "00001.mp4"
    long = np.concatenate([ramp_video(15, 32, 32)] * 4)  # 60 frames, keyframe every 4
    write_video(path, long, codec="libx264")
    vox = VoxCeleb2.open(tmp_path / "v")
    rng = np.random.default_rng(0)
    for _ in range(10):
        want = rng.choice(60, size=4, replace=False).tolist()
        got = vox.read_frames(0, want)
        assert all(abs(int(round(f.mean())) - frame_value(i % 15)) <= 3 for f, i in zip(got, want))


def test_identity_split_is_disjoint(replica):
    vox = VoxCeleb2.open(replica.root)
    train, val = vox.split_identities(val_fraction=0.5, seed=3)
    assert len(train) + len(val) == len(vox)
    assert not {vox.identity(int(v)) for v in train} & {vox.identity(int(v)) for v in val}


def test_index_store(replica, tmp_path):
    out = VoxCeleb2.prepare(replica.root, tmp_path / "index.h5", progress=False)
    indexed = VoxCeleb2.open(out)
    direct = VoxCeleb2.open(replica.root)
    assert indexed.videos == direct.videos and indexed.fingerprint() == direct.fingerprint()
    want = [14 if name.endswith("00001.mp4") else 15 for name in indexed.videos]
    assert [indexed.num_frames(v) for v in range(len(indexed))] == want
    assert np.array_equal(indexed.read_frames(2, [1, 5]), direct.read_frames(2, [1, 5]))


def test_pretraining_windows(replica):
    from ssfbench.api.registry import get_method
    from ssfbench.train.windows import validation_windows

    method = get_method("ranking")(get_method("ranking").Config().replace(k=1), image_size=32)
    vox = VoxCeleb2.open(replica.root)
    windows = validation_windows(vox, np.arange(len(vox)), method, seed=0)
    assert windows.shape[0] == len(vox) and windows.shape[1] == method.window_span() and windows.shape[2:] == (32, 32, 3)


def test_verify_report(replica):
    report = VoxCeleb2.inspect(replica.root)
    text = report.render()
    assert report.usable and "split dev, 3 identities, 6 videos" in text and "all 6 videos decoded (87 frames)" in text
