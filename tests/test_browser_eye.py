"""The image lab's "Model's eye" in a real browser on a real sample: probabilities for both images, the
model's resolution next to the slider, the score-versus-R curve, and a slider that keeps working while
GMIC runs in the background."""

from __future__ import annotations

import time

from tests.browser_utils import (
    BROWSER_TEST_MARKS,
    VIEWER,
    browser_page,
    choose,
    exceptions,
    running_app,
    viewer_stamp,
    wait_idle,
    wait_redraw,
)

pytestmark = BROWSER_TEST_MARKS


def _metrics(page) -> dict[str, float]:
    out = {}
    for text in page.get_by_test_id("stMetric").all_inner_texts():
        lines = [t for t in text.splitlines() if t.strip()]
        if "," in lines[0]:  # "Malignant, original", ...
            out[lines[0]] = float(lines[1])
    return out


def _wait_gone(page, text: str, timeout_ms: int) -> None:
    """Wait until no element shows ``text`` (the page polls the background work meanwhile)."""
    deadline = time.time() + timeout_ms / 1000
    while page.get_by_text(text).count():
        assert time.time() < deadline, f"{text!r} still shown after {timeout_ms} ms"
        page.wait_for_timeout(200)


def test_the_models_eye_shows_probabilities_for_both_images(nyu_samples, tmp_path, artifacts):
    """dmv_1_R_CC.png with the demo GMIC (0.1 mm): the page states the model's Nyquist frequency (5
    cycles/mm), so R = 2 removes a band it sees (no "cannot see" warning); with the model's eye on, the
    slider still moves the panels while GMIC runs, and the probabilities of the original (equal to
    ``predict_gmic`` on the file) and of the image at the new R appear, with saliency pictures and the
    curve against R."""
    from core.imaging import load_mammogram
    from core.models import create_model
    from core.models.predict import predict_gmic

    expected = predict_gmic(create_model("gmic", "demo"), [load_mammogram(nyu_samples / "dmv_1_R_CC.png")])[0]
    with running_app(tmp_path / "data") as url, browser_page(1700, 1500) as page:
        page.goto(url)
        wait_idle(page, 240_000)
        icon = page.evaluate("() => [...document.querySelectorAll('link[rel~=icon]')].map(l => l.href)")
        assert icon and not any("gstatic" in h or "googleapis" in h for h in icon), icon
        choose(page, "Source", "NYU samples")
        page.locator(f"{VIEWER}[data-stamp]").wait_for(timeout=120_000)
        wait_idle(page, 120_000)
        assert page.get_by_text("its Nyquist frequency is").first.inner_text().count("5 cycles/mm") == 1
        assert page.get_by_text("the model cannot see what this filter removes").count() == 0

        page.get_by_text("Model's eye: what GMIC sees").click()
        page.get_by_text("GMIC weights").first.wait_for(timeout=60_000)
        stamp = viewer_stamp(page)
        page.get_by_role("slider").first.focus()
        page.keyboard.press("ArrowLeft")  # R = 2 -> 1.78 while GMIC works in the background
        wait_redraw(page, stamp, timeout_ms=120_000)
        caption = page.get_by_text("Perturbed: low-pass (ideal), R = 1.78 cycles/mm", exact=True)
        caption.wait_for(timeout=300_000)  # the explanation of the new R arrived
        _wait_gone(page, "radii scored (in the background)", 300_000)  # and every point of the curve
        wait_idle(page, 120_000)
        page.screenshot(path=str(artifacts / "lab_nyu_models_eye.png"), full_page=True)

        values = _metrics(page)
        names = ["Malignant, original", "Benign, original", "Malignant, perturbed", "Benign, perturbed"]
        assert sorted(values) == sorted(names), values
        assert all(0 <= v <= 1 for v in values.values())
        assert abs(values["Malignant, original"] - expected[1]) <= 5e-5
        assert abs(values["Benign, original"] - expected[0]) <= 5e-5
        assert page.get_by_text("the model cannot see what this filter removes").count() == 0  # 1.78 < 5
        assert page.get_by_test_id("stImage").count() >= 2  # saliency over the original and the perturbed
        assert page.get_by_text("Regions (upper-left in image pixels)").count() == 2
        chart = page.get_by_test_id("stPlotlyChart").last
        chart.wait_for(timeout=60_000)
        assert chart.get_by_text("model Nyquist 5").count() >= 1
        assert page.get_by_text("radii scored (in the background)").count() == 0  # all scored
        page.get_by_test_id("stRadio").filter(has_text="Saliency map").get_by_text("Benign").click()
        wait_idle(page, 120_000)
        assert _metrics(page) == values
        assert not exceptions(page)
