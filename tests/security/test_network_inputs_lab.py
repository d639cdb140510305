"""The hostile-input tests of ``test_network_inputs`` that need root and kernel state of their own:
the lookalike groups' ruleset loaded into a private network namespace, and a sensor worker broken
by one frame on a replay link. Apart so that the module's pure tests run outside the serial lab
group (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from stockade.firewall.enforce.nft import _set_name, compile_ruleset
from stockade.network.analysis import Inspectors
from tests.network import frames as F
from tests.security.test_network_inputs import CRAWLER, DB, LOOKALIKES, WEB
from tests.support import require_root


@pytest.fixture(scope="module")
def inspectors() -> Inspectors:
    return Inspectors.default()


def test_kernel_holds_what_the_policy_says_for_lookalike_groups(tmp_path: Path) -> None:
    """The compiled ruleset loaded into a private network namespace: each lookalike group's
    kernel set holds that group's address only."""
    require_root("nft", "unshare")
    ruleset = compile_ruleset(LOOKALIKES, [WEB, CRAWLER, DB], {})
    path = tmp_path / "ruleset.nft"
    path.write_text(ruleset)
    listing = subprocess.run(
        ["unshare", "--net", "sh", "-c", f"nft -f {path} && nft -j list sets inet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    kernel = {}
    for item in json.loads(listing)["nftables"]:
        if "set" in item:
            s = item["set"]
            kernel[s["name"]] = {e for e in s.get("elem", []) if isinstance(e, str)}
    for group, member in (("web-app", WEB), ("web.app", CRAWLER), ("db", DB)):
        assert kernel[_set_name(group, 4)] == {member.ip}


def test_a_frame_that_breaks_one_sensor_worker_loses_none_of_the_others_results(
    inspectors: Inspectors, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sensor --workers 2``: a connection whose bytes break one worker's pipeline (a parser
    bug stands in for it: the flow table raises on a marker) stops that worker only. What it saw
    before is reported, the other worker's connections all are, and the kernel hands the broken
    worker's share of later traffic to the survivor; the run names the failure."""
    import threading

    from stockade.identity import Directory as Identities
    from stockade.lab.replay import ReplayLink
    from stockade.network.fanout import run_fanout
    from stockade.network.flows import FlowTable

    require_root()
    real = FlowTable._analyze

    def analyze(self: FlowTable, f: Any) -> None:
        if any(b"\xde\xadHOSTILE" in bytes(s.head) for s in f.streams):
            raise ValueError("parser bug")
        real(self, f)

    monkeypatch.setattr(FlowTable, "_analyze", analyze)

    def flows(first: int, n: int, marker: bytes = b"") -> list[bytes]:
        out = []
        for i in range(first, first + n):
            req = b"GET /%d HTTP/1.1\r\nHost: shop\r\n\r\n%s" % (i, marker)
            pk = F.conversation(
                f"10.9.{i // 250}.{i % 250 + 1}",
                "10.8.0.1",
                30000 + i,
                8080,
                req,
                b"HTTP/1.1 204 No Content\r\n\r\n",
            )
            out += [F.ether(p) for p in pk]
        return out

    ready, done = threading.Event(), threading.Event()
    box: dict[str, Any] = {}
    with ReplayLink(f"h{os.getpid() % 100000}-") as link:

        def capture() -> None:
            box["run"] = run_fanout(
                [link.capture],
                workers=2,
                namespace=link.netns,
                inspectors=inspectors,
                identities=Identities(),
                ready=ready.set,
                stop=done.is_set,
                duration=60,
            )

        t = threading.Thread(target=capture)
        t.start()
        try:
            assert ready.wait(20)
            link.send(flows(0, 100))
            time.sleep(1.0)
            link.send(flows(100, 1, b"\xde\xadHOSTILE"))
            time.sleep(1.0)
            link.send(flows(200, 100))
            time.sleep(1.0)
        finally:
            done.set()
            t.join(60)
    run = box["run"]
    ports = sorted(r.client_port - 30000 for r in run.records)
    assert ports == list(range(100)) + list(range(200, 300))  # each once, the hostile one aside
    assert len(run.stats["failed"]) == 1 and "ValueError: parser bug" in run.stats["failed"][0]
