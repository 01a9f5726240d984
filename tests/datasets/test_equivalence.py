"""Golden values recorded before the issue-13 refactor (seed streams named in ``ssfbench.runtime.seeds``, the
synthetic module and ``_layout`` split, one option mechanism, the training toolkit): the data,
fingerprints and random streams every checkpoint, cache and score is keyed by must not move.

Fingerprints, fold permutations, splits and window draws are integers or hashes (the same on every
machine) and are compared exactly; rendered pixels go through float maths that another CPU may
round differently, so they are compared with ``tests/datasets/golden/synthetic.npz`` allowing a stray 1 (on
the machine that recorded them they are identical).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ssfbench.datasets.synthetic import SynthAU, SynthExpr, SynthVox, _fingerprint
from ssfbench.nn.sampling import ranking_window
from ssfbench.runtime import seeds

GOLDEN = np.load(Path(__file__).parent / "golden" / "synthetic.npz")


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def _close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (int(diff.max()), float((diff > 0).mean()))


def test_seed_stream_values_are_fixed():
    assert (seeds.VIDEO_SPLIT, seeds.VALIDATION_WINDOWS, seeds.CROP_JITTER, seeds.CROP_JITTER_RANK) == \
           (7919, 104729, 1_000_003, 2**40)
    assert (seeds.FINETUNE_ROWS, seeds.BATCHNORM_DRAW, seeds.AUDIT_WINDOWS, seeds.SYNTH_WORLD) == (31337, 0xB4, 0xA0D1, 7919)
    assert (seeds.SYNTH_VOX, seeds.SYNTH_AU, seeds.SYNTH_EXPR) == (101, 202, 303)
    assert (seeds.SYNTH_IDENTITY, seeds.SYNTH_VIDEO, seeds.SYNTH_NOISE, seeds.SYNTH_FOLDS, seeds.SYNTH_IMAGE) == (1, 2, 3, 4, 5)
    assert seeds.crop_jitter_seed(3, 7, 1) == 3 * 1_000_003 + 7 + 2**40


def test_synthetic_fingerprints():
    assert SynthVox.open().fingerprint() == "59d187fdaafbeb62"
    assert SynthVox.open(image_size=32, identities=4, frames=30).fingerprint() == "6972bc9c75a2fba7"
    assert SynthVox.open(image_size=32, identities=4, frames=30, pose_drift=False, speech=False).fingerprint() \
        == "a0ed5ee8757a3407"
    assert SynthVox.open(image_size=32, identities=4, frames=30, pose_drift="false", speech="no").fingerprint() \
        == "a0ed5ee8757a3407"
    assert SynthVox.open(seed=3, videos_per_identity=3).fingerprint() == "35efad4683cf2e17"
    assert SynthAU.open().fingerprint() == "d1287faada863134"
    assert SynthAU.open(image_size=32, subjects=6, frames=30, stride=10).fingerprint() == "191976a2aad73bc2"
    assert SynthExpr.open(image_size=32, identities=10, images_per_identity=3, test_fraction=0.3).fingerprint() \
        == "38f640ed653ad50c"
    # the default synth-expr takes seconds to build; its fingerprint is this digest of its declared defaults
    defaults = {k: o.default for k, o in SynthExpr.OPTIONS.items()}
    assert _fingerprint("synth-expr", 0, 64, defaults) == "325cf2b4233ccf4a"


def test_synthetic_rows_and_folds():
    au = SynthAU.open(image_size=32, subjects=6, frames=30, stride=10)
    assert np.array_equal(au.targets, GOLDEN["au_targets"])
    assert hashlib.sha256("|".join(au.keys.tolist()).encode()).hexdigest()[:16] == "e249b38648691a21"
    assert [(f.name, _digest(f.train), _digest(f.test)) for f in au.folds()] == [
        ("fold1", "fe9e437ac4960031", "1c7c34623c3e8d75"), ("fold2", "47732f8294dd113d", "440d4ebe13ff1007"),
        ("fold3", "d51d44eaf0f5e009", "2d9a3a7899cdebb4")]
    ex = SynthExpr.open(image_size=32, identities=10, images_per_identity=3, test_fraction=0.3)
    assert np.array_equal(ex.targets, GOLDEN["expr_targets"])
    assert [(f.name, _digest(f.train), _digest(f.test)) for f in ex.folds()] == [
        ("test", "3e9fcffc0c112c52", "7ad62e743f1761c6")]


@pytest.mark.parametrize("what", ["vox", "vox_still", "vox_quiet", "au_images", "expr_images"])
def test_synthetic_pixels(what):
    if what.startswith("vox"):
        options = {"vox_still": {"pose_drift": False, "speech": False}, "vox_quiet": {"speech": False}}.get(what, {})
        video, frames = (1, [2, 20]) if what == "vox_quiet" else (3, [0, 5, 9])
        got = SynthVox.open(image_size=32, identities=4, frames=30, **options).read_frames(video, frames)
    elif what == "au_images":
        au = SynthAU.open(image_size=32, subjects=6, frames=30, stride=10)
        got = np.stack(au.read_images([0, 3, 7, len(au) - 1]))
    else:
        ex = SynthExpr.open(image_size=32, identities=10, images_per_identity=3, test_fraction=0.3)
        got = np.stack(ex.read_images([0, 4, 29]))
    _close(got, GOLDEN[what])


class _RankingWindow:
    """What the window stream reads of a method: the ranking window (k=2, N=10), batches of 2, a fresh
    anchor per epoch (the default)."""

    config = SimpleNamespace(batch_size=2, anchor="per_epoch")

    def sample_offsets(self, rng: np.random.Generator) -> list[int]:
        return ranking_window(0, 2, 10)

    def window_span(self) -> int:
        return 22


def test_training_streams():
    from ssfbench.report.audit import audit_windows
    from ssfbench.train.batchnorm import draw_frames
    from ssfbench.train.finetune import step_rows
    from ssfbench.train.windows import WindowBatches, split_videos

    train, val = split_videos(50, 0.2, 3)
    assert (_digest(train), _digest(val)) == ("9bdd514bd56ad5d7", "3bbf0e0c8178a04a")
    assert _digest(step_rows(np.arange(100), 8, 2, 5)) == "443e8480d082888b"
    videos = SynthVox.open(image_size=32, identities=8)
    train, _ = split_videos(len(videos), 0.2, 0)
    assert WindowBatches(videos, train, _RankingWindow(), 0).windows(3) == [
        (0, [109, 110, 112, 114, 116, 118, 120, 122, 124, 126, 128, 130]),
        (4, [32, 33, 35, 37, 39, 41, 43, 45, 47, 49, 51, 53])]
    assert draw_frames(videos, train, 20, 1)[:6] == [(15, 90), (7, 8), (12, 112), (15, 77), (12, 128), (11, 84)]
    assert audit_windows(videos, 2, 10, 2, 0)[:2] == [(2, [62, 63, 65, 67, 69, 71, 73, 75, 77, 79, 81, 83]),
                                                      (2, [71, 72, 74, 76, 78, 80, 82, 84, 86, 88, 90, 92])]
