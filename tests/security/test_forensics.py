"""Packet captures keep no card number or SSN: masked inside the packets before they are written,
checksums valid for tshark, and counted (docs/forensics.md)."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from stockade.network.forensics import mask_pcap
from tests.network import frames as fr
from tests.support import require

CARD_BODY = "4111111111111111"  # in the JSON body, split across two TCP segments
CARD_HEADER = "5555 5555 5555 4444"  # in an HTTP header
CARD_QUERY = "378282246310005"  # in the request line
SSN_REPLY = "536-22-8401"  # in the server's answer
CARD_UDP = "6011 0009 9013 9424"  # in a syslog datagram
PLANTED = (CARD_BODY, CARD_HEADER, CARD_QUERY, SSN_REPLY, CARD_UDP)
REPLY = json.dumps({"status": "ok", "customer": {"ssn": SSN_REPLY}}).encode()


def _real_exchange() -> tuple[bytes, bytes]:
    """What a real HTTP client sent and a real server answered, over loopback."""
    srv = socket.create_server(("127.0.0.1", 0))
    got: dict[str, bytes] = {}

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", head)[1])  # type: ignore[index]
            while len(body) < length:
                body += conn.recv(65536)
            got["request"] = head + b"\r\n\r\n" + body
            answer = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(REPLY)}\r\n\r\n".encode()
                + REPLY
            )
            got["answer"] = answer
            conn.sendall(answer)

    t = threading.Thread(target=serve)
    t.start()
    client = http.client.HTTPConnection("127.0.0.1", srv.getsockname()[1], timeout=10)
    body = json.dumps({"order": 1001, "card_number": CARD_BODY, "expiry": "12/29"})
    client.request(
        "POST",
        f"/pay?pan={CARD_QUERY}",
        body=body,
        headers={"Content-Type": "application/json", "X-Payment-Card": CARD_HEADER},
    )
    assert client.getresponse().read() == REPLY
    client.close()
    t.join(10)
    srv.close()
    return got["request"], got["answer"]


def _conversation(
    request: bytes, answer: bytes, v6: bool = False, *, late: float = 0.0, swap: bool = False
) -> list[tuple[float, bytes]]:
    """The exchange as packets: the body's card cut in the middle between two segments, the
    first half retransmitted, then the answer and a clean close. ``late``: seconds before the
    second half comes; ``swap``: the second half arrives before the first."""
    a, b = ("fd00::1", "fd00::2") if v6 else ("10.1.0.1", "10.1.0.2")
    ip = fr.ipv6 if v6 else fr.ipv4
    cp, sp, cs, ss = 40000 + v6, 8080, 1000, 5000
    cut = request.index(CARD_BODY.encode()) + 7
    out: list[tuple[float, bytes]] = []
    t = 1700000000.0 + 10 * v6

    def pkt(frm_client: bool, seq: int, ack: int, flags: int, payload: bytes = b"") -> None:
        nonlocal t
        t += 0.001
        src, dst = (a, b) if frm_client else (b, a)
        sport, dport = (cp, sp) if frm_client else (sp, cp)
        l4 = fr.tcp(sport, dport, seq, ack, flags, payload)
        out.append((t, fr.ether(ip(src, dst, 6, l4))))

    pkt(True, cs, 0, fr.SYN)
    pkt(False, ss, cs + 1, fr.SYN | fr.ACK)
    pkt(True, cs + 1, ss + 1, fr.ACK)
    pkt(True, cs + 1, ss + 1, fr.ACK | fr.PSH, request[:cut])
    pkt(True, cs + 1, ss + 1, fr.ACK | fr.PSH, request[:cut])  # retransmitted
    t += late
    pkt(True, cs + 1 + cut, ss + 1, fr.ACK | fr.PSH, request[cut:])
    if swap:
        out[3], out[5] = out[5], out[3]
    end_c = cs + 1 + len(request)
    pkt(False, ss + 1, end_c, fr.ACK | fr.PSH, answer)
    end_s = ss + 1 + len(answer)
    pkt(True, end_c, end_s, fr.ACK | fr.FIN)
    pkt(False, end_s, end_c + 1, fr.ACK | fr.FIN)
    pkt(True, end_c + 1, end_s + 1, fr.ACK)
    return out


def _syslog() -> tuple[float, bytes]:
    line = f"<134>1 2024-01-01T00:00:00Z web app - - - charged card {CARD_UDP} ok".encode()
    datagram = fr.udp(5514, 514, line)
    datagram = datagram[:6] + b"\xbe\xef" + datagram[8:]  # a wrong checksum, to be fixed
    return 1700000100.0, fr.ether(fr.ipv4("10.1.0.1", "10.1.0.9", 17, datagram))


def _forms(number: str) -> set[bytes]:
    digits = re.sub(r"\D", "", number)
    groups = [digits[i : i + 4] for i in range(0, len(digits), 4)]
    return {number.encode(), digits.encode(), " ".join(groups).encode(), "-".join(groups).encode()}


def _tshark(*args: str) -> str:
    out = subprocess.run(
        ["tshark", "-n", *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _assert_clean(path: Path, packets: int) -> None:
    """No planted number in the file in any form, nor in tshark's reassembled streams; every
    checksum valid; mode 0600."""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = path.read_bytes()
    digits_only = re.sub(rb"[^0-9]", b"", data)
    for number in PLANTED:
        for form in _forms(number):
            assert form not in data, number
        assert re.sub(r"\D", "", number).encode() not in digits_only or len(number) < 12
    if shutil.which("tshark") is None:
        require(False, "tshark is not installed")
    checks = ("-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
              "-o", "udp.check_checksum:TRUE")  # fmt: skip
    listing = _tshark("-r", str(path), *checks)
    assert len(listing.splitlines()) == packets
    bad = _tshark("-r", str(path), *checks, "-Y",
                  "ip.checksum.status == 0 || tcp.checksum.status == 0 || udp.checksum.status == 0 "
                  "|| _ws.expert.severity >= error")  # fmt: skip
    assert bad == "", bad
    good = _tshark("-r", str(path), *checks, "-T", "fields", "-e", "tcp.checksum.status",
                   "-e", "udp.checksum.status")  # fmt: skip
    assert set(good.split()) == {"1"}
    streams = _tshark("-r", str(path), "-q", "-z", "follow,tcp,ascii,0")
    streams += _tshark("-r", str(path), "-q", "-z", "follow,tcp,ascii,1")
    flat = re.sub(r"\s+", "", streams)
    for number in PLANTED:
        assert re.sub(r"\D", "", number) not in re.sub(r"\D", "", flat.replace("*", "x"))


@pytest.fixture(scope="module")
def exchange() -> tuple[bytes, bytes]:
    return _real_exchange()


def test_offline_capture_is_masked_inside_packets_and_valid(
    exchange: tuple[bytes, bytes], tmp_path: Path
) -> None:
    request, answer = exchange
    assert CARD_HEADER.encode() in request and CARD_BODY.encode() in request
    frames = _conversation(request, answer) + _conversation(request, answer, v6=True)
    frames.append(_syslog())
    raw = tmp_path / "in.pcap"
    raw.write_bytes(fr.pcap(frames))
    out = tmp_path / "masked.pcap"
    report = mask_pcap(raw, out)

    assert report.packets == len(frames) == 21
    _assert_clean(out, len(frames))
    # per connection: body card, header card, query card, the answer's SSN (the DLP engine finds
    # them all, so the gate adds nothing of its own); one card in the datagram. The retransmitted
    # half gets the same masks, so nothing is left for the conservative rule.
    assert report.masked == {"dlp.payment_card": 2 * 3 + 1, "dlp.us_ssn": 2}
    assert report.conservative == 0
    assert report.packets_masked == 2 * 4 + 1  # both halves, the retransmission, the answer
    assert report.checksums_fixed == len(frames)  # the builder writes zero checksums
    masked_text = out.read_bytes()
    # what stays: the edges PCI DSS 3.4 lets show, separators, and lengths
    # the card cut after 7 digits: masked in both segments, and in the retransmitted copy
    assert masked_text.count(b'"card_number": "4111***') == 2 * 2
    assert masked_text.count(b'*****1111", "expiry"') == 2
    assert b"X-Payment-Card: 5555 **** **** 4444" in masked_text
    assert b"***-**-8401" in masked_text
    assert len(masked_text) == len(raw.read_bytes())


def test_split_card_out_of_order_is_masked_in_both_segments(
    exchange: tuple[bytes, bytes], tmp_path: Path
) -> None:
    raw, out = tmp_path / "in.pcap", tmp_path / "out.pcap"
    frames = _conversation(*exchange, swap=True)
    raw.write_bytes(fr.pcap(frames))
    report = mask_pcap(raw, out)
    assert report.masked == {"dlp.payment_card": 3, "dlp.us_ssn": 1}
    assert report.conservative == 0
    _assert_clean(out, len(frames))


def test_held_too_long_is_masked_conservatively(
    exchange: tuple[bytes, bytes], tmp_path: Path
) -> None:
    """The second half of the card comes 5 s later: the first half cannot wait for a verdict,
    so every digit of the run that touches its end is masked."""
    raw, out = tmp_path / "in.pcap", tmp_path / "out.pcap"
    frames = _conversation(*exchange, late=5.0)
    raw.write_bytes(fr.pcap(frames))
    report = mask_pcap(raw, out)
    assert report.conservative >= 2  # the first half and its retransmission
    assert report.masked == {"dlp.payment_card": 3, "dlp.us_ssn": 1}
    assert b'"card_number": "*******' in out.read_bytes()
    _assert_clean(out, len(frames))


def test_cli_masks_an_existing_capture(exchange: tuple[bytes, bytes], tmp_path: Path) -> None:
    raw = tmp_path / "in.pcap"
    raw.write_bytes(fr.pcap(_conversation(*exchange)))
    out = tmp_path / "out.pcap"
    run = subprocess.run(
        [sys.executable, "-m", "stockade", "capture", "--pcap", str(raw), "-o", str(out),
         "--filter", "tcp port 8080"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 10 and "TCP 10.1.0.1:40000 > 10.1.0.2:8080 payload=0" in lines[0]
    assert not [line for line in lines if "*" in line]  # nothing the output gate must hide
    assert sum("[masked]" in line for line in lines) == 4
    assert "masked: dlp.payment_card 3, dlp.us_ssn 1" in run.stderr
    assert "filter in user space" in run.stderr
    for number in PLANTED:
        assert not any(f in (run.stdout + run.stderr).encode() for f in _forms(number))
    _assert_clean(out, 10)


def test_hostile_input_gets_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\x00" * 40)
    for args, code in (
        (["--pcap", str(bad), "-o", str(tmp_path / "o.pcap")], 3),
        (["--pcap", str(bad), "-o", str(tmp_path / "o.pcap"), "--max-bytes", "ten"], 2),
        (["--pcap", str(bad), "-o", str(bad)], 2),
        (["--pcap", str(bad), "-o", str(tmp_path / "o.pcap"), "--filter", "tcp port"], 2),
        (["--pcap", str(bad), "pod"], 2),
    ):
        run = subprocess.run(
            [sys.executable, "-m", "stockade", "capture", *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert run.returncode == code, (args, run.stderr)
        assert run.stderr.startswith("stockade: error: ") and run.stderr.count("\n") == 1, (
            run.stderr
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pcap"]  # no output, no temporary


def test_an_upload_is_masked_in_memory_exactly_as_a_file_is(
    exchange: tuple[bytes, bytes], tmp_path: Path
) -> None:
    """The controller masks agents' uploads with ``mask_pcap_bytes``: no file, same bytes."""
    from stockade.network.forensics import mask_pcap_bytes

    request, answer = exchange
    raw = fr.pcap([*_conversation(request, answer), _syslog()])
    (tmp_path / "in.pcap").write_bytes(raw)
    on_disk = mask_pcap(tmp_path / "in.pcap", tmp_path / "out.pcap")
    masked, report = mask_pcap_bytes(raw)
    assert masked == (tmp_path / "out.pcap").read_bytes()
    assert report.masked == on_disk.masked and report.total_masked > 0
    for number in PLANTED:
        for form in _forms(number):
            assert form not in masked
    # masking what is masked already finds nothing more: an agent's upload is not counted twice
    again, second = mask_pcap_bytes(masked)
    assert again == masked and second.total_masked == 0


