"""DLP on HTTP bodies as the application reads them (issue 13), on bytes real clients and servers
put on a loopback connection: a relay between them records both directions, and the recorded
bytes become a capture (tests/network/frames.py) for the sensor and packets for the firewall."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import random
import socket
import threading
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stockade.network.analysis import Inspectors
from stockade.network.dlp import DlpEngine
from stockade.network.dlp.decoding import DecodingStream
from stockade.network.dlp.engine import PASSIVE_COALESCE
from tests.firewall.test_inspector import ACK, PSH, SYN, inspector, packet
from tests.firewall.test_policy_model import ORD, PAY
from tests.network import frames as F
from tests.network.test_flows import _run

CARD = "4111111111111111"
SPACED = "4111 1111 1111 1111"
GZIPPED = gzip.compress(json.dumps({"card": SPACED, "note": "x" * 300}).encode())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/gzip"):
            self._reply(GZIPPED, ("Content-Encoding", "gzip"))
        else:
            self._reply(b"ok")

    def do_POST(self) -> None:
        if self.headers.get("Transfer-Encoding") == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                self.rfile.read(size + 2)
                if not size:
                    break
        else:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._reply(b"ok")

    def _reply(self, body: bytes, *extra: tuple[str, str]) -> None:
        self.send_response(200)
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def _recorded(port: int, client: Callable[[int], None]) -> tuple[bytes, bytes]:
    """Run ``client`` against the server through a relay; returns (client bytes, server bytes)."""
    relay = socket.create_server(("127.0.0.1", 0))
    got: list[bytearray] = [bytearray(), bytearray()]

    def pump(src: socket.socket, dst: socket.socket, into: bytearray) -> None:
        while data := src.recv(65536):
            into += data
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)

    def serve() -> None:
        conn, _ = relay.accept()
        up = socket.create_connection(("127.0.0.1", port))
        back = threading.Thread(target=pump, args=(up, conn, got[1]))
        back.start()
        pump(conn, up, got[0])
        back.join(5)
        conn.close()
        up.close()

    t = threading.Thread(target=serve)
    t.start()
    client(relay.getsockname()[1])
    t.join(5)
    relay.close()
    return bytes(got[0]), bytes(got[1])


def _chunked_card(port: int) -> None:
    # http.client sends each piece as one chunk: the card is cut inside its digits.
    body = [b'{"card": "' + CARD[:7].encode(), CARD[7:].encode() + b'"}']
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("POST", "/pay", body=iter(body), encode_chunked=True,
                 headers={"Content-Type": "application/json", "Connection": "close"})  # fmt: skip
    conn.getresponse().read()
    conn.close()


def _get(path: str) -> Callable[[int], None]:
    def run(port: int) -> None:
        with requests.Session() as session:
            session.get(
                f"http://127.0.0.1:{port}{path}", headers={"Connection": "close"}, timeout=5
            ).close()

    return run


def _verbatim_get(path: str) -> Callable[[int], None]:
    """http.client sends the target as given (requests turns an escaped ``-`` back into ``-``)."""

    def run(port: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("GET", path, headers={"Connection": "close"})
        conn.getresponse().read()
        conn.close()

    return run


def _form(port: int) -> None:
    with requests.Session() as session:
        session.post(f"http://127.0.0.1:{port}/pay", data={"card": SPACED}, timeout=5,
                     headers={"Connection": "close"}).close()  # fmt: skip


def _multipart(port: int) -> None:
    # a part with its own transfer coding (RFC 2045), as mail-style clients send it
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="doc"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n"
        f"{base64.b64encode(f'card {CARD}'.encode()).decode()}\r\n--{boundary}--\r\n"
    ).encode()
    with requests.Session() as session:
        session.post(f"http://127.0.0.1:{port}/up", data=body, timeout=5, headers={
            "Connection": "close", "Content-Type": f"multipart/form-data; boundary={boundary}"
        }).close()  # fmt: skip


CASES = {
    "chunked-cut-in-digits": (_chunked_card, "client"),
    "gzip-response": (_get("/gzip"), "server"),
    "query-plus": (_get("/pay?" + urllib.parse.urlencode({"card": SPACED})), "client"),
    "query-percent-20": (_get("/pay?card=" + urllib.parse.quote(SPACED)), "client"),
    "query-percent-2d": (_verbatim_get("/pay?card=4111%2D1111%2D1111%2D1111"), "client"),
    "form-body": (_form, "client"),
    "multipart-base64": (_multipart, "client"),
}


@pytest.fixture(scope="module")
def inspectors() -> Inspectors:
    return Inspectors.default()


@pytest.mark.parametrize("name", sorted(CASES))
def test_sensor_finds_the_card_as_the_application_reads_it(
    name: str, server: int, inspectors: Inspectors
) -> None:
    client, where = CASES[name]
    request, response = _recorded(server, client)
    assert inspectors.dlp.scan(request) == inspectors.dlp.scan(response) == []  # hidden on the wire
    pk = F.conversation("10.0.0.1", "10.0.0.2", 40000, 8080, request, response)
    (record,) = _run(pk, inspectors)[0]
    hits = [(h.direction, h.match.sensor) for h in record.hits]
    assert hits == [(where, "dlp.payment_card")]
    match = record.hits[0].match
    wire = request if where == "client" else response
    assert 0 <= match.start < match.end <= len(wire)  # offsets point into what was seen
    assert "1111" in match.masked and "*" in match.masked
    assert CARD not in json.dumps(record.to_dict()).replace(" ", "").replace("-", "")


@pytest.mark.parametrize("name", ["chunked-cut-in-digits", "query-plus", "form-body"])
def test_firewall_blocks_the_encoded_card_inline(name: str, server: int) -> None:
    request, _ = _recorded(server, CASES[name][0])
    events: list = []
    insp = inspector(events)
    insp.packet(packet(PAY.ip, ORD.ip, 41500, 8080, SYN, 100))
    verdict = insp.packet(packet(PAY.ip, ORD.ip, 41500, 8080, ACK | PSH, 101, request))
    assert verdict[1] != 0 and "dlp.blocked" in [e.kind for e in events]


@pytest.mark.parametrize(
    "body",
    [
        b'{"card": "4111.1111.1111.1111"}',
        b'{"card": "4111\xc2\xa01111\xc2\xa01111\xc2\xa01111"}',
        b'{"card": "5641 8200 0000 0005"}',
        b'{"card": "41\\u00311 1111 1111 \\u00311\\u00311"}',
    ],
)
def test_firewall_blocks_the_new_card_spellings_inline(body: bytes) -> None:
    """The firewall's per-segment path: a point- or no-break-space-grouped card, a Maestro 56
    card and a card in JSON escapes (a decoding trigger) in a request body are blocked."""
    request = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    events: list = []
    insp = inspector(events)
    insp.packet(packet(PAY.ip, ORD.ip, 41501, 8080, SYN, 100))
    verdict = insp.packet(packet(PAY.ip, ORD.ip, 41501, 8080, ACK | PSH, 101, request))
    assert verdict[1] != 0 and "dlp.blocked" in [e.kind for e in events]


def test_plain_traffic_is_reported_once_with_the_same_offsets() -> None:
    engine = DlpEngine()
    body = b'{"card": "' + CARD.encode() + b'"}'
    for head in (b"Content-Length: %d" % len(body), b"Transfer-Encoding: chunked"):
        payload = body if b"Length" in head else b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        msg = b"POST /p HTTP/1.1\r\n" + head + b"\r\n\r\n" + payload
        raw = engine.scan(msg)
        s = DecodingStream(engine)
        got = s.feed(msg) + s.close()
        assert [(m.start, m.end, m.masked) for m in got] == [
            (m.start, m.end, m.masked) for m in raw
        ]


def test_a_card_across_two_http2_data_frames_is_found() -> None:
    block = F.hpack_literals([(":method", "POST"), (":scheme", "http"), (":path", "/pay"),
                              (":authority", "orders")])  # fmt: skip
    body = b'{"card": "' + CARD.encode() + b'"}'
    cut = body.index(CARD.encode()) + 5
    client = (
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        + F.h2_frame(4, 0, 0, b"")
        + F.h2_frame(1, 0x4, 1, block)
        + F.h2_frame(0, 0, 1, body[:cut])
        + F.h2_frame(0, 0x1, 1, body[cut:])
    )
    engine = DlpEngine()
    assert engine.scan(client) == []  # the frame header between the halves hides it
    s = DecodingStream(engine)
    found = [m for i in range(0, len(client), 10) for m in s.feed(client[i : i + 10])] + s.close()
    assert [m.sensor for m in found] == ["dlp.payment_card"]
    gz = gzip.compress(b"card=" + SPACED.replace(" ", "+").encode())
    block = F.hpack_literals([(":method", "POST"), (":path", "/p?x=1"),
                              ("content-encoding", "gzip"),
                              ("content-type", "application/x-www-form-urlencoded")])  # fmt: skip
    client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + F.h2_frame(1, 0x4, 3, block)
    client += F.h2_frame(0, 0x1, 3, gz)
    s = DecodingStream(engine)
    assert [m.masked for m in s.feed(client) + s.close()] == ["4111 **** **** 1111"]


@pytest.mark.parametrize("piece", [1, 9, 4096])
def test_header_fields_huffman_coded_or_indexed_by_http2_are_read(piece: int) -> None:
    """HPACK hides a header value on the wire twice over: Huffman coding (every real client
    uses it; the ``hpack`` package is an independent encoder) and the dynamic table (a second
    request only names the field). Each header block's fields are scanned as decoded, a value
    spelled out in the block is left to the raw stream (reported once)."""
    import hpack

    encoder = hpack.Encoder()
    first = encoder.encode([(":method", "GET"), (":path", f"/cards/{CARD}/limits"),
                            (":scheme", "http"), (":authority", "shop"),
                            ("x-card", SPACED), ("x-plain", "4111-1111-1111-1111")],
                           huffman=True)  # fmt: skip
    again = encoder.encode([(":method", "GET"), (":path", "/"), (":scheme", "http"),
                            (":authority", "shop"), ("x-card", SPACED)], huffman=True)  # fmt: skip
    assert SPACED.encode() not in first and len(again) < 12  # (x-card only named the second time)
    spelled = hpack.Encoder().encode([("x-ssn", "536-22-8401")], huffman=False)
    client = (
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        + F.h2_frame(4, 0, 0, b"")
        + F.h2_frame(1, 0x5, 1, first)
        + F.h2_frame(1, 0x5, 3, again)
    )
    engine = DlpEngine()
    assert engine.scan(client) == []
    s = DecodingStream(engine)
    found = [m for i in range(0, len(client), piece) for m in s.feed(client[i : i + piece])]
    found += s.close()
    assert sorted(m.masked for m in found) == [
        "4111 **** **** 1111", "4111 **** **** 1111", "4111********1111", "4111-****-****-1111",
    ]  # fmt: skip
    blocks = client.index(first), client.index(again)  # (where each block starts)
    assert all(m.start in blocks for m in found)
    plain = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + F.h2_frame(1, 0x5, 1, spelled)
    s = DecodingStream(engine)
    assert [m.masked for m in s.feed(plain) + s.close()] == ["***-**-8401"]  # once: the raw one


# -- plain traffic costs no framing; triggered traffic is read as if framed from the start ------


def _post(body: bytes) -> bytes:
    return (
        b"POST /api/v1/orders HTTP/1.1\r\nHost: orders\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def test_plain_http_never_enters_the_framing() -> None:
    engine = DlpEngine()
    card = b'{"card": "' + CARD.encode() + b'", "note": "a+b 100% ok?"}'
    client = (
        _post(b'{"id": 1}')
        + b"GET /search?q=shoes&page=2 HTTP/1.1\r\nHost: shop\r\n\r\n"
        + b"GET /a+b/c%20d HTTP/1.1\r\nHost: shop\r\n\r\n"  # escapes in the path, not a query
        + _post(card) * 3
        + b"\r\n"
        + _post(json.dumps({"items": list(range(2000))}).encode())
    )
    s = DecodingStream(engine)
    got = [m for i in range(0, len(client), 1460) for m in s.feed(client[i : i + 1460])]
    got += s.close()
    assert s.framed == 0  # the HTTP framing never ran
    assert [(m.start, m.end, m.masked) for m in got] == [
        (m.start, m.end, m.masked) for m in engine.scan(client)
    ]
    assert len(got) == 3


@pytest.mark.parametrize("coalesce", [1, 1000, PASSIVE_COALESCE])
def test_the_sensors_coalescing_streams_find_what_the_raw_scan_finds(coalesce: int) -> None:
    engine = DlpEngine()
    card = b'{"card": "' + CARD.encode() + b'", "ssn": "536-90-4399"}'
    filler = _post(json.dumps({"items": list(range(3000))}).encode())
    client = (filler + _post(card)) * 6 + filler  # past the 64 KiB replay: framed from then on
    s = DecodingStream(engine, coalesce=coalesce)
    got = [m for i in range(0, len(client), 1460) for m in s.feed(client[i : i + 1460])]
    got += s.close()
    assert [(m.sensor, m.start, m.end, m.masked) for m in got] == [
        (m.sensor, m.start, m.end, m.masked) for m in engine.scan(client)
    ]
    assert len(got) == 12 and engine.held == 0 and engine.unscanned == 0


_GZ = gzip.compress(b'{"card": "' + SPACED.encode() + b'"}')
_FORM = b"card=" + SPACED.replace(" ", "+").encode()
_PART = b"--x\r\nA: b\r\n\r\n" + SPACED.encode() + b"\r\n--x--\r\n"
_CHUNKS = b"7\r\n4111 11\r\nc\r\n11 1111 1111\r\n0\r\n\r\n"  # a chunk header in the digits
_STARTS = [
    b"POST /p HTTP/1.1",
    b"GET /p?c=4111+1111+1111+1111 HTTP/1.1",
    b"GET /x?y=%34%31 HTTP/1.1",
    b"HTTP/1.1 200 OK",
    b"HTTP/1.1 101 Switching Protocols",
]
# header fields with the body they announce
_KINDS = [
    ([b"Transfer-Encoding: chunked"], _CHUNKS),
    ([b"Transfer-Encoding:\r\n chunked"], _CHUNKS),
    ([b"Content-Encoding: gzip", b"Content-Length: %d" % len(_GZ)], _GZ),
    ([b"Content-Type: application/x-www-form-urlencoded", b"Content-Length: %d" % len(_FORM)],
     _FORM),
    ([b"Content-Type: multipart/form-data; boundary=x", b"Content-Length: %d" % len(_PART)],
     _PART),
    ([b"Upgrade: h2c"], b""),
    ([b"Host: a"], b'{"a": "4111 11"}'),
    ([], b"%+"),
]  # fmt: skip
_H2 = (  # a client's connection; without its 24-byte preface, a server's after a 101
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    + F.h2_frame(4, 0, 0, b"")
    + F.h2_frame(1, 4, 1, F.hpack_literals([(":path", "/p?c=4111+1111+1111+1111")]))
    + F.h2_frame(0, 0, 1, b"4111 11")
    + F.h2_frame(0, 1, 1, b"11 1111 1111")
)
_CASE = st.sampled_from([bytes, bytes.lower, bytes.upper, bytes.swapcase])
_MESSAGE = st.builds(
    lambda start, kind, case: b"\r\n".join([start, *map(case, kind[0]), b"", kind[1]]),
    st.sampled_from(_STARTS),
    st.sampled_from(_KINDS),
    _CASE,
)


@settings(max_examples=300, deadline=None)
@example([b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", _H2[24:]], 5, 0)
@example([b"POST /p HTTP/1.1\r\ntransfer-encoding:\r\n\tChunked\r\n\r\n" + _CHUNKS], 1, 0)
@example([b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + _CHUNKS], 9, 32 * 1024)
@example([b"POST /p HTTP/1.1\r\nContent-Encoding: gzip\r\n\r\n" + _GZ], 1, 1000)
@given(
    messages=st.lists(
        st.one_of(_MESSAGE, st.sampled_from([_H2, _H2[24:]])), min_size=1, max_size=4
    ),
    cut=st.sampled_from([1, 2, 3, 5, 9, 17, 64, 1460]),
    coalesce=st.sampled_from([0, 1, 40, 1000, 32 * 1024]),
)
def test_a_triggered_direction_is_decoded_as_if_framed_from_the_start(
    messages: list[bytes], cut: int, coalesce: int
) -> None:
    data = b"".join(messages)

    def run(replay: int, coalesce: int = 0) -> tuple[list[tuple[str, int, int, str]], list[str]]:
        s = DecodingStream(_ENGINE, replay=replay, coalesce=coalesce)
        got = [m for i in range(0, len(data), cut) for m in s.feed(data[i : i + cut])]
        got += s.decide_now() + s.close()
        return sorted((m.sensor, m.start, m.end, m.masked) for m in got), s.limits

    # replay=0: the framing reads every byte as it comes, as before the triggers; coalescing
    # (the sensor's raw stream scans segments together, so it sees a trigger later) changes nothing
    assert run(64 * 1024, coalesce) == run(0)


_ENGINE = DlpEngine()


# -- a gzip body of several members (RFC 1952 section 2.2) ------------------------------------


@pytest.mark.parametrize("piece", [1, 7, 1460])
def test_a_card_across_two_gzip_members_is_found(piece: int) -> None:
    """zcat, Python's gzip and urllib3 read a body of concatenated gzip members as one; the
    inflater stopped at the first member's end, so a card cut between members (or one in the
    second member) went unseen. Fed whole and cut into pieces (the second magic split too)."""
    body = b'{"card": "' + SPACED.encode() + b'", "note": "ok"}'
    cut = body.index(b"1111")
    gz = gzip.compress(body[:cut]) + gzip.compress(body[cut:]) + gzip.compress(b"")
    msg = b"POST /p HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(gz)
    data = msg + gz
    s = DecodingStream(DlpEngine())
    found = [m for i in range(0, len(data), piece) for m in s.feed(data[i : i + piece])]
    found += s.close()
    assert [m.masked for m in found] == ["4111 **** **** 1111"]
    assert s.limits == []


def test_bytes_after_the_last_gzip_member_and_a_flood_of_empty_members_are_harmless() -> None:
    """Trailing bytes that open no member end the body's content (they are not inflated); a
    body of thousands of empty members costs a loop, not a recursion."""
    engine = DlpEngine()
    flood = gzip.compress(b"") * 4000 + gzip.compress(b'{"card": "' + SPACED.encode() + b'"}')
    tail = gzip.compress(b"nothing") + b"\r\n" + b"garbage 4111 1111 1111 1111"
    for body, expected in ((flood, ["4111 **** **** 1111"]), (tail, ["4111 **** **** 1111"])):
        msg = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body)
        s = DecodingStream(engine, budget=1 << 20, replay=1 << 20)
        found = s.feed(msg + body) + s.close()
        # the tail's card is in clear on the wire: the raw stream reports it, decoding adds none
        assert [m.masked for m in found] == expected


# -- brotli and zstd bodies (Content-Encoding: br, zstd), and lists of codings -----------------


def _coded(codings: list[str], body: bytes) -> bytes:
    """``body`` with each coding applied in the order listed (RFC 9110 8.4)."""
    import brotli
    import zstandard

    for coding in codings:
        body = {
            "gzip": gzip.compress,
            "br": lambda data: brotli.compress(data, quality=5),
            "zstd": zstandard.ZstdCompressor(write_checksum=True).compress,  # as the zstd CLI
        }[coding](body)
    return body


@pytest.mark.parametrize("codings", [["br"], ["zstd"], ["gzip", "br"], ["br", "zstd"]])
@pytest.mark.parametrize("piece", [1, 7, 1460])
def test_a_card_in_a_brotli_or_zstd_body_is_found(codings: list[str], piece: int) -> None:
    body = _coded(codings, b'{"card": "' + SPACED.encode() + b'", "note": "' + b"x" * 500 + b'"}')
    msg = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n" % (
        ", ".join(codings).encode(),
        len(body),
    )
    data = msg + body
    s = DecodingStream(DlpEngine())
    found = [m for i in range(0, len(data), piece) for m in s.feed(data[i : i + piece])]
    found += s.close()
    assert [m.masked for m in found] == ["4111 **** **** 1111"]
    assert s.limits == []
    assert all(len(msg) <= m.start < m.end <= len(data) for m in found)


def _zstd_raw_blocks(*blocks: bytes) -> bytes:
    """A zstd frame (RFC 8878) whose blocks are raw: the content stored as it is."""
    size = sum(map(len, blocks))
    frame = b"\x28\xb5\x2f\xfd\xa0" + size.to_bytes(4, "little")  # single segment, 4-byte size
    for k, block in enumerate(blocks):
        last = k == len(blocks) - 1
        frame += (last | len(block) << 3).to_bytes(3, "little") + block  # type 0: raw
    return frame


def _stored(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=0)  # deflate stored blocks


@pytest.mark.parametrize("piece", [1, 7, 30, 1460])
@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("zstd", _zstd_raw_blocks),
        ("zstd", lambda body: _zstd_raw_blocks(body[:17], body[17:40], body[40:])),
        ("gzip", _stored),
    ],
)
def test_a_card_stored_as_it_is_in_a_coded_body_is_reported_once(
    coding: str, encode: Callable[[bytes], bytes], piece: int
) -> None:
    """A zstd raw block or a deflate stored block holds the content as it is: the raw stream
    finds the card, and the decoded stream found it again (one card, two findings) because
    decompressed bytes were never taken as copies of the wire. Blocks cut inside the card's
    digits (the second frame) are not copies as a whole: the card is reported once, by the
    decoded stream."""
    body = b'{"card": "' + SPACED.encode() + b'", "note": "' + b"x" * 40 + b'"}'
    coded = encode(body)
    assert zstandard_or_gzip_decode(coding, coded) == body
    msg = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n" % (
        coding.encode(),
        len(coded),
    )
    data = msg + coded
    s = DecodingStream(DlpEngine())
    found = [m for i in range(0, len(data), piece) for m in s.feed(data[i : i + piece])]
    found += s.close()
    assert [m.masked for m in found] == ["4111 **** **** 1111"]
    assert s.limits == []
    if SPACED.encode() in coded:  # on the wire as it is: the exact span
        at = data.index(SPACED.encode())
        assert (found[0].start, found[0].end) == (at, at + len(SPACED))


def zstandard_or_gzip_decode(coding: str, coded: bytes) -> bytes:
    import zstandard

    if coding == "zstd":
        return bytes(zstandard.ZstdDecompressor().decompress(coded))
    return gzip.decompress(coded)


# -- JSON escapes (\\u0034) of a card's digits and separators -----------------------------------


def _json_escaped(text: str, every: int = 1) -> str:
    return "".join(f"\\u{ord(c):04x}" if i % every == 0 else c for i, c in enumerate(text))


ESCAPED_CARDS = [
    (_json_escaped("4111111111111111"), "4111********1111"),
    ("41" + _json_escaped("1") + "1 1111 1111 1111", "4111 **** **** 1111"),
    (_json_escaped(SPACED, 3), "4111 **** **** 1111"),
    ("4111\\u00a01111\\u00A01111\\u00a01111", "4111\xa0****\xa0****\xa01111"),
    ("4111\\u002E1111\\u002e1111\\u002e1111", "4111.****.****.1111"),
]


def _json_messages(value: str) -> list[bytes]:
    body = '{"note": "' + "x" * 300 + '", "card": "' + value + '", "n": "' + "y" * 200 + '"}'
    raw = body.encode()
    gz = gzip.compress(raw)
    return [
        b"POST /p HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % len(raw)
        + raw,
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(raw) + raw,
        b"HTTP/1.1 200 OK\r\n\r\n" + raw,  # to the close
        b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunks(raw),
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(gz) + gz,
        b"POST /f HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % (len(raw) + 2) + b"j=" + raw,
    ]


@pytest.mark.parametrize(("value", "masked"), ESCAPED_CARDS)
@pytest.mark.parametrize("piece", [1, 5, 1460])
def test_a_card_written_in_json_escapes_is_found(value: str, masked: str, piece: int) -> None:
    """A JSON reader turns "\\u0034\\u0031..." (all of it, some of it, the separators) into the
    card; on the wire no run of digits is there. Plain, chunked, gzip and form bodies, cut
    anywhere (an escape cut too): found once, its span the escaped bytes on the wire."""
    engine = DlpEngine()
    for data in _json_messages(value):
        assert engine.scan(data) == []
        s = DecodingStream(engine)
        found = [m for i in range(0, len(data), piece) for m in s.feed(data[i : i + piece])]
        found += s.close()
        assert [m.masked for m in found] == [masked], data[:60]
        assert found[0].confidence == 1.0  # the key "card" is read as context
        if value.encode() in data:  # not cut by a chunk header, not compressed
            at = data.index(value.encode())
            assert found[0].start == at and found[0].end <= at + len(value)


def test_json_escapes_other_than_a_cards_change_nothing() -> None:
    """An escaped backslash keeps "u0034" text (JSON readers read a backslash and "u0034"); a
    card without an escape next to escaped text is the raw stream's, reported once; an order
    id written in escapes keeps its veto; a body of escapes alone holds a bounded window."""
    engine = DlpEngine()
    plain = ('{"a": "\\\\' + _json_escaped("4111111111111111")[1:] + '"}').encode()
    mixed = ('{"t": "\\u0031\\u0032\\u0033", "card": "' + SPACED + '"}').encode()
    vetoed = ('{"order_id": "' + _json_escaped("4539578763621486") + '"}').encode()
    for body, expected in ((plain, []), (mixed, ["4111 **** **** 1111"]), (vetoed, [])):
        data = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        s = DecodingStream(engine)
        found = [m for i in range(0, len(data), 3) for m in s.feed(data[i : i + 3])] + s.close()
        assert [m.masked for m in found] == expected, body
    from stockade.network.dlp.decoding import JSON_BEFORE, JsonUnescape

    class Count:
        def __init__(self) -> None:
            self.bytes = 0
            self.ended = False

        def push(self, data: bytes, rs: int, re_: int, linear: bool) -> None:
            self.bytes += len(data)

        def end(self) -> None:
            self.ended = True

    sink = Count()
    stage = JsonUnescape(sink, window=True)  # type: ignore[arg-type]
    for k in range(10_000):
        stage.push(b"x" * 100, k * 100, k * 100 + 100, True)
        assert sum(len(p[0]) for p in stage._before) <= JSON_BEFORE
    assert sink.bytes == 0  # nothing near an escape: nothing passed on


@pytest.mark.parametrize("coding", ["br", "zstd"])
def test_a_brotli_or_zstd_bomb_stops_at_the_budget_without_expanding(coding: str) -> None:
    """64 MiB of zeros in a few KiB: decoding stops at the ratio, and at no moment holds much
    more than a chunk (the bomb is not expanded first and cut after); the next message of the
    direction is decoded within what is left of the budget."""
    import tracemalloc

    bomb = _coded([coding], b"\0" * (64 << 20))
    card = _coded([coding], b"card " + SPACED.encode())
    msg = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n"
    data = msg % (coding.encode(), len(bomb)) + bomb + msg % (coding.encode(), len(card)) + card
    tracemalloc.start()
    try:
        s = DecodingStream(DlpEngine(), budget=1 << 20, replay=1 << 20)
        found = s.feed(data) + s.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20
    assert [why.split(" over ")[0] for why in s.limits] == [f"{coding}: inflation ratio"]
    assert s.decoded <= 1 << 20
    assert [m.masked for m in found] == ["4111 **** **** 1111"]


@pytest.mark.parametrize("coding", ["br", "zstd"])
def test_a_corrupt_brotli_or_zstd_body_is_noted(coding: str) -> None:
    """Damage past the body's first bytes (a body that did open as its coding says) ends its
    decoding, noted; what came out before it was read."""
    rng = random.Random(5)
    words = [b"alpha", b"bravo", b"charlie", b"delta", b"echo", b"fox", b"golf", b"hotel",
             b"india", b"juliet"]  # fmt: skip
    text = b" ".join(rng.choice(words) + b"%d" % rng.randrange(1000) for _ in range(3000))
    body = _coded([coding], b"card " + SPACED.encode() + b" " + text)  # (some 8 KB coded)
    body = body[:1000] + bytes(b ^ 0x5A for b in body[1000:1040]) + body[1040:]
    msg = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n" % (
        coding.encode(),
        len(body),
    )
    data = msg + body
    s = DecodingStream(DlpEngine())
    found = [m for i in range(0, len(data), 200) for m in s.feed(data[i : i + 200])] + s.close()
    assert s.limits == [f"{coding}: corrupt compressed body"]
    assert [m.masked for m in found] == ["4111 **** **** 1111"]


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd", "gzip, br"])
@pytest.mark.parametrize("piece", [1, 4096])
def test_a_body_not_coded_as_it_says_is_read_as_it_is(coding: str, piece: int) -> None:
    """A sender that names a coding it did not apply (the decompressor fails within the body's
    first bytes; raw deflate reads text as blocks for a while first) must not hide the body: it
    is read as it is, a chunk boundary inside the card's digits removed (cut into 1-byte pieces,
    or one piece of 1 KiB), and the record notes why."""
    body = b'{"note": "' + b"n" * 900 + b'", "card": "' + SPACED.encode() + b'"}'
    msg = b"POST /p HTTP/1.1\r\nContent-Encoding: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % (
        coding.encode()
    )
    data = msg + _chunks(body)
    assert DlpEngine().scan(data) == []
    s = DecodingStream(DlpEngine())
    found = [m for i in range(0, len(data), piece) for m in s.feed(data[i : i + piece])]
    found += s.close()
    assert [m.masked for m in found] == ["4111 **** **** 1111"]
    last = coding.rsplit(", ", 1)[-1]
    assert s.limits[:1] == [f"{last}: not {last}-coded, read as it is"]


def test_too_many_codings_are_not_decoded() -> None:
    s = DecodingStream(DlpEngine())
    s.feed(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: br, br, br, br, br\r\nContent-Length: 3\r\n\r\nabc"
    )
    s.close()
    assert s.limits == ["content-encoding: more than 4 codings not decoded"]


def _chunks(body: bytes, size: int = 7) -> bytes:
    out = b"".join(
        b"%x\r\n" % len(body[i : i + size]) + body[i : i + size] + b"\r\n"
        for i in range(0, len(body), size)
    )
    return out + b"0\r\n\r\n"


@pytest.mark.parametrize(
    "head",
    [
        b"Transfer-Encoding: gzip, chunked",  # a transfer coding before chunked (RFC 9112 6.1)
        b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked",
        b"Content-Encoding: gzip\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked",
        b"Content-Encoding: gzip\r\nTransfer-Encoding: gzip, chunked",
    ],
)
def test_every_coding_of_a_body_is_undone(head: bytes) -> None:
    """Each coding listed, in a field's list or on a line of its own (the same coding twice
    was applied twice), content codings first, then the transfer codings before chunked."""
    codings = head.lower().count(b"gzip")
    body = b'{"card": "' + SPACED.encode() + b'"}'
    for _ in range(codings):
        body = gzip.compress(body)
    msg = b"HTTP/1.1 200 OK\r\n" + head + b"\r\n\r\n" + _chunks(body)
    s = DecodingStream(DlpEngine())
    found = s.feed(msg) + s.close()
    assert [m.masked for m in found] == ["4111 **** **** 1111"] and s.limits == []


# -- WebSocket (RFC 6455) after the upgrade: masked and permessage-deflate frames ---------------

WEBSOCKET = Path(__file__).parent / "fixtures" / "websocket"
UPGRADE = (
    b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
SWITCHED = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


def _ws_frame(op: int, payload: bytes, *, fin: bool = True, key: bytes = b"") -> bytes:
    size = len(payload)
    head = bytes([(0x80 if fin else 0) | op])
    mask = 0x80 if key else 0
    if size < 126:
        head += bytes([mask | size])
    elif size < 1 << 16:
        head += bytes([mask | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([mask | 127]) + size.to_bytes(8, "big")
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if key else payload
    return head + key + body


def _scan(data: bytes, piece: int) -> tuple[list[str], DecodingStream]:
    s = DecodingStream(DlpEngine())
    found = [m for i in range(0, len(data), piece) for m in s.feed(data[i : i + piece])]
    return [m.masked for m in found + s.close()], s


@pytest.mark.parametrize("side", ["c2s", "s2c"])
def test_websocket_messages_compressed_by_permessage_deflate_are_read(side: str) -> None:
    """Recorded here (session 14): the ``websockets`` 17.4 client and server on loopback through
    a recording relay, permessage-deflate negotiated (its window kept from one message to the
    next), two JSON messages with a test card, the second with a synthetic SSN, each echoed.
    On the wire the client's frames are masked and both sides' compressed: nothing was found."""
    data = (WEBSOCKET / f"websocket_deflate.{side}").read_bytes()
    assert DlpEngine().scan(data) == []
    for piece in (1, 5, 1460):
        found, s = _scan(data, piece)
        assert sorted(found) == ["***-**-8401", "4111 **** **** 1111", "4111 **** **** 1111"]
        assert s.limits == []


def test_a_card_in_a_masked_message_cut_over_frames_and_a_ping_is_found() -> None:
    key = b"\x37\xfa\x21\x3d"
    msg = b'{"card": "' + SPACED.encode() + b'"}'
    cut = msg.index(b"1111 1111")
    client = (
        UPGRADE
        + _ws_frame(1, msg[:cut], fin=False, key=key)
        + _ws_frame(9, b"ping 4111", key=b"\x01\x02\x03\x04")  # a control frame in between
        + _ws_frame(0, msg[cut:], key=b"\xa0\xb1\xc2\xd3")
        + _ws_frame(2, b"x" * 300, key=key)  # a 16-bit length
    )
    assert [m.masked for m in DlpEngine().scan(client)] == []
    for piece in (1, 3, 1460):
        found, _s = _scan(client, piece)
        assert found == ["4111 **** **** 1111"]
    # the server's frames are in clear on the wire: reported once, by the raw stream
    found, _s = _scan(SWITCHED + _ws_frame(1, msg), 1460)
    assert found == ["4111 **** **** 1111"]


def test_websocket_frames_that_cannot_be_followed_stop_decoding_only() -> None:
    """An absurd length, a continuation with no message, or an inflation bomb end decoding for
    the direction (the raw stream still sees every byte); the bomb stops at the budget."""
    engine = DlpEngine()
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = bomb.compress(b"\0" * (4 << 20)) + bomb.flush(zlib.Z_SYNC_FLUSH)[:-4]
    cases = [
        UPGRADE + b"\x82\xff" + (1 << 62).to_bytes(8, "big") + b"\0\0\0\0" + b"abc",
        UPGRADE + _ws_frame(0, b"lost", key=b"\1\2\3\4") + b" 4111 1111 1111 1111 ",
        SWITCHED + bytes([0xC2]) + bytes([127]) + len(deflated).to_bytes(8, "big") + deflated,
    ]
    for data in cases:
        s = DecodingStream(engine)
        found = s.feed(data) + s.close()
        assert s.decoded <= s.budget
        assert [m.masked for m in found] == [m.masked for m in engine.scan(data)]
    assert any("websocket" in why for why in s.limits)


def test_websocket_messages_never_join_and_a_flood_of_tiny_ones_shares_one_stream() -> None:
    """The direction's messages go to one DLP stream with a newline after each: a number cut
    between two messages is two numbers (as the application reads them), and 9,000 one-byte
    messages open one stream, not 9,000."""
    key = b"\x37\xfa\x21\x3d"
    client = UPGRADE + _ws_frame(1, b"4111 1111 1111", key=key) + _ws_frame(1, b"1111", key=key)
    assert _scan(client, 1460)[0] == []
    engine = DlpEngine()
    opened = 0
    stream = engine.stream

    def counted(*a: object, **kw: object) -> object:
        nonlocal opened
        opened += 1
        return stream(*a, **kw)

    engine.stream = counted  # type: ignore[method-assign]
    flood = UPGRADE + _ws_frame(1, b"7", key=key) * 9000 + _ws_frame(1, SPACED.encode(), key=key)
    s = DecodingStream(engine)
    assert [m.masked for m in s.feed(flood) + s.close()] == ["4111 **** **** 1111"]
    assert opened <= 3  # the raw stream, the upgrade request's, the messages'
