"""The leaderboard builder, the comparison tables, the summary, the CLI and the plot, on hand-made
result records (no training; a few seconds in all)."""

from __future__ import annotations

import copy
import io
import json
import math
import random

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ssfbench.cli import cli, main
from ssfbench.errors import UserError
from ssfbench.report import compare as C
from ssfbench.report import render as R
from ssfbench.results.store import (
    LEADERBOARD_FLOAT_FORMAT,
    build_leaderboard,
    off_protocol,
    read_leaderboard,
    write_leaderboards,
    write_result,
)

AUS = ["AU1", "AU2", "AU4"]
EXPR = ["neutral", "happy"]


def fake_result(method: str, dataset: str = "synth-au", scores: dict | None = None, *, variant: str = "",
                config: str | None = None, seed: int = 0, labels: list[str] | None = None, metric: str = "f1",
                source: str = "ssfbench", display: str | None = None, date: str = "2026-01-01T00:00:00+00:00") -> dict:
    """A result record as the runner writes it; ``scores`` = {fold: {label: score or None}}."""
    labels = labels or AUS
    scores = scores or {"fold1": dict.fromkeys(labels, 0.5), "fold2": dict.fromkeys(labels, 0.5)}
    per = np.array([[np.nan if scores[f][lab] is None else scores[f][lab] for lab in labels] for f in scores])
    mean, std = per.mean(axis=0), per.std(axis=0)
    config = config or f"{method}-{variant}-cfg"
    return {"schema": "ssfbench.result/1", "protocol_version": "1", "ssfbench_version": "0.1.0", "date": date,
            "run_id": f"{method}-{variant or 'default'}-{config[:8]}-seed{seed}", "config_hash": config,
            "method": method, "variant": variant, "display_name": display or method.capitalize(),
            "backbone": "resnet18", "source": source, "dataset": dataset, "dataset_fingerprint": "fp",
            "seed": seed, "labels": labels, "metric": metric, "scores_per_fold": scores,
            "mean": {lab: (None if math.isnan(v) else float(v)) for lab, v in zip(labels, mean)},
            "std": {lab: (None if math.isnan(v) else float(v)) for lab, v in zip(labels, std)},
            "avg": None if np.isnan(per.mean(axis=1)).any() else float(per.mean(axis=1).mean()),
            "avg_std": None if np.isnan(per.mean(axis=1)).any() else float(per.mean(axis=1).std())}


def folds(*rows: list) -> dict:
    """``folds([a, b, c], [d, e, f])`` -> per-fold label scores for AUS."""
    return {f"fold{i + 1}": dict(zip(AUS, r)) for i, r in enumerate(rows)}


@pytest.fixture
def out(tmp_path):
    """An output folder with results on synth-au (3 methods) and synth-expr (1 method)."""
    results = tmp_path / "out" / "results"
    write_result(results, fake_result("ranking", variant="k=1", display="Ranking k=1",
                                      scores=folds([0.6, 0.4, 0.5], [0.8, 0.6, 0.7])))
    write_result(results, fake_result("random", scores=folds([0.2, 0.2, 0.2], [0.2, 0.2, 0.2]), display="Random init"))
    write_result(results, fake_result("triplet", scores=folds([0.3, None, 0.3], [0.3, None, 0.3]), display="Triplet"))
    write_result(results, fake_result("ranking", "synth-expr", {"test": {"neutral": 0.7, "happy": 0.9}},
                                      variant="k=1", display="Ranking k=1", labels=EXPR, metric="auc"))
    write_leaderboards(results)
    return tmp_path / "out"


# ---- the pure leaderboard function -------------------------------------------------------------


def test_leaderboard_is_pure_and_deterministic():
    results = [fake_result("a", scores=folds([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])),
               fake_result("b", scores=folds([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])),  # tie with a
               fake_result("c", seed=0, config="same"), fake_result("c", seed=1, config="same",
                                                                    scores=folds([0.7, 0.7, 0.7], [0.7, 0.7, 0.7]))]
    before = copy.deepcopy(results)
    board = build_leaderboard(results, "synth-au")
    assert results == before  # inputs untouched
    for _ in range(5):
        shuffled = random.Random(_).sample(results, len(results))
        pd.testing.assert_frame_equal(build_leaderboard(shuffled, "synth-au"), board)
    assert board["method"].tolist() == ["c", "a", "b"]  # best first; the tie a/b broken by name
    c = board.iloc[0]
    assert c["n_runs"] == 2 and c["seeds"] == "0 1" and c["avg"] == pytest.approx(0.6)
    assert c["avg_std"] == pytest.approx(0.1) and c["AU1_std"] == pytest.approx(0.1)  # over seeds
    assert list(board.columns[:9]) == ["method", "variant", "backbone", "source", "display_name", *AUS, "avg"]
    for col in ["run_id", "config_hash", "protocol_version", "ssfbench_version", "date"]:
        assert col in board


