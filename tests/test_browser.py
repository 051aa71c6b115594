"""The explorer in a real browser: `streamlit run` on a free port, driven by Playwright in headless
Chromium."""

from __future__ import annotations

import pytest

from tests.browser_utils import (
    BROWSER_TEST_MARKS,
    VIEWER,
    browser_page,
    choose,
    exceptions,
    panel_stats,
    running_app,
    viewer_stamp,
    wait_idle,
    wait_redraw,
    zoom_at,
)

pytestmark = BROWSER_TEST_MARKS


def _radius_label(page) -> str:
    return page.get_by_role("slider").first.get_attribute("aria-valuetext") or ""


def _caption(page) -> str:
    return page.get_by_text("server time for this update").inner_text()


RMS_ZERO = (0, 0, 4)  # the difference panel's colour for 0 (core.display.SEQUENTIAL_PALETTE[0])


def test_radius_slider_updates_the_panels(tmp_path, artifacts):
    with running_app(tmp_path / "data") as url, browser_page() as page:
        page.goto(url)
        wait_idle(page, 240_000)
        assert not exceptions(page)
        page.locator(f"{VIEWER}[data-stamp]").wait_for(timeout=60_000)
        wait_idle(page)
        names = ["original", "perturbed", "difference", "spectrum"]
        before = {n: panel_stats(page, n) for n in names}
        assert _radius_label(page).startswith("2 (study R)")
        assert "R = 2 cycles/mm" in page.locator(VIEWER).get_attribute("data-describe")

        stamp = viewer_stamp(page)
        page.get_by_role("slider").first.focus()
        for _ in range(6):  # six stops per octave: R = 1 exactly
            page.keyboard.press("ArrowLeft")
        wait_redraw(page, stamp)
        wait_idle(page)
        after = {n: panel_stats(page, n) for n in names}
        page.screenshot(path=str(artifacts / "image_lab_after_slider.png"), full_page=True)
        assert _radius_label(page) == "1"
        assert "R = 1 cycles/mm" in _caption(page)
        assert "R = 1 cycles/mm" in page.locator(VIEWER).get_attribute("data-describe")
        assert after["original"]["hash"] == before["original"]["hash"], "the original panel must not change"
        assert after["perturbed"]["hash"] != before["perturbed"]["hash"]
        assert after["difference"]["hash"] != before["difference"]["hash"]
        assert after["spectrum"]["hash"] != before["spectrum"]["hash"]  # the cutoff circle moved
        assert not exceptions(page)


@pytest.mark.usefixtures("nyu_samples")
def test_real_sample_difference_zoom_and_controls(tmp_path, artifacts):
    """dmv_1_R_CC.png at the study's R = 2: the difference panel is not blank at the default view; a zoom
    survives a slider step and a change of perturbation; slider and caption agree after shuffle ->
    low-pass."""
    with running_app(tmp_path / "data") as url, browser_page(1700, 1300) as page:
        page.goto(url)
        wait_idle(page, 240_000)
        choose(page, "Source", "NYU samples")
        page.locator(f"{VIEWER}[data-stamp]").wait_for(timeout=120_000)
        wait_idle(page, 120_000)
        assert page.get_by_text("dmv_1_R_CC.png").count() >= 1
        original = panel_stats(page, "original")
        difference = panel_stats(page, "difference", RMS_ZERO)
        page.screenshot(path=str(artifacts / "lab_nyu_default.png"), full_page=True)
        # The breast covers ~20 % of this image; its change at R = 2 must show across the breast.
        assert original["far"] > 0.1
        assert difference["far"] > 0.8 * original["far"], (original, difference)
        assert float(page.locator(VIEWER).get_attribute("data-fmax")) < 2.0  # the view cannot show R = 2...
        assert "zoom in to see what R = 2 removes" in _caption(page)  # ...and says so

        stamp = viewer_stamp(page)
        zoom_at(page, 1398 / 3328, 2368 / 2560, clicks=8)  # a cluster of calcifications near the chest wall
        stamp = wait_redraw(page, stamp)
        wait_idle(page)
        zoom = page.locator(VIEWER).get_attribute("data-zoom")
        assert float(zoom) > 8
        assert "native pixels" in _caption(page)
        view = _caption(page).split("view: ")[1].split(";")[0]
        page.screenshot(path=str(artifacts / "lab_nyu_zoomed.png"), full_page=True)

        page.get_by_role("slider").first.focus()
        page.keyboard.press("ArrowRight")
        stamp = wait_redraw(page, stamp)
        wait_idle(page)
        assert page.locator(VIEWER).get_attribute("data-zoom") == zoom
        assert _caption(page).split("view: ")[1].split(";")[0] == view
        assert "R = 2.24 cycles/mm" in _caption(page)

        radio = page.get_by_test_id("stRadio").filter(has_text="Perturbation")
        radio.get_by_text("Gaussian noise").click()
        stamp = wait_redraw(page, stamp)
        wait_idle(page)
        assert page.locator(VIEWER).get_attribute("data-zoom") == zoom
        assert _caption(page).split("view: ")[1].split(";")[0] == view
        noise = panel_stats(page, "difference", RMS_ZERO)
        assert noise["far"] > 0.9  # noise changes every pixel, background included

        radio.get_by_text("patch shuffle").click()
        stamp = wait_redraw(page, stamp)
        wait_idle(page)
        radio.get_by_text("low-pass").click()
        wait_redraw(page, stamp)
        wait_idle(page)
        assert _radius_label(page) == "2.24"
        assert "R = 2.24 cycles/mm" in _caption(page)
        assert "R = 2.24 cycles/mm" in page.locator(VIEWER).get_attribute("data-describe")
        assert page.locator(VIEWER).get_attribute("data-zoom") == zoom
        page.screenshot(path=str(artifacts / "lab_nyu_after_switches.png"), full_page=True)
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


def test_first_use_generates_the_demo_cohort_under_a_progress_bar(tmp_path, artifacts):
    """A fresh data folder: the app generates the demo cohort (about a minute on two cores) and says how far
    it is and how long is left, updated as exams are written. The test leaves once the count has moved."""
    import re
    import time

    bar = re.compile(
        r"Generating the synthetic cohort 'demo' \(first time only\): (\d+)/300 exams, about .+ left"
    )
    with running_app(tmp_path / "data", {"MAMMO_EXPLORER_COHORT": "demo"}) as url, browser_page() as page:
        page.goto(url)
        progress = page.get_by_test_id("stProgress")
        progress.wait_for(timeout=120_000)
        counts: list[int] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(set(counts)) < 2:
            found = bar.search(progress.inner_text())  # the bar opens with its title alone
            if found:
                counts.append(int(found.group(1)))
            time.sleep(0.3)
        page.screenshot(path=str(artifacts / "demo_cohort_progress.png"))
        assert len(set(counts)) >= 2 and counts == sorted(counts), counts
        assert not exceptions(page)
