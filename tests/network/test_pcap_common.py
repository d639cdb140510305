"""The common connection decided in C (pcapfast.c ``common``, fastpcap.py ``_common``) against
the replay of every event (``STOCKADE_SENSOR_FASTPATH=replay``) and the pure-Python path
(``=0``): the same records, statistics and command output on HTTP conversations built to sit on
either side of each test the C code makes (request and status lines, targets, Host fields,
upgrades, who speaks first, DLP findings, a letter at the end), cut into segments, out of order,
with holes, truncated frames, and with the bytes waiting flows may hold made tiny. Then the
JSON lines the C code writes for such connections (pcapfast.c ``line``) against the lines of the
Python path's records, byte for byte, on those captures and on ones varied for it (IPv6, odd
ports, a 5-tuple used again, flows cut short, paths and hosts with digits and escapes, times
that round into the next second, identities of workloads)."""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import json
import random
import re
import struct
from pathlib import Path
from typing import Any

import brotli
import pytest
import zstandard

from stockade.identity import Directory
from stockade.model.errors import PacketError
from stockade.network.capture import fastpcap
from stockade.network.flows import FlowConfig
from stockade.network.sensor import run_pcap
from tests.network import frames as fr
from tests.network.sensor_runs import json_lines, sensor_pcap

MODES = ("0", "replay", "1")
CARD, SSN = "4111111111111111", "536-22-8401"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
BOMB = gzip.compress(b"0" * 400_000)
# a card in a brotli response and a zstd request body (decoded as the application reads them)
BROTLI_CARD = brotli.compress(b'{"card": "4111 1111 1111 1111"}')
ZSTD_CARD = zstandard.ZstdCompressor().compress(b"card=4111-1111-1111-1111")


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
        (
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: %d\r\n\r\n"
            % len(BROTLI_CARD)
            + BROTLI_CARD,
        ),
        (
            b"POST /z HTTP/1.1\r\nHost: a\r\nContent-Encoding: zstd\r\nContent-Length: %d\r\n\r\n"
            % len(ZSTD_CARD)
            + ZSTD_CARD,
            OK,
        ),
        # a compression bomb: DLP notes why its decoding stopped (a detail of the record)
        (
            b"POST /bomb HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
            % len(BOMB)
            + BOMB,
            OK,
        ),
        # magnetic-stripe track 1 from a point of sale: the card right after "%B"
        (b"POST /swipe HTTP/1.1\r\nHost: pos\r\n\r\n%B" + CARD.encode() + b"^DOE/J^2512101?", OK),
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
    assert len(planted) == 5 and {20000 + i for i in planted} <= set(commons)
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


# --- the common connection's JSON line written in C (pcapfast.c line(), run_pcap's on_lines)

M = 0xFFFFFFFF


def _http(client: str, server: str, cport: int, sport: int, req: bytes, resp: bytes, *,
          isn: int, end: str = "fin") -> list[bytes]:  # fmt: skip
    """One HTTP exchange as IP packets (IPv6 when the addresses are); ``end``: "fin" (both
    ways), "rst" (the client resets) or "open" (nothing more)."""
    v6 = ":" in client

    def ip(src: str, dst: str, seg: bytes) -> bytes:
        return fr.ipv6(src, dst, 6, seg) if v6 else fr.ipv4(src, dst, 6, seg)

    c, s = isn & M, (isn * 7 + 3) & M
    cseq, sseq = (c + 1 + len(req)) & M, (s + 1 + len(resp)) & M
    out = [
        ip(client, server, fr.tcp(cport, sport, c, 0, fr.SYN)),
        ip(server, client, fr.tcp(sport, cport, s, (c + 1) & M, fr.SYN | fr.ACK)),
        ip(client, server, fr.tcp(cport, sport, (c + 1) & M, (s + 1) & M, fr.ACK | fr.PSH, req)),
        ip(server, client, fr.tcp(sport, cport, (s + 1) & M, cseq, fr.ACK | fr.PSH, resp)),
    ]
    if end == "fin":
        out.append(ip(client, server, fr.tcp(cport, sport, cseq, sseq, fr.ACK | fr.FIN)))
        out.append(ip(server, client, fr.tcp(sport, cport, sseq, (cseq + 1) & M,
                                             fr.ACK | fr.FIN)))  # fmt: skip
    elif end == "rst":
        out.append(ip(client, server, fr.tcp(cport, sport, cseq, 0, fr.RST)))
    return out


