"""The console in a real browser: Debian's Chromium driven by Playwright (no browser download),
against a real controller on loopback over HTTPS. The browser does not know the controller's
generated CA, so its contexts ignore certificate errors; the API tests pin that CA."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.controller import PASSWORD, Controller, running_controller
from tests.support import require

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(
    os.environ.get(
        "STOCKADE_SCREENSHOTS", Path(__file__).resolve().parents[2] / "build" / "screenshots"
    )
)


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    yield from running_controller("sqlite", tmp_path_factory, "stockade_console_test")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    require(shutil.which(CHROMIUM) is not None, "Debian's chromium is not installed (./dev setup)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


class Console:
    """A signed-in browser page on the controller, collecting console errors."""

    def __init__(self, browser: Any, controller: Controller, user: str = "alice") -> None:
        self.controller = controller
        self.context = browser.new_context(
            ignore_https_errors=True,  # the controller's own CA; the tests' HTTP client pins it
            viewport={"width": 1280, "height": 800},
        )
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        # which request failed, for the "Failed to load resource" lines above
        self.page.on(
            "response",
            lambda r: self.errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None,
        )
        self.user = user

    def url(self, path: str) -> str:
        return f"{self.controller.base}{path}"

    def login(self, password: str = PASSWORD) -> None:
        self.page.goto(self.url("/ui/login"))
        self.page.fill("#name", self.user)
        self.page.fill("#password", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url("**/ui/overview")

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def console(browser: Any, controller: Controller) -> Iterator[Console]:
    c = Console(browser, controller)
    try:
        yield c
    finally:
        c.close()
