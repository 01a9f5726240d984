"""Method conformance (the timm/MTEB pattern: every registered method through the same checks) and
the triplet / npair / supervised methods' wiring against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ssfbench.api.method import Method
from ssfbench.api.registry import get_dataset, get_method, list_methods
from ssfbench.api.wrapped import PYTHON_METHOD
from ssfbench.evaluation.embed import embed_frames

BACKBONE = "test_resnet"  # timm's tiny ResNet (BatchNorm included), so the checks stay fast
SIZE = 32


def _outside_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten())


def tiny(name: str, **overrides) -> Method:
    """A method at its defaults (plus ``overrides``), as :func:`_tiny` makes it.
    Methods that wrap an outside encoder get a small conv net: scripted and loaded as their
    ``--weights`` file (``weights_format``), or registered as ``ssfbench.evaluate`` does (``python``)."""
    cls = get_method(name)
    if name == PYTHON_METHOD:
        from ssfbench.api.preprocess import Preprocess
        from ssfbench.api.wrapped import LiveEncoder, encoder_digest, probe_embeddings, register_encoder

        net, preprocess = _outside_net(), Preprocess(input_size=SIZE)
        digest = encoder_digest(net)
        probe = probe_embeddings(net, preprocess, name="tiny")
        register_encoder(digest, LiveEncoder(encoder=net, probe=probe, name="tiny"))
        overrides = {"name": "tiny", "digest": digest, "embed_dim": probe.shape[1],
                     "preprocess": preprocess.to_json(), **overrides}
    method = _tiny(cls, overrides)
    if cls.weights_format is not None:
        import tempfile
        import warnings
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(torch.jit.script(_outside_net()), str(Path(tmp) / "net.pt"))
            method.load_weights_file(Path(tmp) / "net.pt")
    return method


def _tiny(cls: type[Method], overrides: dict) -> Method:
    """``cls`` at its defaults plus ``overrides`` on the tiny backbone; label count 3 where needed."""
    if cls.needs_labels:
        overrides.setdefault("num_labels", 3)
    torch.manual_seed(0)
    return cls(cls.Config().replace(**overrides), backbone=BACKBONE, image_size=SIZE)


@pytest.fixture(scope="module")
def frames_ds():
    return get_dataset("synth-au").open(image_size=SIZE, subjects=3, videos_per_subject=1, frames=10, stride=5)


# ---- conformance: every registered method --------------------------------------------------------

@pytest.mark.parametrize("name", list_methods())
def test_conformance(name, frames_ds):
    method = tiny(name)
    assert isinstance(method, Method) and method.name == name
    assert isinstance(method.summary, str) and method.summary and "\n" not in method.summary
    x = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))

    # embedding: [B, embed_dim] float32, finite, deterministic in eval mode
    method.eval()
    with torch.no_grad():
        z = method.embed(x)
        again = method.embed(x)
    assert z.shape == (4, method.embed_dim) and z.dtype == torch.float32
    assert torch.isfinite(z).all()
    assert torch.equal(z, again)

    # the harness's embedding pass leaves weights and BatchNorm statistics alone (lightly's test),
    # whatever mode the model was left in, and restores that mode
    method.train()
    before = {k: v.clone() for k, v in method.state_dict().items() if isinstance(v, torch.Tensor)}
    emb = embed_frames(method, method.preprocess, frames_ds, batch_size=4, progress=False)
    assert emb.shape == (len(frames_ds), method.embed_dim) and np.isfinite(emb).all()
    after = method.state_dict()
    assert [k for k in before if not torch.equal(before[k], after[k])] == []
    assert method.training

    # offsets: one example's frames stay inside the window the harness reserves
    rng = np.random.default_rng(0)
    for _ in range(20):
        offsets = method.sample_offsets(rng)
        assert len(offsets) == len(method.frame_offsets())
        assert min(offsets) >= 0 and max(offsets) < method.window_span()

    if not method.trainable:
        with pytest.raises(TypeError):
            method.training_loss(torch.zeros(1, len(method.frame_offsets()), 3, SIZE, SIZE))
        return
    # loss finite, a scalar, and its gradient reaches the parameters
    method.train()
    method.zero_grad()
    if method.needs_labels:
        targets = torch.tensor([[1, 0, -1], [0, 1, 1], [1, -1, 0], [0, 0, 1]])
        loss = method.label_loss(x, targets, torch.ones(3))
    else:
        frames = torch.randn(2, len(method.frame_offsets()), 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
        loss = method.training_loss(frames)
        with torch.no_grad():
            metrics = method.validation_metrics(frames)
        assert method.selection[0] in metrics and all(math.isfinite(v) for v in metrics.values())
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in method.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


# ---- wiring against hand computations ------------------------------------------------------------

class Pick(nn.Module):
    """Stand-in encoder: the embedding of a frame is its top-left pixel's 3 channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 0, 0]


