"""The one-pass reader of VoxCeleb2 (:mod:`ssfbench.datasets._video_runs`) on a tiny H.264
replica laid out as VoxCeleb2 ships it (3 clips of 60 frames at 64 px, a keyframe every 25 frames,
B-frames): every frame it returns equals, pixel for pixel, the same frame of a full decode; it
decodes fewer frames than the span it covers; windows read together equal windows read alone."""

from __future__ import annotations

import av
import numpy as np
import pytest
from replicas import moving_texture, write_video

from ssfbench.datasets._video import DecodeCount, VideoReader
from ssfbench.datasets._video_runs import decode_run
from ssfbench.datasets.voxceleb2 import VoxCeleb2
from ssfbench.errors import UserError

FRAMES, SIZE, GOP = 60, 64, 25


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("vox-h264") / "VoxCeleb2"
    for i in range(3):
        write_video(root / "dev" / "mp4" / f"id{i + 1:05d}" / f"clip{i:07d}" / "00001.mp4",
                    moving_texture(FRAMES, SIZE, seed=i), codec="libx264", gop=GOP)
    vox = VoxCeleb2.open(root)
    full = []
    for v in range(len(vox)):
        with av.open(str(vox.path(v))) as container:
            full.append(np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]))
    return vox, full


def test_the_replica_has_b_frames_and_far_keyframes(clips):
    vox, full = clips
    with av.open(str(vox.path(0))) as container:
        kinds = {av.video.frame.PictureType(f.pict_type).name for f in container.decode(video=0)}
    assert {"I", "P", "B"} <= kinds and all(len(f) == FRAMES for f in full)


def test_every_frame_equals_a_full_decode(clips):
    vox, full = clips
    rng = np.random.default_rng(0)
    for v in range(len(vox)):
        for _ in range(6):
            wanted = sorted(rng.choice(FRAMES, size=int(rng.integers(1, 12)), replace=False).tolist())
            got = decode_run(vox.path(v), wanted)
            assert sorted(got) == wanted
            for i in wanted:
                np.testing.assert_array_equal(got[i], full[v][i])
        np.testing.assert_array_equal(np.stack(list(decode_run(vox.path(v), range(FRAMES)).values())), full[v])


def test_unreferenced_frames_nobody_wants_are_not_decoded(clips):
    vox, _ = clips
    before = DecodeCount.frames
    decode_run(vox.path(0), [30, 40])  # keyframe 25: 25..40 is a run of 16 frames
    assert DecodeCount.frames - before < 16


def test_windows_read_together_equal_windows_read_alone(clips):
    vox, full = clips
    windows = [[3, 4, 6, 8], [50, 51, 53, 55], [27, 28, 30, 32], [3, 4, 6, 8]]
    together = vox.read_windows(1, windows)
    for frames, got in zip(windows, together):
        np.testing.assert_array_equal(got, vox.read_frames(1, frames))
        np.testing.assert_array_equal(got, full[1][frames])


def test_the_old_reader_reaches_frames_far_behind_a_keyframe(clips):
    """A keyframe further back than SEEK_GAP used to make VideoReader seek forever."""
    vox, full = clips
    reader = VideoReader(vox.path(2))
    got = dict(reader.frames([24, 49, 59]))
    for i in (24, 49, 59):
        np.testing.assert_array_equal(got[i].to_ndarray(format="rgb24"), full[2][i])


def test_a_frame_past_the_end_is_a_user_error(clips):
    vox, _ = clips
    with pytest.raises(UserError, match="frame 60 could not be decoded"):
        decode_run(vox.path(0), [58, 60])


def test_the_stream_draws_several_windows_per_visit(clips):
    from ssfbench.api.registry import get_method
    from ssfbench.train.windows import WindowBatches

    cls = get_method("ranking")
    method = cls(cls.Config(k=1, n=4, batch_size=4), image_size=SIZE)
    root = clips[0].root
    three = WindowBatches(VoxCeleb2.open(root, windows_per_visit=3), np.arange(3), method, seed=5)
    assert (three.visits_per_step, three.steps_per_epoch) == (2, 1)
    drawn = three.windows(0)
    videos = [v for v, _ in drawn]
    assert len(drawn) == 4 and videos[:3] == [videos[0]] * 3 and videos[3] != videos[0]
    batch = three[0]
    assert batch.shape == (4, len(method.frame_offsets()), SIZE, SIZE, 3)
    for (v, frames), got in zip(drawn, batch.numpy()):
        np.testing.assert_array_equal(got, clips[1][v][frames])
    with pytest.raises(UserError, match="only 3 training videos .* fewer than the 4 a batch of 4 visits"):
        WindowBatches(VoxCeleb2.open(root, windows_per_visit=1), np.arange(3), method, seed=5)


def test_windows_per_visit_is_checked_and_part_of_the_fingerprint(clips):
    root = clips[0].root
    assert VoxCeleb2.open(root, windows_per_visit=1).fingerprint() != VoxCeleb2.open(root).fingerprint()
    with pytest.raises(UserError, match="windows_per_visit must be at least 1"):
        VoxCeleb2.open(root, windows_per_visit=0)


def test_the_reader_comparison_reports_rates_and_decoding_cost(clips):
    from ssfbench.api.registry import get_method
    from ssfbench.bench.decode_speed import compare_readers

    cls = get_method("ranking")
    method = cls(cls.Config(k=1, n=4, batch_size=2), image_size=SIZE)
    before, one, two = compare_readers(clips[0].root, method, windows=4, rounds=1, per_visit=(1, 2))
    assert not before["new"] and one["new"] and two["windows_per_visit"] == 2
    assert before["speedup"] == 1.0 and all(r["windows_per_s"] > 0 and r["decoded_per_used"] > 0 for r in (one, two))
    assert two["frames_per_s"] == pytest.approx(two["windows_per_s"] * len(method.frame_offsets()))
