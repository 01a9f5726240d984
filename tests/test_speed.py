"""The speed tooling at toy sizes (the real measurements are tests/bench): prepared video stores
give the renderer's pixels bit for bit, the loop records its throughput, ``ssfbench bench``
runs end to end and its ratios are the ratios of what it measured."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_runner import run_main

from ssfbench.bench import speed
from ssfbench.datasets.synthetic import SynthVox
from ssfbench.errors import UserError


def test_a_prepared_video_store_holds_the_rendered_pixels(tmp_path):
    source = SynthVox.open(image_size=16, identities=3, frames=20)
    path = SynthVox.prepare(None, tmp_path / "vox.h5", image_size=16, identities=3, frames=20, progress=False)
    store = SynthVox.open(path, image_size=16, identities=3, frames=20)
    assert store.fingerprint() == source.fingerprint() and len(store) == len(source) == 6
    assert [store.identity(v) for v in range(6)] == [source.identity(v) for v in range(6)]
    for video, frames in ((0, [0, 1, 3, 5]), (5, [19, 2, 2, 7])):
        np.testing.assert_array_equal(store.read_frames(video, frames), source.read_frames(video, frames))
    with pytest.raises(UserError, match="rendered with other options"):
        SynthVox.open(path, image_size=32, identities=3, frames=20)
    with pytest.raises(UserError, match="lossless"):
        SynthVox.prepare(None, tmp_path / "x.h5", image_size=16, codec="jpeg")
    with pytest.raises(IndexError):
        store.read_frames(0, [20])


def test_synthetic_embeddings_have_bp4d_like_base_rates():
    x, y, groups = speed.synthetic_embeddings(n=4000, dim=32, labels=6, subjects=10)
    assert x.shape == (4000, 32) and y.shape == (4000, 6) and len(np.unique(groups)) == 10
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(y.mean(axis=0), np.linspace(0.05, 0.45, 6), atol=0.01)


def test_bench_runs_end_to_end_and_reports_its_own_ratios(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code, stdout, err = run_main(["bench", "--device", "cpu", "--image-size", "16", "--steps", "8",
                                  "--identities", "20", "--embed-batch-size", "512", "--probe-rows", "3000",
                                  "--workers", "0", "--rounds", "1", "--data-dir", str(tmp_path / "data"), "--out", str(out)], capsys)
    assert code == 0, err
    rows = json.loads(out.read_text())["rows"]
    assert [r["what"].split(" ")[0] for r in rows] == ["embedding", "pretraining", "pretraining", "synthetic", "linear"]
    for r in rows:
        assert r["pipeline"] > 0 and r["reference"] > 0
        assert r["ratio"] == pytest.approx(r["pipeline"] / r["reference"])
    assert 0 <= rows[-1]["probe_f1"] <= 100 and 0 <= rows[-1]["sklearn_f1"] <= 100
    assert "embedding (JPEG store -> HDF5 cache)" in stdout and "probe mean F1" in stdout


def test_jpeg_store_decoding_gives_pils_pixels_with_or_without_torchvision(monkeypatch):
    import io
    import sys

    from PIL import Image

    from ssfbench.datasets._prepared import _decode_jpegs

    rng = np.random.default_rng(0)
    blobs, expected = [], []
    for shape in ((20, 30, 3), (20, 30, 3), (8, 8, 3)):
        buf = io.BytesIO()
        Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(buf, format="JPEG")
        blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
        expected.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    for batch in (blobs[:2], blobs):  # one shape (stacked) and mixed shapes
        for got, want in zip(_decode_jpegs(batch), expected):
            np.testing.assert_array_equal(got, want)
    monkeypatch.setitem(sys.modules, "torchvision.io", None)  # a torchvision without image codecs
    for got, want in zip(_decode_jpegs(blobs), expected):
        np.testing.assert_array_equal(got, want)
