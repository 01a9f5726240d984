"""The ranking paper's released encoder layout (``train/model.py``): ``resnet18.<i>.*`` for
``nn.Sequential(*list(resnet18.children())[:-1])`` plus ``fc1.*``, with or without DataParallel's
``module.``; loaded through ``--weights`` it gives exactly the embeddings of the authors' forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from ssfbench.api.checkpoint import load_weights
from ssfbench.api.registry import get_method
from ssfbench.errors import UserError


class AuthorsResNet18(nn.Module):
    """The authors' ``resnet18_encoder`` (written from its description: children[:-1] + fc1 + L2)."""

    def __init__(self) -> None:
        super().__init__()
        self.resnet18 = nn.Sequential(*list(torchvision.models.resnet18().children())[:-1])
        self.fc1 = nn.Linear(512, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc1(torch.flatten(self.resnet18(x), 1)), p=2, dim=1)


@pytest.fixture(scope="module")
def authors() -> AuthorsResNet18:
    torch.manual_seed(3)
    model = AuthorsResNet18().eval()
    for m in model.modules():  # non-trivial BatchNorm statistics, so a mis-mapped key would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("method", ["ranking", "triplet"])
@pytest.mark.parametrize("data_parallel", [False, True])
def test_released_layout_gives_the_authors_embeddings(authors, method, data_parallel, tmp_path):
    state = {("module." if data_parallel else "") + k: v for k, v in authors.state_dict().items()}
    path = tmp_path / "released.pth"
    torch.save(state, path)
    ours = get_method(method)(backbone="resnet18")
    load_weights(ours, path)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours.eval().embed(x), authors(x))


def test_the_authors_preprocessing_travels_with_their_weights(authors, tmp_path):
    from ssfbench.api.checkpoint import load_checkpoint, save_checkpoint
    from ssfbench.api.preprocess import IMAGENET_MEAN

    path = tmp_path / "released.pth"
    torch.save(authors.state_dict(), path)
    ours = get_method("ranking")(backbone="resnet18")
    assert ours.preprocess.input_size == 64 and ours.preprocess.center_crop == 1.0
    load_weights(ours, path)
    released = ours.preprocess  # resize 256, pad 24, centre crop 224, resize 256, ImageNet statistics
    assert (released.input_size, released.center_crop, released.mean) == (256, 224 / 256, IMAGENET_MEAN)
    assert "ihp-lab/temporal-consistency" in released.source
    save_checkpoint(ours, tmp_path / "best.pt")
    again, _ = load_checkpoint(tmp_path / "best.pt")
    assert again.preprocess == released  # saved with the checkpoint, restored with it


def test_keys_that_do_not_fit_are_named(authors, tmp_path):
    state = dict(authors.state_dict())
    state["resnet18.9.weight"] = torch.zeros(1)
    del state["fc1.bias"]
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(UserError, match=r"broken.pth: weights do not fit method 'ranking'.*missing 1 key\(s\): "
                                        r"encoder.fc.bias.*unexpected 1 key\(s\): resnet18.9.weight"):
        load_weights(get_method("ranking")(backbone="resnet18"), path)
    with pytest.raises(UserError, match="released layout is mapped for resnet18, densenet121"):
        load_weights(get_method("ranking")(backbone="mobilenetv2_100"), tmp_path / "broken.pth")
