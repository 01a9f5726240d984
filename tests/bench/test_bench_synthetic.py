"""Speed of the synthetic renderer against what pretraining consumes (pytest-benchmark).

Run with ``tox -e bench``. Both sides are measured in the same run: rendering one step's windows
(16 windows x 12 frames at 64 px) and one training step of the ranking method on preloaded frames;
the renderer must outpace training so that the data pipeline never starves the model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssfbench.datasets.synthetic import SynthVox
from ssfbench.pretrain import WindowBatches, make_optimizer, split_videos
from ssfbench.registry import get_method

SIZE = 64


@pytest.fixture(scope="module")
def setup():
    videos = SynthVox.open(image_size=SIZE)
    method = get_method("ranking")(get_method("ranking").Config(k=2), image_size=SIZE)
    train, _ = split_videos(len(videos), 0.2, 0)
    return videos, method, WindowBatches(videos, train, method, seed=0)


def test_render_one_step_of_windows(benchmark, setup):
    _, method, stream = setup
    step = iter(range(10_000))
    frames = benchmark.pedantic(lambda: stream[next(step)], rounds=5, iterations=1)
    assert frames.shape == (method.config.batch_size, 12, SIZE, SIZE, 3)


def test_train_one_step_on_preloaded_windows(benchmark, setup):
    _, method, stream = setup
    frames = stream[0]
    optimizer = make_optimizer(method)
    method.train()

    def step() -> float:
        loss = method.training_loss(method.preprocess(frames))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    loss = benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)
    assert np.isfinite(loss) and torch.is_grad_enabled()