def test_leaderboard_never_averages_over_a_missing_label():
    board = build_leaderboard([fake_result("t", scores=folds([0.3, None, 0.3], [0.3, None, 0.3]))], "synth-au")
    assert math.isnan(board.loc[0, "AU2"]) and math.isnan(board.loc[0, "avg"])
    single = build_leaderboard([fake_result("s", "synth-expr", {"test": {"neutral": 0.7, "happy": 0.9}},
                                            labels=EXPR, metric="auc")], "synth-expr")
    assert math.isnan(single.loc[0, "avg_std"]) and math.isnan(single.loc[0, "happy_std"])  # one fold: no spread


def test_csv_round_trip(out):
    path = out / "results" / "synth-au.csv"
    from ssfbench.results.store import load_results

    built = build_leaderboard(load_results(out / "results"), "synth-au")
    read = read_leaderboard(path)
    assert list(read.columns) == list(built.columns)
    for col in built.columns:
        if built[col].dtype.kind == "f":
            np.testing.assert_allclose(read[col].to_numpy(float), built[col].to_numpy(float), atol=5e-5)
        else:
            assert read[col].astype(str).tolist() == built[col].astype(str).tolist(), col
    write_leaderboards(out / "results")  # rebuilding gives the same bytes
    assert path.read_text() == built.to_csv(index=False, float_format=LEADERBOARD_FLOAT_FORMAT)


# ---- comparison tables ----------------------------------------------------------------------------


def test_table_groups_orders_and_covers(out):
    table = C.comparison_table("synth-au", out=out, committed=False)
    rows = table.rows
    assert table.labels == AUS and table.metric == "f1"
    assert rows["name"].tolist() == ["Ranking k=1", "Triplet", "Random init"]  # self-supervised by avg, then floors
    assert rows["group"].tolist() == ["self-supervised", "self-supervised", "floors and ceilings"]
    ranking, triplet = rows.iloc[0], rows.iloc[1]
    assert ranking["AU1"] == pytest.approx(0.7) and ranking["AU1_std"] == pytest.approx(0.1)
    assert ranking["coverage"] == 3 and triplet["coverage"] == 2
    assert math.isnan(triplet["avg"])  # no average over the missing label
    md = R.render_table(table, "md")
    assert "70.0 ± 10.0" in md and "2/3" in md and "**Floors and ceiling (ssfbench)**" in md


def test_ties_are_broken_by_name_and_paper_rows_keep_the_paper_order(tmp_path):
    results = tmp_path / "results"
    for name in ["zeta", "alpha", "mid"]:
        write_result(results, fake_result(name, "bp4d", display=name.capitalize()))
    table = C.comparison_table("bp4d", out=tmp_path, committed=False)
    ours = table.rows[table.rows["origin"] == C.ORIGIN_OUT]
    assert ours["name"].tolist() == ["Alpha", "Mid", "Zeta"]
    paper = table.rows[table.rows["origin"] == C.ORIGIN_PAPER]
    assert paper["name"].tolist()[:2] == ["TCAE *", "FAb-Net *"] and paper["name"].tolist()[-1] == "JAA-Net *"
    # paper-ours rows come before this harness's rows inside the self-supervised group
    names = table.rows["name"].tolist()
    assert names.index("Ranking Ensemble") < names.index("Alpha") < names.index("AlexNet *")
    assert len(table.labels) == 12  # the paper's AUs; ours (AU1 AU2 AU4) are among them
    assert (ours["coverage"] == 3).all() and ours["avg"].isna().all()  # 3 of 12 AUs: no average


def test_summary_is_blank_where_a_dataset_is_missing(out):
    tables = [C.comparison_table(d, out=out, committed=False) for d in ("synth-au", "synth-expr")]
    summary = C.summary_frame(tables).set_index("name")
    assert summary.loc["Ranking k=1", "synth-au"] == pytest.approx(0.6)
    assert summary.loc["Ranking k=1", "synth-expr"] == pytest.approx(0.8)
    assert math.isnan(summary.loc["Random init", "synth-expr"]) and summary.loc["Random init", "coverage"] == 1
    assert "mean" not in summary  # F1 and AUC are never averaged together
    same_metric = [tables[0], C.comparison_table("synth-au", out=out, committed=False)]
    same_metric[1].dataset = "synth-au-copy"
    frame = C.summary_frame(same_metric).set_index("name")
    assert frame.loc["Ranking k=1", "mean"] == pytest.approx(0.6) and math.isnan(frame.loc["Triplet", "mean"])