# paths and hosts: on either side of the gate's first test (nine close digits), with characters
# JSON escapes, latin-1, a card and an SSN (the gate masks them: only Python may write those)
TARGETS = [
    (b"/o/12345678", b"shop"),
    (b"/o/123456789", b"shop"),
    (b"/v/1.2.3.4.5.6.7.8.9", b"shop"),
    (b"/d1e2d3e4-5_6+7%8.9", b"shop"),
    (b"/d1e2d3e4x5_6+7%8.9", b"shop"),
    (b"/ok", b"10.1.2.3:8080"),
    (b"/ok", b"1234.5678.9"),
    (b"/ok", b"536-22-8401"),
    (b"/p/4111-1111-1111-1111", b"shop"),
    (b'/q"uote\\back\x7fdel\x01ctl\xe9', b'h"o\\st\xff'),
    (b"/caf\xe9/%20x", b"caf\xe9.example"),
    (b"*", b""),
]


def _varied_frames(seed: int) -> list[tuple[float, bytes]]:
    """Common connections in every shape the C code writes a line for, each next to shapes that
    send it to Python: IPv4 and IPv6, odd ports, one 5-tuple used by several connections (reused
    at once and later), flows cut short (reset, left open until an idle timeout or the end),
    the targets above, a finding, and times whose microseconds round up into the next second."""
    rng = random.Random(seed)
    convs: list[list[bytes]] = []
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    for i, (path, host) in enumerate(TARGETS * 2):
        v6 = i >= len(TARGETS)
        client, server = (f"fd00::a:{i % 3 + 1}", "fd00::b:1") if v6 else (f"10.8.0.{i % 3 + 1}",
                                                                           "10.8.1.1")  # fmt: skip
        req = b"GET " + path + b" HTTP/1.1\r\n" + (b"Host: " + host + b"\r\n" if host else b"")
        req += b"\r\n"
        convs.append(_http(client, server, 31000 + i, 80, req, ok, isn=rng.randrange(1 << 32)))
    ports = [(0, 1), (65535, 65535), (1, 0), (40000, 8080)]
    for j, (cport, sport) in enumerate(ports):
        for v6 in (False, True):
            client, server = ("fd00::c:1", "fd00::d:1") if v6 else ("10.8.2.1", "10.8.3.1")
            convs.append(_http(client, server, cport, sport, b"GET /port HTTP/1.1\r\n\r\n", ok,
                               isn=rng.randrange(1 << 32), end=("fin", "rst", "open")[j % 3]))  # fmt: skip
    # one 5-tuple, three connections in a row (the second reuses the pair at once)
    same = []
    for k in range(3):
        same += _http("10.8.4.1", "10.8.5.1", 45000, 80, b"GET /again/%d HTTP/1.1\r\n\r\n" % k,
                      ok, isn=rng.randrange(1 << 32))  # fmt: skip
    convs.append(same)
    convs.append(_http("10.8.4.2", "10.8.5.1", 45001, 80, b"POST /pay HTTP/1.1\r\n\r\ncard="
                       + CARD.encode() + b"\r\n", ok, isn=rng.randrange(1 << 32)))  # fmt: skip
    # findings in a body (the line written in C, the findings put in by Python), first
    packets = []
    for k, (req, resp) in enumerate([
        (b"POST /orders HTTP/1.1\r\nHost: shop\r\n\r\ncard=" + CARD.encode() + b"&x=1\r\n", ok),
        (b"GET /me HTTP/1.1\r\nHost: shop\r\n\r\n", b'HTTP/1.1 200 OK\r\n\r\n{"ssn": "%s"}' % SSN.encode()),
        (b"POST /both HTTP/1.1\r\n\r\nc=" + CARD.encode() + b"\r\n", b'HTTP/1.1 201 Created\r\n\r\n"%s"' % SSN.encode()),
    ]):  # fmt: skip
        client = "fd00::e:1" if k == 1 else "10.8.9.1"
        server = "fd00::b:1" if k == 1 else "10.8.1.1"
        packets += _http(client, server, 47000 + k, 8080, req, resp, isn=rng.randrange(1 << 32))
    while any(convs):
        conv = rng.choice([c for c in convs if c])
        packets.append(conv.pop(0))
    # nanosecond times: some whose microseconds round up to the next second, some ties
    frames, sec = [], 1_780_000_000
    for n, p in enumerate(packets):
        ns = rng.choice([999_999_600, 999_999_500, 500, 1_500, 123_456_789, 0])
        sec += rng.choice([0, 0, 1, 3])
        frames.append((sec + ns / 1e9, fr.ether(p)))
        if n == len(packets) // 2:  # the flows still open are idle past the TCP timeout
            sec += 200
    late = _http("10.8.6.1", "10.8.7.1", 46000, 80, b"GET /late HTTP/1.1\r\n\r\n", ok, isn=5,
                 end="open")  # fmt: skip
    frames += [(sec + 1 + k * 0.25, fr.ether(p)) for k, p in enumerate(late)]
    return frames


