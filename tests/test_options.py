"""One option mechanism: the caster shared by methods' settings and datasets' options, options
declared once per dataset class (synthetic ones included) and checked before a dataset opens."""

from __future__ import annotations

import pytest

from ssfbench.api.method import MethodConfig
from ssfbench.api.registry import get_dataset, get_method, list_datasets
from ssfbench.api.settings import Option, cast, cast_like, resolve_options
from ssfbench.errors import UserError
from ssfbench.pipeline.spec import RunSpec, open_dataset


@pytest.mark.parametrize("text, want", [("true", True), ("False", False), (" yes ", True), ("no", False),
                                        ("1", True), ("0", False), ("on", True), ("OFF", False)])
def test_bool_words(text, want):
    assert cast(text, bool) is want


def test_cast_rules():
    assert cast("7", int) == 7 and cast(7.0, int) == 7 and cast("0.5", float) == 0.5 and cast(3, str) == "3"
    assert cast(0, bool) is False and cast(True, bool) is True
    with pytest.raises(ValueError, match="expected true or false, got 'maybe'"):
        cast("maybe", bool)
    with pytest.raises(ValueError, match="expected an integer, got 'abc'"):
        cast("abc", int)
    with pytest.raises(ValueError, match="expected a number, got 'x'"):
        cast("x", float)
    assert cast_like("2", 1) == 2 and cast_like("yes", False) is True and cast_like([1], None) == [1]


def test_method_settings_use_the_same_caster():
    cfg = MethodConfig()
    new = cfg.replace(jitter_per_frame="yes", lr="0.01", batch_size="8")
    assert (new.jitter_per_frame, new.lr, new.batch_size) == (True, 0.01, 8)
    with pytest.raises(ValueError, match="jitter_per_frame: expected true or false, got 'maybe'"):
        cfg.replace(jitter_per_frame="maybe")
    with pytest.raises(KeyError):
        cfg.replace(bogus=1)
    ranking = get_method("ranking").Config()
    assert ranking.replace(k="4").k == 4


def test_resolve_options_messages():
    declared = {"camera": Option(str, "left", "which camera", ("left", "right")), "partial": Option(bool, False, "x")}
    assert resolve_options("d", declared, {}) == {"camera": "left", "partial": False}
    assert resolve_options("d", declared, {"partial": "true"}, defaults=False) == {"partial": True}
    with pytest.raises(UserError, match=r"^--data-option: dataset 'd' has no option 'cam' "
                                        r"\(options: camera=left \(left\|right\), partial=false\)$"):
        resolve_options("d", declared, {"cam": 1}, source="--data-option: ")
    with pytest.raises(UserError, match=r"^dataset 'd': option camera: expected one of left, right, got 'top'$"):
        resolve_options("d", declared, {"camera": "top"})
    with pytest.raises(UserError, match=r"^dataset 'd': option partial: expected true or false, got 'maybe'$"):
        resolve_options("d", declared, {"partial": "maybe"})


def test_every_dataset_declares_its_options():
    for name in list_datasets():
        cls = get_dataset(name)
        for key, option in cls.OPTIONS.items():
            assert isinstance(option, Option) and isinstance(option.default, option.type) and option.help, (name, key)
    assert set(get_dataset("synth-vox").OPTIONS) == {"identities", "videos_per_identity", "frames", "pose_drift",
                                                     "speech"}
    assert set(get_dataset("synth-au").OPTIONS) == {"subjects", "videos_per_subject", "frames", "stride"}
    assert set(get_dataset("synth-expr").OPTIONS) == {"identities", "images_per_identity", "test_fraction"}


def test_synthetic_options_checked_and_cast():
    vox = get_dataset("synth-vox").open(identities="3", frames=20, pose_drift="false", speech=0)
    assert (vox.identities, vox.frames, vox.pose_drift, vox.speech) == (3, 20, False, False)
    with pytest.raises(UserError, match="dataset 'synth-vox' has no option 'colour'"):
        get_dataset("synth-vox").open(colour=1)
    with pytest.raises(UserError, match="dataset 'synth-au': option subjects: expected an integer, got 'many'"):
        get_dataset("synth-au").open(subjects="many")


def test_open_dataset_checks_declared_options():
    spec = RunSpec(method="random", image_size=32,
                   dataset_options={"synth-vox": {"identities": 3, "frames": 20, "pose_drift": False}})
    vox = open_dataset("synth-vox", spec)
    assert vox.pose_drift is False and vox.speech is True and len(vox) == 6
    spec.dataset_options = {"synth-vox": {"pose_drift": "false", "identities": "3"}}
    assert open_dataset("synth-vox", spec).fingerprint() == get_dataset("synth-vox").open(
        image_size=32, identities=3, pose_drift=False).fingerprint()
    spec.dataset_options = {"synth-vox": {"colour": 1}}
    with pytest.raises(UserError, match="^--data-option: dataset 'synth-vox' has no option 'colour'"):
        open_dataset("synth-vox", spec)
    spec.dataset_options = {"synth-vox": {"speech": "sometimes"}}
    with pytest.raises(UserError, match="^--data-option: dataset 'synth-vox': option speech: expected true or false"):
        open_dataset("synth-vox", spec)
    spec.dataset_options = {"synth-au": {"subjects": 2}}
    with pytest.raises(UserError, match="^--data-option: dataset 'synth-au': synth-au needs at least 3 subjects"):
        open_dataset("synth-au", spec)


def test_synth_vox_prepare_reads_option_text(tmp_path):
    from ssfbench.api.verify import prepare

    path = prepare("synth-vox", None, tmp_path / "vox.h5", image_size=16,
                   options={"identities": "2", "videos_per_identity": "1", "frames": "4", "speech": "false"})
    store = get_dataset("synth-vox").open(path, image_size=16, identities=2, videos_per_identity=1, frames=4,
                                          speech=False)
    assert len(store) == 2 and store.num_frames(0) == 4
