"""The common connection decided in C (pcapfast.c ``common``, fastpcap.py ``_common``) against
the replay of every event (``STOCKADE_SENSOR_FASTPATH=replay``) and the pure-Python path
(``=0``): the same records, statistics and command output on HTTP conversations built to sit on
either side of each test the C code makes (request and status lines, targets, Host fields,
upgrades, who speaks first, DLP findings, a letter at the end), cut into segments, out of order,
with holes, truncated frames, and with the bytes waiting flows may hold made tiny."""

from __future__ import annotations

import dataclasses
import itertools
import random
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from stockade.identity import Directory
from stockade.model.errors import PacketError
from stockade.network.capture import fastpcap
from stockade.network.flows import FlowConfig
from stockade.network.sensor import run_pcap
from tests.network import frames as fr
from tests.network.sensor_runs import sensor_pcap

MODES = ("0", "replay", "1")
CARD, SSN = "4111111111111111", "536-22-8401"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


def _requests() -> list[tuple[bytes, bytes]]:
    """(request, response) pairs: most are common connections, each of the others fails one
    test of pcapfast.c's ``common`` or ``http_common``."""
    get = b"GET /api/orders?page=2&limit=50 HTTP/1.1\r\nHost: shop.internal:8080\r\n\r\n"
    post = (b"POST /checkout;jsessionid=1#frag HTTP/1.0\r\nHost: shop\r\nContent-Length: 2\r\n"
            b"\r\n{}")  # fmt: skip
    cases = [
        (get, OK),
        (post, b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n"),
        (b"DELETE /x HTTP/1.1\r\n  HOST \t :  spaced.example \t \r\n\r\n", OK),
        (b"PUT /y HTTP/1.1\r\nHost: first\r\nhost: second\r\n\r\n", OK),
        (b"GET /z HTTP/1.1\r\nHost:\r\n\r\n", OK),  # an empty host: no detail
        (b"GET /z HTTP/1.1\r\nX-A: b\r\n\r\nHost: in-the-body\r\n", OK),
        (b"GET /z HTTP/1.1\nHost: lf-only\n\n", b"HTTP/1.1 200 OK\n\n"),
        (b"GET /z HTTP/1.1\r\r\nHost: crs\r\n\r\r\n", OK),
        (b"PATCH /\xe9t\xe9 HTTP/1.1\r\nHost: caf\xe9\r\n\r\n", OK),  # latin-1
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200"),  # a status line that ends
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200\n"),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200\r\n\r\n"),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 999 Odd\r\n\r\n"),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/2.0 200 OK\r\n\r\n"),
        (
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        ),
        (b"GET / HTTP/1.1\r\nUpGrAdE: TLS/1.2\r\n\r\n", OK),
        (
            b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
        ),
        (b"GET http://proxy.example/p?q=1 HTTP/1.1\r\nHost: proxy.example\r\n\r\n", OK),
        (b"CONNECT db.example:5432 HTTP/1.1\r\nHost: db.example:5432\r\n\r\n", OK),
        (b"get / HTTP/1.1\r\nHost: a\r\n\r\n", OK),
        (b"FETCH / HTTP/1.1\r\nHost: a\r\n\r\n", OK),
        (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", OK),
        (b"GET /" + b"x" * 600 + b" HTTP/1.1\r\nHost: long\r\n\r\n", OK),
        (b"GET / HTTP/1.1\r\nX-Pad: " + b"p" * 4100 + b"\r\nHost: late\r\n\r\n", OK),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\nplain"),  # ends alnum
        (b"POST /pay HTTP/1.1\r\nHost: a\r\n\r\ncard=" + CARD.encode() + b"&x=1\r\n", OK),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b'HTTP/1.1 200 OK\r\n\r\n{"ssn": "%s"}' % SSN.encode(),
        ),
        (b"GET /pay/" + CARD.encode() + b" HTTP/1.1\r\nHost: a\r\n\r\n", OK),
        (b"GET /p/" + SSN.encode() + b"/ HTTP/1.1\r\nHost: " + CARD.encode() + b"\r\n\r\n", OK),
        (b"POST /f HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\na=b\r\n", OK),
        (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", OK),
        (b"GET /s?q=a+b HTTP/1.1\r\nHost: a\r\n\r\n", OK),  # the query trigger
        (b"GET / HTTP/1.1\r\nHost: mail@example.com\r\n\r\n", OK),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", OK),
        (b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00", OK),
        (b"SSH-2.0-OpenSSH_9.6\r\n", b"SSH-2.0-OpenSSH_9.6\r\n"),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"\x16\x03\x03\x00\x04\x02\x00\x00\x00"),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b""),  # the server says nothing
    ]
    return cases


