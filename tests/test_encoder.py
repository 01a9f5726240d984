"""The shared encoder: shape and unit norm."""

import pytest
import torch

from ssfbench.encoders import Encoder
from ssfbench.errors import UserError


def test_encoder_shape_and_unit_norm():
    enc = Encoder("resnet18", dim=256).eval()
    with torch.no_grad():
        z = enc(torch.randn(3, 3, 32, 32))
    assert z.shape == (3, 256)
    assert torch.allclose(z.norm(dim=1), torch.ones(3), atol=1e-5)


def test_encoder_without_normalisation_and_other_backbone():
    enc = Encoder("mobilenetv2_100", dim=16, normalize=False).eval()
    with torch.no_grad():
        z = enc(torch.randn(2, 3, 32, 32))
    assert z.shape == (2, 16)
    assert not torch.allclose(z.norm(dim=1), torch.ones(2))


def test_unknown_backbone_suggests():
    with pytest.raises(UserError, match="resnet18"):
        Encoder("resnet-18")


def test_imagenet_weights_absent_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError, match="not in the local cache"):
        Encoder("resnet18", pretrained="imagenet")
