"""The explorer in a real browser: `streamlit run` on a free port, driven by Playwright in headless
Chromium."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser_utils import CHROMIUM, browser_page, exceptions, panel_sources, running_app, wait_idle

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing (scripts/install.sh installs it)"),
]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("MAMMO_TEST_ARTIFACTS", tmp_path_factory.mktemp("tmp") / "artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _radius_label(page) -> str:
    return page.get_by_role("slider").first.get_attribute("aria-valuetext") or ""


def test_radius_slider_updates_the_image(tmp_path, artifacts):
    with running_app(tmp_path / "data") as url, browser_page() as page:
        page.goto(url)
        wait_idle(page, 240_000)
        assert not exceptions(page)
        page.wait_for_selector(".js-plotly-plot image", timeout=60_000)
        before = panel_sources(page)
        assert len(before) == 4, "expected original, perturbed, difference and spectrum panels"
        label_before = _radius_label(page)
        assert label_before.startswith("2 (study R)")

        thumb = page.get_by_role("slider").first
        thumb.focus()
        for _ in range(6):
            page.keyboard.press("ArrowLeft")
        wait_idle(page)
        page.wait_for_function(
            "old => { const e = document.querySelectorAll('.js-plotly-plot image')[1];"
            " return e && e.getAttribute('href') !== old; }",
            arg=before[1],
            timeout=30_000,
        )
        after = panel_sources(page)
        label_after = _radius_label(page)
        page.screenshot(path=str(artifacts / "image_lab_after_slider.png"), full_page=True)

        assert float(label_after.split()[0]) < 2.0, label_after
        assert after[0] == before[0], "the original panel must not change"
        assert after[1] != before[1] and after[2] != before[2], "perturbed and difference panels must change"
        assert after[3] == before[3], "the spectrum is computed once per image"
        caption = page.get_by_text("server time for this update").inner_text()
        assert f"R = {label_after.split()[0]} cycles/mm" in caption
        assert not exceptions(page)
        assert (artifacts / "image_lab_after_slider.png").stat().st_size > 10_000

        # A box drawn with the figure's box-select tool opens the native-resolution inspector there.
        page.locator(".js-plotly-plot").first.hover()
        page.locator(".js-plotly-plot .modebar-btn[data-title='Box Select']").first.click()
        area = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
        x0, y0 = area["x"] + area["width"] * 0.3, area["y"] + area["height"] * 0.4
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x0 + 40, y0 + 40, steps=8)
        page.mouse.up()
        wait_idle(page)
        inspector = page.get_by_test_id("stExpander").filter(has_text="Native-resolution inspector")
        inspector.get_by_text("native pixels").wait_for(timeout=30_000)
        assert inspector.locator("img").count() == 3  # original, perturbed, difference
        page.screenshot(path=str(artifacts / "image_lab_box_select.png"), full_page=True)
        assert not exceptions(page)


def test_deep_link_and_navigation_keep_the_app_around_the_page(tmp_path, artifacts):
    """A fresh server opened at /results (Streamlit's pages-folder fallback) still shows the app's
    navigation and sidebar; the sidebar links then open the other pages."""
    with running_app(tmp_path / "data") as url, browser_page() as page:
        page.goto(f"{url}/results")
        wait_idle(page, 240_000)
        assert page.get_by_role("heading", name="Results").count() == 1
        nav = page.get_by_test_id("stSidebarNav")
        assert nav.get_by_text("Image lab").count() == 1 and nav.get_by_text("app").count() == 0
        assert page.get_by_test_id("stSidebar").get_by_text("Source").count() >= 1
        nav.get_by_text("Calcifications").click()
        wait_idle(page, 240_000)
        assert page.get_by_role("heading", name="Calcifications").count() == 1
        page.screenshot(path=str(artifacts / "calcifications_tiny.png"), full_page=True)
        assert not exceptions(page)
