"""Hostile network input against the sensor and the firewall inspector (issue 11): bytes that
pretend to be TLS, hostile HTTP/2 header blocks, crafted captures, colliding group names; and
(issue 13) HTTP bodies decoded for DLP: compression bombs, broken framing, cut escapes."""

from __future__ import annotations

import gzip
import json
import re
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stockade.firewall.enforce import marks
from stockade.firewall.enforce.inspector import Inspector
from stockade.firewall.enforce.nft import _set_name, compile_ruleset
from stockade.firewall.policy.endpoints import Directory
from stockade.firewall.policy.engine import Endpoint, evaluate
from stockade.firewall.policy.files import parse_texts
from stockade.model.errors import PacketError
from stockade.network.analysis import Inspectors
from stockade.network.capture.decode import SUPPORTED_LINKTYPES, Decoder
from stockade.network.capture.pcapfile import MAX_TIMESTAMP, PcapReader
from stockade.network.dlp.decoding import DecodingStream
from stockade.network.dlp.engine import DlpEngine
from stockade.network.flows import FlowConfig
from stockade.network.protocols import SLUGS, detect
from stockade.network.protocols.hpack import Decoder as HpackDecoder
from stockade.network.protocols.hpack import HpackError
from stockade.network.protocols.http2 import HEADERS, PREFACE
from stockade.network.reassembly import MASK, OOO_SEGMENTS, Stream
from stockade.network.tls import opens_with_hello
from tests.firewall.test_inspector import packet
from tests.firewall.test_policy_model import ORD, PAY
from tests.network import frames as F
from tests.network.test_flows import _run

CARD = b"4111111111111111"
PROTOCOL_FIXTURES = Path(__file__).parents[1] / "network" / "fixtures" / "protocols"

# Two bytes, or a whole record header with a ClientHello type, in front of clear text.
FAKE_TLS_PREFIXES = [b"\x16\x03", b"\x16\x03\x01\x00\x10\x01\x00\x00\x0c\x03\x03"]
CLEAR_WITH_CARD = {
    "redis": b"*3\r\n$3\r\nSET\r\n$4\r\ncard\r\n$16\r\n" + CARD + b"\r\n",
    "http": b"POST /pay HTTP/1.1\r\nHost: orders\r\nContent-Length: 34\r\n\r\n"
    b'{"card_number": "' + CARD + b'"}',
}


@pytest.fixture(scope="module")
def inspectors() -> Inspectors:
    return Inspectors.default()


# -- a TLS record header is not TLS (issue 11, high 2) -----------------------------------------


@pytest.mark.parametrize("prefix", FAKE_TLS_PREFIXES)
@pytest.mark.parametrize("app", sorted(CLEAR_WITH_CARD))
def test_sensor_scans_clear_text_behind_a_fake_tls_header(
    inspectors: Inspectors, prefix: bytes, app: str
) -> None:
    request = prefix + CLEAR_WITH_CARD[app]
    reply = b"+OK " + CARD + b"\r\n"  # the server's direction is judged on its own
    (rec,) = _run(F.conversation("10.0.0.1", "10.0.0.2", 40000, 6379, request, reply), inspectors)[
        0
    ]
    assert [(h.direction, h.match.sensor) for h in rec.hits] == [
        ("client", "dlp.payment_card"),
        ("server", "dlp.payment_card"),
    ]
    assert not rec.encrypted


def test_sensor_skips_only_the_direction_that_opened_with_a_hello(
    inspectors: Inspectors,
) -> None:
    """A real ClientHello turns DLP off for the client's bytes only; a server that answers in
    clear is still scanned."""
    client = (PROTOCOL_FIXTURES / "tls13_alpn.c2s").read_bytes()
    (rec,) = _run(
        F.conversation(
            "10.0.0.1", "10.0.0.2", 40000, 443, client, b"HTTP/1.1 200 OK\r\n\r\n" + CARD
        ),
        inspectors,
    )[0]
    assert [(h.direction, h.match.sensor) for h in rec.hits] == [("server", "dlp.payment_card")]
    assert rec.encrypted


def test_sensor_scans_a_hello_split_over_segments_only_once_decided(
    inspectors: Inspectors,
) -> None:
    """A header that promises a long hello holds the bytes back until it fails to parse; then
    every byte is scanned from the start, including the card in the first segment."""
    request = b"\x16\x03\x01\x01\x00\x01\x00\x00\xfc" + b" card " + CARD + b" " + b"x" * 400
    (rec,) = _run(
        F.conversation("10.0.0.1", "10.0.0.2", 40000, 443, request, b"", split=30), inspectors
    )[0]
    assert [h.match.sensor for h in rec.hits] == ["dlp.payment_card"]


