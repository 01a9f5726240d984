"""Losses against hand computations."""

import math

import pytest
import torch

from ssfbench.nn.losses import npair_mc_loss, ranking_accuracy, ranking_triplet_loss, triplet_loss
from ssfbench.nn.sampling import ranking_window


def t(rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_ranking_loss_every_hinge_active():
    # anchor at the origin; sequence distances 3, 2, 1 (getting closer: every pair is mis-ordered)
    anchor = t([[0.0, 0.0]])
    seq = t([[[3.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])
    m = 0.5
    expected = (3 - 2 + m) + (2 - 1 + m)
    assert ranking_triplet_loss(anchor, seq, margin=m).item() == pytest.approx(expected)


def test_ranking_loss_no_hinge_active():
    anchor = t([[0.0, 0.0]])
    seq = t([[[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]]])  # distances 1 < 2 < 3, gaps 1 > margin
    assert ranking_triplet_loss(anchor, seq, margin=0.5).item() == 0.0


def test_ranking_loss_mixed_batch_mean_and_squared_distance():
    anchor = t([[0.0, 0.0], [1.0, 1.0]])
    seq = t([[[1.0, 0.0], [0.0, 1.2], [2.0, 0.0]],     # d = 1, 1.2, 2 -> hinges (1-1.2+.3)=.1, (1.2-2+.3)=0
             [[1.0, 3.0], [1.0, 2.0], [1.0, 1.5]]])    # d = 2, 1, .5 -> 1.3, .8
    loss = ranking_triplet_loss(anchor, seq, margin=0.3)
    assert loss.item() == pytest.approx(((0.1 + 0.0) + (1.3 + 0.8)) / 2)
    # released code: squared distances
    sq = ranking_triplet_loss(anchor, seq, margin=0.3, distance="squared")
    expected = (max(0, 1 - 1.44 + .3) + max(0, 1.44 - 4 + .3) + max(0, 4 - 1 + .3) + max(0, 1 - .25 + .3)) / 2
    assert sq.item() == pytest.approx(expected)


def test_ranking_loss_gradients_finite_when_embeddings_coincide():
    anchor = torch.zeros(1, 4, requires_grad=True)
    seq = torch.zeros(1, 3, 4, requires_grad=True)
    ranking_triplet_loss(anchor, seq).backward()
    assert torch.isfinite(anchor.grad).all() and torch.isfinite(seq.grad).all()


def test_triplet_loss_hand_computed():
    a, p, n = t([[0.0, 0.0]]), t([[0.0, 2.0]]), t([[1.0, 0.0]])
    assert triplet_loss(a, p, n, margin=0.25).item() == pytest.approx(2 - 1 + 0.25)
    assert triplet_loss(a, n, p, margin=0.25).item() == 0.0


def test_npair_mc_loss_matches_a_loop_reference():
    g = torch.Generator().manual_seed(0)
    a, p, negs = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g), torch.randn(3, 4, 5, generator=g)
    reg = 0.01
    ref = 0.0
    for b in range(3):
        s = sum(math.exp(float(a[b] @ negs[b, i] - a[b] @ p[b])) for i in range(4))
        ref += math.log(1 + s)
    ref /= 3
    pen = sum(float(a[b] @ a[b] + p[b] @ p[b] + sum(negs[b, i] @ negs[b, i] for i in range(4)) / 4) for b in range(3)) / 3
    assert npair_mc_loss(a, p, negs, l2_reg=reg).item() == pytest.approx(ref + reg * pen, rel=1e-5)


def test_ranking_accuracy_per_position():
    anchor = t([[0.0], [0.0]])
    seq = t([[[1.0], [2.0], [3.0]], [[1.0], [3.0], [2.0]]])
    assert ranking_accuracy(anchor, seq).tolist() == [1.0, 0.5]


def test_ranking_window():
    assert ranking_window(5, 2, 3) == [5, 6, 8, 10, 12]
    assert ranking_window(0, 1, 10) == list(range(12))
    window = ranking_window(0, 4, 10)
    assert max(window) - min(window) + 1 == 42  # the frames it spans
    with pytest.raises(ValueError):
        ranking_window(0, 0, 10)
