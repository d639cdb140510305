"""The kernel's first look on real packets: the tc classifier (clean.bpf.c) marks the very
segments the reference (clean.Direction) calls CLEAN, over IPv4 and IPv6, through a veth into a
namespace this test makes, with its own connections, orders, gaps and retransmissions."""

from __future__ import annotations

import os
import random
import socket
import struct
import subprocess
import time

import pytest

from stockade.firewall.enforce import clean, marks, tcfilter
from stockade.firewall.enforce.ends import EndLog
from stockade.network.capture.live import netns
from tests.support import require_root

pytestmark = [pytest.mark.root, pytest.mark.slow]

GROUP = 93  # the NFLOG group the test's own rule copies every TCP segment's headers to
V4 = ("10.213.0.1", "10.213.0.2")
V6 = ("fd00:213::1", "fd00:213::2")


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pair():
    require_root("ip", "tc", "nft")
    obj = tcfilter.program()
    assert obj is not None, "the classifier did not build (clang -target bpf)"
    tag = f"cl{os.getpid() % 10000}"
    a, n = f"{tag}-a", f"{tag}-n"
    classifier = None
    try:
        for ns in (a, n):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", f"{tag}a", "netns", a, "type", "veth", "peer", f"{tag}n",
           "netns", n)  # fmt: skip
        for ns, dev, (v4, v6) in ((a, f"{tag}a", (V4[0], V6[0])), (n, f"{tag}n", (V4[1], V6[1]))):
            sh("ip", "-n", ns, "addr", "add", f"{v4}/24", "dev", dev)
            sh("ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        classifier = tcfilter.Classifier(n, obj)
        assert classifier.sync() == 1
        rules = (
            "table inet cltest {\n chain seen {\n  type filter hook prerouting priority 0;\n"
            f"  meta l4proto tcp log group {GROUP}\n }}\n}}\n"
        )
        subprocess.run(
            ["ip", "netns", "exec", n, "nft", "-f", "-"], input=rules, text=True, check=True,
            timeout=30,
        )  # fmt: skip
        yield a, n
    finally:
        if classifier is not None:
            classifier.remove()
        for ns in (a, n):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def _sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def segment(family: int, sport: int, seq: int, flags: int, payload: bytes) -> bytes:
    """An IP packet (IPv4 header or IPv6 header) with a TCP segment from A to N."""
    src, dst = V4 if family == 4 else V6
    tcp = struct.pack("!HHIIBBHHH", sport, 9, seq & 0xFFFFFFFF, 0, 5 << 4, flags, 65535, 0, 0)
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    s, d = socket.inet_pton(af, src), socket.inet_pton(af, dst)
    length = len(tcp) + len(payload)
    pseudo = s + d + (struct.pack("!BBH", 0, 6, length) if family == 4 else
                      struct.pack("!I3xB", length, 6))  # fmt: skip
    csum = _sum(pseudo + tcp + payload)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    if family == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, sport, 0, 64, 6, 0, s, d)
    else:
        ip = struct.pack("!IHBB16s16s", 6 << 28, length, 6, 64, s, d)
    return ip + tcp + payload


PIECES = [
    b"GET /orders HTTP/1.1\r\n",
    b"Host: orders\r\n",
    b'{"qty": 2, "sku": "A-',
    b"note ",
    b" ",
    b"4111",
    b" 1111",
    b"-2222",
    b".",
    b"\xc2\xa0",
    b"(415) ",
    b"555-2671",
    b"12345678",
    b"Accept-Encoding: gzip\r\n",
    b"Transfer-Enc",
    b"h2",
    b"PRI * H",
    b"Content-En",
]
# each makes its direction never CLEAN again (alone, or after a piece above)
TRIGGERS = [
    b"%",
    b"+",
    b"\\",
    b"@",
    b"\x00",
    b"Upgrade: websocket",
    b"c",
    b"TTP/2.0",
    b"coding: x\r\n",
]