REQUIRE_TLS = parse_texts(
    [
        (
            "tls.yaml",
            """
apiVersion: stockade.dev/v1
kind: FirewallPolicy
spec:
  groups:
    - name: cde
      selector: {namespace: shop, labels: {pci: cde}}
      mode: protect
      requireTLS: inbound
      dlp: [{sensor: dlp.payment_card, action: alert}]
  rules:
    - {name: any-in-cde, from: [cde], to: [cde], ports: [tcp/6379], action: allow}
""",
        )
    ]
)


def _inspect(payloads: list[bytes], port: int = 41100) -> tuple[Inspector, list, int]:
    events: list = []
    insp = Inspector(REQUIRE_TLS, Directory([PAY, ORD]), dlp_engine=DlpEngine(), emit=events.append)
    insp.packet(packet(PAY.ip, ORD.ip, port, 6379, 0x02, 100))
    seq, mark = 101, 0
    for p in payloads:
        mark = insp.packet(packet(PAY.ip, ORD.ip, port, 6379, 0x18, seq, p))[1]
        seq += len(p)
    return insp, events, mark


@pytest.mark.parametrize("app", sorted(CLEAR_WITH_CARD))
def test_inspector_does_not_take_a_tls_record_header_for_tls(app: str) -> None:
    """requireTLS: a ClientHello header in front of clear text is clear text, not TLS."""
    _, events, mark = _inspect([FAKE_TLS_PREFIXES[1] + CLEAR_WITH_CARD[app]])
    assert mark == marks.BLOCK and "tls.required" in [e.kind for e in events]


@pytest.mark.parametrize("prefix", FAKE_TLS_PREFIXES)
@pytest.mark.parametrize("app", sorted(CLEAR_WITH_CARD))
def test_inspector_sees_the_card_behind_a_fake_tls_header(prefix: bytes, app: str) -> None:
    # Split so that the card arrives after the first bytes were seen: DLP looks at it anyway.
    data = prefix + CLEAR_WITH_CARD[app]
    _, events, _ = _inspect([data[:20], data[20:]])
    assert "dlp.sensitive_in_clear" in [e.kind for e in events]


def test_inspector_waits_for_a_real_hello_split_over_segments() -> None:
    client = (PROTOCOL_FIXTURES / "tls13_alpn.c2s").read_bytes()
    data, _ = _hello_only(client)
    insp, events, mark = _inspect([data[:100]])
    (flow,) = insp._flows.values()
    assert flow.app is None and mark == 0  # not yet decided: the hello is incomplete
    seq = 101 + 100
    insp.packet(packet(PAY.ip, ORD.ip, 41100, 6379, 0x18, seq, data[100:]))
    # a whole hello is TLS, not clear text: nothing blocked or reported; with TLS required the
    # verdict then waits for the server's hello, which names the version (minVersion)
    assert flow.mark == 0 and events == []
    server, _ = _hello_only((PROTOCOL_FIXTURES / "tls13_alpn.s2c").read_bytes())
    insp.packet(packet(ORD.ip, PAY.ip, 6379, 41100, 0x18, 0, server))  # starts where acked
    assert flow.app == "proto.tls" and flow.encrypted and events == []


def _hello_only(stream: bytes) -> tuple[bytes, int]:
    length = struct.unpack_from("!H", stream, 3)[0]
    return stream[: 5 + length], length


# -- HPACK stays linear (issue 11, medium 5) ---------------------------------------------------


def _h2_connection(block: bytes) -> bytes:
    """A prior-knowledge HTTP/2 client whose first HEADERS frame carries ``block``."""
    frame = struct.pack("!I", len(block))[1:] + bytes([HEADERS, 0x4]) + struct.pack("!I", 1)
    return PREFACE + frame + block


def _hpack_int(value: int, prefix: int, first: int) -> bytes:
    mask = (1 << prefix) - 1
    if value < mask:
        return bytes([first | value])
    out, value = bytearray([first | mask]), value - mask
    while value >= 0x80:
        out.append(0x80 | value & 0x7F)
        value >>= 7
    return bytes([*out, value])


BIG = 1 << 28
HOSTILE_BLOCKS = {
    # a table without bound, then thousands of empty entries: each insert summed the whole table
    "size-update": _hpack_int(BIG, 5, 0x20) + b"\x40\x00\x00" * 5400,
    # thousands of entries inside the default table size
    "inserts": b"\x40\x00\x00" * 5400,
    # one large entry, then referenced over and over
    "references": b"\x40\x01a" + _hpack_int(4000, 7, 0) + b"v" * 4000 + b"\xbe" * 12000,
}


