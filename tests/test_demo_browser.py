"""The web demo in a real browser: Playwright drives Debian's Chromium against ``graia demo``.

Screenshots go to ``$GRAIA_SCREENSHOT_DIR`` (default: the test's temporary directory). Locally the
test skips when Playwright or Chromium is missing; in CI (``CI=true``) that is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import IN_CI
from test_demo import THREE

pytestmark = pytest.mark.slow  # a subprocess server and Chromium

CHROMIUM = os.environ.get("GRAIA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(reason + " (CI requires the browser test; scripts/setup installs both)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory):
    """``graia demo`` in a subprocess on a free port, as a user starts it."""
    port = _free_port()
    log = tmp_path_factory.mktemp("demo") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "graia", "demo", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path_factory.getbasetemp(),  # import the installed graia, not the source tree
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url + "api/state", timeout=5).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"graia demo did not start:\n{log.read_text()}")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A fresh headless Chromium page (Debian's browser; Playwright cannot download its own)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install playwright)")
    if not (shutil.which(CHROMIUM) or os.path.exists(CHROMIUM)):
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 1100},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    where = os.environ.get("GRAIA_SCREENSHOT_DIR")
    path = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _draw(page, points: list[tuple[float, float]]) -> None:
    """One stroke through ``points`` given as fractions of the pad's size."""
    box = page.locator("#pad").bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=6)
    page.mouse.up()


def test_draw_predict_train_and_bad_model(demo_url, page, shots, tmp_path):
    page.goto(demo_url)
    page.wait_for_function("document.getElementById('backend').textContent !== '…'")
    # Draw a 3 in one stroke; the page predicts while drawing.
    page.click("#clear")
    _draw(page, THREE)
    page.wait_for_function("document.getElementById('chosen').textContent === '3'", timeout=10_000)
    assert page.locator("#bars .bar").count() == 10
    assert page.locator("#layers canvas.layer").count() == 3  # input, hidden, output
    assert page.locator("#fields canvas").count() >= 1
    page.screenshot(path=str(shots / "demo-draw.png"), full_page=True)

    # A test image from Fashion-MNIST switches to the Fashion-MNIST model.
    page.select_option("#sample-dataset", "fashion-mnist")
    page.click("#sample")
    page.wait_for_function("document.getElementById('sample-info').textContent.includes('label')")
    assert "fashion-mnist" in page.locator("#model-label").text_content()

    # Train: one epoch on the digits, small; the curve gets its point.
    page.click("#tab-train")
    page.select_option("#train-dataset", "digits")
    page.fill("#train-width", "32")
    page.fill("#train-epochs", "1")
    page.click("#train-start")
    page.wait_for_function(
        "document.getElementById('train-status').textContent.startsWith('done')", timeout=120_000
    )
    assert page.locator("#curve").get_attribute("data-points") == "1"
    assert page.locator("#train-download").is_visible()
    assert "trained here" in page.locator("#model-label").text_content()
    page.screenshot(path=str(shots / "demo-train.png"), full_page=True)

    # A corrupt model file: a clear message in the page, and the app keeps working.
    page.click("#tab-explore")
    bad = tmp_path / "broken.graia"
    bad.write_bytes(b"PK\x03\x04 this is not really a model")
    page.set_input_files("#model-file", str(bad))
    error = page.locator("#model-error")
    error.wait_for(state="visible")
    assert "broken.graia" in error.text_content()
    page.screenshot(path=str(shots / "demo-error.png"), full_page=True)
    page.select_option("#model-select", "digits")
    page.click("#clear")
    _draw(page, THREE)
    page.wait_for_function("document.getElementById('chosen').textContent === '3'", timeout=10_000)
    assert error.is_hidden()
