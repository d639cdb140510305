"""``stockade dlp``: masked output, exit codes, user sensors, protocol detection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parents[1] / "network" / "fixtures" / "protocols"


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    return subprocess.run([sys.executable, "-m", "stockade", "dlp", *args], input=stdin,
                          capture_output=True, timeout=60, env=env)  # fmt: skip


def test_scan_reports_masked_evidence_and_exits_1(tmp_path: Path) -> None:
    f = tmp_path / "body.json"
    f.write_text('{"card": "5555-5555-5555-4444", "note": "order 4111 1111 1111 1112"}')
    out = run("scan", "--json", str(f))
    assert out.returncode == 1, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["sensor"], r["masked"], r["label"]) for r in rows] == [
        ("dlp.payment_card", "5555-****-****-4444", "mastercard")
    ]
    assert b"5555-5555-5555-4444" not in out.stdout + out.stderr


def test_clean_input_exits_0_and_stdin_works() -> None:
    out = run("scan", "-", stdin=b'{"id": 1700000000000, "status": "ok"}')
    assert (out.returncode, out.stdout) == (0, b"")


def test_user_sensors_and_bad_sensor_file(tmp_path: Path) -> None:
    good = tmp_path / "s.yaml"
    good.write_text("sensors:\n  - id: dlp.acme_key\n    pattern: 'ACME-[0-9]{8}'\n")
    data = tmp_path / "d.txt"
    data.write_text("key ACME-12345678\n")
    out = run("scan", "--sensors", str(good), str(data))
    assert out.returncode == 1 and b"dlp.acme_key" in out.stdout and b"12345678" not in out.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("sensors:\n  - id: dlp.x\n    pattern: '(oops'\n")
    out = run("scan", "--sensors", str(bad), str(data))
    assert (
        out.returncode == 2
        and out.stderr.startswith(b"stockade: error:")
        and b"Traceback" not in out.stderr
    )


def test_missing_input_is_exit_3() -> None:
    out = run("scan", "/nonexistent/file")
    assert out.returncode == 3 and b"cannot read" in out.stderr


def test_sensors_list_and_detect() -> None:
    listed = run("sensors").stdout.decode()
    assert all(
        s in listed
        for s in ("dlp.payment_card", "dlp.us_ssn", "dlp.iban", "dlp.email", "dlp.phone")
    )
    got = json.loads(
        run("detect", str(FIXTURES / "tls13_alpn.c2s"), str(FIXTURES / "tls13_alpn.s2c")).stdout
    )
    assert got["protocol"] == "proto.tls" and got["details"]["tls.sni"] == "orders.default.svc"
