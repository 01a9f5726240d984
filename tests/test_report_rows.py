"""Tables of methods and the marks of the report room: step-0 controls folded, ablations apart, ‡ for
real-data rows not pretrained by the paper's recipe, bad leaderboard CSVs (a hand-edited average, a
word in a score column), ``--vs`` errors first, ``--paper none``'s message, rows told apart by their
evaluation data, and ``run``'s Δ own init line (hand-made records; a few seconds)."""

from __future__ import annotations

import shutil
import warnings

import pytest
from cli_runner import run_main
from conftest import REPO
from test_compare import fake_result, folds

from ssfbench.report import compare as C
from ssfbench.report import render as R
from ssfbench.results.records import Result
from ssfbench.results.store import ResultFileWarning, recipe_deviation, write_leaderboards, write_result

RANKING = "ranking-k2-resnet18-0850d35a-seed0"
CONTROL = "ranking-k2-steps0-resnet18-2e984900-seed0"


def recipe(deviations: dict) -> dict:
    """A ``recipe`` record as the runner writes it (contract with the recipe engineer)."""
    return {"name": None if deviations else "paper", "settings": {"batch_size": 16}, "overrides": {},
            "deviations": deviations}


def test_recipe_rule_marks_only_real_data_with_deviations():
    off = {"batch_size": {"run": 16, "paper": 48}, "image_size": {"run": 64, "paper": 256}}
    assert recipe_deviation({"dataset": "bp4d", "recipe": recipe(off)}) == \
        "not the paper's recipe: batch_size 16 (paper 48), image_size 64 (paper 256)"
    assert recipe_deviation({"dataset": "bp4d", "recipe": recipe({})}) is None  # the paper's recipe
    assert recipe_deviation({"dataset": "bp4d"}) is None  # an encoder ssfbench did not pretrain
    assert recipe_deviation({"dataset": "synth-au", "recipe": recipe(off)}) is None  # not the paper's data


def test_recipe_mark_in_leaderboard_table_and_page(tmp_path, capsys):
    results = tmp_path / "out" / "results"
    write_result(results, {**fake_result("ranking", "bp4d", variant="k=2", display="Ranking k=2"),
                           "recipe": recipe({"batch_size": {"run": 16, "paper": 48}})})
    write_result(results, {**fake_result("ranking", "bp4d", variant="k=2 recipe=paper", config="paper-cfg",
                                         display="Ranking k=2"), "recipe": recipe({})})
    write_leaderboards(results)
    board = C.read_table_csv(results / "bp4d.csv")
    assert sorted(board["recipe"]) == ["not the paper's recipe: batch_size 16 (paper 48)", "paper"]
    table = C.comparison_table("bp4d", out=tmp_path / "out", paper="none", committed=False)
    marked = [n for n in table.rows["name"] if n.endswith(C.RECIPE_MARK)]
    assert marked == ["Ranking k=2 ‡"]
    text = R.render_table(table, "md")
    assert "‡ Ranking k=2: not the paper's recipe: batch_size 16 (paper 48)" in text and "‡ = not pretrained" in R.caption(table)
    page = tmp_path / "page.html"
    code, _, err = run_main(["compare", "--datasets", "bp4d", "--out", str(tmp_path / "out"), "--paper", "none",
                             "--no-committed", "--format", "html", "--output", str(page)], capsys)
    assert code == 0, err
    assert page.read_text().count('data-off-recipe="true"') == 1 and "batch_size 16 (paper 48)" in page.read_text()


