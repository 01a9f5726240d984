"""Speed ratios of the data pipeline, measured with pytest-benchmark (``tox -e bench``; BENCHMARKS.md has the
numbers). Each test measures both sides in the same run, alternating, three rounds each, and
asserts the ratio of the medians, so a machine that is simply slower passes or fails the same way:

- embedding, images on disk (a JPEG store) to a finished HDF5 cache: >= 0.9 of the encoder's own
  forward throughput on preloaded tensors;
- pretraining from a prepared video store: >= 0.85 of forward + backward + step on preloaded windows;
- the synthetic renderer, in one process, outpaces what a training step consumes;
- the linear probe, 3 folds x 12 AUs on 150,000 x 256 embeddings: at most a fifth of the time of
  scikit-learn's class-weighted one-vs-rest logistic regression, mean F1 within 1 point of it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssfbench.api.registry import get_method
from ssfbench.bench import speed
from ssfbench.datasets._prepared import open_prepared
from ssfbench.datasets.synthetic import SynthVox
from ssfbench.train.windows import WindowBatches, split_videos

SIZE, IDENTITIES, STEPS, ROUNDS = 64, 100, 40, 3


def ranking():
    torch.manual_seed(0)
    return get_method("ranking")(get_method("ranking").Config(k=2), image_size=SIZE)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return speed.prepared_stores(tmp_path_factory.mktemp("bench-data"), SIZE, IDENTITIES)


@pytest.fixture(scope="module")
def windows():
    videos = SynthVox.open(image_size=SIZE, identities=IDENTITIES)
    return WindowBatches(videos, split_videos(len(videos), 0.2, 0)[0], ranking(), 0)[0]


def _record(benchmark, pipeline: float, reference: float) -> float:
    ratio = pipeline / reference
    benchmark.extra_info.update(pipeline_per_s=round(pipeline, 1), reference_per_s=round(reference, 1),
                                ratio=round(ratio, 3))
    return ratio


def test_embedding_from_disk_keeps_up_with_the_encoder(benchmark, stores):
    frames = open_prepared(stores[0], "synth-au")
    reference, rate = benchmark.pedantic(lambda: speed.paired(
        lambda: speed.model_embed_rate(ranking(), 256, 8, "cpu"),
        lambda: speed.pipeline_embed_rate(ranking(), frames, batch_size=256, device="cpu", num_workers=0),
        ROUNDS), rounds=1, iterations=1)
    assert _record(benchmark, rate, reference) >= 0.9


def test_pretraining_from_a_prepared_store_keeps_up_with_the_model(benchmark, stores, windows):
    videos = SynthVox.open(stores[1], image_size=SIZE, identities=IDENTITIES)
    reference, (rate, end_to_end) = benchmark.pedantic(lambda: speed.paired(
        lambda: speed.model_train_rate(ranking(), windows, 10, "cpu"),
        lambda: speed.pipeline_train_rate(ranking(), videos, steps=STEPS, device="cpu", num_workers=0),
        ROUNDS), rounds=1, iterations=1)
    benchmark.extra_info["end_to_end_ratio"] = round(end_to_end / reference, 3)
    assert _record(benchmark, rate, reference) >= 0.85


def test_the_renderer_outpaces_what_training_consumes(benchmark, windows):
    videos = SynthVox.open(image_size=SIZE, identities=IDENTITIES)
    rate = benchmark.pedantic(lambda: speed.render_rate(videos, ranking(), steps=4), rounds=1, iterations=1)
    assert _record(benchmark, rate, speed.model_train_rate(ranking(), windows, 10, "cpu")) > 1.0


def test_the_probe_is_5x_faster_than_sklearn_at_the_same_f1(benchmark):
    x, y, groups = speed.synthetic_embeddings(n=150_000)
    out = benchmark.pedantic(lambda: speed.probe_against_sklearn(x, y, groups), rounds=1, iterations=1)
    benchmark.extra_info.update({k: round(v, 2) for k, v in out.items()})
    assert out["sklearn_s"] / out["probe_s"] >= 5.0
    assert abs(out["probe_f1"] - out["sklearn_f1"]) <= 1.0


def test_the_cache_content_check_costs_little_next_to_the_probe(benchmark, tmp_path):
    """Issue 15: every cache read recomputes the embeddings' sha256 and checks finiteness and row
    counts. Measured on a BP4D-sized cache (140,000 x 256) against the probe fitted on it (one fold)."""
    import time

    from ssfbench.evaluation.cache import embeddings_digest, read_cache, write_cache
    from ssfbench.evaluation.probe import fit_predict

    rng = np.random.default_rng(0)
    n = 140_000
    emb = rng.normal(size=(n, 256)).astype(np.float32)
    attrs = {"method": "m", "checkpoint_sha256": "ab" * 32, "dataset": "d", "dataset_fingerprint": "f",
             "preprocess": {"input_size": 64}, "ssfbench_version": "0.1.0"}
    write_cache(tmp_path / "c.h5", emb, [f"k{i}" for i in range(n)], attrs)
    check_s = benchmark.pedantic(lambda: _timed(lambda: (embeddings_digest(emb), np.isfinite(emb).all())),
                                 rounds=3, iterations=1)
    read_s = _timed(lambda: read_cache(tmp_path / "c.h5", attrs))
    y = (rng.random((n, 12)) < 0.2).astype(np.int8)
    started = time.perf_counter()
    fit_predict(emb[: n * 2 // 3], y[: n * 2 // 3], emb[n * 2 // 3:], seed=0)
    probe_s = time.perf_counter() - started
    benchmark.extra_info.update(check_s=round(check_s, 3), read_with_check_s=round(read_s, 3),
                                probe_one_fold_s=round(probe_s, 2), check_over_probe=round(check_s / probe_s, 4))
    assert check_s < 0.1 * probe_s


def _timed(fn) -> float:
    import time

    started = time.perf_counter()
    fn()
    return time.perf_counter() - started
