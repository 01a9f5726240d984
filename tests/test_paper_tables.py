"""The paper's numbers in results/paper/ against a second transcription typed here from the paper.

The transcription below was typed again from ``paper/lu-tavabi-soleymani-2020-temporal-consistency.md``
(Tables 1-5 of section 4, supplementary Tables 1-5), not generated from the CSVs. ``None`` marks a
cell the paper leaves blank or illegible. Every cell of every CSV is checked against it.
"""

from __future__ import annotations

import math
import re

import pytest
from click.testing import CliRunner
from conftest import REPO

from ssfbench.cli import cli
from ssfbench.report.compare import PAPER_FILES, paper_dir, paper_table
from ssfbench.results.store import label_columns

_ = None  # a blank cell

BP4D = ["AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU14", "AU15", "AU17", "AU23", "AU24", "avg"]
DISFA = ["AU1", "AU2", "AU4", "AU6", "AU9", "AU12", "AU25", "AU26", "avg"]
EMOTIONET = ["AU1", "AU2", "AU4", "AU5", "AU6", "AU9", "AU12", "AU17", "AU20", "AU25", "AU26", "avg"]
AFFECTNET = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt", "avg"]
SUMMARY = ["bp4d", "disfa", "emotionet", "affectnet"]

# (row as printed, source, method, variant, cells)
TABLE_1 = [
    ("TCAE", "paper", "tcae", "", [43.1, 32.2, 44.4, 75.1, 70.5, 80.8, 85.5, 61.8, 34.7, 58.5, 37.2, 48.7, 56.1]),
    ("FAb-Net", "paper", "fabnet", "", [43.3, 35.7, 41.6, 72.9, 63.0, 75.9, 83.5, 57.7, 26.5, 48.2, 33.6, 42.4, 52.0]),
    ("TCAE (Re.)", "paper-reproduced", "tcae", "", [33.5, 32.2, 43.8, 73.7, 67.7, 80.1, 81.5, 57.4, 26.5, 54.5, 23.2, 31.8, 50.5]),
    ("FAb-Net (Re.)", "paper-reproduced", "fabnet", "", [33.4, 24.8, 41.0, 73.5, 66.2, 78.8, 84.7, 57.9, 21.2, 55.7, 26.8, 37.9, 50.2]),
    ("Ranking k=1", "paper-ours", "ranking", "k=1", [35.2, 25.5, 30.2, 71.3, 69.6, 81.3, 83.3, 59.1, 30.3, 56.1, 27.0, 33.4, 50.2]),
    ("Ranking Ensemble", "paper-ours", "ranking", "ensemble", [42.3, 24.3, 44.1, 71.8, 67.8, 77.6, 83.3, 61.2, 31.6, 51.6, 29.8, 38.6, 52.0]),
    ("AlexNet", "paper", "alexnet", "", [40.3, 39.0, 41.7, 62.8, 54.2, 75.1, 78.1, 44.7, 32.9, 47.3, 27.3, 40.1, 48.6]),
    ("DRML", "paper", "drml", "", [36.4, 41.8, 43.0, 55.0, 67.0, 66.3, 65.8, 54.1, 33.2, 48.0, 31.7, 30.0, 48.3]),
    ("EAC-Net", "paper", "eac-net", "", [39.0, 35.2, 48.6, 76.1, 72.9, 81.9, 86.2, 58.8, 37.5, 59.1, 35.9, 35.8, 55.9]),
    ("JAA-Net", "paper", "jaa-net", "", [_, _, 54.9, _, _, _, _, _, _, _, _, _, 60.0]),
]
TABLE_2 = [
    ("TCAE", "paper", "tcae", "", [15.1, 15.2, 50.5, 48.7, 23.3, 72.1, 82.1, 52.9, 45.0]),
    ("FAb-Net", "paper", "fabnet", "", [15.5, 16.2, 43.2, 50.4, 23.2, 69.6, 72.4, 42.4, 41.6]),
    ("TCAE (Re.)", "paper-reproduced", "tcae", "", [24.8, 25.5, 37.3, 34.7, 31.1, 59.6, 58.1, 25.2, 37.0]),
    ("FAb-Net (Re.)", "paper-reproduced", "fabnet", "", [27.5, 19.6, 28.7, 45.2, 20.9, 65.6, 67.9, 24.0, 37.4]),
    ("Ranking k=1", "paper-ours", "ranking", "k=1", [10.8, 20.7, 43.3, 37.6, 12.2, 68.7, 62.9, 46.2, 37.8]),
    ("Ranking Ensemble", "paper-ours", "ranking", "ensemble", [18.7, 27.4, 35.1, 33.6, 20.7, 67.5, 68.0, 43.8, 39.4]),
    ("DRML", "paper", "drml", "", [17.3, 17.7, 37.4, 29.0, 10.7, 37.7, 38.5, 20.1, 26.7]),
    ("EAC-Net", "paper", "eac-net", "", [41.5, 26.4, 66.4, 50.7, 80.5, 89.3, 88.9, 15.6, 48.5]),
    ("JAA-Net", "paper", "jaa-net", "", [43.7, _, 56.0, _, 44.7, _, _, 58.4, 56.0]),
]
TABLE_3 = [
    ("FAb-Net", "paper", "fabnet", "", [73.4, 71.8, 75.3, 67.8, 90.4, 78.8, 91.9, 72.4, 74.5, 83.7, 73.3, 77.6]),
    ("TCAE", "paper", "tcae", "", [74.1, 72.6, 79.8, 74.3, 91.4, 83.2, 93.4, 73.7, 75.5, 83.7, 72.8, 79.5]),
    ("FAb-Net (Re.)", "paper-reproduced", "fabnet", "", [75.1, 72.9, 82.1, 73.2, 92.2, 86.4, 94.1, 76.4, 78.4, 83.7, 72.4, 80.6]),
    ("Ranking k=1", "paper-ours", "ranking", "k=1", [68.1, 71.4, 78.5, 76.2, 91.5, 80.0, 94.7, 71.8, 75.4, 84.0, 69.3, 78.3]),
    ("Ranking Ensemble", "paper-ours", "ranking", "ensemble", [70.7, 73.3, 80.5, 82.1, 92.1, 84.3, 95.9, 73.4, 81.6, 87.4, 72.2, 81.2]),
    ("VGG-Face", "paper", "vgg-face", "", [81.8, 83.0, 83.5, 81.8, 92.0, 90.9, 95.7, 80.6, 85.2, 86.5, 73.0, 84.9]),
    ("VGG-11", "paper", "vgg-11", "", [74.7, 77.2, 85.8, 83.7, 93.8, 89.7, 97.5, 78.3, 86.9, 96.4, 81.5, 86.0]),
]
TABLE_4 = [
    ("FAb-Net", "paper", "fabnet", "", [71.5, 90.0, 70.8, 78.2, 77.4, 72.2, 75.7, 72.1, 76.0]),
    ("TCAE (Re.)", "paper-reproduced", "tcae", "", [66.8, 81.9, 65.5, 70.6, 70.8, 63.6, 70.3, 68.5, 70.0]),
    ("FAb-Net (Re.)", "paper-reproduced", "fabnet", "", [70.9, 86.8, 68.9, 76.1, 75.6, 68.2, 73.4, 73.7, 74.2]),
    ("Ranking k=1", "paper-ours", "ranking", "k=1", [70.6, 90.0, 70.8, 76.7, 78.2, 73.6, 75.2, 74.2, 76.2]),
    ("Ranking Ensemble", "paper-ours", "ranking", "ensemble", [73.4, 91.4, 75.5, 79.9, 81.6, 74.2, 76.5, 76.0, 78.6]),
    ("VGG-Face", "paper", "vgg-face", "", [75.9, 92.2, 80.5, 81.4, 82.3, 81.4, 81.2, 77.1, 81.5]),
    ("VGG-11", "paper", "vgg-11", "", [_, _, _, _, _, _, _, _, 82]),
]
TABLE_5 = [
    ("Triplet", "paper-ours", "triplet", "", [48.1, 29.8, 74.4, 70.2]),
    ("N-pair-mc", "paper-ours", "npair", "", [41.5, 18.5, 62.8, 59.3]),
    ("Ranking k=1", "paper-ours", "ranking", "k=1", [50.2, 37.8, 78.3, 76.2]),
    ("Ranking k=2", "paper-ours", "ranking", "k=2", [49.9, 40.5, 78.0, 75.5]),
    ("Ranking k=4", "paper-ours", "ranking", "k=4", [50.7, 34.0, 77.3, 74.3]),
    ("Ranking Ensemble", "paper-ours", "ranking", "ensemble", [52.0, 39.4, 81.2, 78.6]),
]
ABLATION = [("Triplet", "triplet", ""), ("N-pair-MC", "npair", ""), ("Ranking k=1", "ranking", "k=1"),
            ("Ranking k=2", "ranking", "k=2"), ("Ranking k=4", "ranking", "k=4"), ("Ranking Multi", "ranking", "ensemble")]
