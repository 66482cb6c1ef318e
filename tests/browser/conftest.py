"""A real headless browser for the dashboard tests: Debian's chromium driven by Playwright.

The test run makes the browser available itself: Playwright's own browser download (`playwright install`) needs
a CDN this machine cannot reach, so Playwright drives Debian's /usr/bin/chromium instead, installed by the test run
when missing (tests/system_packages.py).

The server is `python main_tars.py serve` as a real process on a free port, with DASHBOARD_PASSWORD set.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from core.redis_conn import free_port
from tests import system_packages
from tests.conftest import ROOT, TarsProcess, updating_screenshots
from tests.waiting import wait_until

CHROMIUM = Path("/usr/bin/chromium")
# Text in screenshots needs a font: chromium's own dependencies do not bring one with --no-install-recommends.
APT_PACKAGES = ("chromium", "fonts-dejavu-core")
DASHBOARD_PASSWORD = "browser-test-password-1234"
IMAGES = ROOT / "docs" / "images"
WAIT_MS = 45_000  # generous: the suite runs 3 processes on 2 cores, next to real workers and servers


def ensure_chromium() -> Path:
    """/usr/bin/chromium, installed from Debian's packages first if missing (root only; else pytest.skip)."""
    return system_packages.ensure(CHROMIUM, APT_PACKAGES, "the browser tests")


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    return ensure_chromium()


@pytest.fixture
def browser(chromium_path):
    """A headless chromium for one test. Not session-scoped: while Playwright's sync API runs, its event loop
    counts as running in this thread, so every later asyncio.run() of this test process (other test modules)
    would fail with "cannot be called from a running event loop"."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start
        browser = playwright.chromium.launch(executable_path=str(chromium_path), headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser):
    """new_page(**context_options): a page in a fresh browser context (own cookies), closed after the test.
    Uncaught errors of the page's scripts are collected in page.js_errors, console errors in page.console_errors
    (these include the browser's own "Failed to load resource" for a refused login)."""
    contexts = []

    def make(**options):
        context = browser.new_context(**options)
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        page = context.new_page()
        page.js_errors, page.console_errors = [], []
        page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
        page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
        page.on("dialog", lambda dialog: dialog.accept())  # a confirm("Cancel this task?") is answered yes
        return page

    yield make
    for context in contexts:
        context.close()


class DashboardServer(TarsProcess):
    """`python main_tars.py serve` as a real process on a free port, with a dashboard password."""

    def __init__(self, env: dict, log_path: Path):
        port = free_port()
        super().__init__({**env, "HOST": "127.0.0.1", "PORT": str(port), "DASHBOARD_PASSWORD": DASHBOARD_PASSWORD},
                         log_path, "main_tars.py", "serve")
        self.url = f"http://127.0.0.1:{port}"
        wait_until(lambda: self.process.poll() is not None or httpx.get(f"{self.url}/health").status_code == 200,
                   60, "the server to answer /health", interval=0.1, ignore=(httpx.HTTPError,))
        assert self.process.poll() is None, self.log


@pytest.fixture
def dashboard(tars_env, tmp_path):
    server = DashboardServer(tars_env, tmp_path / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> Path:
    """Where the screenshots go. `UPDATE_SCREENSHOTS=1 .venv/bin/python -m pytest tests/browser` overwrites the
    README's docs/images/dashboard.png and dashboard-phone.png (tracked files); any other run writes them to a
    temporary folder and only checks them, so the checkout stays as it was."""
    if not updating_screenshots():
        return tmp_path_factory.mktemp("screenshots")
    IMAGES.mkdir(parents=True, exist_ok=True)
    return IMAGES


def check_png(path: Path, min_size: tuple[int, int], max_size: tuple[int, int]) -> tuple[int, int]:
    """path is a whole PNG (signature, IHDR first, IEND last) whose width and height lie within the bounds."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    assert data[-8:-4] == b"IEND", f"{path} is cut short"
    size = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert all(low <= n <= high for n, low, high in zip(size, min_size, max_size)), (
        f"{path} is {size[0]} x {size[1]} px, not between {min_size} and {max_size}")
    assert len(data) > 10_000, f"{path} is {len(data)} bytes: a blank page?"
    return size
