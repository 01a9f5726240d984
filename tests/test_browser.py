"""The HTML leaderboard in headless Chromium: every committed row rendered (a row of the leaderboard
or the ablations, or a step-0 control folded into its rows), a click
on a column header sorts it, a click on a row opens its provenance, no console error; screenshot
saved. Skipped, with the reason printed, only where no Chromium can be had (``.ci/run`` installs
Debian's ``chromium`` with apt-get)."""

from __future__ import annotations

import pytest
from browser import page, unavailable
from cli_runner import run_main
from conftest import REPO

from ssfbench.report.compare import row_table
from ssfbench.report.plots import MAX_ROWS
from ssfbench.results.store import read_leaderboard

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))


def _column(tab, dataset: str, col: int) -> list[str]:
    """The sort keys of column ``col`` of a dataset's table, in displayed order."""
    return tab.eval_on_selector_all(
        f'table[data-dataset="{dataset}"] tbody.entry > tr.row',
        f"rows => rows.map(r => r.cells[{col}].getAttribute('data-v'))")


@pytest.mark.parametrize("which", ["generated", "committed"])
def test_leaderboard_page_in_chromium(which, tmp_path, capsys):
    html = REPO / "results" / "leaderboard.html"
    if which == "generated":
        html = tmp_path / "board.html"
        code, _, err = run_main(["compare", "--datasets", "synth-au", "synth-expr", "--out", str(tmp_path),
                                 "--format", "html", "--output", str(html)], capsys)
        assert code == 0, err
    with page() as (tab, errors):
        tab.goto(html.resolve().as_uri())
        for dataset in ("synth-au", "synth-expr"):  # every committed row is rendered: a row of its dataset's
            board = read_leaderboard(REPO / "results" / f"{dataset}.csv")  # leaderboard or ablations, or a
            for _, r in board.iterrows():  # step-0 control folded into the rows it controls
                kind = row_table(r["source"], r["display_name"], r["variant"])
                table = f'table[data-dataset="{dataset}"]' if kind == "leaderboard" else \
                    f'table[data-part="ablations"][data-of="{dataset}"]'
                attr = "data-init-config" if kind == "controls" else "data-config-hash"
                row = tab.locator(f'#{dataset} tr.row[{attr}="{r["config_hash"]}"]' if kind == "controls" else
                                  f'{table} tr.row[{attr}="{r["config_hash"]}"]')
                assert row.count() >= 1 and row.first.is_visible(), (dataset, r["display_name"])
                assert kind == "controls" or row.count() == 1
            assert tab.locator(f'table[data-dataset="{dataset}"] tr.row').count() <= MAX_ROWS
        assert tab.locator("table.summary tr.row").count() >= 3
        assert tab.locator("img.chart").count() == 2  # a table of methods: each dataset's chart is drawn
        assert all(tab.eval_on_selector_all("img.chart", "imgs => imgs.map(i => i.naturalWidth > 0)"))

        heads = tab.locator('table[data-dataset="synth-au"] thead th')
        names = heads.all_inner_texts()
        avg = names.index("avg")
        original = _column(tab, "synth-au", avg)
        heads.nth(avg).click()  # best first
        shown = [float(v) for v in _column(tab, "synth-au", avg)]
        assert shown == sorted(shown, reverse=True) and len(shown) == len(original)
        assert heads.nth(avg).get_attribute("aria-sort") == "descending"
        assert not tab.locator('table[data-dataset="synth-au"] tbody.block').first.is_visible()
        heads.nth(avg).click()
        assert [float(v) for v in _column(tab, "synth-au", avg)] == sorted(shown)
        heads.nth(avg).click()  # back to the paper's order, blocks shown
        assert _column(tab, "synth-au", avg) == original
        assert tab.locator('table[data-dataset="synth-au"] tbody.block').first.is_visible()
        heads.nth(0).click()  # text columns: A to Z
        method = _column(tab, "synth-au", 0)
        assert method == sorted(method, key=str.lower) or method == sorted(method)

        row = tab.locator('table[data-dataset="synth-expr"] tr.row').first
        provenance = row.locator("xpath=following-sibling::tr[1]")
        assert not provenance.is_visible()
        row.click()
        assert provenance.is_visible() and "command:" in provenance.inner_text()
        assert "click for the commands" in (row.get_attribute("title") or "")

        if which == "generated":  # the charts render where the rows allow one (two methods chosen)
            few = tmp_path / "few.html"
            code, _, err = run_main(["compare", "--datasets", "synth-au", "synth-expr", "--out", str(tmp_path),
                                     "--methods", "random", "triplet", "--format", "html", "--output", str(few)], capsys)
            assert code == 0, err
            tab.goto(few.resolve().as_uri())
            assert tab.locator("img.chart").count() == 2
            assert all(tab.eval_on_selector_all("img.chart", "imgs => imgs.map(i => i.naturalWidth > 0)"))

        shot = tmp_path / "leaderboard.png"
        tab.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 50_000
    assert errors == []
