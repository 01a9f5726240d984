"""torchrun on CPU (gloo): two processes pretrain with DistributedDataParallel and keep bitwise
identical parameters (compared every step), and a sharded embedding merged on rank 0 equals the
cache one process writes. Plus the pieces: window shards and the sharded batch order.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import torch

from ssfbench.api.registry import get_method
from ssfbench.datasets.synthetic import SynthAU, SynthVox
from ssfbench.evaluation.embed import iter_embeddings
from ssfbench.runtime.distributed import World, check_identical, parameter_digest, shutdown, world
from ssfbench.train.windows import WindowBatches, split_videos

COMMON = ["--method", "ranking", "--k", "1", "--steps", "6", "--image-size", "32", "--batch-size", "4",
          "--device", "cpu", "--workers", "0", "--quiet", "--data-option", "synth-vox.identities=10"]
EMBED = ["--datasets", "synth-au", "--data-option", "synth-au.subjects=6", "--embed-batch-size", "40"]


def _ssfbench(args: list[str], cwd: Path, processes: int = 1) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    cmd = [*(launcher if processes > 1 else [sys.executable]), "-m", "ssfbench", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def _cache(out: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    (path,) = out.glob("embeddings/*/synth-au.h5")
    with h5py.File(path) as f:
        return f["embeddings"][...], f["keys"].asstr()[...], dict(f.attrs)


def test_torchrun_two_processes_keep_parameters_identical_and_merge_one_cache(tmp_path):
    ddp = tmp_path / "ddp"
    printed = _ssfbench(["pretrain", *COMMON, "--out", str(ddp), "--check-sync-every", "1"], tmp_path, 2).stdout
    assert printed.count("checkpoint:") == 1  # rank 0 alone logs
    (record_path,) = ddp.glob("runs/*/best.json")
    record = json.loads(record_path.read_text())
    assert record["pretrain"]["processes"] == 2 and record["completed"]
    trained = [h for h in record["history"] if h["step"] > 0]
    assert [h["step"] for h in trained] == [4, 6]  # 16 training videos / 4 per step; and the last step
    assert all(h["ranks_identical"] == 2 and np.isfinite(h["train_loss"]) for h in trained)
    assert sorted(p.name for p in record_path.parent.iterdir()) == ["best.json", "best.pt", "curve.csv", "last.pt"]

    single = tmp_path / "single"
    shutil.copytree(ddp / "runs", single / "runs")  # the same encoder, no caches yet
    _ssfbench(["embed", *COMMON, *EMBED, "--out", str(ddp)], tmp_path, 2)
    _ssfbench(["embed", *COMMON, *EMBED, "--out", str(single)], tmp_path, 1)
    sharded, reference = _cache(ddp), _cache(single)
    assert sharded[0].shape == (360, 256)  # 9 batches of 40 over 2 ranks: the last round is padded
    np.testing.assert_array_equal(sharded[0], reference[0])
    np.testing.assert_array_equal(sharded[1], reference[1])
    assert sharded[2] == reference[2]
    assert not list(ddp.glob("embeddings/*/.*partial"))


def test_window_shards_partition_every_step():
    videos = SynthVox.open(image_size=16, identities=6)
    method = get_method("ranking")(get_method("ranking").Config(k=1, batch_size=4), image_size=16)
    train, _ = split_videos(len(videos), 0.2, 0)
    full = WindowBatches(videos, train, method, seed=3)
    shards = [WindowBatches(videos, train, method, seed=3, shard=(r, 2)) for r in range(2)]
    for step in (0, 1, 5):
        whole = full[step]
        np.testing.assert_array_equal(shards[0][step], whole[0::2])
        np.testing.assert_array_equal(shards[1][step], whole[1::2])


def test_sharded_batches_follow_distributed_sampler_order():
    ds = SynthAU.open(image_size=16, subjects=3)
    model = get_method("random")(get_method("random").Config(), image_size=16)
    kwargs = {"batch_size": 40, "device": "cpu", "progress": False}
    blocks = list(iter_embeddings(model, model.preprocess, ds, **kwargs))
    rank1 = list(iter_embeddings(model, model.preprocess, ds, shard=(1, 2), **kwargs))
    assert len(blocks) == 5  # 180 rows in batches of 40: an odd count, so rank 1 pads
    expected = blocks[1::2] + ([blocks[0]] if len(blocks) % 2 else [])  # DistributedSampler pads with batch 0
    assert len(rank1) == len(expected)
    for got, want in zip(rank1, expected):
        np.testing.assert_array_equal(got, want)


def test_single_process_world_and_checks():
    assert world() == World(0, 1, 0) and world().is_main and not world().distributed
    model = torch.nn.Linear(3, 2)
    assert check_identical(model, "single")
    digest = parameter_digest(model)
    with torch.no_grad():
        model.weight[0, 0] += 1e-7
    assert parameter_digest(model) != digest
    shutdown()  # no process group joined: nothing to leave
    assert world() == World(0, 1, 0)