def _segments(rng: random.Random, data: bytes, how: str) -> list[tuple[int, bytes]]:
    """(offset, bytes) pieces of ``data``: whole, cut in order, or cut and shuffled (every byte
    still sent: out of order, never a hole)."""
    if how == "whole" or len(data) < 2:
        return [(0, data)] if data else []
    cuts = sorted({0, len(data), *rng.sample(range(1, len(data)), min(6, len(data) - 1))})
    pieces = [(a, data[a:b]) for a, b in itertools.pairwise(cuts)]
    if how == "shuffled":
        first, rest = pieces[0], pieces[1:]
        rng.shuffle(rest)
        pieces = [*rest, first] if rng.random() < 0.5 else [first, *rest]
    return pieces


def _conversation(rng: random.Random, n: int, req: bytes, resp: bytes, how: str,
                  *, server_first: bool = False, hole: bool = False) -> list[bytes]:  # fmt: skip
    client, server = f"10.5.{n // 200}.{n % 200 + 1}", "10.5.250.1"
    cport, sport = 20000 + n, 8080
    c, s = rng.randrange(1 << 32), rng.randrange(1 << 32)
    m = 0xFFFFFFFF
    out = [
        fr.ipv4(client, server, 6, fr.tcp(cport, sport, c, 0, fr.SYN)),
        fr.ipv4(server, client, 6, fr.tcp(sport, cport, s, (c + 1) & m, fr.SYN | fr.ACK)),
        fr.ipv4(client, server, 6, fr.tcp(cport, sport, (c + 1) & m, (s + 1) & m, fr.ACK)),
    ]
    sent_c = [fr.ipv4(client, server, 6, fr.tcp(cport, sport, (c + 1 + a) & m, (s + 1) & m,
                                                 fr.ACK | fr.PSH, p))
              for a, p in _segments(rng, req, how)]  # fmt: skip
    if hole and len(sent_c) > 1:
        del sent_c[len(sent_c) // 2]
    sent_s = [fr.ipv4(server, client, 6, fr.tcp(sport, cport, (s + 1 + a) & m,
                                                 (c + 1 + len(req)) & m, fr.ACK | fr.PSH, p))
              for a, p in _segments(rng, resp, how)]  # fmt: skip
    out += (sent_s + sent_c) if server_first else (sent_c + sent_s)
    out.append(fr.ipv4(client, server, 6, fr.tcp(cport, sport, (c + 1 + len(req)) & m,
                                                 (s + 1 + len(resp)) & m, fr.ACK | fr.FIN)))  # fmt: skip
    out.append(fr.ipv4(server, client, 6, fr.tcp(sport, cport, (s + 1 + len(resp)) & m,
                                                 (c + 2 + len(req)) & m, fr.ACK | fr.FIN)))  # fmt: skip
    return out


def _capture(seed: int, how: str) -> bytes:
    """Every case (twice: once opened by the client, once by the server, some with a hole),
    interleaved, a few frames cut short."""
    rng = random.Random(seed)
    convs = []
    for i, (req, resp) in enumerate(_requests() * 2):
        server_first = i >= len(_requests()) and i % 3 == 0
        convs.append(_conversation(rng, i, req, resp, how, server_first=server_first,
                                   hole=how != "whole" and i % 5 == 1))  # fmt: skip
    packets = []
    while any(convs):
        conv = rng.choice([c for c in convs if c])
        packets.append(conv.pop(0))
    ts, frames = 1_780_000_000.0, []
    for p in packets:
        ts += rng.choice([0.0001, 0.002, 0.05])
        frames.append((ts, fr.ether(p)))
    data = fr.pcap(frames)
    if how != "whole":
        data = _cut_frames(data, rng)
    return data


def _cut_frames(data: bytes, rng: random.Random) -> bytes:
    """Some records' captured length made shorter than the frame (as a snap length does)."""
    out, pos = bytearray(data[:24]), 24
    while pos + 16 <= len(data):
        sec, usec, caplen, wire = struct.unpack_from("<IIII", data, pos)
        body = data[pos + 16 : pos + 16 + caplen]
        if caplen > 70 and rng.random() < 0.05:
            body = body[: rng.randrange(20, caplen)]
        out += struct.pack("<IIII", sec, usec, len(body), wire) + body
        pos += 16 + caplen
    return bytes(out)


def _outcome(path: Path, inspectors: Any, mode: str, monkeypatch: pytest.MonkeyPatch,
             config: FlowConfig | None = None) -> tuple[Any, ...]:  # fmt: skip
    monkeypatch.setenv("STOCKADE_SENSOR_FASTPATH", mode)
    records: list[Any] = []
    try:
        run = run_pcap(path, inspectors=inspectors, identities=Directory(), config=config,
                       on_record=records.append, keep=False)  # fmt: skip
        end: Any = run.stats
    except PacketError as exc:
        end = ("error", str(exc))
    return [dataclasses.replace(r, id=r.id.rsplit("-", 1)[1]) for r in records], end


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("common")
    out = {}
    for seed, how in enumerate(("whole", "cut", "shuffled", "shuffled")):
        out[f"{how}{seed}"] = d / f"{how}{seed}.pcap"
        out[f"{how}{seed}"].write_bytes(_capture(seed, how))
    return out


@pytest.fixture
def commons(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The client ports of the connections fastpcap._common built (the real function, watched)."""
    seen: list[int] = []
    real = fastpcap._common

    def watched(table: Any, f: Any, data: bytes, at: int) -> None:
        real(table, f, data, at)
        seen.append(f.client[1])

    monkeypatch.setattr(fastpcap, "_common", watched)
    return seen


@pytest.mark.parametrize("config", [None, FlowConfig(stream_depth=1024, memcap=3000, max_flows=9)])
def test_the_common_connection_gives_the_replays_records(
    captures, inspectors, monkeypatch, commons, config
) -> None:
    total = 0
    for name, path in captures.items():
        outs = {mode: _outcome(path, inspectors, mode, monkeypatch, config) for mode in MODES}
        assert outs["1"][1] == outs["0"][1] == outs["replay"][1], name
        assert outs["1"][0] == outs["0"][0], name
        assert outs["replay"][0] == outs["0"][0], name
        total += len(outs["0"][0])
    # both sides of the cut are reached: connections decided in C and connections replayed
    assert (30 if config is None else 5) < len(commons) < total - 100, (len(commons), total)


def test_only_clear_http_is_decided_in_c(captures, inspectors, monkeypatch, commons) -> None:
    """Every connection decided in C is, on the Python path, clear HTTP/1.x without a hole, TLS
    or an upgrade; the plain cases are decided in C, and so are those with findings (their
    directions fed to DLP in Python), with the same findings."""
    ref = {r.client_port: r for r in _outcome(captures["whole0"], inspectors, "0", monkeypatch)[0]}
    _outcome(captures["whole0"], inspectors, "1", monkeypatch)
    assert commons
    for port in commons:
        r = ref[port]
        assert r.protocol == "proto.http" and not r.encrypted and r.upgrade is None, r
        assert not r.gaps and r.tls is None, r
    assert {20000 + i for i in range(10)} <= set(commons)  # the first ten cases are plain
    cases = [req + resp for req, resp in _requests()]
    planted = [i for i, c in enumerate(cases) if CARD.encode() in c or SSN.encode() in c]
    assert len(planted) == 4 and {20000 + i for i in planted} <= set(commons)
    assert all(ref[20000 + i].hits for i in planted)
    outside = (13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 34, 35, 36, 37, 38)  # see _requests
    assert not {20000 + i for i in outside} & set(commons)


def test_a_tiny_cap_on_waiting_bytes_replays_alike(
    captures, inspectors, monkeypatch, commons
) -> None:
    """Past the bytes waiting flows may hold, a flow is replayed at once: the same records."""
    monkeypatch.setattr(fastpcap, "DEFER_CAP", 6000)
    for path in captures.values():
        a = _outcome(path, inspectors, "1", monkeypatch)
        b = _outcome(path, inspectors, "0", monkeypatch)
        assert a == b
    assert commons  # a few still fit


def test_the_command_masks_and_matches_on_every_path(captures, tmp_path) -> None:
    """The whole command on each path: the same stdout, stderr and exit code, and no planted
    card or SSN in clear anywhere in it (paths, hosts and bodies carry them)."""
    for path in (captures["whole0"], captures["shuffled2"]):
        outs = [sensor_pcap(path, mode) for mode in MODES]
        assert outs[0] == outs[1] == outs[2]
        rc, out, err = outs[2]
        assert rc == 1 and out.count("\n") > 50 and "Traceback" not in err
        assert not re.search(r"4111[ -]?1111[ -]?1111[ -]?1111", out + err)
        assert not re.search(r"536[ -]?22[ -]?8401", out + err)
        assert "dlp.payment_card" in out and "dlp.us_ssn" in out
