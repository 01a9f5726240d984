"""The shared encoder: shape and unit norm."""

import pytest
import torch

from ssfbench.errors import UserError
from ssfbench.nn.encoders import Encoder


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
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never the network in tests
    with pytest.raises(UserError, match="not in the local cache"):
        Encoder("resnet18", pretrained="imagenet")


def input_gradient_coverage(encoder: torch.nn.Module, size: int = 64) -> float:
    """Share of input pixels with a non-zero gradient of the embedding (eval mode, random input)."""
    x = torch.randn(2, 3, size, size, requires_grad=True)
    encoder.eval()(x).sum().backward()
    return float((x.grad.abs().sum(dim=(0, 1)) > 0).float().mean())


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenetv2_100", "densenet121"])
def test_untrained_encoder_sees_the_whole_image(backbone):
    """Every residual branch is live at initialisation: the untrained embedding depends on >= 95 % of
    the pixels (timm's zero_init_last left a ResNet-18 about 7 %)."""
    torch.manual_seed(0)
    assert input_gradient_coverage(Encoder(backbone)) >= 0.95


def test_revive_zero_init_changes_only_the_zeroed_scales():
    import timm

    from ssfbench.nn.encoders import create_trunk

    torch.manual_seed(0)
    ours = create_trunk("resnet18")
    torch.manual_seed(0)
    timm_default = timm.create_model("resnet18", pretrained=False, num_classes=0)
    torch.manual_seed(0)
    full_view = timm.create_model("resnet18", pretrained=False, num_classes=0, zero_init_last=False)
    assert input_gradient_coverage(timm_default) < 0.5  # the failure this guards against is real
    for (name, a), b in zip(ours.state_dict().items(), full_view.state_dict().values()):
        assert torch.equal(a, b), name
