"""A headless Chromium from the OS packages, driven by Playwright, for the browser tests
(tests/view, and tests/hostile's view test); tests/conftest.py makes its fixtures shared, so
that one session runs one Playwright.

Playwright's own browser download cannot run here, so the browser is Debian's `chromium`
(or COTGEN_CHROMIUM). Without it the browser tests skip, saying why; under CI=true they fail,
because .ci/run installs it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def find_chromium() -> str | None:
    for candidate in (os.environ.get("COTGEN_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (.ci/run installs it)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium():
    """A launched browser, shared by one module's browser tests. Not by the session: a live
    Playwright keeps an event loop running, and the in-process CLI tests of other modules
    (asyncio.run) cannot run beside it."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the browser tests need the playwright package (pip install playwright)")
    executable = find_chromium()
    if executable is None:
        _unavailable("no Chromium: install Debian's chromium (apt-get install chromium) or set COTGEN_CHROMIUM")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


class OfflinePage:
    """A page whose every request is routed: file:// goes through, anything else is
    aborted and recorded, as are page errors, so a test can fail on either."""

    def __init__(self, browser) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page.on("request", self._request)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _route(self, route) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def _request(self, request) -> None:
        if not request.url.startswith(("file://", "data:", "about:")) and request.url not in self.outside:
            self.outside.append(request.url)

    def open(self, path: Path) -> None:
        self.page.goto(path.resolve().as_uri())

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def offline(chromium):
    page = OfflinePage(chromium)
    yield page
    page.close()
