"""Cosine top-k retrieval, its scores, and `ssfbench retrieve` end to end on a tiny synthetic set."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from ssfbench.cli import cli
from ssfbench.errors import UserError
from ssfbench.evaluation.cache import write_cache
from ssfbench.report import retrieval as R
from ssfbench.results.store import write_result


def test_the_query_ranks_first_with_similarity_one_when_not_excluded():
    x = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    idx, sims = R.cosine_top_k(x, [3, 17, 42], 4, exclude_self=False)
    assert idx[:, 0].tolist() == [3, 17, 42]
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-6)
    assert (np.diff(sims, axis=1) <= 1e-7).all()  # best first
    brute = (R.l2_normalise(x) @ R.l2_normalise(x)[17]).argsort()[::-1][:4]
    assert idx[1].tolist() == brute.tolist()


def test_the_query_and_its_subject_are_excluded_by_default():
    x = np.random.default_rng(1).normal(size=(40, 4)).astype(np.float32)
    subjects = np.repeat(["a", "b", "c", "d"], 10)
    idx, _ = R.cosine_top_k(x, np.arange(40), 5, subjects=subjects)
    assert not (subjects[idx] == subjects[:, None]).any()
    idx_self, _ = R.cosine_top_k(x, np.arange(40), 5, subjects=subjects, exclude_same_subject=False)
    assert not (idx_self == np.arange(40)[:, None]).any()  # the query itself is still excluded
    with pytest.raises(UserError, match="fewer than 31 frames"):
        R.cosine_top_k(x, [0], 31, subjects=subjects)


def test_ties_are_broken_by_row_index():
    x = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    idx, sims = R.cosine_top_k(x, [0], 3, exclude_self=False)
    assert idx[0].tolist() == [0, 1, 2] and sims[0].tolist() == [1.0, 1.0, 1.0]


def test_precision_at_k_and_chance_on_single_label_data():
    classes = np.tile([0, 1], 20)  # 40 frames, 2 classes, 4 subjects of 10
    targets = np.eye(2, dtype=np.int8)[classes]
    subjects = np.repeat(["a", "b", "c", "d"], 10)
    perfect = np.eye(2, dtype=np.float32)[classes] + 0.01 * np.random.default_rng(0).normal(size=(40, 2))
    score = R.retrieval_score(perfect, targets, subjects, np.arange(40), 5)
    assert score.kind == "precision@k" and score.score == 1.0 and score.chance == pytest.approx(0.5)
    useless = np.ones((40, 2), dtype=np.float32)  # every frame equally similar: ties by index
    assert R.retrieval_score(useless, targets, subjects, np.arange(40), 10).score == pytest.approx(0.5)


def test_au_agreement_is_a_jaccard_over_known_labels():
    q = np.array([[1, 1, 0, -1]], dtype=np.int8)
    rows = np.array([[1, 1, 0, 1], [1, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]], dtype=np.int8)
    np.testing.assert_allclose(R.jaccard(q, rows)[0], [1.0, 0.5, 0.0, 0.0])
    neutral = np.zeros((1, 4), dtype=np.int8)
    assert R.jaccard(neutral, neutral)[0, 0] == 1.0  # neither has an active AU: agreement
    assert not R.is_single_label(rows) and R.is_single_label(np.eye(3, dtype=np.int8))


def test_display_queries_cover_the_classes():
    targets = np.eye(4, dtype=np.int8)[np.repeat(np.arange(4), 25)]
    queries = R.pick_queries(targets, 4, seed=0)
    assert sorted(targets[queries].argmax(axis=1).tolist()) == [0, 1, 2, 3]


def _tiny_run(tmp_path, ds, name: str, emb: np.ndarray, display: str) -> None:
    """A result JSON and an embedding cache as a run would leave them."""
    run_id = f"{name}-default-resnet18-0000-seed0"
    cache = tmp_path / "embeddings" / run_id / f"{ds.name}.h5"
    write_cache(cache, emb, ds.keys, {"method": name, "checkpoint_sha256": "0" * 64, "dataset": ds.name,
                                      "dataset_fingerprint": ds.fingerprint(), "preprocess": "{}",
                                      "ssfbench_version": "0.1.0"})
    write_result(tmp_path / "results", {
        "schema": "ssfbench.result/1", "run_id": run_id, "config_hash": "0000" + name, "method": name, "variant": "",
        "display_name": display, "backbone": "resnet18", "dataset": ds.name, "dataset_fingerprint": ds.fingerprint(),
        "date": "2026-01-01T00:00:00+00:00", "image_size": 32, "data_seed": 0, "cache": str(cache),
        "labels": list(ds.label_names), "metric": ds.metric, "protocol_version": "2", "ssfbench_version": "0.1.0",
        "source": "ssfbench", "seed": 0, "scores_per_fold": {"test": dict.fromkeys(ds.label_names, 0.5)},
        "mean": dict.fromkeys(ds.label_names, 0.5), "std": dict.fromkeys(ds.label_names, 0.0), "avg": 0.5,
        "avg_std": 0.0})


def test_retrieve_command_writes_the_grid_and_scores(tmp_path):
    from ssfbench.datasets.synthetic import SynthExpr

    ds = SynthExpr.open(image_size=32, identities=24, images_per_identity=4)
    rng = np.random.default_rng(0)
    _tiny_run(tmp_path, ds, "oracle", ds.targets.astype(np.float32) + 0.05 * rng.normal(size=ds.targets.shape), "Oracle")
    _tiny_run(tmp_path, ds, "noise", rng.normal(size=(len(ds), 8)).astype(np.float32), "Noise")
    png = tmp_path / "grid.png"
    res = CliRunner().invoke(cli, ["retrieve", "--method", "oracle", "--method", "noise", "--dataset", "synth-expr",
                                   "--queries", "2", "--top", "3", "--out", str(png), "--from", str(tmp_path),
                                   "--data-option", "synth-expr.identities=24",
                                   "--data-option", "synth-expr.images_per_identity=4", "--score-queries", "40"])
    assert res.exit_code == 0, res.output
    assert "Oracle: precision@3 = 1.000" in res.output and "Noise: precision@3 = " in res.output
    assert "every frame of its subject" in res.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    wrong = CliRunner().invoke(cli, ["retrieve", "--method", "oracle", "--dataset", "synth-expr", "--out", str(png),
                                     "--from", str(tmp_path)])
    assert wrong.exit_code != 0 and "another version of synth-expr" in str(wrong.exception)
