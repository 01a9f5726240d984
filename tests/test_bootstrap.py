"""Per-frame predictions (runner -> npz) and the paired bootstrap over test subjects."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score
from test_compare import fake_result

from ssfbench.cli import cli
from ssfbench.errors import UserError
from ssfbench.evaluation import bootstrap as B
from ssfbench.evaluation.metrics import per_label_f1
from ssfbench.results.store import result_path, write_result


def make_predictions(skill: float, *, seed: int, n_subjects: int = 30, per_subject: int = 20, labels: int = 3,
                     metric: str = "f1", truth_seed: int = 0) -> B.Predictions:
    """Frames of ``n_subjects`` subjects with shared targets (``truth_seed``) and probabilities that
    follow the targets with strength ``skill`` plus noise drawn from ``seed``."""
    truth = np.random.default_rng(truth_seed)
    n = n_subjects * per_subject
    targets = (truth.random((n, labels)) < 0.3).astype(np.int8)
    targets[truth.random((n, labels)) < 0.05] = -1  # a few unknown labels
    noise = np.random.default_rng(seed).normal(0, 1, (n, labels))
    probs = 1 / (1 + np.exp(-(skill * (2 * (targets == 1) - 1) + noise)))
    subjects = np.repeat([f"S{i:03d}" for i in range(n_subjects)], per_subject)
    return B.Predictions(keys=np.array([f"k{i:05d}" for i in range(n)]), subjects=subjects,
                         folds=np.where(np.arange(n) < n // 2, "fold1", "fold2"), targets=targets,
                         probs=probs.astype(np.float32), labels=tuple(f"AU{i}" for i in range(labels)), metric=metric)


def test_weighted_scores_equal_the_metrics_on_the_concatenated_resample():
    p = make_predictions(0.8, seed=1, n_subjects=8, per_subject=7)
    p.probs[:10] = 0.5  # ties
    names, subj = B.subject_index(p.subjects)
    weights = B.resample_weights(len(names), 4, np.random.default_rng(3))
    f1 = B.f1_from_weights(p.targets, p.probs, subj, len(names), weights)
    auc = B.auc_from_weights(p.targets, p.probs, weights[:, subj])
    for r in range(4):
        rows = np.concatenate([np.flatnonzero(subj == s) for s in range(len(names)) for _ in range(int(weights[r, s]))])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            np.testing.assert_allclose(f1[r], per_label_f1(p.targets[rows], p.probs[rows]), atol=1e-12)
        for c in range(p.targets.shape[1]):
            known = rows[p.targets[rows, c] != -1]
            assert auc[r, c] == pytest.approx(roc_auc_score(p.targets[known, c], p.probs[known, c]), abs=1e-12)


def test_resampling_draws_whole_subjects_with_replacement():
    w = B.resample_weights(10, 200, np.random.default_rng(0))
    assert w.shape == (200, 10) and (w.sum(axis=1) == 10).all() and (w == 0).any() and (w >= 2).any()


@pytest.mark.parametrize("metric", ["f1", "auc"])
def test_a_known_difference_is_found(metric):
    good, poor = make_predictions(1.5, seed=1, metric=metric), make_predictions(0.3, seed=2, metric=metric)
    res = B.paired_bootstrap(good, poor, n_resamples=300, seed=0)
    assert res.diff > 0 and res.low > 0 and res.excludes_zero
    assert res.n_subjects == 30 and res.n_rows == 600 and res.low <= res.diff <= res.high
    flipped = B.paired_bootstrap(poor, good, n_resamples=300, seed=0)
    assert flipped.high < 0 and flipped.diff == pytest.approx(-res.diff)


@pytest.mark.parametrize("metric", ["f1", "auc"])
def test_no_difference_gives_an_interval_around_zero(metric):
    a, b = make_predictions(1.0, seed=1, metric=metric), make_predictions(1.0, seed=2, metric=metric)
    res = B.paired_bootstrap(a, b, n_resamples=300, seed=0)
    assert res.low < 0 < res.high and not res.excludes_zero
    same = B.paired_bootstrap(a, a, n_resamples=50, seed=0)
    assert same.diff == 0 and same.low == 0 and same.high == 0


def test_the_bootstrap_is_seeded_and_pairs_rows_by_key():
    a, b = make_predictions(1.0, seed=1), make_predictions(0.9, seed=2)
    first = B.paired_bootstrap(a, b, n_resamples=100, seed=7)
    assert B.paired_bootstrap(a, b, n_resamples=100, seed=7) == first
    order = np.random.default_rng(0).permutation(len(b))
    shuffled = B.Predictions(b.keys[order], b.subjects[order], b.folds[order], b.targets[order], b.probs[order],
                             b.labels, b.metric)
    again = B.paired_bootstrap(a, shuffled, n_resamples=100, seed=7)
    assert again.low == pytest.approx(first.low) and again.high == pytest.approx(first.high)


def test_results_on_other_frames_are_refused():
    a = make_predictions(1.0, seed=1)
    other = make_predictions(1.0, seed=1, n_subjects=29)
    with pytest.raises(UserError, match="tested different frames"):
        B.paired_bootstrap(a, other)
    relabelled = make_predictions(1.0, seed=1, truth_seed=5)
    with pytest.raises(UserError, match="different targets"):
        B.paired_bootstrap(a, relabelled)


def test_predictions_round_trip_atomically(tmp_path):
    p = make_predictions(1.0, seed=1, n_subjects=4, per_subject=3)
    path = B.write_predictions(tmp_path / "x.predictions.npz", p)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["x.predictions.npz"]  # no temporary left
    q = B.read_predictions(path)
    for field in ("keys", "subjects", "folds", "targets", "probs"):
        np.testing.assert_array_equal(getattr(q, field), getattr(p, field))
    assert (q.labels, q.metric) == (p.labels, p.metric)
    with pytest.raises(UserError, match="no predictions file"):
        B.read_predictions(tmp_path / "missing.npz")


def test_the_runner_keeps_every_test_frame_and_write_result_saves_them(tmp_path, monkeypatch):
    from ssfbench.datasets.synthetic import SynthAU
    from ssfbench.evaluation import protocol
    from ssfbench.evaluation.protocol import probe_dataset

    ds = SynthAU.open(image_size=16, subjects=6, videos_per_subject=1, frames=20, stride=5)
    x = np.random.default_rng(0).normal(size=(len(ds), 4)).astype(np.float32)
    # the probe itself is tested in test_probe.py; here only what probe_dataset keeps matters
    monkeypatch.setattr(protocol, "fit_predict", lambda xtr, ytr, xte, seed=0, **hp: np.full((len(xte), ytr.shape[1]), 0.6,
                                                                                      np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = probe_dataset(x, ds, seed=0)
    pred = scores["test_predictions"]
    assert sorted(pred.keys.tolist()) == sorted(ds.keys.tolist())  # every frame tested exactly once
    assert set(pred.folds) == {f.name for f in ds.folds()}
    record = fake_result("random", labels=list(ds.label_names))
    record.update(test_predictions=pred, run_id="r1")
    path = write_result(tmp_path, record)
    assert "test_predictions" not in record and record["predictions"] == "synth-au.predictions.npz"
    assert path.read_text().count("synth-au.predictions.npz") == 1
    back = B.read_predictions(B.predictions_path(path))
    np.testing.assert_array_equal(back.targets, ds.targets[[list(ds.keys).index(k) for k in back.keys]])


def test_compare_vs_prints_the_interval(tmp_path):
    results = tmp_path / "results"
    for name, skill, seed in (("good", 1.5, 1), ("poor", 0.3, 2)):
        record = fake_result(name, labels=["AU0", "AU1", "AU2"])
        record["test_predictions"] = make_predictions(skill, seed=seed)
        write_result(results, record)
    assert result_path(results, "good-default-good--cf-seed0", "synth-au").is_file()
    res = CliRunner().invoke(cli, ["compare", "--datasets", "synth-au", "--vs", "good", "poor", "--out", str(tmp_path),
                                   "--resamples", "200", "--no-committed"])
    assert res.exit_code == 0, res.output
    assert "paired bootstrap over test subjects" in res.output and "A better" in res.output
    missing = CliRunner().invoke(cli, ["compare", "--datasets", "synth-au", "--vs", "good", "tcae", "--out",
                                       str(tmp_path), "--no-committed"])
    assert missing.exit_code != 0 and "no run 'tcae' on synth-au" in str(missing.exception)


def test_compare_vs_finds_committed_runs(tmp_path):
    """--vs reaches the committed rows (their predictions ship in results/runs), so a README interval
    between two committed runs is one command on a fresh clone."""
    a, b = "ranking-k2-resnet18-0850d35a-seed0", "ranking-k2-steps0-resnet18-2e984900-seed0"
    res = CliRunner().invoke(cli, ["compare", "--datasets", "synth-au", "--paper", "none", "--vs", a, b,
                                   "--out", str(tmp_path), "--resamples", "100"])
    assert res.exit_code == 0, res.output
    row = next(line for line in res.output.splitlines() if line.startswith("| synth-au ") and a in line)
    assert b in row and "f1" in row
    alone = CliRunner().invoke(cli, ["compare", "--datasets", "synth-au", "--vs", a, b, "--out", str(tmp_path),
                                     "--no-committed"])
    assert alone.exit_code != 0 and "synth-au" in str(alone.exception)  # without them: refused in one line
