"""A live capture of a lab pod keeps no card number or SSN (the lab test of ``test_forensics``,
apart so that the module's offline tests run outside the serial lab group: tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.security.test_forensics import _assert_clean, _forms
from tests.support import require_root


@pytest.mark.root
def test_live_capture_of_a_lab_pod_is_masked(tmp_path: Path) -> None:
    """Capture the orders pod while the lab posts cards to it (run under the lab flock)."""
    require_root("ip", "tshark")
    from stockade.lab import manager
    from stockade.lab.client import CARDS, SSNS

    prefix = f"fz{os.getpid() % 100000}-"
    state = tmp_path / "lab.json"
    try:
        inv = manager.up(prefix, state, databases_on=False)
        out = tmp_path / "orders.pcap"
        cap = subprocess.Popen(
            [sys.executable, "-m", "stockade", "capture", "orders", "--lab-state", str(state),
             "--duration", "8s", "--max-bytes", "5MB", "--filter", "tcp port 8080",
             "-o", str(out), "--quiet", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(2)
        results = manager.traffic(inv, 3, only={"card-http", "pii-to-world"})
        assert all(r.ok for r in results), results
        stdout, stderr = cap.communicate(timeout=60)
        assert cap.returncode == 0, stderr
        report = json.loads(stdout)
    finally:
        manager.down(prefix, state)
    assert report["filter_where"] == "kernel" and report["stopped"] == "duration"
    assert report["masked"].get("dlp.payment_card", 0) >= 3
    data = out.read_bytes()
    assert b"POST" in data  # the capture holds the traffic
    for number in (*CARDS, *SSNS):
        for form in _forms(number):
            assert form not in data, number
    # the filter kept the world pod's traffic (port 80) out
    assert b"/collect" not in data
    _assert_clean(out, report["packets"])