@pytest.mark.parametrize("name", sorted(HOSTILE_BLOCKS))
def test_hostile_http2_header_blocks_decode_in_bounded_time(name: str) -> None:
    client = _h2_connection(HOSTILE_BLOCKS[name])[:16384]
    started = time.perf_counter()
    det = detect(client, b"")
    assert time.perf_counter() - started < 0.5
    assert det.protocol == "proto.http2"


def test_hpack_size_update_above_the_limit_is_a_decoding_error() -> None:
    decoder = HpackDecoder()
    with pytest.raises(HpackError, match="exceeds the limit 4096"):
        decoder.decode(_hpack_int(4097, 5, 0x20))
    decoder.decode(_hpack_int(4096, 5, 0x20) + b"\x40\x01a\x01b")  # at the limit: fine
    with pytest.raises(HpackError, match="after a header field"):
        decoder.decode(b"\x82" + _hpack_int(100, 5, 0x20))


def test_hpack_table_size_is_a_running_total_within_the_limit() -> None:
    decoder = HpackDecoder()
    for i in range(200):
        decoder.decode(b"\x40\x02n%d\x03v%02d" % (i % 10, i % 100))
    assert decoder.size == sum(32 + len(n) + len(v) for n, v in decoder.dynamic) <= 4096
    assert len(decoder.dynamic) == 4096 // (32 + 2 + 3)
    decoder.decode(_hpack_int(0, 5, 0x20))  # a size update to 0 empties the table
    assert decoder.size == 0 and not decoder.dynamic


def test_hpack_block_bounds_fields_and_decoded_octets() -> None:
    with pytest.raises(HpackError, match="more than 256 fields"):
        HpackDecoder().decode(b"\x82" * 257)
    HpackDecoder().decode(b"\x82" * 256)
    big = b"\x40\x01a" + _hpack_int(4000, 7, 0) + b"v" * 4000
    with pytest.raises(HpackError, match="octets"):
        HpackDecoder().decode(big + b"\xbe" * 16)  # 17 x 4033 octets > 64 KiB


# -- capture files with timestamps no calendar holds (issue 11, low) ---------------------------