def frames_from(vectors: list[list[list[float]]]) -> torch.Tensor:
    """``[B][T][3]`` vectors -> frames ``[B, T, 3, 2, 2]`` whose top-left pixels hold them."""
    v = torch.tensor(vectors, dtype=torch.float32)
    return v[..., None, None].expand(*v.shape, 2, 2).clone()


def test_triplet_uses_anchor_sibling_and_one_negative():
    method = tiny("triplet", margin=0.25)
    method.encoder = Pick()
    #            anchor        positive (sibling)  negative
    frames = frames_from([[[0, 0, 0], [0, 2, 0], [1, 0, 0]],     # d+ = 2, d- = 1 -> 2 - 1 + .25
                          [[1, 1, 1], [1, 1, 2], [1, 4, 1]]])    # d+ = 1, d- = 3 -> 0
    assert method.training_loss(frames).item() == pytest.approx((1.25 + 0.0) / 2)
    metrics = method.validation_metrics(frames)
    assert metrics["triplet_accuracy"] == 0.5 and metrics["val_loss"] == pytest.approx(0.625)
    with pytest.raises(ValueError, match="anchor, sibling, negative"):
        method.training_loss(torch.zeros(2, 4, 3, 2, 2))


def test_triplet_negative_is_one_frame_of_the_ranking_sequence_uniformly():
    method = tiny("triplet", k=2, n=4)
    ranking = tiny("ranking", k=2, n=4)
    assert method.window_span() == ranking.window_span() == 10
    rng = np.random.default_rng(0)
    draws = [method.sample_offsets(rng) for _ in range(2000)]
    assert all(d[:2] == [0, 1] for d in draws)
    negatives, counts = np.unique([d[2] for d in draws], return_counts=True)
    assert negatives.tolist() == ranking.frame_offsets()[2:] == [3, 5, 7, 9]
    assert counts.min() > 400  # uniform over j = 1..4 (500 expected each)


def test_npair_is_eq1_on_unnormalised_embeddings_with_l2_penalty():
    method = tiny("npair", l2_reg=0.1)
    assert method.encoder.normalize is False
    method.encoder = Pick()
    a, p, n1, n2 = [1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [2.0, 0.0, 1.0], [0.0, 1.0, 0.0]
    frames = frames_from([[a, p, n1, n2]])
    dot = lambda u, v: sum(x * y for x, y in zip(u, v))  # noqa: E731
    sq = lambda u: dot(u, u)  # noqa: E731
    expected = math.log(1 + math.exp(dot(a, n1) - dot(a, p)) + math.exp(dot(a, n2) - dot(a, p)))
    expected += 0.1 * (sq(a) + sq(p) + (sq(n1) + sq(n2)) / 2)
    assert method.training_loss(frames).item() == pytest.approx(expected, rel=1e-6)
    # accuracy: share of negatives scored below the positive (f.n1 = 2 > f.p = .5; f.n2 = 0 < .5)
    assert method.validation_metrics(frames)["npair_accuracy"] == 0.5


def test_npair_negatives_are_the_far_frames_of_the_ranking_window():
    assert tiny("npair", k=4, n=3).frame_offsets() == [0, 1, 5, 9, 13]


def test_supervised_label_loss_masks_unknown_and_weights_positives():
    method = tiny("supervised", dim=3, num_labels=3)
    method.encoder = Pick()
    with torch.no_grad():
        method.head.linear.weight.copy_(torch.eye(3))
    method.eval()  # BatchNorm with its initial statistics: x / sqrt(1 + eps)
    x = torch.zeros(1, 3, 2, 2)
    x[0, :, 0, 0] = torch.tensor([0.5, -1.0, 2.0])
    targets = torch.tensor([[1, -1, 0]])
    logits = [v / math.sqrt(1 + 1e-5) for v in (0.5, -1.0, 2.0)]
    softplus = lambda v: math.log1p(math.exp(v))  # noqa: E731
    expected = (2.0 * softplus(-logits[0]) + softplus(logits[2])) / 2  # pos weight 2 on label 0; label 1 unknown
    loss = method.label_loss(x, targets, torch.tensor([2.0, 1.0, 1.0]))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_supervised_without_labels_says_what_is_missing():
    method = tiny("supervised", num_labels=0)
    assert method.head is None
    with pytest.raises(TypeError, match="num_labels"):
        method.label_loss(torch.zeros(2, 3, SIZE, SIZE), torch.zeros(2, 3), torch.ones(3))


def test_display_names_match_the_paper_rows():
    assert tiny("triplet").display_name() == "Triplet k=1"
    assert tiny("npair", k=2).display_name() == "N-pair-mc k=2"
    assert tiny("supervised").display_name() == "Supervised"
