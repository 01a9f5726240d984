"""embed_frames: same rows, order and values as a direct forward, with the model left as found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ssfbench.api.dataset import Fold, LabeledFrames
from ssfbench.api.preprocess import Preprocess, stack_resized
from ssfbench.errors import UserError
from ssfbench.evaluation.embed import embed_frames


class TinyFrames(LabeledFrames):
    name = "tiny"
    summary = "random images of mixed sizes"
    label_names = ("AU1",)
    metric = "f1"

    def __init__(self, n: int = 7, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        sizes = [(12, 12), (20, 16), (9, 14)]
        self.images = [rng.integers(0, 256, size=(*sizes[i % 3], 3), dtype=np.uint8) for i in range(n)]
        self.keys = np.array([f"f{i}" for i in range(n)])
        self.subjects = np.zeros(n, dtype=int)
        self.targets = np.zeros((n, 1), dtype=np.int8)

    @classmethod
    def open(cls, root: Path | None = None, *, image_size: int = 64, seed: int = 0) -> TinyFrames:
        return cls(seed=seed)

    def fingerprint(self) -> str:
        return "0"

    def folds(self) -> list[Fold]:
        return []

    def read_image(self, index: int) -> np.ndarray:
        return self.images[index]


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 5)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        return self.head(h.mean(dim=(2, 3)))


PRE = Preprocess(input_size=12, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def _model() -> TinyNet:
    torch.manual_seed(0)
    m = TinyNet()
    with torch.no_grad():  # non-trivial running statistics
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 2.0)
    return m


def test_matches_direct_forward_in_dataset_order() -> None:
    ds, model = TinyFrames(), _model()
    got = embed_frames(model, PRE, ds, batch_size=3, progress=False)  # 3 + 3 + 1 rows
    model.eval()
    with torch.no_grad():
        x = PRE(torch.from_numpy(stack_resized([ds.read_image(i) for i in range(len(ds))], 12)))
        want = model.embed(x).numpy()
    assert got.shape == (7, 5) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_model_mode_and_batchnorm_statistics_are_left_alone() -> None:
    ds, model = TinyFrames(), _model()
    model.train()
    model.head.eval()  # a mixed state must come back as it was
    before = {k: v.clone() for k, v in model.state_dict().items()}
    embed_frames(model, PRE, ds, batch_size=4, progress=False)
    assert model.training and model.conv.training and model.bn.training and not model.head.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_mode_restored_after_error() -> None:
    class Broken(TinyNet):
        def embed(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    model = Broken().train()
    with pytest.raises(RuntimeError, match="boom"):
        embed_frames(model, PRE, TinyFrames(), progress=False)
    assert model.training and model.bn.training


def test_empty_dataset_is_user_error() -> None:
    with pytest.raises(UserError, match="no frames"):
        embed_frames(_model(), PRE, TinyFrames(n=0), progress=False)
