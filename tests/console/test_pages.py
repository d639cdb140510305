"""Every console page in Chromium: signed-in access only, no console errors, readable at 1280x800,
data shown as text (a planted card number and markup in an event come out masked and inert)."""

from __future__ import annotations

import httpx
import pytest

from stockade.api.console import PAGES
from tests.api.controller import Controller, batch, event
from tests.console.conftest import Console

pytestmark = pytest.mark.slow

CARD = "4111 1111 1111 1111"


def test_pages_need_a_session_and_the_login_leads_back(console: Console) -> None:
    console.page.goto(console.url("/ui/events"))
    console.page.wait_for_url("**/ui/login?next=/ui/events")
    console.page.fill("#name", "alice")
    console.page.fill("#password", "wrong password")
    console.page.click("button[type=submit]")
    console.page.wait_for_selector("#error:has-text('wrong name or password')")
    console.login()
    console.page.wait_for_selector("#who:has-text('alice (admin)')")


def test_every_page_loads_without_errors(console: Console) -> None:
    console.login()
    for name in PAGES:
        console.page.goto(console.url(f"/ui/{name}"))
        console.page.wait_for_load_state("networkidle")
        assert console.page.inner_text("h1") == PAGES[name]
        state = console.page.get_attribute("#status", "class") or ""
        assert "error" not in state, f"{name}: {console.page.inner_text('#status')}"
        console.shot(f"page-{name}")
    assert console.errors == []


def test_event_text_is_masked_and_never_markup(console: Console, controller: Controller) -> None:
    hostile = f"<img src=x onerror=alert(1)> card {CARD}"
    with controller.client("agent") as c:
        answer = c.post("/api/v1/agents/events", json=batch([event(0, message=hostile)]))
        assert answer.status_code == 200, answer.text
    console.login()
    console.page.goto(console.url("/ui/events?category=dlp"))
    console.page.wait_for_selector("td:has-text('onerror')")
    html = console.page.content()
    assert "4111 1111 1111 1111" not in html and "4111111111111111" not in html
    assert console.page.locator("#events img").count() == 0
    assert console.errors == []


def test_security_headers_on_pages(controller: Controller) -> None:
    with httpx.Client(base_url=controller.base, verify=controller.tls()) as c:
        login = c.get("/ui/login")
        assert "script-src 'self'" in login.headers["content-security-policy"]
        assert login.headers["x-frame-options"] == "DENY"
        assert c.get("/ui/static/../app.py").status_code == 404
        assert c.get("/ui/static/vendor/cytoscape.min.js").status_code == 200
        assert c.get("/ui/nope").status_code == 404
