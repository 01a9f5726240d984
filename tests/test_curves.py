"""Pretraining curves: ``curve.csv`` beside ``best.json`` (continued without duplicates after an
interruption), TensorBoard events read back with tensorboard's own event reader, the one-line error
without tensorboard, and ``compare --curves ... --plot``."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
from cli_runner import run_main

import ssfbench.train.pretrain as P
from ssfbench.train.curves import curve_rows, read_curve

PRETRAIN = ["pretrain", "--method", "ranking", "--k", "2", "--image-size", "32", "--steps", "20", "--batch-size", "4",
            "--workers", "0", "--quiet", "--checkpoint-every", "4", "--data-option", "synth-vox.identities=8"]


def test_20_step_run_logs_the_four_scalars_and_resumes_the_curve_without_duplicates(tmp_path, capsys, monkeypatch):
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "out"
    train_step = P._train_step

    def killed_at_step_14(loop, loss_module, frames, step):
        if step == 13:  # after the resume state of step 12: steps 13.. are done again after the restart
            raise KeyboardInterrupt
        return train_step(loop, loss_module, frames, step)

    monkeypatch.setattr(P, "_train_step", killed_at_step_14)
    code, _, err = run_main([*PRETRAIN, "--out", str(out), "--log", "tensorboard"], capsys)
    assert code == 130, err
    [run_dir] = (out / "runs").iterdir()
    assert pd.read_csv(run_dir / "curve.csv")["step"].max() == 12
    monkeypatch.setattr(P, "_train_step", train_step)
    code, _, err = run_main([*PRETRAIN, "--out", str(out), "--log", "tensorboard"], capsys)
    assert code == 0, err

    curve = pd.read_csv(run_dir / "curve.csv")
    assert curve["step"].tolist() == list(range(21))  # step 0 (initial weights) .. 20, each once
    assert curve["train_loss"].notna().sum() == 20 and (curve["lr"].dropna() == 1e-3).all()
    history = json.loads((run_dir / "best.json").read_text())["history"]
    epochs = curve.dropna(subset=["ranking_accuracy"])
    assert epochs["step"].tolist() == [r["step"] for r in history]
    assert epochs["ranking_accuracy"].tolist() == pytest.approx([r["ranking_accuracy"] for r in history])

    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    scalars = {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}
    assert {"train/loss", "train/lr", "val/ranking_accuracy", "train/frames_per_s"} <= set(scalars)
    assert [e.step for e in scalars["train/loss"]] == list(range(1, 21))  # the repeated steps purged
    assert [e.value for e in scalars["train/loss"]] == pytest.approx(curve["train_loss"].dropna().tolist())
    assert [e.step for e in scalars["val/ranking_accuracy"]] == [r["step"] for r in history]
    assert [e.step for e in scalars["train/frames_per_s"]] == [r["step"] for r in history[1:]]

    png = tmp_path / "curves.png"
    code, stdout, err = run_main(["compare", "--out", str(out), "--curves", run_dir.name, "--plot", str(png)], capsys)
    assert code == 0 and png.stat().st_size > 10_000, err


def test_log_tensorboard_without_tensorboard_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # find_spec then says it is not installed
    code, _, err = run_main([*PRETRAIN, "--out", str(tmp_path), "--log", "tensorboard"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "pip install 'ssfbench[tensorboard]'" in err and not (tmp_path / "runs").exists()


def test_runs_without_a_curve_csv_are_read_from_their_history(tmp_path):
    history = [{"epoch": 0, "step": 0, "val_loss": 0.5}, {"epoch": 1, "step": 3, "train_loss": 0.4, "val_loss": 0.3,
                                                         "train_frames_per_s": 10.0, "elapsed_s": 1.0}]
    (tmp_path / "best.json").write_text(json.dumps({"history": history}))
    curve = read_curve(tmp_path)
    assert curve["step"].tolist() == [0, 3] and curve["epoch_train_loss"].tolist()[1] == 0.4
    rows = curve_rows(history, [{"step": 1, "epoch": 1, "train_loss": 0.9, "lr": 0.1}])
    assert [r["step"] for r in rows] == [0, 1, 3] and rows[1]["train_loss"] == 0.9


def test_curves_need_plot_and_known_runs(tmp_path, capsys):
    code, _, err = run_main(["compare", "--out", str(tmp_path), "--curves", "x"], capsys)
    assert code == 2 and "give --plot" in err
    code, _, err = run_main(["compare", "--out", str(tmp_path), "--curves", "x", "--plot", str(tmp_path / "c.png")],
                            capsys)
    assert code == 2 and "no pretraining run 'x'" in err and err.count("\n") == 1


def test_plot_leaves_out_panels_no_run_recorded(tmp_path, monkeypatch):
    """A run of an older version recorded no learning rate: no empty "learning rate" panel."""
    import matplotlib.pyplot as plt

    import ssfbench.train.curves as C

    titles = []
    savefig = plt.Figure.savefig

    def record_titles(fig, *args, **kwargs):
        titles.extend(ax.get_title(loc="left") for ax in fig.axes if ax.get_visible())
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", record_titles)
    old = pd.DataFrame({"step": [0, 20, 40], "train_loss": [None, 0.3, 0.2], "val_loss": [0.4, 0.3, 0.25],
                        "train_frames_per_s": [None, 40.0, 50.0]})
    C.plot_curves({"old": old}, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 0
    assert not any("learning rate" in t for t in titles) and any("val_loss" in t for t in titles)
    titles.clear()
    C.plot_curves({"old": old, "new": old.assign(lr=[None, 0.01, 0.01])}, tmp_path / "d.png")
    assert any("learning rate" in t for t in titles)
