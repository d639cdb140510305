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
    assert "scan --fail-on medium: build would FAIL (exit 1)" in out.stdout
    for name in ("sample.cdx.json", "sample.sarif", "pci-dss.html", "webhook.yaml", "stockade.db"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert "CVE-2024-35195" in (tmp_path / "sample.sarif").read_text()
