"""EmotioNet adapter on a tiny replica: challenge lists + 2020 csv, 999 masked, flat and nested
downloads, missing downloads counted, the paper's split."""

from __future__ import annotations

import shutil

import pytest
from replicas import make_emotionet

from ssfbench.api.verify import label_counts
from ssfbench.datasets.emotionet import AUS, EmotioNet, image_id
from ssfbench.errors import UserError


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    return make_emotionet(tmp_path_factory.mktemp("emotionet") / "EmotioNet")


@pytest.fixture(scope="module")
def ds(replica):
    with pytest.warns(UserWarning, match="image not downloaded 2"):
        return EmotioNet.open(replica.root, image_size=16)


def test_rows_codes_and_missing_downloads(ds, replica):
    assert ds.label_names == tuple(f"AU{a}" for a in AUS) and ds.metric == "auc"
    assert len(ds) == replica.rows == 38
    assert {n: (p, q, u) for n, p, q, u in label_counts(ds.label_names, ds.targets)} == replica.counts
    assert (ds.targets[:, 0] == -1).sum() >= 5  # every 7th image has AU1 = 999
    assert ds.preprocessing()["rows_skipped"] == {"image not downloaded": 2}
    assert "N_0000000003/N_0000000003_00003" not in set(ds.keys)


def test_flat_and_nested_copies(ds):
    assert ds.paths[list(ds.keys).index("N_0000000000/N_0000000000_00000")] == "images/N_0000000000_00000.jpg"
    assert ds.paths[list(ds.keys).index("N_0000000001/N_0000000001_00001")] == \
        "images/N_0000000001/N_0000000001_00001.jpg"
    assert ds.read_image(1).shape == (16, 16, 3)


def test_paper_split(ds, replica):
    assert (ds.splits == "test").sum() == replica.extra["test"]
    assert ((ds.splits == "train") | (ds.splits == "val")).sum() == replica.extra["train_pool"]
    assert 0.5 < (ds.splits == "train").sum() / replica.extra["train_pool"] < 0.95
    (fold,) = ds.folds()
    assert fold.name == "test" and set(ds.splits[fold.train]) == {"train"} and set(ds.splits[fold.test]) == {"test"}
    assert all(k.startswith("N_00000000") for k in ds.keys[fold.test])


def test_split_does_not_depend_on_other_downloads(ds, replica, tmp_path):
    copy = tmp_path / "e"
    shutil.copytree(replica.root, copy)
    (copy / "images" / "N_0000000004_00004.jpg").unlink()
    with pytest.warns(UserWarning):
        fewer = EmotioNet.open(copy, image_size=16)
    before = dict(zip(ds.keys, ds.splits))
    assert all(before[k] == s for k, s in zip(fewer.keys, fewer.splits))
    with pytest.warns(UserWarning):
        other_seed = EmotioNet.open(replica.root, image_size=16, seed=1)
    assert list(other_seed.splits) != list(ds.splits)


def test_url_orig_fallback_and_manual_only(replica, tmp_path):
    copy = tmp_path / "e"
    shutil.copytree(replica.root, copy)
    url, orig = "http://x/emotionet/Images/N_9/N_9_1.jpg", "http://y/N_9_orig.jpg"
    with open(copy / "lists" / "dataFile_1001.txt", "a") as f:
        f.write("\t".join([url, orig] + ["1"] * 60) + "\n")
    shutil.copy(copy / "images" / "N_0000000000_00000.jpg", copy / "images" / "N_9_orig.jpg")
    with pytest.warns(UserWarning):
        ds = EmotioNet.open(copy)
    assert ds.paths[list(ds.keys).index("N_9/N_9_1")] == "images/N_9_orig.jpg"
    shutil.rmtree(copy / "lists")
    with pytest.raises(UserError, match="training lists not found"):
        EmotioNet.open(copy)


def test_manual_only_split(tmp_path):
    replica = make_emotionet(tmp_path / "e", train=5, test=40, missing=())
    manual = EmotioNet.open(replica.root, split="manual-only")
    assert len(manual) == 40 and set(manual.splits) == {"train", "test"}
    assert 20 <= (manual.splits == "train").sum() <= 38
    assert "not the paper's protocol" in EmotioNet.inspect(replica.root, quick=True, split="manual-only").render()


def test_image_id():
    assert image_id("'http://a.s3.amazonaws.com/emotionet/Images/N_1/N_1_2.jpg'".strip("'")) == "N_1/N_1_2"
    assert image_id("http://host/a/b/c.png") == "b/c"