SUPP_1 = [
    [27.6, 24.0, 38.3, 73.6, 70.2, 79.3, 80.7, 56.7, 25.9, 49.5, 23.7, 28.1, 48.1],
    [21.8, 15.0, 28.8, 60.8, 65.0, 73.6, 69.7, 50.7, 32.9, 42.3, 21.7, 20.5, 41.9],
    [35.2, 25.5, 30.2, 71.3, 69.6, 81.3, 83.3, 59.1, 30.3, 56.1, 27.0, 33.4, 50.2],
    [34.2, 25.5, 40.3, 73.2, 66.1, 80.8, 84.6, 58.5, 25.7, 53.6, 28.1, 27.6, 49.9],
    [39.5, 25.3, 40.8, 74.9, 70.4, 77.0, 82.6, 62.3, 33.7, 44.4, 24.5, 32.6, 50.7],
    [42.3, 24.3, 44.1, 71.8, 67.8, 77.6, 83.3, 61.2, 31.6, 51.6, 29.8, 38.6, 52.0],
]
SUPP_2 = [
    [13.2, 16.7, 32.0, 32.7, 22.5, 47.2, 57.8, 16.9, 29.9],
    [10.7, 2.5, 29.7, 19.0, 13.2, 23.9, 42.0, 6.9, 18.5],
    [10.8, 20.7, 43.3, 37.6, 12.2, 68.7, 62.9, 46.2, 37.8],
    [36.2, 41.7, 27.8, 38.1, 23.6, 69.3, 66.0, 21.0, 40.5],
    [21.6, 27.1, 38.3, 24.7, 21.8, 57.2, 58.7, 22.7, 34.0],
    [18.7, 27.4, 35.1, 33.6, 20.7, 67.5, 68.0, 43.8, 39.4],
]
SUPP_3 = [
    [65.9, 65.4, 76.2, 72.4, 85.1, 76.2, 87.2, 67.4, 77.0, 79.4, 66.6, 74.4],
    [62.8, 53.9, 64.6, 58.2, 74.0, 58.6, 74.4, 56.5, 62.9, 65.9, 59.2, 62.8],
    [68.1, 71.4, 78.5, 76.2, 91.5, 80.0, 94.7, 71.8, 75.4, 84.0, 69.3, 78.3],
    [68.5, 70.9, 77.4, 78.5, 89.8, 77.8, 93.3, 68.9, 80.8, 81.8, 70.0, 78.0],
    [68.6, 70.9, 78.4, 78.6, 89.0, 79.7, 92.2, 66.5, 77.3, 81.0, 68.3, 77.3],
    [70.7, 73.3, 80.5, 82.1, 92.1, 84.3, 95.9, 73.4, 81.6, 87.4, 72.2, 81.2],
]
SUPP_4 = [
    [66.8, 77.2, 67.0, 75.5, 75.6, 63.2, 68.3, 67.6, 70.2],
    [58.4, 64.9, 59.6, 56.9, 62.4, 54.7, 58.9, 58.4, 59.3],
    [70.6, 90.0, 70.8, 76.7, 78.2, 73.6, 75.2, 74.2, 76.2],
    [71.6, 87.9, 71.3, 77.5, 77.7, 71.1, 74.6, 72.5, 75.5],
    [70.0, 85.5, 68.7, 76.9, 78.9, 70.7, 73.1, 70.8, 74.3],
    [_, 91.4, 75.5, 79.9, 81.6, 74.2, 76.5, 76.0, 78.6],
]
SUPP_5 = [
    ("MobileNet_v2", "paper-ours", "ranking", "k=1", [_] * 13),
    ("ResNet18", "paper-ours", "ranking", "k=1", [35.2, 25.5, 30.2, 71.3, 69.6, 81.3, 83.3, 59.1, 30.3, 56.1, 27.0, 33.4, 50.2]),
    ("DenseNet121", "paper-ours", "ranking", "k=1", [38.8, 30.1, 36.2, 70.8, 70.8, 81.1, 85.3, 60.8, 29.9, 51.2, 29.5, 32.7, 51.4]),
]


