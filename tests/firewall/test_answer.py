"""The 403 answer's packets, checked by an independent decoder (tshark validates the checksums)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import struct
import subprocess
from pathlib import Path

from stockade.firewall.enforce.answer import Answer, http_403, packets
from tests.support import require

ANSWER = Answer(
    client="10.77.0.10",
    client_port=40000,
    server="10.77.0.11",
    server_port=8080,
    request_seq=1001,
    request_end=1101,
    response_seq=5001,
    event="dlp.blocked",
    reason="dlp.payment_card in clear: 4111 **** **** 1111",
)


def _pcap(path: Path, frames: list[bytes]) -> None:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)]  # LINKTYPE_RAW
    for i, frame in enumerate(frames):
        out.append(struct.pack("<IIII", i, 0, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))


def _tshark(path: Path) -> list[dict]:
    proc = subprocess.run(
        ["tshark", "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-o",
         "ip.check_checksum:TRUE", "-o", "ipv6.use_geoip:FALSE", "-T", "json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return [p["_source"]["layers"] for p in json.loads(proc.stdout)]


def test_the_403_and_the_reset_are_well_formed_for_ipv4_and_ipv6(tmp_path: Path) -> None:
    require(shutil.which("tshark") is not None, "tshark is not installed")
    v6 = dataclasses.replace(ANSWER, client="fd77::a", server="fd77::b")
    frames = [pkt for a in (ANSWER, v6) for _, pkt in packets(a)]
    _pcap(tmp_path / "answer.pcap", frames)
    decoded = _tshark(tmp_path / "answer.pcap")
    assert len(decoded) == 4
    for layers in decoded:
        tcp = layers["tcp"]
        assert tcp["tcp.checksum.status"] == "1"  # "Good" (verified)
        if "ip" in layers:
            assert layers["ip"]["ip.checksum.status"] == "1"
    to_client, to_server = decoded[0], decoded[1]
    assert to_client["tcp"]["tcp.srcport"] == "8080" and to_client["tcp"]["tcp.seq_raw"] == "5001"
    assert to_client["tcp"]["tcp.ack_raw"] == "1101" and to_client["tcp"]["tcp.flags_tree"][
        "tcp.flags.fin"
    ] in ("1", "True")
    assert "403" in json.dumps(to_client.get("http", {}))
    assert to_server["tcp"]["tcp.seq_raw"] == "1001"
    assert to_server["tcp"]["tcp.flags_tree"]["tcp.flags.reset"] in ("1", "True")


def test_the_403_body_says_why_with_masked_evidence_only() -> None:
    text = http_403(ANSWER.event, ANSWER.reason).decode()
    head, _, body = text.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 403 Forbidden\r\n") and "Connection: close" in head
    assert f"Content-Length: {len(body.encode())}" in head
    assert "4111 **** **** 1111" in body and "X-Stockade-Event: dlp.blocked" in head