def test_cards_in_json_escapes_and_with_no_break_spaces_are_masked_in_place(
    tmp_path: Path,
) -> None:
    """A syslog datagram quoting a JSON body: a card written in JSON escapes (``\\u0034``, each
    escape of a middle digit hidden whole), one grouped with UTF-8 no-break spaces and a
    Maestro 56 card with points. Nothing of them is left, once the escapes are undone."""
    escaped = "".join(f"\\u{ord(c):04x}" for c in "4012888888881881")
    nbsp = "5105\u00a01051\u00a00510\u00a05100"
    maestro = "5641.8200.0000.0005"
    line = f'<134>1 - web app - - - {{"a": "{escaped}", "b": "{nbsp}", "c": "{maestro}"}}'
    datagram = fr.udp(5514, 514, line.encode())
    frame = fr.ether(fr.ipv4("10.1.0.1", "10.1.0.9", 17, datagram))
    raw, out = tmp_path / "in.pcap", tmp_path / "out.pcap"
    raw.write_bytes(fr.pcap([(1700000200.0, frame)]))
    mask_pcap(raw, out)
    data = out.read_bytes()
    plain = re.sub(rb"\\u00([0-9a-f]{2})", lambda m: bytes([int(m[1], 16)]), data)
    digits = re.sub(rb"[^0-9*]", b"", plain)
    for number in ("4012888888881881", "5105105105105100", "5641820000000005"):
        assert number.encode() not in digits, number
    assert len(data) == len(raw.read_bytes())
