"""Virtual patching on real traffic: exploit requests from a lab pod to the shop's HTTP service,
clear and obfuscated, are answered 403 by the enforcer in Protect and only alerted in Monitor; the
benign mix passes and raises nothing. The figures are printed with the test output."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from stockade.network.waf import WafEngine
from stockade.store import open_store
from stockade.store.records import list_events
from tests.firewall.conftest import EXAMPLES
from tests.network.waf_corpus import BENIGN, EXPLOITS

pytestmark = [pytest.mark.root, pytest.mark.slow]

# Sends each request on its own connection and prints the status code of each answer ("000" when
# there is none: reset or timeout). Raw bytes, so nothing normalises "../" or the encodings.
CLIENT = r"""
import json, socket, sys
out = []
for raw in json.load(open(sys.argv[1])):
    code = "000"
    try:
        s = socket.create_connection(("10.77.0.11", 8080), timeout=3)
        s.sendall(bytes.fromhex(raw))
        head = b""
        while b"\r\n" not in head:
            part = s.recv(4096)
            if not part:
                break
            head += part
        if head.startswith(b"HTTP/1."):
            code = head.split(b" ")[1].decode()
        s.close()
    except OSError:
        pass
    out.append(code)
print(json.dumps(out))
"""


def policy(lab, mode: str):
    text = (EXAMPLES / "policy.yaml").read_text()
    text = text.replace(
        "        - {sensor: dlp.us_ssn, action: alert}\n",
        "        - {sensor: dlp.us_ssn, action: alert}\n      waf: builtin\n",
        1,
    ).replace("mode: protect", f"mode: {mode}", 1)
    path = lab.tmp / f"waf-{mode}.yaml"
    path.write_text(text)
    lab.apply(path)


def send(lab, requests: list[bytes], name: str) -> list[str]:
    batch = lab.tmp / f"{name}.json"
    batch.write_text(json.dumps([r.hex() for r in requests]))
    proc = subprocess.run(
        ["ip", "netns", "exec", lab.ns("payments"), "python3", "-c", CLIENT, str(batch)],
        capture_output=True,
        text=True,
        timeout=30 + 4 * len(requests),
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def waf_events(lab, kind: str, expected: int) -> list:
    deadline = time.monotonic() + 10
    while True:
        found = list_events(open_store(lab.db), kind=kind, limit=10_000)
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_protect_blocks_exploits_with_403_and_benign_traffic_passes(lab, enforcer, capsys) -> None:
    policy(lab, "protect")
    enforcer()
    benign = send(lab, BENIGN, "benign")
    false_positives = [r[:70] for r, code in zip(BENIGN, benign, strict=True) if code != "200"]
    assert list_events(open_store(lab.db), kind="waf.*") == []
    codes = send(lab, [r for _, r in EXPLOITS], "exploits")
    blocked = codes.count("403")
    events = waf_events(lab, "waf.blocked", len(EXPLOITS))
    with capsys.disabled():
        print(
            f"\nWAF lab, Protect: exploits answered 403 {blocked}/{len(EXPLOITS)}, "
            f"waf.blocked events {len(events)}; benign requests not answered 200 "
            f"{len(false_positives)}/{len(BENIGN)}"
        )
    assert false_positives == []
    assert blocked == len(EXPLOITS), [
        r[:70] for (_, r), c in zip(EXPLOITS, codes, strict=True) if c != "403"
    ]
    assert len(events) == len(EXPLOITS)
    sensors = {e.data["sensor"] for e in events}
    assert sensors == {s for s, _ in EXPLOITS}
    log4 = next(e for e in events if e.data["sensor"] == "waf.log4shell")
    assert log4.data["cves"] == ["CVE-2021-44228", "CVE-2021-45046"]
    assert log4.data["action"] == "block" and len(log4.data["evidence"]) <= 64


def test_monitor_alerts_and_lets_exploits_through(lab, enforcer, capsys) -> None:
    policy(lab, "monitor")
    before = len(list_events(open_store(lab.db), kind="waf.detected", limit=10_000))
    enforcer()
    # nothing stops at the first sensor in Monitor: a request that two sensors match (Shellshock
    # running a command) raises two alerts
    engine = WafEngine()  # one: building it compiles every sensor (a fifth of a second each)
    expected = sum(len(engine.scan_request(r)) for _, r in EXPLOITS)
    codes = send(lab, [r for _, r in EXPLOITS], "exploits-monitor")
    events = waf_events(lab, "waf.detected", before + expected)
    alerted = len(events) - before
    with capsys.disabled():
        print(
            f"\nWAF lab, Monitor: exploits passed (200) {codes.count('200')}/{len(EXPLOITS)}, "
            f"waf.detected events {alerted} (expected {expected} for {len(EXPLOITS)} exploits)"
        )
    assert codes == ["200"] * len(EXPLOITS)
    assert alerted == expected
    assert all(e.data["action"] == "alert" for e in events)