def conversation(rng: random.Random) -> list[bytes]:
    """Segments of one direction: pieces joined at random, each segment 1 to 1,400 bytes."""
    out = []
    for _ in range(rng.randint(2, 10)):
        seg = b"".join(
            rng.choice(TRIGGERS if rng.random() < 0.04 else PIECES)
            for _ in range(rng.randint(1, 12))
        )
        if rng.random() < 0.15:  # a long one, mostly text
            seg = (seg + b"lorem ipsum dolor " * 80)[: rng.randint(200, 1400)]
        out.append(seg[:1400])
    return out


def test_the_classifier_marks_what_the_reference_says(pair) -> None:
    a, n = pair
    rng = random.Random(213)
    with netns(n):
        log = EndLog(GROUP)
    sent: list[tuple[int, int, int, int, tuple[bool, bool, bool] | None]] = []  # family, port, ...
    try:
        with netns(a):
            raw4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            raw6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        for i in range(60):
            family = 6 if i % 4 == 3 else 4
            sock, dst = (raw4, V4[1]) if family == 4 else (raw6, V6[1])
            port = 20000 + i
            isn = rng.randrange(1 << 32)
            opened = i % 10 != 9  # a direction whose SYN the classifier never saw
            ref = clean.Direction.opened(isn, client=True)  # a SYN without ACK
            if opened:
                sock.sendto(segment(family, port, isn, 0x02, b""), (dst, 0))
            seq, segs = isn + 1, conversation(rng)
            for k, seg in enumerate(segs):
                at = seq
                if k and rng.random() < 0.1:  # a retransmission of the segment before
                    at = seq - len(segs[k - 1])
                    seg = segs[k - 1]
                elif rng.random() < 0.05:  # a gap
                    at = seq + rng.randint(1, 50)
                head = opened and ref.is_head(at, seg, v4=family == 4, ack=True, end=False)
                want = (
                    (*ref.segment(at & 0xFFFFFFFF, seg), head) if opened else (False, False, False)
                )
                if at >= seq:
                    seq = at + len(seg)
                sock.sendto(segment(family, port, at, 0x18, seg), (dst, 0))
                sent.append((family, port, at & 0xFFFFFFFF, len(seg), want))
        raw4.close()
        raw6.close()
        seen = _marks(log, len(sent))
    finally:
        log.close()
    got = []
    for f, p, s, n_, _ in sent:
        m = (seen.get((f, p, s, n_)) or [None]).pop(0)
        got.append(
            None
            if m is None
            else (bool(m & marks.CLEAN), bool(m & marks.CLEAN_SHORT), bool(m & marks.HEAD))
        )
    want = [w for *_, w in sent]
    wrong = [(sent[i][:4], got[i], want[i]) for i in range(len(sent)) if got[i] != want[i]]
    assert not wrong, wrong[:5]
    assert sum(w[0] for w in want if w) > 20 and sum(not w[0] for w in want if w) > 20


def _marks(log: EndLog, count: int) -> dict[tuple[int, int, int, int], list[int]]:
    """The marks of each data segment copied (family, port, seq, length), in the order sent (a
    retransmission has the key of the segment it repeats)."""
    seen: dict[tuple[int, int, int, int], list[int]] = {}
    deadline = time.monotonic() + 10
    while sum(map(len, seen.values())) < count and time.monotonic() < deadline:
        for _, mark, pkt in log.packets():
            family = pkt[0] >> 4
            tcp = pkt[20:] if family == 4 else pkt[40:]
            total = struct.unpack("!H", pkt[2:4])[0] - 20 if family == 4 else \
                struct.unpack("!H", pkt[4:6])[0]  # fmt: skip
            sport, _, seq = struct.unpack("!HHI", tcp[:8])
            if tcp[13] & 0x02:
                continue  # a SYN
            seen.setdefault((family, sport, seq, total - (tcp[12] >> 4) * 4), []).append(mark)
        time.sleep(0.05)
    return seen