def _pcapng_with_ticks(packets: list[bytes], ticks: list[int], tsresol: int) -> bytes:
    """Enhanced Packet blocks with raw 64-bit timestamps in units of 10**-tsresol s."""
    o = "<"
    shb = F._block(o, 0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = struct.pack(o + "HHB3xHH", 9, 1, tsresol, 0, 0)
    out = [shb, F._block(o, 1, struct.pack(o + "HHI", 1, 0, 65535) + opts)]
    for t, p in zip(ticks, packets, strict=True):
        frame = F.ether(p)
        head = struct.pack(o + "IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(frame), len(frame))
        out.append(F._block(o, 6, head + frame))
    return b"".join(out)


@pytest.mark.parametrize(
    "bad",
    [(1 << 64) - 1, 253402300800 * 10**6],  # the largest tick; 10000-01-01 in microseconds
)
def test_sensor_keeps_frames_with_out_of_range_timestamps(tmp_path: Path, bad: int) -> None:
    body = b'{"card": "' + CARD + b'"}'
    request = b"POST /pay HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    packets = F.conversation(
        "10.0.0.1", "10.0.0.2", 40000, 8080, request, b"HTTP/1.1 200 OK\r\n\r\n"
    )
    ticks = [(1_700_000_000 + i) * 10**6 for i in range(len(packets))]
    ticks[0] = ticks[3] = bad  # the SYN (the connection's start) and the card's segment
    path = tmp_path / "far-future.pcapng"
    path.write_bytes(_pcapng_with_ticks(packets, ticks, 6))
    db = tmp_path / "s.db"
    args = ["sensor", "--pcap", str(path), "--format", "json", "--db", f"sqlite:///{db}"]
    out = subprocess.run(
        [sys.executable, "-m", "stockade", *args, "--fail-on", "high"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr  # the card was found
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1
    assert f"{len(packets)} frames" in out.stderr and "2 frames with out-of-range" in out.stderr
    (rec,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert [h["sensor"] for h in rec["dlp"]] == ["dlp.payment_card"]
    assert rec["start"].startswith("1970-01-01")  # no earlier frame: the start of the epoch


# -- firewall group names map one to one onto kernel sets (issue 11, medium 6) -----------------

LOOKALIKES = parse_texts(
    [
        (
            "lookalikes.yaml",
            """
apiVersion: stockade.dev/v1
kind: FirewallPolicy
spec:
  groups:
    - {name: web-app, selector: {namespace: shop, labels: {app: web}}, mode: protect}
    - {name: web.app, selector: {namespace: shop, labels: {app: crawler}}, mode: protect}
    - {name: db, selector: {namespace: shop, labels: {app: db}}, mode: protect}
  rules:
    - {name: crawler-never-to-db, from: [web.app], to: [db], action: deny}
    - {name: web-to-db, from: [web-app], to: [db], ports: [tcp/5432], action: allow}
""",
        )
    ]
)
WEB = Endpoint(ip="10.78.0.1", name="web", namespace="shop", labels={"app": "web"})
CRAWLER = Endpoint(ip="10.78.0.2", name="crawler", namespace="shop", labels={"app": "crawler"})
DB = Endpoint(ip="10.78.0.3", name="db", namespace="shop", labels={"app": "db"})


def _sets(ruleset: str) -> dict[str, set[str]]:
    found = re.findall(r"set (\S+) \{[^}]*?(?:elements = \{ ([^}]*) \})?; \}", ruleset)
    return {name: {e.strip() for e in elems.split(",") if e.strip()} for name, elems in found}


def _first_rule(ruleset: str, sets: dict[str, set[str]], src: str, dst: str) -> str:
    """The comment of the first ``classify`` rule an IPv4 TCP connection src -> dst:5432 hits."""
    for line in ruleset.split("chain classify {")[1].split("\n  }")[0].splitlines():
        if not line.strip() or "ip6 " in line or "nfproto ipv6" in line or "udp" in line:
            continue
        saddr = re.search(r"ip saddr (!= )?@(\S+)", line)
        daddr = re.search(r"ip daddr (!= )?@(\S+)", line)
        if saddr and daddr and saddr.group(1):  # the unmanaged-traffic shortcut
            if src not in sets[saddr.group(2)] and dst not in sets[daddr.group(2)]:
                return "unmanaged"
            continue
        if (saddr is None or src in sets[saddr.group(2)]) and (
            daddr is None or dst in sets[daddr.group(2)]
        ):
            return re.search(r'comment "([^"]+)"', line).group(1)  # type: ignore[union-attr]
    raise AssertionError("no rule matched")


def test_lookalike_group_names_get_their_own_kernel_sets() -> None:
    ruleset = compile_ruleset(LOOKALIKES, [WEB, CRAWLER, DB], {})
    sets = _sets(ruleset)
    named = {name: elems for name, elems in sets.items() if name.startswith("g_")}
    assert len(named) == 6  # three groups, two families each
    assert {WEB.ip} in named.values() and {CRAWLER.ip} in named.values()
    # The kernel's first matching rule is the one `policy explain` names.
    for src in (WEB, CRAWLER):
        explained = evaluate(LOOKALIKES, src, DB, 5432, l4="tcp").rule
        assert _first_rule(ruleset, sets, src.ip, DB.ip) == explained
    assert evaluate(LOOKALIKES, CRAWLER, DB, 5432).rule == "crawler-never-to-db"


slugs = st.from_regex(r"\A[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?\Z")


@settings(max_examples=500, deadline=None)
@given(slugs, slugs, st.sampled_from([4, 6]), st.sampled_from([4, 6]))
@example("web-app", "web.app", 4, 4)
@example("a-.b", "a.-b", 6, 6)
@example("a-4", "a", 4, 4)
def test_kernel_set_names_are_injective(a: str, b: str, fa: int, fb: int) -> None:
    na, nb = _set_name(a, fa), _set_name(b, fb)
    assert (na == nb) == ((a, fa) == (b, fb))
    assert len(na) <= 255 and re.fullmatch(r"[a-z0-9_]+", na)


# -- arbitrary bytes never raise out of the parsers ----------------------------------------------


class _Sink:
    def __init__(self) -> None:
        self.calls = 0

    def tcp(self, ts: float, key: object, *args: int | bytes) -> None:
        _flags, _seq, _ack, buf, off, length = args
        self.udp(ts, key, buf, off, length)  # type: ignore[arg-type]

    def udp(self, ts: float, key: object, buf: bytes, off: int, length: int) -> None:
        assert off >= 0 and length >= 0 and off + length <= len(buf)
        self.calls += 1


def _ip_headers() -> st.SearchStrategy[bytes]:
    """A plausible IPv4 or IPv6 header followed by arbitrary bytes, so the fuzzing reaches L4."""
    v4 = st.builds(
        lambda proto, rest: F.ipv4("10.0.0.1", "10.0.0.2", proto, rest),
        st.sampled_from([6, 17, 1, 0]),
        st.binary(max_size=80),
    )
    v6 = st.builds(
        lambda proto, rest: F.ipv6("fd00::1", "fd00::2", proto, rest),
        st.sampled_from([6, 17, 0, 44, 60]),
        st.binary(max_size=80),
    )
    return st.one_of(v4, v6)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(sorted(SUPPORTED_LINKTYPES)),
    st.one_of(st.binary(max_size=200), _ip_headers(), _ip_headers().map(F.ether)),
    st.integers(0, 255),
    st.integers(0, 4),
)
def test_frame_decoder_takes_arbitrary_bytes(link: int, frame: bytes, flip: int, cut: int) -> None:
    if frame:
        frame = frame[: len(frame) - cut] if cut < len(frame) else frame
    if frame:
        frame = bytes([frame[0] ^ flip]) + frame[1:] if flip > 127 else frame
    sink = _Sink()
    decoder = Decoder(sink, skip_outgoing=False)  # type: ignore[arg-type]
    buf = b"\xaa" * 3 + frame + b"\xbb" * 3  # the frame inside a bigger buffer, as in a ring
    decoder.frame(1.0, link, buf, 3, len(frame))
    assert decoder.stats.frames == 1


PROTOCOL_PREFIXES = [
    b"",
    b"\x16\x03\x01",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    PREFACE,
    b"GET / HTTP/1.1\r\n",
    b"\0\0\0\x08\x04\xd2\x16\x2f",
    b"SSH-2.0-",
    b"*1\r\n$4\r\n",
]


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(PROTOCOL_PREFIXES),
    st.binary(max_size=400),
    st.sampled_from(PROTOCOL_PREFIXES),
    st.binary(max_size=400),
)
def test_detectors_take_arbitrary_bytes_after_a_real_opening(
    cp: bytes, client: bytes, sp: bytes, server: bytes
) -> None:
    det = detect(cp + client, sp + server)
    assert det.protocol in SLUGS and 0.0 <= det.confidence <= 1.0
    if det.protocol == "proto.tls" and det.encrypted:
        # encrypted only behind a hello that parses
        assert "tls" in {
            opens_with_hello(cp + client, server=False).state,
            opens_with_hello(sp + server, server=True).state,
        }


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600), st.booleans(), st.binary(min_size=1, max_size=64))
def test_hello_check_needs_more_only_when_more_can_help(
    data: bytes, server: bool, extra: bytes
) -> None:
    check = opens_with_hello(data, server=server)
    if check.state == "more":
        assert check.need > len(data)  # looking again before then would be wasted work
    else:  # a decision never changes with more bytes
        assert opens_with_hello(data + extra, server=server) == check


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_hpack_takes_arbitrary_bytes(block: bytes) -> None:
    decoder = HpackDecoder()
    try:
        headers = decoder.decode(block)
    except HpackError:
        return
    assert len(headers) <= 256 and decoder.size <= 4096


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["pcap", "pcapng"]), st.binary(max_size=300), st.integers(0, 400))
def test_capture_reader_takes_arbitrary_bytes(
    tmp_path_factory: pytest.TempPathFactory, kind: str, tail: bytes, at: int
) -> None:
    good = (F.pcap if kind == "pcap" else F.pcapng)(
        [(1.0, F.ether(F.ipv4("10.0.0.1", "10.0.0.2", 17, F.udp(1, 2, b"x"))))]
    )
    data = good[: at % (len(good) + 1)] + tail
    path = tmp_path_factory.mktemp("fuzz") / f"f.{kind}"
    path.write_bytes(data)
    try:
        with PcapReader(path) as reader:
            for ts, _link, buf, off, n in reader.frames():
                assert 0.0 <= ts <= MAX_TIMESTAMP and off + n <= len(buf)
    except PacketError:
        pass


