"""Start the explorer with ``streamlit run`` on a free port and drive it with Playwright in Debian's Chromium.

Used by tests/test_browser*.py and, by hand, to take screenshots::

    python -m tests.browser_utils OUT_DIR [--nyu] [--page calcifications]
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(data_dir: Path, env: dict[str, str] | None = None, timeout: float = 90) -> Iterator[str]:
    """Run ``streamlit run explorer/app.py`` headless on a free localhost port; yield its URL."""
    port = free_port()
    full_env = {
        **os.environ,
        "MAMMO_ROBUST_DATA": str(data_dir),
        "MAMMO_EXPLORER_COHORT": "tiny",
        **(env or {}),
    }
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    log_path = Path(data_dir) / f"streamlit-{port}.log"
    log = open(log_path, "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", str(REPO / "explorer" / "app.py"),
            "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        ],
        cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.flush()
                raise RuntimeError(f"streamlit did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def browser_page(width: int = 1700, height: int = 1100) -> Iterator[object]:
    """A Playwright page in headless Debian Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()


_BUSY = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    const state = app ? app.getAttribute('data-test-script-state') : 'initial';
    return state !== 'notRunning'
        || !!document.querySelector('[data-testid="stSkeleton"], [data-testid="stSpinner"]');
}"""


def wait_idle(page, timeout_ms: int = 60_000, quiet_ms: int = 1500) -> None:
    """Wait until Streamlit has finished running: the app reports its script as not running and shows no
    skeleton or spinner, for ``quiet_ms`` in a row."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    page.get_by_role("heading", level=2).first.wait_for(timeout=timeout_ms)  # every page has a st.header
    deadline = time.time() + timeout_ms / 1000
    quiet_since = None
    while time.time() < deadline:
        if page.evaluate(_BUSY):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif (time.time() - quiet_since) * 1000 >= quiet_ms:
            return
        page.wait_for_timeout(100)
    raise TimeoutError(f"the app was still busy after {timeout_ms} ms")


VIEWER = ".mre-viewer"  # the image lab's viewer (explorer/ui/assets/viewer.js), inside a shadow root

_PANEL_STATS = """(canvas, ref) => {
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0, far = 0, sum = 0, hash = 0;
    for (let i = 0; i < d.length; i += 4) {
        n++;
        sum += d[i] + d[i + 1] + d[i + 2];
        if (Math.abs(d[i] - ref[0]) + Math.abs(d[i + 1] - ref[1]) + Math.abs(d[i + 2] - ref[2]) > 30) far++;
        hash = (Math.imul(hash, 31) + d[i] + 7 * d[i + 1] + 13 * d[i + 2]) >>> 0;
    }
    return {mean: sum / n / 3, far: far / n, hash, width: canvas.width, height: canvas.height};
}"""


def viewer_stamp(page) -> str | None:
    """The stamp of the data the viewer last drew (changes with every redraw from new data)."""
    return page.locator(VIEWER).get_attribute("data-stamp")


def wait_redraw(page, old_stamp: str | None, timeout_ms: int = 60_000) -> str:
    """Wait until the viewer has drawn data other than ``old_stamp``; returns the new stamp."""
    deadline = time.time() + timeout_ms / 1000
    while time.time() < deadline:
        stamp = viewer_stamp(page)
        if stamp and stamp != old_stamp:
            return stamp
        page.wait_for_timeout(20)
    viewer = page.locator(VIEWER)
    state = {
        "stamp": viewer_stamp(page),
        "describe": viewer.get_attribute("data-describe"),
        "readout": page.locator(".mre-readout").inner_text(),
        "captions": page.get_by_test_id("stCaptionContainer").all_inner_texts()[-2:],
    }
    raise TimeoutError(f"the viewer did not redraw within {timeout_ms} ms: {state}")


def panel_stats(page, panel: str, ref: tuple[int, int, int] = (0, 0, 0)) -> dict:
    """Pixel statistics of one panel's canvas as drawn: mean grey level, the share of pixels farther than 30
    (sum of |RGB difference|) from the colour ``ref``, a hash of the pixels, and the canvas size."""
    return page.locator(f"canvas[data-panel={panel}]").evaluate(_PANEL_STATS, list(ref))


