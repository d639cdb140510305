"""The ``sensor --pcap`` benchmark's capture (``stockade.lab.http_capture``) through the whole
sensor: every connection found, HTTP detected, and exactly the planted cards and SSNs reported,
in the direction they were sent; and the JSON the sensor prints for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from stockade.identity import Directory
from stockade.lab.http_capture import CARDS, SSNS, write_http_capture
from stockade.network.analysis import Inspectors
from stockade.network.sensor import run_pcap

FLOWS = 240


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory):
    return write_http_capture(tmp_path_factory.mktemp("bench") / "http.pcap", flows=FLOWS)


def test_every_flow_and_exactly_the_planted_findings(capture) -> None:
    run = run_pcap(capture.path, inspectors=Inspectors.default(), identities=Directory())
    assert run.stats["decode"]["frames"] == capture.frames
    assert run.stats["decode"]["malformed"] == 0
    assert len(run.records) == FLOWS
    planted = {(p.client_ip, p.client_port): p for p in capture.planted}
    assert sum(p.card_in_request for p in planted.values()) == 34  # every 7th of 240
    assert sum(p.ssn_in_response for p in planted.values()) == 22  # every 11th
    for rec in run.records:
        p = planted.pop((rec.client_ip, rec.client_port))
        assert (rec.protocol, rec.state, rec.gaps, rec.server_port) == (
            "proto.http",
            "closed",
            0,
            8080,
        )
        found = sorted({(h.direction, h.match.sensor) for h in rec.hits})
        expected = [("client", "dlp.payment_card")] * p.card_in_request + [
            ("server", "dlp.us_ssn")
        ] * p.ssn_in_response
        assert found == expected, (p, rec.hits)
    assert not planted


def test_sensor_cli_json_lines_are_masked(capture) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "stockade", "sensor", "--pcap", str(capture.path),
         "--format", "json", "--no-store", "--fail-on", "high"],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == FLOWS
    hits = [h for line in lines for h in line["dlp"]]
    assert {h["sensor"] for h in hits} == {"dlp.payment_card", "dlp.us_ssn"}
    for secret in (*CARDS, *SSNS):
        assert secret not in out.stdout
        assert secret.replace(" ", "").replace("-", "") not in out.stdout
    assert f"{FLOWS} connections" in out.stderr