# -- HTTP bodies decoded for DLP stay bounded (issue 13) ----------------------------------------


def _gzip_bomb(zeros: int) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    return b"".join(z.compress(block) for _ in range(zeros >> 20)) + z.flush()


def test_gzip_bomb_is_bounded_in_memory_and_time_and_reported(inspectors: Inspectors) -> None:
    bomb = _gzip_bomb(60 << 20)  # 60 MB of zeros in about 60 KB
    response = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(
        bomb
    )
    pk = F.conversation("10.0.0.1", "10.0.0.2", 40000, 8080, b"GET / HTTP/1.1\r\n\r\n",
                        response + bomb)  # fmt: skip
    tracemalloc.start()
    started = time.perf_counter()
    (record,) = _run(pk, inspectors)[0]
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 2.0 and peak < 8 << 20
    notes = [v for k, v in record.details if k == "dlp.decoding"]
    assert notes and "gzip" in notes[0] and record.hits == ()


def test_decoded_bytes_stay_within_the_budget() -> None:
    s = DecodingStream(DlpEngine(), budget=4096)
    body = gzip.compress(b"a" * 100_000)
    s.feed(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n")
    s.feed(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    s.close()
    assert s.decoded <= 4096 and s.limits


HOSTILE_HEADS = [
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 5000,
    b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnotgzip!!",
    b"POST / HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: 4\r\n\r\n--x\r",
    b"GET /?a=%zz%4 HTTP/1.1\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    + b"\x00\x00\x05\x01\x04\x00\x00\x00\x01\xff\xff\xff\xff\xff",
]


@settings(max_examples=150, deadline=None)
@given(
    head=st.sampled_from(HOSTILE_HEADS),
    tail=st.binary(max_size=2048),
    cut=st.integers(min_value=1, max_value=64),
)
def test_body_decoding_takes_arbitrary_bytes(head: bytes, tail: bytes, cut: int) -> None:
    s = DecodingStream(_ENGINE)
    data = head + tail
    for i in range(0, len(data), cut):
        s.feed(data[i : i + cut])
        s.decide_now()
    s.close()
    assert s.decoded <= s.budget


_ENGINE = DlpEngine()


# -- a real hello followed by clear text (the rest of issue 11, high 2) -------------------------


@pytest.mark.parametrize("app", sorted(CLEAR_WITH_CARD))
def test_a_real_hello_followed_by_clear_text_is_scanned_from_there(
    inspectors: Inspectors, app: str
) -> None:
    """A genuine ClientHello must not switch DLP off for whatever the client sends next: past the
    hello the direction is followed record by record, and bytes that are no TLS record are clear."""
    hello, _ = _hello_only((PROTOCOL_FIXTURES / "tls13_alpn.c2s").read_bytes())
    request = hello + CLEAR_WITH_CARD[app]
    (rec,) = _run(
        F.conversation(
            "10.0.0.1", "10.0.0.2", 40000, 443, request, b"\x15\x03\x03\x00\x02\x02\x28"
        ),
        inspectors,
    )[0]
    assert [(h.direction, h.match.sensor) for h in rec.hits] == [("client", "dlp.payment_card")]
    assert ("tls.clear_after_handshake", f"client at byte {len(hello)}") in rec.details


def test_a_whole_tls_session_stays_unscanned(inspectors: Inspectors) -> None:
    """The real client stream (hello, change_cipher_spec, application data) keeps its framing."""
    client = (PROTOCOL_FIXTURES / "tls13_alpn.c2s").read_bytes()
    server = (PROTOCOL_FIXTURES / "tls13_alpn.s2c").read_bytes()
    (rec,) = _run(F.conversation("10.0.0.1", "10.0.0.2", 40000, 443, client, server), inspectors)[0]
    assert rec.hits == () or list(rec.hits) == []
    assert not [d for d in rec.details if d[0] == "tls.clear_after_handshake"]


# -- decoding triggers cannot be dodged (issue 13: plain traffic skips the framing) -------------

SPACED_CARD = b"4111 1111 1111 1111"


def _chunked_card(te: bytes) -> bytes:
    body = b'{"card": "' + SPACED_CARD + b'"}'
    cut = body.index(b"1111") + 2  # a chunk header inside the digits hides it from the raw scan
    return (
        b"POST /pay HTTP/1.1\r\n" + te + b"\r\n\r\n"
        b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (cut, body[:cut], len(body) - cut, body[cut:])
    )


def _form_card(ctype: bytes) -> bytes:
    body = b"card=" + SPACED_CARD.replace(b" ", b"+")
    return b"POST /pay HTTP/1.1\r\n%s\r\nContent-Length: %d\r\n\r\n%s" % (ctype, len(body), body)


_PLAIN_FIRST = b"POST /a HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
EVASIONS = {
    "odd-case": _chunked_card(b"tRaNsFeR-eNcOdInG: ChUnKeD"),
    "obs-fold": _chunked_card(b"Transfer-Encoding:\r\n chunked"),
    "obs-fold-tab": _chunked_card(b"Transfer-Encoding:\r\n\t\tchunked"),
    "space-before-colon": _chunked_card(b"Transfer-Encoding \t: chunked"),
    "coding-list": _chunked_card(b"Transfer-Encoding: gzip\r\nTransfer-Encoding: CHUNKED"),
    "form-folded": _form_card(b"Content-Type:\r\n application/x-www-form-urlencoded"),
    "form-upper": _form_card(b"CONTENT-TYPE: APPLICATION/X-WWW-FORM-URLENCODED"),
    "query-cut-escape": b"GET /p?c=4111%201111%201111%201111 HTTP/1.1\r\n\r\n",
    "after-plain": _PLAIN_FIRST + _chunked_card(b"Transfer-Encoding: chunked"),
}


@pytest.mark.parametrize("name", sorted(EVASIONS))
def test_decoding_triggers_in_odd_spellings_are_still_decoded(name: str) -> None:
    data = EVASIONS[name]
    engine = DlpEngine()
    assert engine.scan(data) == []  # hidden on the wire
    for cut in (1, 2, 3, 7, len(data)):
        s = DecodingStream(engine)
        found = [m for i in range(0, len(data), cut) for m in s.feed(data[i : i + cut])]
        found += s.close()
        assert [m.masked for m in found] == ["4111 **** **** 1111"], (name, cut)


@pytest.mark.parametrize("word", [b"Transfer-Encoding", b"?c=4111+"])
def test_a_decoding_trigger_cut_anywhere_still_decodes(word: bytes) -> None:
    data = _PLAIN_FIRST + (
        _chunked_card(b"Transfer-Encoding: chunked")
        if word == b"Transfer-Encoding"
        else b"GET /p?c=4111+1111+1111+1111 HTTP/1.1\r\n\r\n"
    )
    at = data.index(word)
    for cut in range(at, at + len(word) + 1):  # every boundary inside the trigger
        s = DecodingStream(_ENGINE)
        found = s.feed(data[:cut]) + s.feed(data[cut:]) + s.close()
        assert [m.masked for m in found] == ["4111 **** **** 1111"], cut


def test_http2_from_the_servers_settings_is_decoded_in_any_split() -> None:
    body = b'{"card": "' + CARD + b'"}'
    half = body.index(CARD) + 6
    server = (
        F.h2_frame(4, 0, 0, b"")
        + F.h2_frame(1, 0x4, 1, F.hpack_literals([(":status", "200")]))
        + F.h2_frame(0, 0, 1, body[:half])
        + F.h2_frame(0, 0x1, 1, body[half:])
    )
    assert _ENGINE.scan(server) == []
    for cut in range(1, 40):
        for replay in (0, 64 * 1024):  # framed as it comes, or from the trigger
            s = DecodingStream(_ENGINE, replay=replay)
            found = [m for i in range(0, len(server), cut) for m in s.feed(server[i : i + cut])]
            assert [m.sensor for m in found + s.close()] == ["dlp.payment_card"], (cut, replay)


def test_a_trigger_past_the_replay_limit_is_still_decoded() -> None:
    plain = _PLAIN_FIRST * 100
    data = plain + _chunked_card(b"Transfer-Encoding: chunked")
    s = DecodingStream(_ENGINE, replay=1000)
    found = [m for i in range(0, len(data), 500) for m in s.feed(data[i : i + 500])] + s.close()
    assert [m.masked for m in found] == ["4111 **** **** 1111"]
    assert s.framed == len(data)  # framed from the start once the held bytes passed the limit


def test_bytes_held_until_a_trigger_are_bounded_across_streams(monkeypatch) -> None:
    from stockade.network.dlp import decoding

    engine = DlpEngine()
    monkeypatch.setattr(decoding, "HELD_TOTAL", 2500)
    head = _PLAIN_FIRST * 10
    plain = [DecodingStream(engine) for _ in range(3)]
    for s in plain:
        s.feed(head)  # held
    assert engine.held == 3 * len(head) < 2500 and not any(s.framed for s in plain)
    late = DecodingStream(engine)
    data = head + _chunked_card(b"Transfer-Encoding: chunked")
    found = late.feed(head) + late.feed(data[len(head) :]) + late.close()
    assert late.framed == len(data)  # framed as it came once the engine held too much
    assert [m.masked for m in found] == ["4111 **** **** 1111"]
    plain[0].close()
    plain[1].discard()
    plain[2].feed(b"GET /?q=%41 HTTP/1.1\r\n\r\n")  # a trigger: framed, nothing held
    assert engine.held == 0


# -- many spaced out-of-order segments: a cap on their number, no walk over all of them -------
# (session 8: 8,000 spaced one-byte segments took 21 s through the Python reassembly, 60,000 over
# 10 minutes, 18.5 s in C; a big segment behind many held ones recursed once per held segment)

SPACED = 60_000  # the size that took minutes: a regression hangs visibly (pytest-timeout)
SPACED_ORDERS = ["forward", "reversed", "overlapping"]


def _spaced(n: int, order: str) -> list[tuple[int, bytes]]:
    """``n`` one-byte segments, a hole before each, as (offset from the first byte, payload):
    last first when "reversed"; "overlapping" follows each with a longer differing copy at the
    same place and a third one over the copy's end."""
    step = 3 if order == "overlapping" else 2
    out = []
    for k in range(n - 1, -1, -1) if order == "reversed" else range(n):
        at = 1 + step * k
        out.append((at, b"x"))
        if order == "overlapping":
            out += [(at, b"yz"), (at + 1, b"q")]
    return out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("order", SPACED_ORDERS)
def test_many_spaced_segments_are_held_up_to_the_cap(order: str) -> None:
    out, gaps = bytearray(), []
    s = Stream(1 << 30, 256 * 1024, out.extend, gaps.append)
    s.syn(MASK - 5000)  # the sequence numbers wrap on the way
    most = 0
    for at, data in _spaced(SPACED, order):
        s.segment((MASK - 4999 + at) & MASK, data, 0, len(data))
        most = max(most, len(s.ooo))
    assert most == OOO_SEGMENTS and s.buffered <= OOO_SEGMENTS * 2
    s.flush()
    assert not s.ooo and s.buffered == 0 and s.gaps == len(gaps)
    if order == "forward":  # every hole skipped once, every byte delivered
        assert bytes(out) == b"x" * SPACED and gaps == [1] * SPACED
    elif order == "reversed":  # the cap gives up on the hole before the 1,025th; the rest is old
        assert bytes(out) == b"x" * (OOO_SEGMENTS + 1)
        assert gaps == [1 + 2 * (SPACED - OOO_SEGMENTS - 1)] + [1] * OOO_SEGMENTS
    else:  # the longer copy took the first copy's place; the third added nothing
        assert bytes(out) == b"yz" * SPACED and gaps == [1] * SPACED


def test_a_big_segment_behind_many_held_ones_needs_no_recursion() -> None:
    """No room for a segment: holes are given up one held segment at a time, in a loop (the old
    code recursed once per held segment: a RecursionError past about 1,000)."""
    out, gaps = bytearray(), []
    s = Stream(1 << 30, 4096, out.extend, gaps.append)
    s.syn(0)
    for at, data in _spaced(OOO_SEGMENTS, "forward"):
        s.segment(1 + at, data, 0, len(data))
    assert len(s.ooo) == OOO_SEGMENTS
    big = b"B" * 4096
    assert s.segment(1_000_000, big, 0, len(big)) == 4096  # 1,024 bytes moved to the head
    assert bytes(out) == b"x" * OOO_SEGMENTS and gaps == [1] * OOO_SEGMENTS
    assert list(s.ooo) == [1_000_000] and s.buffered == 4096


def _spaced_capture(order: str) -> bytes:
    c, srv = 7000, 90000
    a, b = "10.7.0.1", "10.7.0.2"
    pk = [
        F.ipv4(a, b, 6, F.tcp(41000, 8080, c, 0, F.SYN)),
        F.ipv4(b, a, 6, F.tcp(8080, 41000, srv, c + 1, F.SYN | F.ACK)),
    ]
    if order == "big-after":  # 1,024 held, then a segment the byte limit has no room for
        segs = [*_spaced(OOO_SEGMENTS, "forward"), (5000, b"B" * 2000)]
    else:
        segs = _spaced(SPACED, order)
    for at, data in segs:
        pk.append(F.ipv4(a, b, 6, F.tcp(41000, 8080, c + 1 + at, srv + 1, F.ACK, data)))
    return F.pcap([(1000.0 + i * 1e-6, F.ether(p)) for i, p in enumerate(pk)])


@pytest.mark.timeout(240)
@pytest.mark.parametrize("order", [*SPACED_ORDERS, "big-after"])
def test_both_sensor_paths_read_many_spaced_segments_alike(
    order: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same records and statistics (no inspectors: 60,000 tiny deliveries through the DLP
    would measure the DLP, not the reassembly)."""
    from stockade.network.capture import fastpcap
    from tests.network.test_pcap_fastpath import _same

    assert fastpcap.compiled() is not None, "python3 setup.py build_ext --inplace"
    path = tmp_path / "spaced.pcap"
    path.write_bytes(_spaced_capture(order))
    config = FlowConfig(ooo_limit=2000) if order == "big-after" else None
    recs, _ = _same(path, None, monkeypatch, config=config)
    gaps = {"forward": SPACED, "reversed": OOO_SEGMENTS + 1, "big-after": OOO_SEGMENTS + 1}
    assert [r.gaps for r in recs] == [gaps.get(order, 32_768)]  # overlapping: the depth first
