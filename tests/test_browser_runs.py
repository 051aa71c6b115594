"""The Runs page in a real browser: a run's error list, a damaged store beside it, and "Open in Results"
switching pages from inside the polling fragment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser_utils import CHROMIUM, browser_page, exceptions, running_app, wait_idle

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing (scripts/install.sh installs it)"),
]


@pytest.fixture()
def runs_data(tmp_path, monkeypatch) -> tuple[Path, str, str]:
    """A data folder with the tiny cohort, a finished run with one unreadable image and a damaged store."""
    from core.phantom import ensure_cohort
    from core.runs import RunConfig, RunStore, create_run
    from tests.test_app_runs_status import _garbage_run
    from tests.test_runs import _save

    data = tmp_path / "data"
    monkeypatch.setenv("MAMMO_ROBUST_DATA", str(data))
    monkeypatch.setenv("MAMMO_EXPLORER_COHORT", "tiny")
    ensure_cohort("tiny")
    cfg = {"input_size": [192, 128], "crop_shape": [48, 48], "K": 2, "percent_t": 0.05, "spacing_mm": 0.4}
    _save("gmic", data / "gmic-small.pt", cfg)
    errors = _garbage_run(data, "one garbage image")
    bad = create_run(RunConfig(model="gmic", manifest="tiny", weights="random", name="scribbled"))
    with open(RunStore.open(bad).path, "r+b") as fh:
        fh.write(b"\x13" * 100)
    return data, errors, bad


def _pick(page, run_id: str) -> None:
    page.get_by_test_id("stSelectbox").last.get_by_role("combobox").click()
    page.keyboard.type(run_id)
    page.get_by_role("option", name=run_id).first.click()
    wait_idle(page)


def test_runs_page_lists_errors_and_damage_and_opens_results(runs_data, tmp_path):
    data, errors, bad = runs_data
    artifacts = Path(os.environ.get("MAMMO_TEST_ARTIFACTS", tmp_path / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    with running_app(data) as url, browser_page(1500, 1600) as page:
        page.goto(f"{url}/runs")
        wait_idle(page, 240_000)
        assert not exceptions(page)
        _pick(page, bad)
        alert = page.get_by_test_id("stAlertContentError").filter(has_text="Damaged store").first
        assert "not a database" in alert.inner_text()
        _pick(page, errors)
        warning = page.get_by_test_id("stAlertContentWarning").filter(has_text="could not be scored").first
        assert "2 error rows: 1 image(s)" in warning.inner_text()
        assert page.get_by_test_id("stDataFrame").count() == 2  # the runs, and the images with errors
        page.screenshot(path=str(artifacts / "runs_errors_damaged.png"), full_page=True)
        page.get_by_role("button", name="Open in Results").click()
        wait_idle(page, 240_000)
        assert page.url.endswith("/results")
        assert page.get_by_role("heading", name="Results").count() == 1
        box = page.get_by_test_id("stSelectbox").filter(has_text="Run").first
        chosen = box.evaluate("e => e.innerText + ' ' + [...e.querySelectorAll('input')].map(i => i.value)")
        assert "one garbage image" in chosen and errors in chosen
        assert not exceptions(page)