def test_methods_filter_and_formats(out):
    table = C.comparison_table("synth-au", out=out, committed=False, methods=["ranking", "Random init"])
    assert table.rows["name"].tolist() == ["Ranking k=1", "Random init"]
    frame = pd.read_csv(io.StringIO(R.render_table(table, "csv")))
    assert frame.loc[0, "AU1"] == pytest.approx(70.0) and frame.loc[0, "AU1_std"] == pytest.approx(10.0)
    assert r"\toprule" in R.render_table(table, "latex")


def test_committed_rows_are_shown_unless_they_are_yours(out, tmp_path, monkeypatch):
    committed = tmp_path / "committed"
    committed.mkdir()
    board = build_leaderboard([fake_result("ranking", variant="k=1", display="Ranking k=1",
                                           scores=folds([0.6, 0.4, 0.5], [0.8, 0.6, 0.7])),
                               fake_result("pixels", display="Raw pixels")], "synth-au")
    board.to_csv(committed / "synth-au.csv", index=False)
    monkeypatch.setattr(C, "committed_dir", lambda: committed)
    table = C.comparison_table("synth-au", out=out)
    shown = table.rows[table.rows["origin"] == C.ORIGIN_COMMITTED]["name"].tolist()
    assert shown == ["Raw pixels"]  # the ranking row is the user's own configuration


def test_resolve_run_by_id_method_name_and_prefix():
    old = fake_result("ranking", variant="k=1", config="aaaa1111", date="2026-01-01T00:00:00+00:00")
    new = fake_result("ranking", variant="k=2", config="bbbb2222", date="2026-02-01T00:00:00+00:00",
                      display="Ranking k=2")
    results = [old, new]
    assert C.resolve_run(results, "synth-au", old["run_id"]) is old
    assert C.resolve_run(results, "synth-au", "ranking") is new  # newest of the method
    assert C.resolve_run(results, "synth-au", "ranking k=2") is new
    assert C.resolve_run(results, "synth-au", "ranking-k=1") is old
    with pytest.raises(UserError, match="no run 'tcae' on synth-au"):
        C.resolve_run(results, "synth-au", "tcae")


# ---- the command line -----------------------------------------------------------------------------


def test_compare_command_tables_summary_and_plot(out, tmp_path):
    png = tmp_path / "bars.png"
    res = CliRunner().invoke(cli, ["compare", "--datasets", "synth-au", "--datasets", "synth-expr",
                                       "--out", str(out), "--plot", str(png), "--no-committed"])
    assert res.exit_code == 0, res.output
    assert "synth-au: per-label F1" in res.output and "synth-expr: per-label AUC" in res.output
    assert "summary: average per dataset" in res.output
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, fragment", [
    (["compare", "--datasets", "nothing-here", "--no-committed"], "--datasets: no results and no paper table"),
    (["compare", "--datasets", "bp4d", "--methods", "nosuch"], "--methods: no rows of nosuch"),
    (["compare", "--out", "/nonexistent/folder"], "--out: /nonexistent/folder is not a folder"),
])
def test_compare_bad_input_is_one_line(args, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and fragment in err and err.count("\n") == 1


def test_space_separated_lists(out, capsys):
    main(["compare", "--datasets", "synth-au", "synth-expr", "--methods", "ranking", "random", "--out", str(out),
          "--format", "csv", "--no-committed"])
    text = capsys.readouterr().out
    assert "synth-expr" in text and "Triplet" not in text and "Random init" in text


def test_result_json_has_no_predictions_object(out):
    data = json.loads(next((out / "results" / "runs").glob("*/synth-au.json")).read_text())
    assert "test_predictions" not in data


def test_compare_says_when_the_output_folder_holds_no_runs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(cli, ["compare", "--datasets", "bp4d", "--out", str(empty)])
    assert res.exit_code == 0
    assert f"note: {empty} holds no results of your runs" in res.stderr


def test_rows_whose_faces_were_not_prepared_the_papers_way_are_marked(tmp_path):
    results = tmp_path / "out" / "results"
    paper = {**fake_result("ranking", "bp4d", variant="k=2", display="Ranking k=2"),
             "face_preprocessing": {"crop": "aligned", "paper": True}}
    centre = {**fake_result("ranking", "bp4d", variant="k=2 crop", config="centre-cfg", display="Ranking k=2"),
              "face_preprocessing": {"crop": "center-square", "paper": False}}
    assert not off_protocol(paper) and off_protocol(centre)
    write_result(results, paper)
    write_result(results, centre)
    write_leaderboards(results)
    board = read_leaderboard(results / "bp4d.csv")
    assert sorted(board["faces"]) == ["not the paper's: center-square", "paper"]
    table = C.comparison_table("bp4d", out=tmp_path / "out", paper="none", committed=False)
    marked = [n for n in table.rows["name"] if n.endswith(C.OFF_PROTOCOL_MARK)]
    assert len(marked) == 1 and "crop" in marked[0]
    assert "† = faces not prepared the paper's way" in R.caption(table)