def _ablation(values: list[list]) -> list[tuple]:
    return [(name, "paper-ours", method, variant, cells) for (name, method, variant), cells in zip(ABLATION, values)]


EXPECTED = {
    "table1_bp4d.csv": (BP4D, TABLE_1),
    "table2_disfa.csv": (DISFA, TABLE_2),
    "table3_emotionet.csv": (EMOTIONET, TABLE_3),
    "table4_affectnet.csv": (AFFECTNET, TABLE_4),
    "table5_summary.csv": (SUMMARY, TABLE_5),
    "supp_table1_bp4d.csv": (BP4D, _ablation(SUPP_1)),
    "supp_table2_disfa.csv": (DISFA, _ablation(SUPP_2)),
    "supp_table3_emotionet.csv": (EMOTIONET, _ablation(SUPP_3)),
    "supp_table4_affectnet.csv": (AFFECTNET, _ablation(SUPP_4)),
    "supp_table5_bp4d_backbones.csv": (BP4D, SUPP_5),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_cell_matches_the_second_transcription(name):
    columns, rows = EXPECTED[name]
    table = paper_table(name)
    assert label_columns(table) + (["avg"] if "avg" in table else []) == columns
    assert table["display_name"].tolist() == [r[0] for r in rows]
    for (display, source, method, variant, cells), (_, got) in zip(rows, table.iterrows()):
        assert (got["source"], got["method"], got["variant"]) == (source, method, variant), display
        assert got["unit"] == "percent" and got["date"] == "2020"
        for col, want in zip(columns, cells):
            value = got[col]
            if want is None:
                assert math.isnan(value), f"{name} {display} {col}: expected blank, got {value}"
            else:
                assert value == pytest.approx(want, abs=1e-9), f"{name} {display} {col}"


def test_every_paper_table_is_covered_and_nothing_else():
    assert sorted(p.name for p in paper_dir().glob("*.csv")) == sorted(EXPECTED)
    listed = {f for main, supp in PAPER_FILES.values() for f in (main, *supp)} | {"table5_summary.csv"}
    assert listed == set(EXPECTED)


def test_irregular_cells_are_explained_and_provenance_is_empty():
    for name in EXPECTED:
        table = paper_table(name)
        assert (table["run_id"] == "").all() and (table["config_hash"] == "").all()
        assert set(table["group"]) <= {"self-supervised", "supervised"}
        for _, row in table.iterrows():
            blank = row[label_columns(table)].isna().any() or ("avg" in table and math.isnan(row["avg"]))
            if blank:
                assert row["note"], f"{name} {row['display_name']}: blank cells need a note"


def test_paper_tables_ship_with_the_package():
    text = (REPO / "pyproject.toml").read_text()  # (no tomllib on Python 3.10)
    assert re.search(r'^packages = \[[^\]]*"ssfbench\.paper_tables"', text, re.M)  # the list may span lines
    assert re.search(r'^"ssfbench\.paper_tables" = "results/paper"', text, re.M)
    assert re.search(r'^"ssfbench\.paper_tables" = \[.*"\*\.csv"', text, re.M)
    assert (REPO / "results" / "paper" / "__init__.py").is_file()


def test_compare_on_a_fresh_install_prints_tables_1_and_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ssfbench-out here
    res = CliRunner().invoke(cli, ["compare", "--datasets", "bp4d", "--datasets", "disfa", "--no-committed"])
    assert res.exit_code == 0, res.output
    bp4d_part, disfa_part = res.output.split("\ndisfa: per-label F1")[0], res.output.split("\ndisfa: per-label F1")[1]
    for rows, part in ((TABLE_1, bp4d_part), (TABLE_2, disfa_part)):
        lines = part.split("summary:")[0].splitlines()
        for display, source, *_, cells in rows:
            shown = display + (" *" if source == "paper" else "")
            line = next(ln for ln in lines if ln.startswith(f"| {shown} "))
            for want in cells:
                if want is not None:
                    assert f" {want:.1f} " in line, (display, want)
    assert "| JAA-Net *" in res.output and "1/12" in res.output and "4/8" in res.output
