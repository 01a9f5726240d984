"""``compare --format html``: one self-contained page with every table, provenance, the off-protocol
marks and the ``--vs`` intervals (the page in a real browser: tests/test_browser.py)."""

from __future__ import annotations

import json
import re
import shutil

from cli_runner import run_main
from conftest import REPO

from ssfbench.report.compare import row_table
from ssfbench.report.plots import MAX_ROWS
from ssfbench.results.store import off_protocol, read_leaderboard

RANDOM = "random-default-resnet18-efe18c23-seed0"
RANKING = "ranking-k2-resnet18-0850d35a-seed0"


def _copy_runs(out, *run_ids, face_preprocessing=None):
    """Committed runs as the user's own results (``face_preprocessing`` added to the first)."""
    for i, run_id in enumerate(run_ids):
        target = out / "results" / "runs" / run_id
        shutil.copytree(REPO / "results" / "runs" / run_id, target)
        if i == 0 and face_preprocessing is not None:
            path = target / "synth-au.json"
            path.write_text(json.dumps({**json.loads(path.read_text()), "face_preprocessing": face_preprocessing}))


def test_page_is_self_contained_with_every_committed_row_and_its_provenance(tmp_path, capsys):
    page = tmp_path / "board.html"
    code, out, err = run_main(["compare", "--datasets", "synth-au", "synth-expr", "--out", str(tmp_path), "--format",
                               "html", "--output", str(page)], capsys)
    assert code == 0 and f"wrote {page}" in out, err
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing fetched from the network
    for dataset in ("synth-au", "synth-expr"):
        board = read_leaderboard(REPO / "results" / f"{dataset}.csv")
        section = text.split(f'<section id="{dataset}"')[1].split("</section>")[0]
        leaderboard = section.split(f'data-dataset="{dataset}"')[1].split("</table>")[0]
        for _, row in board.iterrows():  # every committed row: a row of the leaderboard or the ablations,
            config_hash, kind = row["config_hash"], row_table(row["source"], row["display_name"], row["variant"])
            if kind == "controls":  # or a step-0 control folded into the rows it controls
                assert f'data-init-config="{config_hash}"' in section, row["display_name"]
                assert f'data-config-hash="{config_hash}"' not in section
            else:
                assert section.count(f'data-config-hash="{config_hash}"') == 1, row["display_name"]
                assert (f'data-config-hash="{config_hash}"' in leaderboard) == (kind == "leaderboard")
        assert len(re.findall(r'<tr class="row', leaderboard)) <= MAX_ROWS  # a table of methods: its chart is drawn
    assert text.count('src="data:image/png;base64,') == 2 and "(no chart: more than" not in text
    assert "own init" in text and 'data-part="ablations"' in text
    assert "Summary across datasets" in text and "Δ own init [95% CI]" in text
    assert "ssfbench run --method ranking --k 2 --seeds 0 1 2" in text and "1fabee5daa" in text  # provenance
    assert 'data-off-protocol="true"' not in text


def test_off_protocol_rows_are_marked_and_vs_intervals_shown(tmp_path, capsys):
    _copy_runs(tmp_path, RANDOM, RANKING, face_preprocessing={"paper": False, "crop": "center-square"})
    assert off_protocol({"face_preprocessing": {"paper": False}}) and not off_protocol({})
    page = tmp_path / "board.html"
    code, _, err = run_main(["compare", "--datasets", "synth-au", "--out", str(tmp_path), "--format", "html",
                             "--output", str(page), "--vs", RANKING, RANDOM, "--resamples", "50"], capsys)
    assert code == 0, err
    text = page.read_text()
    marked = re.findall(r'<tr class="row offprot"[^>]*data-origin="your runs"[^>]*data-off-protocol="true"', text)
    assert len(marked) == 1 and "off-protocol faces" in text and "center-square" in text
    assert 'id="vs"' in text and "percentile interval" in text and RANKING in text.split('id="vs"')[1]


def test_html_needs_output_and_output_needs_html(tmp_path, capsys):
    code, _, err = run_main(["compare", "--datasets", "synth-au", "--format", "html"], capsys)
    assert code == 2 and "give --output FILE.html" in err and err.count("\n") == 1
    code, _, err = run_main(["compare", "--datasets", "synth-au", "--output", str(tmp_path / "x.html")], capsys)
    assert code == 2 and "--output: only with --format html" in err
    code, _, err = run_main(["compare", "--datasets", "synth-au", "--format", "html", "--output",
                             str(tmp_path / "no" / "x.html")], capsys)
    assert code == 2 and "does not exist" in err and err.count("\n") == 1
