"""The linear probe: learns separable data, masks unknowns, is seeded, weights rare positives."""

from __future__ import annotations

import numpy as np
import pytest

import ssfbench.evaluation.probe as probe
from ssfbench.errors import UserError
from ssfbench.evaluation.metrics import per_label_f1
from ssfbench.evaluation.probe import PROBE_DEFAULTS, LinearProbe, fit_predict, positive_weights


def _separable(n: int = 1000, d: int = 8, c: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32) * 2 + 1  # off-centre, so BatchNorm matters
    w = rng.normal(size=(d, c))
    score = (x - 1) @ w
    keep = (np.abs(score) > 1.0).all(axis=1)  # a margin around every boundary
    return x[keep], (score[keep] > 0).astype(np.int8)


def test_defaults_are_the_protocol() -> None:
    assert PROBE_DEFAULTS["epochs"] == 100 and PROBE_DEFAULTS["lr"] == 1e-2
    assert PROBE_DEFAULTS["batch_size"] is None and PROBE_DEFAULTS["weight_decay"] == 0.0
    m = LinearProbe(8, 3)
    assert m.linear.bias is None and m.norm.num_features == 8


def test_learns_linearly_separable_labels() -> None:
    x, y = _separable()
    prob = fit_predict(x[:300], y[:300], x[300:])
    assert prob.shape == (len(x) - 300, 3) and prob.dtype == np.float32
    assert per_label_f1(y[300:], prob).min() > 0.95


def test_minibatch_training_also_learns() -> None:
    x, y = _separable()
    prob = fit_predict(x[:300], y[:300], x[300:], batch_size=64, epochs=30)
    assert per_label_f1(y[300:], prob).min() > 0.9


def test_labels_at_masked_positions_do_not_matter() -> None:
    x, y = _separable(n=300)
    unknown = np.random.default_rng(1).random(y.shape) < 0.2
    a = fit_predict(x, np.where(unknown, -1, y), x[:50], seed=3)
    # what the masked entries "really" were cannot matter: flip them all, then mask again
    flipped = np.where(unknown, 1 - y, y)
    b = fit_predict(x, np.where(unknown, -1, flipped), x[:50], seed=3)
    np.testing.assert_array_equal(a, b)
    # whereas the same flips, if they were known, change the fit
    c = fit_predict(x, flipped, x[:50], seed=3)
    assert not np.array_equal(a, c)
    # and -1 is read as neither a negative nor a positive
    for fill in (0, 1):
        assert not np.array_equal(a, fit_predict(x, np.where(unknown, fill, y), x[:50], seed=3))


def test_masked_loss_ignores_unknown_entries() -> None:
    import torch

    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    known = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    y1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y2 = torch.tensor([[1.0, 1.0], [0.0, 1.0]])  # differs only at the unknown entry
    w = torch.ones(2)
    assert probe.masked_bce(logits, y1, known, w) == probe.masked_bce(logits, y2, known, w)


def test_seed_determinism() -> None:
    x, y = _separable(n=120)
    a = fit_predict(x, y, x[:20], seed=0, batch_size=32, epochs=5)
    b = fit_predict(x, y, x[:20], seed=0, batch_size=32, epochs=5)
    c = fit_predict(x, y, x[:20], seed=1, batch_size=32, epochs=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_positive_weights_inverse_frequency() -> None:
    y = np.array([[1, 0, 1], [0, 0, 1], [0, -1, -1], [0, 0, 0]])
    np.testing.assert_allclose(positive_weights(y), [3.0, 1.0, 0.5])


def test_positive_weighting_raises_recall_of_rare_label(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    n = 1000
    y = (rng.random((n, 1)) < 0.05).astype(np.int8)
    x = (rng.normal(size=(n, 4)) + 1.0 * y).astype(np.float32)  # weakly informative
    weighted = (fit_predict(x, y, x) >= 0.5).mean()
    monkeypatch.setattr(probe, "positive_weights", lambda y: np.ones(y.shape[1], np.float32))
    unweighted = (fit_predict(x, y, x) >= 0.5).mean()
    assert weighted > unweighted + 0.05


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_embeddings_are_a_user_error(bad: float) -> None:
    x, y = _separable(n=20)
    x[3, 1] = bad
    with pytest.raises(UserError, match="NaN or infinite"):
        fit_predict(x, y, x)


def test_shape_errors_are_user_errors() -> None:
    x, y = _separable(n=20)
    with pytest.raises(UserError, match="rows"):
        fit_predict(x, y[:10], x)
    with pytest.raises(UserError, match="2-D float"):
        fit_predict(x[:, 0], y, x)
    with pytest.raises(UserError, match="unknown hyperparameter"):
        fit_predict(x, y, x, epoch=3)



def _autograd_model(x_train: np.ndarray, y_train: np.ndarray, seed: int) -> LinearProbe:
    """The protocol written the plain way: the module in train mode, full batch, autograd, Adam."""
    import torch

    x, y = torch.as_tensor(x_train), torch.as_tensor(y_train)
    known, target = (y >= 0).float(), y.clamp(min=0).float()
    pos_weight = torch.as_tensor(positive_weights(y_train))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LinearProbe(x.shape[1], y.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=PROBE_DEFAULTS["lr"])
    model.train()
    for _ in range(PROBE_DEFAULTS["epochs"]):
        opt.zero_grad()
        probe.masked_bce(model(x), target, known, pos_weight).backward()
        opt.step()
    return model.eval()


def test_the_fast_full_batch_path_equals_the_plain_autograd_loop() -> None:
    import torch

    rng = np.random.default_rng(1)
    x = (rng.normal(size=(700, 12)) * rng.uniform(0.1, 3, 12) + rng.normal(size=12)).astype(np.float32)
    y = (rng.random((700, 4)) < [0.05, 0.2, 0.4, 0.6]).astype(np.int8)
    y[rng.random(y.shape) < 0.15] = -1
    reference = _autograd_model(x[:500], y[:500], seed=3)
    with torch.no_grad():
        expected = torch.sigmoid(reference(torch.as_tensor(x[500:]))).numpy()
    np.testing.assert_allclose(fit_predict(x[:500], y[:500], x[500:], seed=3), expected, atol=2e-5)

    with torch.random.fork_rng():
        torch.manual_seed(3)
        fast = LinearProbe(12, 4)
    yt = torch.as_tensor(y[:500])
    probe._train(fast, torch.as_tensor(x[:500]), yt, torch.as_tensor(positive_weights(y[:500])),
                 probe.resolve_hparams(), torch.Generator())
    for name, value in reference.state_dict().items():  # parameters and running statistics
        np.testing.assert_allclose(fast.state_dict()[name].numpy(), value.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)