# request lines, and lines that are not (fastpath_own.c's test decides; clean.http_head is it)
HEADS = [
    b"GET / HTTP/1.1\r\nHost: orders\r\n\r\n",
    b"POST /orders HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
    b"PROPPATCH /a HTTP/1.0\r\r\n",
    b"UNLOCK /x?y=1 HTTP/1.1\n",
    b"GET /" + b"a" * 480 + b" HTTP/1.1\r\n",  # its line feed within the first 512 bytes
    b"GET /" + b"a" * 500 + b" HTTP/1.1\r\n",  # past them
    b"CONNECT orders:443 HTTP/1.1\r\n",
    b"GET  / HTTP/1.1\r\n",
    b"GET / HTTP/1.2\r\n",
    b"get / HTTP/1.1\r\n",
    b"GET / HTTP/1.1",
    b"GETS / HTTP/1.1\r\n",
    b"GET /\t HTTP/1.1\r\n",
    b"GET / HTTP/1.1 \r\n",
    b"GET / HTTP/1.1\rx\n",
    b"GET /\xff\x00 HTTP/1.0\r\n",
    b"\x16\x03\x01\x02\x00\x01",
    b"*3\r\n$3\r\nSET\r\n",
]


def test_the_classifier_marks_a_connection_s_head_as_the_reference_says(pair) -> None:
    """HEAD: the first data segment of an IPv4 client's direction (its SYN without ACK), with
    ACK and no FIN or RST, that opens with a request line exactly as the compiled loop
    recognises one; no other segment (the second, an IPv6 one, a server's, one without ACK)."""
    from stockade.firewall.enforce import fastpath

    module = fastpath.compiled()
    assert module is not None
    for line in HEADS:  # the reference is the compiled loop's own test, byte for byte
        is_http = module.lib.fp_app(line, len(line)) == fastpath.PAIR_HTTP
        assert clean.http_head(line) == clean.head_by_automaton(line) == is_http, line
    a, n = pair
    with netns(n):
        log = EndLog(GROUP)
    sent: list[tuple[int, int, int, int, bool]] = []
    try:
        with netns(a):
            raw4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            raw6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        cases = [(4, 0x02, 0x18, line) for line in HEADS] + [
            (6, 0x02, 0x18, HEADS[0]),  # IPv6: the compiled loop answers IPv4 only
            (4, 0x12, 0x18, HEADS[0]),  # a direction opened by a SYN-ACK: a server's
            (4, 0x02, 0x08, HEADS[0]),  # PSH without ACK
            (4, 0x02, 0x19, HEADS[0]),  # with FIN
        ]
        for i, (family, syn, flags, line) in enumerate(cases):
            sock, dst = (raw4, V4[1]) if family == 4 else (raw6, V6[1])
            port, isn = 30000 + i, 1000 * i
            ref = clean.Direction.opened(isn, client=not syn & 0x10)
            sock.sendto(segment(family, port, isn, syn, b""), (dst, 0))
            seq = isn + 1
            for seg in (line, HEADS[0]):  # the head, then a second segment
                head = ref.is_head(
                    seq, seg, v4=family == 4, ack=bool(flags & 0x10), end=bool(flags & 0x05)
                )
                ref.segment(seq, seg)
                sock.sendto(segment(family, port, seq, flags, seg), (dst, 0))
                sent.append((family, port, seq, len(seg), head))
                seq += len(seg)
        raw4.close()
        raw6.close()
        seen = _marks(log, len(sent))
    finally:
        log.close()
    got = [bool((seen.get((f, p, s, k)) or [0]).pop(0) & marks.HEAD) for f, p, s, k, _ in sent]
    want = [w for *_, w in sent]
    assert got == want
    assert sum(want) == 6  # the six request lines of HEADS that are heads


def test_the_pin_of_an_enforcer_that_is_gone_is_removed(pair) -> None:
    """An enforcer killed before it could remove its classifier leaves the pin that keeps the
    program and its map in the kernel: the next one removes it."""
    _, n = pair
    pinned = tcfilter.BPF_FS / f"stockade-clean-{n}-{os.getpid()}"  # the fixture's classifier's
    assert pinned.exists()
    child = subprocess.Popen(["true"])
    child.wait()  # a process id that is gone
    stale = pinned.with_name(f"stockade-clean-{n}-{child.pid}")
    pinned.rename(stale)
    try:
        obj = tcfilter.program()
        assert obj is not None
        tcfilter.Classifier(n, obj)
        assert not stale.exists()
    finally:
        stale.unlink(missing_ok=True)
