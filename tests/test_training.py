"""The training toolkit (``ssfbench.train.steps``) and the pretraining loop's typed state."""

from __future__ import annotations

import torch

import ssfbench.train.pretrain as P
from ssfbench.train import steps as training
from ssfbench.train.pretrain import LoopState


def test_jitter_generator_is_the_step_stream():
    want = torch.Generator().manual_seed(5 * 1_000_003 + 9 + 2 * 2**40)
    assert torch.equal(torch.rand(4, generator=training.jitter_generator(5, 9, 2)), torch.rand(4, generator=want))
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    a = training.jitter(x, 0.8, training.jitter_generator(1, 2), group=2)
    b = training.jitter(x, 0.8, training.jitter_generator(1, 2), group=2)
    assert torch.equal(a, b) and torch.equal(a[0:1], training.jitter(x, 0.8, training.jitter_generator(1, 2), 2)[0:1])
    assert training.jitter(x, 1.0, training.jitter_generator(1, 2)) is x


def test_training_step_updates_weights_like_the_loop_did():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    twin = torch.nn.Linear(3, 1)
    twin.load_state_dict(model.state_dict())
    x = torch.randn(5, 3)
    opt_a, opt_b = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        training.training_step(opt_a, torch.device("cpu"), lambda: model(x).square().mean())
        loss = twin(x).square().mean()  # what the loops wrote out before
        opt_b.zero_grad(set_to_none=True)
        loss.backward()
        opt_b.step()
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), twin.parameters()))


def test_rng_states_round_trip():
    states = training.rng_states()
    first = torch.rand(3)
    training.set_rng_states(states)
    assert torch.equal(torch.rand(3), first)


def test_loop_state_is_stored_as_the_plain_dict_of_every_last_pt():
    record = {"epoch": 1, "step": 3, "val_loss": 0.5}
    state = LoopState(step=3, history=[{"epoch": 0, "step": 0}, record], best=record, best_sha256="ab")
    saved = state.to_dict()
    assert saved == {"step": 3, "history": [{"epoch": 0, "step": 0}, record], "best": record, "best_sha256": "ab",
                     "steps": []}
    assert type(saved) is dict and LoopState.from_dict(saved) == state
    old = {"step": 0, "history": [], "best": None, "best_sha256": None}  # what earlier versions wrote
    assert LoopState.from_dict(old) == LoopState()


def test_resume_file_layout(tmp_path):
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    state = LoopState(step=2, history=[{"epoch": 0, "step": 0}])
    P.save_resume_state(tmp_path / "last.pt", model, optimizer, state, [0.5, 0.25])
    saved = P.load_resume_state(tmp_path / "last.pt", torch.device("cpu"))
    assert set(saved) == {"model", "optimizer", "rng", "state", "running"}
    assert saved["state"] == {"step": 2, "history": [{"epoch": 0, "step": 0}], "best": None, "best_sha256": None,
                              "steps": []}
    assert saved["running"] == [0.5, 0.25] and LoopState.from_dict(saved["state"]) == state