@pytest.fixture(scope="module")
def varied(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("lines")
    out = {}
    for seed in range(3):
        frames = _varied_frames(seed)
        out[f"varied{seed}"] = d / f"varied{seed}.pcap"
        data = fr.pcap(frames, nano=True) if seed != 1 else fr.pcapng(frames, tsresol=9)
        out[f"varied{seed}"].write_bytes(data)
    return out


def _workloads() -> Directory:
    """Some of the addresses above owned by workloads (labels, one of them with a card number
    the gate masks in the peer's JSON; an external one with labels): their JSON is registered
    with the C code, the other addresses it writes itself."""
    from stockade.identity import Workload

    return Directory([
        Workload(name="web", namespace="shop", labels=(("app", "web"), ("tier", "front")),
                 addresses=("10.8.1.1", "fd00::b:1")),
        Workload(name="pay", namespace="shop", labels=(("card", CARD),),
                 addresses=("10.8.0.3", "10.8.4.1")),
        Workload(name="far", external=True, labels=(("zone", "eu"),), addresses=("10.8.5.1",)),
    ])  # fmt: skip


@pytest.mark.parametrize("config", [None, FlowConfig(stream_depth=1024, memcap=3000, max_flows=9)])
def test_lines_written_in_c_are_the_records_lines(
    captures, varied, inspectors, monkeypatch, config
) -> None:
    """The JSON lines of ``sensor --format json --no-store``, the C code writing the common
    connections' own, are the pure-Python path's byte for byte, in the same order, with the same
    statistics and tallies; with the identities of workloads too (the peers' JSON registered)."""
    in_c = total = noted = 0
    for name, path in {**captures, **varied}.items():
        for who in (None, _workloads) if name in varied else (None,):
            monkeypatch.setenv("STOCKADE_SENSOR_FASTPATH", "0")
            ref = json_lines(path, inspectors, identities=who and who(), config=config)
            monkeypatch.setenv("STOCKADE_SENSOR_FASTPATH", "1")
            got = json_lines(path, inspectors, identities=who and who(), config=config)
            assert got[0] == ref[0], name
            assert got[1:3] == ref[1:3], name
            assert ref[3] == []
            in_c += len(got[3])
            total += len(ref[0])
            noted += sum('"dlp.decoding"' in line for line in ref[0])
    # both sides of the cut are reached: lines written in C and records built in Python
    assert (30 if config is None else 5) < in_c < total - 100, (in_c, total)
    assert noted  # and a decoding note, which only the record has


def test_lines_are_written_in_c_only_where_nothing_could_need_the_gate(
    varied, inspectors, monkeypatch
) -> None:
    """Which connections the C code writes: none whose path or host has nine close digits
    (the gate's first test); the plain ones, IPv6, odd ports, resets and escapes included, and
    those with findings in a body (put in by Python)."""
    monkeypatch.setenv("STOCKADE_SENSOR_FASTPATH", "1")
    _lines, _end, _t, written = json_lines(varied["varied0"], inspectors)
    assert len(written) > 10
    paths = [json.loads(ln)["details"].get("http.path", "") for ln in written]
    for bad in ("/o/123456789", "/v/1.2.3.4.5.6.7.8.9", "/d1e2d3e4-5_6+7%8.9"):
        assert bad not in paths
    assert "/o/12345678" in paths and "/port" in paths and "/d1e2d3e4x5_6+7%8.9" in paths
    hosts = [json.loads(ln)["details"].get("http.host") for ln in written]
    assert "10.1.2.3:8080" in hosts and "1234.5678.9" not in hosts and "536-22-8401" not in hosts
    assert {json.loads(ln)["ip_version"] for ln in written} == {4, 6}
    assert {json.loads(ln)["state"] for ln in written} >= {"closed", "reset"}
    found = [json.loads(ln)["dlp"] for ln in written if '"dlp": []' not in ln]
    assert {h["sensor"] for hits in found for h in hits} == {"dlp.payment_card", "dlp.us_ssn"}
    assert any("\\u00e9" in ln and '\\"' in ln and "\\u007f" in ln for ln in written)


def test_the_command_writes_the_same_lines_on_every_path(varied) -> None:
    """The whole command on the varied captures: the same stdout, stderr and exit code on each
    path (lines written in C on the default one), and no planted card or SSN in clear."""
    for path in varied.values():
        outs = [sensor_pcap(path, mode) for mode in MODES]
        assert outs[0] == outs[1] == outs[2], path.name
        rc, out, err = outs[2]
        assert rc == 1 and "Traceback" not in err
        assert not re.search(r"4111[ -]?1111[ -]?1111[ -]?1111", out + err)
        assert not re.search(r"536[ -]?22[ -]?8401", out + err)
