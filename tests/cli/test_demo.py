"""The README's first command: the whole demo runs on embedded defaults."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_demo_without_the_network_part(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "STOCKADE_DB"}
    out = subprocess.run(
        [sys.executable, "-m", "stockade", "demo", "--workdir", str(tmp_path), "--no-network"],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "scan --fail-on medium: incomplete, npm/Go/Java not checked (exit 3)" in out.stdout
    assert "scan --fail-on medium --allow-unchecked: build would FAIL (exit 1)" in out.stdout
    for name in ("sample.cdx.json", "sample.sarif", "pci-dss.html", "webhook.yaml", "stockade.db"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert "CVE-2024-35195" in (tmp_path / "sample.sarif").read_text()


@pytest.mark.root
def test_demo_with_the_lab_sensor_and_firewall(tmp_path) -> None:
    from tests.support import require_root

    require_root("ip", "nft", "iptables", "curl")
    env = {k: v for k, v in os.environ.items() if k != "STOCKADE_DB"}
    out = subprocess.run(
        [sys.executable, "-m", "stockade", "demo", "--workdir", str(tmp_path), "--network"],
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = out.stdout.split("Summary", 1)[1]
    assert "crm -> http://10.77.0.11:8080/: reset" in summary
    assert "payments -> http://10.77.0.11:8080/pay: HTTP 403" in summary  # answered, not passed
    assert "payments -> https://10.77.0.11:8443/pay: HTTP 200" in summary
    sensor = (tmp_path / "sensor.txt").read_text()
    assert (
        "4111" in sensor
        and "4111 1111 1111 1111" not in sensor
        and "4111111111111111" not in sensor
    )
    assert not [
        ns
        for ns in subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True
        ).stdout.split()
        if ns.startswith("demo-")
    ]
