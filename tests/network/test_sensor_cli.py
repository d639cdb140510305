"""``stockade sensor`` and ``stockade lab`` from the command line: outputs, exit codes, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.network import frames as F
from tests.support import require

CARD = "5555555555554444"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockade", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )


@pytest.fixture(scope="module")
def card_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    body = json.dumps({"card_number": CARD, "ssn": "536-22-8401"}).encode()
    req = b"POST /pay HTTP/1.1\r\nHost: orders\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    pk = F.conversation(
        "10.0.0.1", "10.0.0.2", 40000, 8080, req, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    )
    path = tmp_path_factory.mktemp("cli") / "card.pcap"
    path.write_bytes(F.pcap([(1700000000 + i / 1000, F.ether(p)) for i, p in enumerate(pk)]))
    return path


def test_json_output_store_and_fail_on(card_pcap: Path, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    out = _cli(
        "sensor",
        "--pcap",
        str(card_pcap),
        "--state",
        "/nonexistent/lab.json",
        "--format",
        "json",
        "--db",
        f"sqlite:///{db}",
        "--fail-on",
        "high",
    )
    assert out.returncode == 2 and "lab state" in out.stderr  # an explicit --state must exist
    out = _cli(
        "sensor",
        "--pcap",
        str(card_pcap),
        "--format",
        "json",
        "--db",
        f"sqlite:///{db}",
        "--fail-on",
        "high",
    )
    assert out.returncode == 1, out.stderr
    (rec,) = [json.loads(x) for x in out.stdout.splitlines()]
    assert rec["protocol"] == "proto.http" and not rec["encrypted"]
    assert {h["sensor"] for h in rec["dlp"]} == {"dlp.payment_card", "dlp.us_ssn"}
    assert rec["client"]["ip"] == "10.0.0.1" and rec["server"]["port"] == 8080
    # two DLP events and the run's network.observed summary
    assert "stored 1 connections and 3 events" in out.stderr
    assert CARD not in out.stdout + out.stderr
    assert CARD.encode() not in b"".join(p.read_bytes() for p in tmp_path.glob("s.db*"))


def test_table_output_exits_clean_without_fail_on(card_pcap: Path) -> None:
    out = _cli("sensor", "--pcap", str(card_pcap))
    assert out.returncode == 0 and "8080" in out.stdout and CARD not in out.stdout
    assert "1 connections" in out.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "too short"),
        (b"GIF89a" + b"\0" * 40, "unknown magic"),
        (F.pcap([(1.0, b"\0" * 20)], linktype=147), "unsupported link type 147"),
    ],
)
def test_bad_capture_files_are_one_line_errors(
    tmp_path: Path, content: bytes, message: str
) -> None:
    p = tmp_path / "bad.pcap"
    p.write_bytes(content)
    out = _cli("sensor", "--pcap", str(p))
    assert out.returncode == 3 and message in out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_missing_file_and_usage_errors(tmp_path: Path, card_pcap: Path) -> None:
    out = _cli("sensor", "--pcap", str(tmp_path / "nope.pcap"))
    assert out.returncode == 3 and "cannot open" in out.stderr
    assert _cli("sensor").returncode == 2
    assert _cli("sensor", "--pcap", str(card_pcap), "--lab").returncode == 2
    assert _cli("sensor", "--pcap", str(card_pcap), "--format", "xml").returncode == 2


def test_lab_status_without_a_lab(tmp_path: Path) -> None:
    out = _cli("lab", "status", "--state", str(tmp_path / "none.json"))
    assert out.returncode == 2 and "no lab state" in out.stderr
    (tmp_path / "bad.json").write_text("[1, 2")
    out = _cli("lab", "status", "--state", str(tmp_path / "bad.json"))
    assert out.returncode == 2 and "cannot read lab state" in out.stderr


def test_lab_state_with_hostile_names_is_rejected(tmp_path: Path) -> None:
    pod = {
        "name": "p",
        "namespace": "n",
        "netns": "--help",
        "host_if": "vh-p",
        "ipv4": "10.0.0.1",
        "ipv6": "fd00::1",
    }
    state = {"prefix": "x-", "node_netns": "x-node", "pods": [pod], "state_dir": "/tmp/x"}
    (tmp_path / "lab.json").write_text(json.dumps(state))
    out = _cli("lab", "status", "--state", str(tmp_path / "lab.json"))
    assert out.returncode == 2 and "bad interface or namespace" in out.stderr


def test_pcap_is_read_by_one_process(card_pcap: Path) -> None:
    out = _cli("sensor", "--pcap", str(card_pcap), "--workers", "2", "--no-store")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "stockade: error: --pcap is read by one process: --workers is for live capture"
    )
    out = _cli(
        "sensor", "--pcap", str(card_pcap), "--workers", "1", "--no-store", "--format", "json"
    )
    assert out.returncode == 0 and CARD not in out.stdout


def test_a_quic_flow_is_quic_and_encrypted_as_tshark_reads_it(tmp_path: Path) -> None:
    from tests.network.test_proto_detect import DCID, SCID, _quic_long

    initial = _quic_long(0xC3, 1, DCID, SCID, 1200)
    answer = _quic_long(0xC3, 1, b"\x0a\x0b\x0c\x0d", DCID, 1200)
    frames = [
        F.ipv4("10.0.0.1", "10.0.0.2", 17, F.udp(51000, 443, initial)),
        F.ipv4("10.0.0.2", "10.0.0.1", 17, F.udp(443, 51000, answer)),
    ]
    path = tmp_path / "quic.pcap"
    path.write_bytes(F.pcap([(1700000000 + i / 10, F.ether(p)) for i, p in enumerate(frames)]))
    out = _cli("sensor", "--pcap", str(path), "--format", "json", "--no-store")
    assert out.returncode == 0, out.stderr
    (rec,) = [json.loads(x) for x in out.stdout.splitlines()]
    assert (rec["protocol"], rec["encrypted"]) == ("proto.quic", True), rec
    assert rec["client"]["ip"] == "10.0.0.1" and rec["server"]["port"] == 443
    require(shutil.which("tshark") is not None, "tshark")  # the reference: both are QUIC
    seen = subprocess.run(
        ["tshark", "-r", str(path), "-Y", "quic.long.packet_type", "-T", "fields",
         "-e", "quic.version"],
        capture_output=True, text=True, timeout=60,
    ).stdout.split()  # fmt: skip
    assert seen == ["0x00000001", "0x00000001"], seen
