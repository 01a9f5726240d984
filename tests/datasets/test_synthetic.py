"""Fast checks of the embedded synthetic benchmark (tiny sizes; a few seconds in all)."""

from __future__ import annotations

import numpy as np
import pytest

from ssfbench.api.dataset import LabeledFrames, VideoSource
from ssfbench.datasets import synthetic as S

SIZE = 32


def _vox(seed: int = 0, size: int = SIZE) -> S.SynthVox:
    return S.SynthVox.open(image_size=size, seed=seed, identities=3, videos_per_identity=2, frames=40)


def _au(seed: int = 0) -> S.SynthAU:
    return S.SynthAU.open(image_size=SIZE, seed=seed, subjects=6, videos_per_subject=2, frames=40, stride=5)


def _expr(seed: int = 0) -> S.SynthExpr:
    return S.SynthExpr.open(image_size=SIZE, seed=seed, identities=40, images_per_identity=8)


def test_interfaces_and_shapes():
    vox, au, ex = _vox(), _au(), _expr()
    assert isinstance(vox, VideoSource) and isinstance(au, LabeledFrames) and isinstance(ex, LabeledFrames)
    assert (vox.name, au.name, ex.name) == ("synth-vox", "synth-au", "synth-expr")
    assert len(vox) == 6 and vox.num_frames(0) == 40 and vox.identity(3) == "id0001"
    frames = vox.read_frames(1, [0, 7, 39])
    assert frames.shape == (3, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert len(au) == 6 * 2 * 8 and au.keys[0] == "S001/v1/0000" and au.subjects[0] == "S001"
    assert au.label_names == tuple(f"AU{a}" for a in S.AUS) and au.metric == "f1"
    assert au.targets.shape == (len(au), 14) and au.targets.dtype == np.int8
    assert au.intensities.shape == (len(au), 14) and au.intensities.dtype == np.float32
    img = au.read_image(5)
    assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
    assert len(set(au.keys)) == len(au) and len(set(ex.keys)) == len(ex)
    assert ex.metric == "auc" and ex.label_names == S.EXPRESSIONS
    assert ex.targets.shape == (320, 8) and ex.targets.dtype == np.int8 and (ex.targets.sum(1) == 1).all()
    with pytest.raises(IndexError):
        vox.read_frames(0, [40])


def test_labels_are_intensity_threshold():
    au = _au()
    assert np.array_equal(au.targets, (au.intensities >= 2).astype(np.int8))
    assert 0 <= au.intensities.min() and au.intensities.max() <= 5


def test_determinism_and_order_independence():
    a, b = _vox(0), _vox(0)
    f1 = a.read_frames(2, [5, 6, 30])
    _ = b.read_frames(4, [1, 2])  # other calls first must not matter
    f2 = np.concatenate([b.read_frames(2, [30]), b.read_frames(2, [5, 6])])[[1, 2, 0]]
    assert np.array_equal(f1, f2)
    assert not np.array_equal(f1, _vox(1).read_frames(2, [5, 6, 30]))
    au = _au()
    assert np.array_equal(np.stack(au.read_images([3, 9, 1])), np.stack([au.read_image(i) for i in (3, 9, 1)]))
    assert np.array_equal(au.read_image(4), _au().read_image(4))
    assert a.fingerprint() == b.fingerprint() != _vox(1).fingerprint() != _vox(0, 48).fingerprint()
    assert au.fingerprint() != _au(1).fingerprint()


def test_folds_subject_independent_and_cover_rows():
    for ds, n_folds in ((_au(), 3), (_expr(), 1)):
        folds = ds.folds()
        assert len(folds) == n_folds
        tested = np.concatenate([f.test for f in folds])
        if n_folds == 3:
            assert [f.name for f in folds] == ["fold1", "fold2", "fold3"]
            assert np.array_equal(np.sort(tested), np.arange(len(ds)))
        for f in folds:
            assert not set(ds.subjects[f.train]) & set(ds.subjects[f.test])
            assert len(f.train) + len(f.test) == len(ds)
    ex_fold = _expr().folds()[0]
    assert 0.2 <= len(ex_fold.test) / 320 <= 0.3


def test_identities_disjoint_across_datasets():
    def signature(params: dict, rows) -> set:
        return {(round(float(params["face_w"][i]), 6), round(float(params["eye_x"][i]), 6)) for i in rows}

    vox = _vox()
    sv = set().union(*(signature(vox.params(v), [0]) for v in range(len(vox))))
    sa = signature(_au()._params, range(len(_au().keys)))
    se = signature(_expr()._params, range(320))
    assert len(sv) == 3 and len(sa) == 6 and len(se) == 40
    assert not (sv & sa) and not (sv & se) and not (sa & se)
    assert not set(_au().subjects) & set(_expr().subjects)


def test_expr_has_all_classes():
    ex = _expr()
    assert (ex.targets.sum(0) > 0).all()


# upper face AUs change the top half, lower face AUs the bottom half
UPPER, LOWER = (1, 2, 4, 6, 7), (10, 12, 14, 15, 17, 23, 24, 25, 26)


@pytest.mark.parametrize("au", S.AUS)
def test_each_au_changes_its_region(au):
    size = 64
    ident = S.sample_identity(np.random.default_rng(3))
    ident["glasses"] = np.float32(0)
    ident["beard"] = np.float32(0)
    scene = S.sample_scene(np.random.default_rng(4))
    st = S.neutral_state(2)
    st["au"][1, S.AUS.index(au)] = 5.0
    img = S.render_frames(S.compose(ident, scene, st), size).astype(np.float32)
    diff = np.abs(img[1] - img[0]).sum(-1)
    eyes_row = int(size * 0.47)  # a bit below the eyes (face centre ~ frame centre)
    upper, lower = diff[:eyes_row].sum(), diff[eyes_row:].sum()
    assert diff.max() > 40, f"AU{au} barely changes the image"
    if au in UPPER:
        assert upper > 2 * lower, (au, upper, lower)
    else:
        assert lower > 2 * upper, (au, upper, lower)


def test_preview_writes_png(tmp_path):
    from ssfbench.datasets._synth_preview import preview_grid

    out = preview_grid(tmp_path / "grid.png", videos=2, times=3, image_size=32)
    assert out.exists() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