def test_controls_fold_into_their_rows_and_ablations_stand_apart(tmp_path, capsys):
    code, out, err = run_main(["compare", "--datasets", "synth-au", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    main, ablations = out.split("synth-au ablations")
    assert "Ranking k=2  " in main and "(steps=0" not in out  # controls: only with --controls
    assert "own init" in main and "Ranking k=2 (steps=1200)" in ablations and "(steps=1200)" not in main
    code, out, err = run_main(["compare", "--datasets", "synth-au", "--out", str(tmp_path), "--controls"], capsys)
    assert "synth-au step-0 controls" in out and "Ranking k=2 (steps=0)" in out.split("synth-au step-0 controls")[1]


def test_statistics_control_folds_into_its_row(tmp_path, monkeypatch):
    """A bn=data row's Δ own init becomes its parent row's 'BN re-estimated' column."""
    table = C.ComparisonTable("synth-au", "f1", ["AU1"], C.order_rows(C.add_coverage(C.normalise(
        C.build_leaderboard([fake_result("ranking", variant="k=2", display="Ranking k=2"),
                             fake_result("ranking", variant="k=2 bn=data", display="Ranking k=2")], "synth-au"),
        origin=C.ORIGIN_OUT), ["AU1", "AU2", "AU4"])))
    rows = table.rows.assign(init_gain=[0.01, 0.02], init_low=[0.0, 0.01], init_high=[0.02, 0.03])
    rows = C._fold_statistics_controls(rows.assign(bn_gain=float("nan"), bn_low=float("nan"), bn_high=float("nan")))
    parent = rows[rows["variant"] == "k=2"].iloc[0]
    child = rows[rows["variant"] == "k=2 bn=data"].iloc[0]
    assert parent["bn_gain"] == child["init_gain"] and child["table"] == "ablations" and parent["table"] == "leaderboard"


def test_hand_edited_average_is_skipped_with_a_warning(tmp_path, capsys):
    results = tmp_path / "out" / "results"
    write_result(results, fake_result("ranking", variant="k=2", display="Ranking k=2",
                                      scores=folds([0.2, 0.2, 0.2], [0.2, 0.2, 0.2])))
    write_result(results, fake_result("random", display="Random init"))
    write_leaderboards(results)
    shutil.rmtree(results / "runs")  # an --out holding only CSVs
    csv = results / "synth-au.csv"
    lines = csv.read_text().splitlines()
    header = lines[0].split(",")
    i = next(n for n, line in enumerate(lines) if line.startswith("ranking"))
    cells = lines[i].split(",")
    cells[header.index("avg")] = "0.99"
    lines[i] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = C.comparison_table("synth-au", out=tmp_path / "out", committed=False)
    assert table.rows["name"].tolist() == ["Random init"]
    [warning] = [w for w in caught if issubclass(w.category, ResultFileWarning)]
    assert str(csv) in str(warning.message) and "avg 99.0 but its labels average 20.0" in str(warning.message)


def test_a_word_in_a_score_column_is_one_error_line(tmp_path, capsys):
    results = tmp_path / "out" / "results"
    write_result(results, fake_result("random", display="Random init"))
    write_leaderboards(results)
    shutil.rmtree(results / "runs")
    csv = results / "synth-au.csv"
    csv.write_text(csv.read_text().replace("0.500000", "high", 1))
    code, _, err = run_main(["compare", "--datasets", "synth-au", "--out", str(tmp_path / "out"), "--no-committed"],
                            capsys)
    assert code == 2 and err.count("\n") == 1 and str(csv) in err and "line 2" in err and "'high' is not a number" in err


def test_vs_errors_come_first_and_short(tmp_path, capsys):
    code, out, err = run_main(["compare", "--datasets", "synth-au", "--out", str(tmp_path), "--vs", "nope", "random"],
                              capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and "no run 'nope'" in err
    assert "seed0" not in err  # method names, not every run id
    code, out, err = run_main(["compare", "--datasets", "synth-au", "--out", str(tmp_path), "--vs", "random", "random"],
                              capsys)
    assert code == 2 and out == "" and "compared with itself" in err
    code, out, err = run_main(["compare", "--datasets", "synth-au", "--out", str(tmp_path), "--vs", "random",
                               "random-bn_statsinit-resnet18-b3c40f08-seed2"], capsys)  # the newest random run, by id
    assert code == 2 and "are the same run" in err


def test_paper_none_without_results_says_why(tmp_path, capsys):
    code, _, err = run_main(["compare", "--paper", "none", "--datasets", "bp4d", "--out", str(tmp_path),
                             "--no-committed"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--paper none leaves out the paper's rows of bp4d" in err
    assert "no paper table" not in err


def test_rows_differing_only_in_evaluation_data_are_told_apart(tmp_path):
    results = tmp_path / "out" / "results"
    a = fake_result("ranking", variant="k=2", display="Ranking k=2", config="same")
    b = {**fake_result("ranking", variant="k=2", display="Ranking k=2", config="same", seed=1),
         "dataset_fingerprint": "fp2", "dataset_options": {"synth-au": {"noise": 0.2}}}
    c = {**fake_result("ranking", variant="k=2", display="Ranking k=2", config="same", seed=2),
         "dataset_fingerprint": "fp3", "data_seed": 1}
    for r in (a, b, c):
        write_result(results, r)
    table = C.comparison_table("synth-au", out=tmp_path / "out", committed=False)
    names = sorted(table.rows["name"])
    assert names == ["Ranking k=2 [data: data_seed=1]", "Ranking k=2 [data: default]",
                     "Ranking k=2 [data: noise=0.2]"]


def test_run_printout_ends_with_the_gain_over_its_own_initialisation(tmp_path, capsys):
    from ssfbench.cli.printing import print_results

    for run_id in (RANKING, CONTROL):
        shutil.copytree(REPO / "results" / "runs" / run_id, tmp_path / "results" / "runs" / run_id)
    write_leaderboards(tmp_path / "results")
    result = Result.from_json(__import__("json").loads(
        (tmp_path / "results" / "runs" / RANKING / "synth-au.json").read_text()), where="test")
    print_results([result], tmp_path)
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    assert last.startswith("Δ own init [95% CI] on synth-au: ") and CONTROL in last and "F1" in last
    assert "(steps=0)" not in out  # the control is in that line, not a row of the table


@pytest.mark.parametrize("variant, display, expected", [
    ("k=2", "Ranking k=2", "leaderboard"), ("k=2 steps=0", "Ranking k=2", "controls"),
    ("k=2 steps=1200", "Ranking k=2", "ablations"), ("k=1+2+4", "Ranking Ensemble", "leaderboard"),
    ("k=1+2+4 steps=0", "Ranking Ensemble", "controls"), ("bn_stats=init", "Random init (BN 0/1)", "ablations")])
def test_row_table(variant, display, expected):
    assert C.row_table("ssfbench", display, variant) == expected
