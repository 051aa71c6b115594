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


def panel_sources(page) -> list[str]:
    """The data-URI sources of the image panels of the first plotly figure (the lab's panels)."""
    return page.eval_on_selector_all(
        ".js-plotly-plot image", "els => els.map(e => e.getAttribute('href') || e.getAttribute('xlink:href'))"
    )


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
    parser.add_argument("--inspect", action="store_true", help="open the native-resolution inspector")
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
        if args.inspect:
            page.get_by_test_id("stExpander").filter(has_text="Native-resolution inspector").locator(
                "summary"
            ).click()
            for item in args.fill:
                label, value = item.split("=", 1)
                box = page.get_by_label(label).first
                box.fill(value)
                box.press("Enter")
                wait_idle(page, 180_000)
            page.locator("label").filter(has=page.get_by_role("switch", name="Show")).first.click()
            wait_idle(page, 180_000)
        tag = ("_nyu" if args.nyu else "") + (f"_{args.image}" if args.image else "")
        name = f"{args.page or 'image_lab'}{tag}{'_insp' if args.inspect else ''}.png"
        page.screenshot(path=str(args.out / name), full_page=True)
        print(args.out / name, "exceptions:", exceptions(page))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
