"""Paired floors: BatchNorm statistics of untrained encoders from data, the random floor as every
Encoder method's step 0, each run's step-0 control and its gain in `compare`, the pretext audit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cli_runner import run_main
from click.testing import CliRunner

from ssfbench.api.registry import get_method
from ssfbench.cli import cli
from ssfbench.datasets.synthetic import AUS, SynthVox
from ssfbench.report.audit import pretext_audit, ranking_accuracy
from ssfbench.report.compare import STATISTICS_HEADER
from ssfbench.train.batchnorm import reestimate_batchnorm


def _batchnorms(method):
    return [m for m in method.modules() if isinstance(m, torch.nn.BatchNorm2d)]


@pytest.fixture(scope="module")
def vox():
    return SynthVox.open(image_size=32, identities=6, videos_per_identity=2, frames=30)


def _built(name: str, seed: int, **config):
    cls = get_method(name)
    torch.manual_seed(seed)
    return cls(cls.Config().replace(**config), image_size=32)


def test_reestimated_statistics_are_of_the_data_and_seeded(vox):
    ids = np.arange(len(vox))
    a, b = _built("random", 0), _built("random", 0)
    before = [m.running_var.clone() for m in _batchnorms(a)]
    assert all(torch.equal(v, torch.ones_like(v)) for v in before)
    record = reestimate_batchnorm(a, vox, ids, seed=3, n_frames=64, batch_size=32)
    reestimate_batchnorm(b, vox, ids, seed=3, n_frames=64, batch_size=32)
    assert record["frames"] == 64 and record["dataset"] == "synth-vox"
    for m, n in zip(_batchnorms(a), _batchnorms(b)):
        assert not torch.equal(m.running_var, torch.ones_like(m.running_var))  # statistics of the frames
        assert torch.equal(m.running_mean, n.running_mean) and torch.equal(m.running_var, n.running_var)
        assert m.momentum == 0.1  # restored
    assert a.training and all(m.training for m in _batchnorms(a))  # the module's mode restored
    weights = {k: v for k, v in a.state_dict().items() if "running" not in k and "num_batches" not in k}
    fresh = _built("random", 0).state_dict()
    assert all(torch.equal(v, fresh[k]) for k, v in weights.items())  # no weight moved


def test_random_floor_is_the_initialisation_of_every_encoder_method(vox):
    """ranking, triplet and the random floor draw the same weights from a seed: the floor, with its
    statistics re-estimated, is their step-0 control."""
    ids = np.arange(len(vox))
    images = torch.from_numpy(vox.read_frames(0, range(8)))
    embeddings = []
    for name, config in (("random", {}), ("ranking", {"k": 2}), ("triplet", {"k": 2})):
        method = _built(name, 5, **config)
        reestimate_batchnorm(method, vox, ids, seed=5, n_frames=64, batch_size=32)
        with torch.no_grad():
            embeddings.append(method.eval().embed(method.preprocess(images)))
    assert torch.equal(embeddings[0], embeddings[1]) and torch.equal(embeddings[0], embeddings[2])


def test_random_floor_variants():
    assert _built("random", 0).batchnorm_from_data()
    init = _built("random", 0, bn_stats="init")
    assert not init.batchnorm_from_data() and init.display_name() == "Random init (BN 0/1)"
    with pytest.raises(ValueError, match="bn_stats"):
        _built("random", 0, bn_stats="zero")


TINY = ["--data-option", "synth-vox.identities=20", "--data-option", "synth-au.subjects=9", "--datasets", "synth-au",
        "--image-size", "32", "--quiet"]


def test_run_scores_its_own_initialisation_and_compare_shows_the_gain(tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["run", "--method", "ranking", "--k", "2", "--steps", "2", "--out", str(out), *TINY])
    assert res.exit_code == 0, res.output
    runs = sorted(p.name for p in (out / "results" / "runs").iterdir())
    assert len(runs) == 2 and any("steps0" in r for r in runs)  # the control ran too
    import json

    trained = next(r for r in runs if "steps2" in r)
    record = json.loads((out / "results" / "runs" / trained / "synth-au.json").read_text())
    assert record["init_control"] == next(r for r in runs if "steps0" in r)
    control = json.loads((out / "runs" / record["init_control"] / "best.json").read_text())
    assert control["batchnorm"]["frames"] == 2048
    res = CliRunner().invoke(cli, ["compare", "--datasets", "synth-au", "--out", str(out), "--no-committed",
                                   "--resamples", "50"])
    assert res.exit_code == 0, res.output
    assert "Δ own init [95% CI]" in res.output
    row = next(line for line in res.output.splitlines() if "steps=2" in line)
    assert "[" in row.split("|")[-3]  # the gain cell of the trained row
    res = CliRunner().invoke(cli, ["compare", "--datasets", "synth-au", "--out", str(out), "--no-committed",
                                   "--no-init-gains"])
    assert "Δ own init" not in res.output


def test_bn_stats_data_reestimates_a_checkpoint_like_its_control(tmp_path, capsys):
    """--bn-stats data: a trained encoder's weights with statistics re-estimated the way its step-0
    control got them, paired with that control; re-estimating the control itself changes nothing,
    and no weight moves."""
    import json

    out = tmp_path / "out"
    ranking = ["run", "--method", "ranking", "--k", "2", "--steps", "2", "--out", str(out), *TINY]
    res = CliRunner().invoke(cli, ranking)
    assert res.exit_code == 0, res.output
    runs = {("control" if "steps0" in p.name else "trained"): p for p in (out / "runs").iterdir()}
    res = CliRunner().invoke(cli, [*ranking, "--bn-stats", "data"])  # reuses the trained run, and its control
    assert res.exit_code == 0, res.output
    (matched,) = {p for p in (out / "runs").iterdir()} - set(runs.values())
    assert "bndata" in matched.name
    result = json.loads((out / "results" / "runs" / matched.name / "synth-au.json").read_text())
    assert result["init_control"] == runs["control"].name and "bn=data" in result["variant"].split()
    assert result["pretrain"]["batchnorm"]["frames"] == 2048 and "selected" in result["pretrain"]
    checkpoints = {"trained": matched / "best.pt"}
    res = CliRunner().invoke(cli, ["run", "--method", "ranking", "--k", "2", "--weights",
                                   str(runs["control"] / "best.pt"), "--bn-stats", "data",
                                   "--out", str(tmp_path / "loaded"), *TINY])
    assert res.exit_code == 0, res.output
    (checkpoints["control"],) = (tmp_path / "loaded" / "runs").glob("*/best.pt")
    for name, path in checkpoints.items():
        before = torch.load(runs[name] / "best.pt", weights_only=False)["state_dict"]
        after = torch.load(path, weights_only=False)["state_dict"]
        stats = [k for k in before if "running_" in k]
        assert stats and all(torch.equal(before[k], after[k]) for k in before if "running_" not in k
                             and "num_batches" not in k)
        same = all(torch.equal(before[k], after[k]) for k in stats)
        assert same == (name == "control")  # the control's statistics are already these
    res = CliRunner().invoke(cli, ["compare", "--datasets", "synth-au", "--out", str(out), "--no-committed",
                                   "--resamples", "50"])
    # the bn=data run folds into its trained row as the statistics control's column: its gain over the same control
    lines = res.output.splitlines()
    header = next(line for line in lines if line.startswith("| method") and STATISTICS_HEADER in line)
    column = [c.strip() for c in header.split("|")].index(STATISTICS_HEADER)
    row = next(line for line in lines[lines.index(header):] if line.startswith("| Ranking k=2"))
    assert "[" in row.split("|")[column]
    code, _, err = run_main(["run", "--method", "random", "--bn-stats", "data", "--out", str(out), *TINY], capsys)
    assert code == 2 and err.startswith("error: --bn-stats data: nothing to re-estimate for method 'random'")
    assert err.count("\n") == 1


def test_init_gain_is_the_paired_difference(tmp_path):
    """Hand-made predictions: the trained run gets every test row right, its control none; the gain is
    their difference and its interval lies above zero."""
    from ssfbench.evaluation.bootstrap import Predictions, paired_bootstrap_mean

    rng = np.random.default_rng(0)
    n, c = 120, 3
    targets = rng.integers(0, 2, size=(n, c)).astype(np.int8)
    keys = np.array([f"k{i}" for i in range(n)])
    subjects = np.array([f"s{i % 12}" for i in range(n)])

    def pred(probs):
        return Predictions(keys=keys, subjects=subjects, folds=np.array(["f"] * n), targets=targets,
                           probs=probs.astype(np.float32), labels=("a", "b", "c"), metric="f1")

    good, bad = pred(targets.astype(float)), pred(1.0 - targets)
    res = paired_bootstrap_mean([(good, bad), (good, bad)], n_resamples=200, seed=0)
    assert res.score_a == pytest.approx(1.0) and res.score_b == pytest.approx(0.0)
    assert res.diff == pytest.approx(1.0) and res.low > 0.9
    mixed = paired_bootstrap_mean([(good, bad), (bad, good)], n_resamples=200, seed=0)
    assert mixed.diff == pytest.approx(0.0) and mixed.low <= 0 <= mixed.high


def test_ranking_accuracy_counts_ties_half():
    windows = np.zeros((4, 5, 2))
    assert ranking_accuracy(windows) == 0.5
    ordered = np.arange(5, dtype=float)[None, :, None].repeat(3, axis=0)
    assert ranking_accuracy(ordered) == 1.0
    assert ranking_accuracy(ordered[:, ::-1][:, [4, 3, 2, 1, 0]]) == 1.0


def test_pretext_audit_sees_pose_drift_and_its_absence():
    drift = pretext_audit(SynthVox.open(image_size=16, identities=10, frames=60), ks=(1,), per_video=2)
    still = pretext_audit(SynthVox.open(image_size=16, identities=10, frames=60, pose_drift=False), ks=(1,),
                          per_video=2)
    pose = next(i for i in drift.index if i.startswith("head pose"))
    light = next(i for i in drift.index if i.startswith("lighting"))
    assert drift.loc[pose, "k=1"] > 0.9 and still.loc[pose, "k=1"] == 0.5
    assert drift.loc[light, "k=1"] == 0.5  # constant within a video
    assert "raw pixels" in drift.index


def test_no_speech_variant_changes_only_the_mouth():
    a = SynthVox.open(identities=3, frames=60).params(1)
    b = SynthVox.open(identities=3, frames=60, speech=False).params(1)
    changed = {AUS[i] for i in np.flatnonzero(np.abs(a["au"] - b["au"]).max(axis=0) > 0)}
    assert changed <= {24, 25, 26} and {25, 26} <= changed
    assert all(np.array_equal(a[k], b[k]) for k in a if k != "au")
    assert SynthVox.open(speech=False).fingerprint() != SynthVox.open().fingerprint()