def zoom_at(page, row_frac: float, col_frac: float, clicks: int = 6) -> None:
    """Wheel-zoom the image panels around a point given as fractions of the original panel's height and
    width (the view is the whole image before the first zoom)."""
    box = page.locator("canvas[data-panel=original]").bounding_box()
    page.mouse.move(box["x"] + col_frac * box["width"], box["y"] + row_frac * box["height"])
    for _ in range(clicks):
        page.mouse.wheel(0, -200)
        page.wait_for_timeout(30)


def exceptions(page) -> list[str]:
    """Text of any exception boxes Streamlit shows."""
    return [e.inner_text() for e in page.query_selector_all("[data-testid='stException']")]


def choose(page, label: str, option: str, timeout_ms: int = 180_000) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` and wait for the rerun."""
    box = page.get_by_test_id("stSelectbox").filter(has_text=label).first
    box.get_by_role("combobox").click()
    page.keyboard.type(option)  # filters the (virtualised) list
    page.get_by_role("option", name=option).first.click()
    wait_idle(page, timeout_ms)


def main(argv: list[str]) -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="Screenshots of the explorer in headless Chromium")
    parser.add_argument("out", type=Path)
    parser.add_argument("--page", default="", help="url path: '' (image lab), calcifications, runs, results")
    parser.add_argument("--nyu", action="store_true", help="select the NYU sample dmv_1_R_CC.png")
    parser.add_argument("--data", type=Path, default=None, help="MAMMO_ROBUST_DATA (default: a temp folder)")
    parser.add_argument("--cohort", default="tiny")
    parser.add_argument(
        "--zoom", default="", help="ROW_FRAC,COL_FRAC[,CLICKS]: wheel-zoom the lab's panels there"
    )
    parser.add_argument("--layout", default="", help="the lab's layout: 'Grid' or 'Row'")
    parser.add_argument("--panel", default="", help="the lab's panel size, e.g. 768")
    parser.add_argument("--click", action="append", default=[], help="click the button with this text")
    parser.add_argument("--image", default="", help="choose this image of the cohort (image_id)")
    parser.add_argument("--left", type=int, default=0, help="press ArrowLeft on the first slider N times")
    parser.add_argument("--fill", action="append", default=[], help="LABEL=VALUE for a number input")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.data or Path(tempfile.mkdtemp())
    with running_app(data, {"MAMMO_EXPLORER_COHORT": args.cohort}) as url, browser_page(1700, 2300) as page:
        page.goto(f"{url}/{args.page}")
        wait_idle(page, 180_000)
        if args.nyu:
            choose(page, "Source", "NYU samples")
            wait_idle(page, 180_000)
        if args.image:
            choose(page, "Image", args.image)
        if args.left:
            page.get_by_role("slider").first.focus()
            for _ in range(args.left):
                page.keyboard.press("ArrowLeft")
            wait_idle(page, 180_000)
        for text in args.click:
            page.get_by_role("button", name=text).first.click()
            wait_idle(page, 180_000)
        if args.layout:
            page.get_by_test_id("stRadio").filter(has_text="Layout").get_by_text(args.layout).first.click()
            wait_idle(page, 180_000)
        if args.panel:
            choose(page, "Panel size", args.panel)
        if args.zoom:
            old = viewer_stamp(page)
            parts = [float(v) for v in args.zoom.split(",")]
            zoom_at(page, parts[0], parts[1], int(parts[2]) if len(parts) > 2 else 6)
            wait_redraw(page, old)
            wait_idle(page, 180_000)
        tag = ("_nyu" if args.nyu else "") + (f"_{args.image}" if args.image else "")
        tag += ("_zoom" if args.zoom else "") + (f"_{args.layout}" if args.layout else "")
        name = f"{args.page or 'image_lab'}{tag}.png"
        page.screenshot(path=str(args.out / name), full_page=True)
        print(args.out / name, "exceptions:", exceptions(page))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
