"""The policy page's virtual patches in Chromium: a group whose running image carries Log4Shell
shows the proposal; Apply makes it a block rule of the policy in force (a reader sees no live
button)."""

from __future__ import annotations

import pytest

from stockade.firewall.policy.files import parse_texts
from tests.api.controller import Controller
from tests.api.vulns import runs, upload, vuln
from tests.console.conftest import Console

pytestmark = pytest.mark.slow

POLICY = """\
apiVersion: stockade.dev/v1
kind: FirewallPolicy
metadata: {name: console}
spec:
  groups:
    - {name: api, selector: {namespace: shop, pods: [api]}, mode: protect}
"""
APPLY = "button[data-group=api][data-sensor='waf.log4shell']"


def test_a_proposal_is_shown_and_applied_from_the_policy_page(
    console: Console, controller: Controller
) -> None:
    with controller.client("operator") as c:
        assert c.put("/api/v1/firewall/policy", content=POLICY.encode()).status_code == 200
    runs(controller, "shop/api", "registry.local/shop/api", 5)
    upload(controller, "registry.local/shop/api", 5, [vuln("CVE-2021-44228", "log4j-core")])

    reader = Console(console.context.browser, controller, user="rita")
    try:
        reader.login()
        reader.page.goto(reader.url("/ui/policy"))
        reader.page.wait_for_selector("td:has-text('CVE-2021-44228')")
        assert reader.page.is_disabled(APPLY)
        assert reader.errors == []
    finally:
        reader.close()

    console.login()
    console.page.goto(console.url("/ui/policy"))
    row = console.page.locator("tr", has=console.page.locator(APPLY))
    assert "shop/api" in row.inner_text() and "protect" in row.inner_text()
    console.page.click(APPLY)
    console.page.wait_for_selector("#status:has-text('virtual patch waf.log4shell applied to api')")
    console.page.wait_for_selector("td:has-text('applied')")
    console.shot("policy-virtual-patches")
    with controller.client("reader") as c:
        policy = parse_texts([("policy", c.get("/api/v1/firewall/policy").json()["yaml"])])
    assert [(w.sensor, w.action) for w in policy.group("api").waf] == [("waf.log4shell", "block")]
    assert console.errors == []
