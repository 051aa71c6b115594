"""The Results page in a real browser: the small-sample warning of the tiny cohort and Table 1's CSV and
LaTeX downloads."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from tests.browser_utils import BROWSER_TEST_MARKS, browser_page, exceptions, running_app, wait_idle

pytestmark = BROWSER_TEST_MARKS


@pytest.fixture()
def tiny_run_data(tmp_path, monkeypatch) -> Path:
    """A data folder with the tiny cohort and one finished run of it."""
    from tests.test_app_results import _store, tiny_scores

    data = tmp_path / "data"
    monkeypatch.setenv("MAMMO_ROBUST_DATA", str(data))
    monkeypatch.setenv("MAMMO_EXPLORER_COHORT", "tiny")
    _store(tiny_scores(), "tiny browser run")
    return data


def test_results_warns_and_downloads_table1(tiny_run_data, artifacts):
    with running_app(tiny_run_data) as url, browser_page() as page:
        page.goto(f"{url}/results")
        wait_idle(page, 240_000)
        assert not exceptions(page)
        warning = page.get_by_test_id("stAlertContentWarning").filter(has_text="Small samples").first
        assert "fewer than 30 positive or negative cases" in warning.inner_text()
        page.screenshot(path=str(artifacts / "results_tiny_curves.png"), full_page=True)
        page.get_by_role("tab", name="Table 1").click()
        wait_idle(page)
        with page.expect_download() as info:
            page.get_by_role("button", name="Table 1 (CSV)").click()
        table = pd.read_csv(io.StringIO(Path(info.value.path()).read_text()), keep_default_na=False)
        assert info.value.suggested_filename.endswith("_table1.csv")
        assert list(table.columns[:6]) == ["model", "weights", "members", "n_pos", "n_neg", "unperturbed"]
        assert "low-pass R = 2 cycles/mm" in table.columns and len(table) == 1
        with page.expect_download() as info:
            page.get_by_role("button", name="Table 1 (LaTeX)").click()
        tex = Path(info.value.path()).read_text()
        assert r"\begin{tabular}" in tex and r"\bottomrule" in tex
        page.screenshot(path=str(artifacts / "results_tiny_table1.png"), full_page=True)
        assert not exceptions(page)
