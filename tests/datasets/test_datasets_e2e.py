"""End to end on the replicas: verify, embed with a tiny model, probe every fold; prepared stores;
the ``ssfbench datasets`` and ``ssfbench run --datasets bp4d --root bp4d=PATH`` command lines."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from replicas import make_affectnet, make_bp4d, make_disfa, make_emotionet
from torch import nn

from ssfbench.api.preprocess import Preprocess
from ssfbench.api.registry import get_dataset, list_datasets
from ssfbench.api.verify import verify
from ssfbench.cli import main
from ssfbench.datasets._prepared import PreparedFrames
from ssfbench.datasets.bp4d import BP4D
from ssfbench.errors import UserError
from ssfbench.evaluation.embed import embed_frames
from ssfbench.evaluation.protocol import probe_dataset

BUILDERS = {"bp4d": make_bp4d, "disfa": make_disfa, "emotionet": make_emotionet, "affectnet": make_affectnet}


class TinyEncoder(nn.Module):
    """Mean colour per quadrant: a fixed 12-d embedding that still differs between frames."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("real")
    return {name: build(base / name).root for name, build in BUILDERS.items()}


def test_registered_and_options_declared_once(roots):
    from ssfbench.api.settings import Option

    assert {"bp4d", "disfa", "emotionet", "affectnet", "voxceleb2"} <= set(list_datasets())
    for name in ("bp4d", "disfa", "emotionet", "affectnet", "voxceleb2"):
        cls = get_dataset(name)
        assert all(isinstance(o, Option) and isinstance(o.default, o.type) for o in cls.OPTIONS.values()), name
        assert cls.resolve_options({}) == {k: o.default for k, o in cls.OPTIONS.items()}, name
        with pytest.raises(UserError, match=f"dataset '{name}' has no option 'bogus'"):
            cls.resolve_options({"bogus": 1})
    for name, root in roots.items():  # open takes exactly the declared options as keywords
        with pytest.raises(UserError, match=f"dataset '{name}' has no option 'bogus'"):
            get_dataset(name).open(root, bogus=1)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_verify_embed_probe(name, roots, recwarn):
    report = verify(name, roots[name])
    assert report.usable, report.render()
    ds = get_dataset(name).open(roots[name], image_size=16)
    x = embed_frames(TinyEncoder(), Preprocess(16), ds, batch_size=8, progress=False)
    assert x.shape == (len(ds), 12) and np.isfinite(x).all()
    scores = probe_dataset(x, ds, seed=0)
    folds = ds.folds()
    assert list(scores["scores_per_fold"]) == [f.name for f in folds]
    assert scores["labels"] == list(ds.label_names) and scores["metric"] == ds.metric
    for per_label in scores["scores_per_fold"].values():
        assert set(per_label) == set(ds.label_names)
        assert all(np.isnan(v) or 0.0 <= v <= 1.0 for v in per_label.values())


@pytest.mark.parametrize("codec", ["raw", "jpeg"])
def test_prepared_store_replaces_the_copy(codec, roots, tmp_path):
    out = tmp_path / f"bp4d-{codec}.h5"
    BP4D.prepare(roots["bp4d"], out, image_size=24, codec=codec)
    direct = BP4D.open(roots["bp4d"], image_size=24)
    store = BP4D.open(out, image_size=24)
    assert isinstance(store, PreparedFrames) and store.name == "bp4d" and store.metric == "f1"
    assert np.array_equal(store.keys, direct.keys) and np.array_equal(store.targets, direct.targets)
    assert [(f.name, f.train.tolist(), f.test.tolist()) for f in store.folds()] == \
           [(f.name, f.train.tolist(), f.test.tolist()) for f in direct.folds()]
    got, want = np.stack(store.read_images([7, 2, 7])), np.stack(direct.read_images([7, 2, 7]))
    assert got.shape == (3, 24, 24, 3)
    assert np.abs(got.astype(int) - want).max() <= (0 if codec == "raw" else 12)
    assert store.preprocessing()["crop"] == "aligned" and store.fingerprint() != direct.fingerprint()
    assert store.preprocessing()["faces_found"] == {"no face detected (centre square)": len(direct)}
    with h5py.File(out) as f:
        assert f.attrs["complete"] and f.attrs["source_fingerprint"] == direct.fingerprint()
    with pytest.raises(Exception, match="a prepared store of 'bp4d', not of 'disfa'"):
        get_dataset("disfa").open(out)
    with pytest.raises(Exception, match="prepared with frame_offset=0, not 1"):
        BP4D.open(out, frame_offset=1)


def _cli(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code)
    return 0


def test_cli_verify_and_prepare(roots, tmp_path, capsys):
    assert _cli(["datasets", "verify", "affectnet", "--root", str(roots["affectnet"])]) == 0
    out = capsys.readouterr().out
    assert "verdict: usable" in out and "NULL row (1)" in out
    assert _cli(["datasets", "verify", "affectnet", "--root", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: affectnet root not found" in capsys.readouterr().err
    assert _cli(["datasets", "verify", "synth-au", "--root", str(tmp_path)]) == 2
    assert "generated on the fly" in capsys.readouterr().err
    store = tmp_path / "disfa.h5"
    assert _cli(["datasets", "prepare", "disfa", "--root", str(roots["disfa"]), "--out", str(store),
                 "--image-size", "16"]) == 0
    assert store.is_file() and not list(tmp_path.glob(".disfa.h5.*"))


def test_cli_run_on_bp4d(roots, tmp_path, capsys):
    out = tmp_path / "out"
    rc = _cli(["run", "--method", "random", "--datasets", "bp4d", "--root", f"bp4d={roots['bp4d']}",
               "--image-size", "32", "--out", str(out), "--quiet", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    (result_path,) = (out / "results" / "runs").glob("*/bp4d.json")
    result = json.loads(result_path.read_text())
    assert result["dataset"] == "bp4d" and result["metric"] == "f1" and result["n_rows"] == 126
    assert list(result["scores_per_fold"]) == ["fold1", "fold2", "fold3"]
    with h5py.File(result["cache"]) as f:
        assert json.loads(f.attrs["face_preprocessing"])["crop"] == "aligned"
        assert f.attrs["dataset_fingerprint"] == BP4D.open(roots["bp4d"], image_size=32).fingerprint()
    # recorded in the result too, with the counts: no frame holds a face, so none is the paper's way
    assert result["face_preprocessing"]["paper"] is False and result["face_preprocessing"]["paper_percent"] == 0.0
    assert result["faces_found"] == {"no face detected (centre square)": 126}
    assert "AU24" in capsys.readouterr().out
