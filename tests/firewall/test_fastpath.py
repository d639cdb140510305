"""The enforcer's two NFQUEUE loops (fastpath.py) on the same queued packets: the compiled one (C,
fed real nfnetlink_queue messages through a socketpair that stands for the kernel, its verdict
messages read back) and the pure-Python reference (netfilterqueue's packet object is the seam:
a recorder with its interface). Both must give every packet the same verdict and mark, and the
same events."""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from stockade.firewall.enforce import fastpath, marks, nft
from stockade.firewall.enforce.enforcer import Enforcer
from stockade.firewall.enforce.inspector import END_GRACE
from stockade.firewall.policy.endpoints import Directory
from stockade.network.dlp.engine import DlpEngine
from tests.firewall.test_inspector import ACK, FIN, POLICY, PSH, SYN, packet
from tests.firewall.test_policy_model import CRM, ORD, PAY

RST_FLAG = 0x04

PATHS = ["python", "compiled", "own"]  # "own": first segments and DLP answered in C
NF_ACCEPT = 1
QUEUE = 7

CARD = b'{"card": "4111 1111 1111 1111"}'
PAY_REQ = b"POST /pay HTTP/1.1\r\nHost: orders\r\nContent-Length: %d\r\n\r\n" % len(CARD) + CARD
GET = b"GET /orders HTTP/1.1\r\nHost: orders\r\n\r\n"
REDIS = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    import ipaddress

    body = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, 0, 64, 17, 0,
        ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed,
    )  # fmt: skip
    return ip + body


def icmp(src: str, dst: str, message: bytes) -> bytes:
    import ipaddress

    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(message), 1, 0, 64, 1, 0,
        ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed,
    )  # fmt: skip
    return ip + message


# (payload, packet mark from the kernel): one queue's worth of connections
CASES: list[tuple[bytes, int]] = [
    # allowed HTTP, DLP keeps watching: no mark, then the response
    (packet(PAY.ip, ORD.ip, 40000, 8080, ACK | PSH, 101, GET), marks.FIRST),
    (packet(ORD.ip, PAY.ip, 8080, 40000, ACK | PSH, 501, OK), marks.REPLY),
    # a card in clear: blocked, and the segments queued behind it get the same block
    (packet(PAY.ip, ORD.ip, 40001, 8080, ACK | PSH, 101, PAY_REQ), marks.FIRST),
    (packet(PAY.ip, ORD.ip, 40001, 8080, ACK | PSH, 101 + len(PAY_REQ), GET), 0),
    (packet(ORD.ip, PAY.ip, 8080, 40001, ACK | PSH, 501, OK), marks.REPLY),
    # a denied connection, from its SYN; then its data, then its FIN
    (packet(CRM.ip, ORD.ip, 40002, 8080, SYN, 100), marks.FIRST),
    (packet(CRM.ip, ORD.ip, 40002, 8080, ACK | PSH, 101, GET), 0),
    (packet(CRM.ip, ORD.ip, 40002, 8080, ACK | FIN, 101 + len(GET)), 0),
    # the wrong protocol on an allowed port
    (packet(PAY.ip, ORD.ip, 40003, 8080, ACK | PSH, 8, REDIS), marks.FIRST),
    (packet(PAY.ip, ORD.ip, 40003, 8080, ACK | PSH, 8 + len(REDIS), REDIS), 0),
    # a new connection on the pair of the blocked one: judged afresh, not from the table
    (packet(PAY.ip, ORD.ip, 40003, 8080, ACK | PSH, 9000, GET), marks.FIRST),
    # kube-proxy's bits on a packet are kept
    (packet(PAY.ip, ORD.ip, 40004, 8080, ACK | PSH, 101, PAY_REQ), marks.FIRST | 0x4000),
    # UDP, and packets that are no TCP/UDP at all
    (udp(PAY.ip, ORD.ip, 5353, 53, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"), 0),
    (b"\x45" + b"\x00" * 30, 0),
    (b"\xff" * 64, 0),
    # a ping into the CDE, which no rule allows (protect), then an ICMP error (it belongs to
    # the connection it reports on: passes)
    (icmp(PAY.ip, ORD.ip, bytes([8, 0, 0, 0, 0, 1, 0, 1]) + b"ping"), marks.FIRST),
    (icmp(ORD.ip, PAY.ip, bytes([3, 3, 0, 0, 0, 0, 0, 0]) + b"\x45" + bytes(27)), 0),
]


def enforcer(events: list[Any] | None = None, *, fail_open: bool = True) -> Enforcer:
    sink = events.append if events is not None else (lambda e: None)
    return Enforcer(
        "node-under-test",
        POLICY,
        Directory([PAY, ORD, CRM]),
        nft.Settings(queue=QUEUE, fail_open=fail_open),
        emit=sink,
        learn=lambda rows: None,
        dlp_engine=DlpEngine(),
    )


def _attr(kind: int, data: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(data), kind) + data
    return raw + b"\0" * (-len(raw) % 4)


def nfq_packet(packet_id: int, mark: int, payload: bytes, *, last: bool = False) -> bytes:
    """One NFQNL_MSG_PACKET message as the kernel writes it: the payload comes last, and the
    kernel does not pad it (the message's length is the unpadded one); in a batch the next message
    starts at the next multiple of 4 (``last``: no padding after it either)."""
    attrs = (
        _attr(1, struct.pack("!IHB", packet_id, 0x0800, 2))  # NFQA_PACKET_HDR
        + _attr(3, struct.pack("!I", mark))  # NFQA_MARK
        + struct.pack("=HH", 4 + len(payload), 10)  # NFQA_PAYLOAD, unpadded
        + payload
    )
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(QUEUE)) + attrs
    msg = struct.pack("=IHHII", 16 + len(body), 3 << 8, 0, 0, 0) + body
    return msg if last else msg + b"\0" * (-len(msg) % 4)


def batch(cases: list[tuple[bytes, int]], first_id: int = 1) -> bytes:
    """Several messages in one read, as the kernel batches them; the last one unpadded."""
    return b"".join(
        nfq_packet(i, m, p, last=i == first_id + len(cases) - 1)
        for i, (p, m) in enumerate(cases, first_id)
    )


def read_verdict(data: bytes) -> tuple[int, int, int | None]:
    """(packet id, verdict, mark or None) of one NFQNL_MSG_VERDICT message."""
    length, kind, flags, _, _ = struct.unpack_from("=IHHII", data)
    assert kind == (3 << 8) | 1 and flags & 1 and length == len(data)
    family, version, res = struct.unpack_from("=BBH", data, 16)
    assert (family, version, socket.ntohs(res)) == (socket.AF_UNSPEC, 0, QUEUE)
    off, verdict, packet_id, mark = 20, -1, -1, None
    while off < length:
        alen, atype = struct.unpack_from("=HH", data, off)
        if atype == 2:
            verdict, packet_id = struct.unpack_from("!II", data, off + 4)
        elif atype == 3:
            (mark,) = struct.unpack_from("!I", data, off + 4)
        off += alen + (-alen % 4)
    return packet_id, verdict, mark


class Recorded:
    """netfilterqueue's packet, as the reference loop uses it."""

    def __init__(self, packet_id: int, payload: bytes, mark: int, out: list[Any]) -> None:
        self.id, self._payload, self._mark, self._out = packet_id, payload, mark, out
        self._set: int | None = None

    def get_payload(self) -> bytes:
        return self._payload

    def get_mark(self) -> int:
        return self._mark if self._set is None else self._set

    def set_mark(self, mark: int) -> None:
        self._set = mark

    def accept(self) -> None:
        self._out.append((self.id, NF_ACCEPT, self._set))


def compiled_module() -> Any:
    module = fastpath.compiled()
    assert module is not None, (
        "the compiled loop is not built: python3 setup.py build_ext --inplace"
    )
    return module


Run = Callable[[Enforcer, list[tuple[bytes, int]]], list[tuple[int, int, int | None]]]


def run_python(enf: Enforcer, cases: list[tuple[bytes, int]]) -> list[tuple[int, int, int | None]]:
    out: list[tuple[int, int, int | None]] = []
    queue = fastpath.PythonQueue(None, enf.judge, 0 if enf.settings.fail_open else marks.BLOCK)
    for i, (payload, mark) in enumerate(cases, 1):
        queue.verdict(Recorded(i, payload, mark, out))
    return out


def run_compiled(
    enf: Enforcer,
    cases: list[tuple[bytes, int]],
    counts: dict[str, int] | None = None,
    *,
    own: bool = False,
    one_by_one: bool = False,
) -> list[tuple[int, int, int | None]]:
    """``own``: the loop also answers connections from their first segment, as the enforcer runs
    it (advice from the inspector, DLP scanned in C); ``one_by_one``: one read per packet."""
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for sock, opt in ((ours, socket.SO_SNDBUF), (kernel, socket.SO_RCVBUF)):
        sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
    fail = 0 if enf.settings.fail_open else marks.BLOCK
    extra: dict[str, Any] = (
        {"advise": enf.advise, "dlp": fastpath.dlp_expressions(enf._dlp)} if own else {}
    )
    queue = fastpath.CompiledQueue.attach(
        compiled_module(), ours.fileno(), QUEUE, enf.judge, fail, **extra
    )
    try:
        assert not own or queue.dlp
        if one_by_one:
            for i, (p, m) in enumerate(cases, 1):
                assert queue.dispatch(nfq_packet(i, m, p, last=True)) == 1
        else:
            assert queue.dispatch(batch(cases)) == len(cases)
        kernel.settimeout(2)
        out = [read_verdict(kernel.recv(256)) for _ in cases]
        if counts is not None:
            counts.update(queue.counts())
        return out
    finally:
        queue.close()
        ours.close()
        kernel.close()


def run_own(enf: Enforcer, cases: list[tuple[bytes, int]]) -> list[tuple[int, int, int | None]]:
    return run_compiled(enf, cases, own=True)


RUNS: dict[str, Run] = {"python": run_python, "compiled": run_compiled, "own": run_own}

# The verdict is final but for DLP, whose sensors (every built-in one the policy names, 9-digit
# SSNs among them) the kernel's first look covers: SCAN and SCAN_SHORT (see clean.py)
SCANNING = marks.SCAN | marks.SCAN_SHORT

EXPECTED_MARKS = [
    SCANNING | marks.FIRST,
    SCANNING | marks.REPLY,
    marks.BLOCK | marks.FIRST,  # the packet's own bits stay
    marks.BLOCK,
    marks.BLOCK | marks.REPLY,
    marks.BLOCK | marks.FIRST,
    marks.BLOCK,
    marks.BLOCK,
    marks.BLOCK | marks.FIRST,
    marks.BLOCK,
    SCANNING | marks.FIRST,  # a new connection, GET: allowed by cde-api, DLP keeps watching
    marks.BLOCK | marks.FIRST | 0x4000,
    marks.BLOCK,  # no rule lets payments send DNS to orders
    marks.ALLOW,  # IP protocol 0 between two ends in no group: unmanaged
    None,
    marks.BLOCK | marks.FIRST,  # the ping
    None,  # the ICMP error
]


@pytest.mark.parametrize("path", PATHS)
def test_every_queued_packet_gets_its_verdict_and_mark(path: str) -> None:
    events: list[Any] = []
    got = RUNS[path](enforcer(events), CASES)
    assert [(i, v) for i, v, _ in got] == [(i, NF_ACCEPT) for i in range(1, len(CASES) + 1)]
    assert [m for _, _, m in got] == EXPECTED_MARKS
    assert [e.kind for e in events] == [
        "dlp.blocked", "firewall.blocked", "firewall.blocked", "dlp.blocked", "firewall.blocked",
        "firewall.blocked",
    ]  # fmt: skip
    assert events[-1].data["l4"] == "icmp"
    assert all("4111 1111" not in repr(e.to_dict()) for e in events)


def _events(events: list[Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.to_dict().items() if k not in ("id", "at")} for e in events]


def test_both_loops_agree_packet_for_packet_and_event_for_event() -> None:
    results = {}
    for path in PATHS:
        events: list[Any] = []
        results[path] = (RUNS[path](enforcer(events), CASES), _events(events))
    assert results["python"] == results["compiled"] == results["own"]


def test_segments_behind_a_decision_are_answered_in_c_without_python() -> None:
    counts: dict[str, int] = {}
    run_compiled(enforcer(), CASES, counts)
    # 40001's two segments behind its block, 40003's second segment; the denied connection's
    # data after its SYN; its FIN goes to Python (the flow ends there)
    assert counts == {"judged": len(CASES) - 4, "fast": 4, "errors": 0,
                      "owned": 0, "handed": 0, "replayed": 0}  # fmt: skip


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("fail_open", [True, False])
def test_a_failing_judge_applies_the_fail_mode(path: str, fail_open: bool) -> None:
    enf = enforcer(fail_open=fail_open)

    def broken(payload: bytes, mark: int = 0) -> tuple[bool, int]:
        raise RuntimeError("a bug in the verdict handler")

    enf.inspector.packet = broken  # type: ignore[method-assign]
    got = RUNS[path](enf, CASES[:3])
    # "own": the first segment (an allowed HTTP request) is answered in C without the handler
    # (its verdict is final but for DLP: SCAN); the reply, out of order for C, hands the
    # connection back: both of its packets fail there
    own_first = SCANNING | marks.FIRST
    first = own_first if path == "own" else marks.BLOCK | marks.FIRST
    assert [m for _, _, m in got] == (
        [own_first if path == "own" else None, None, None]
        if fail_open
        else [first, marks.BLOCK | marks.REPLY, marks.BLOCK | marks.FIRST]
    )  # fmt: skip
    assert enf.errors == 3


def test_a_new_policy_forgets_the_decisions_the_c_loop_remembered() -> None:
    enf = enforcer()
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    queue = fastpath.CompiledQueue.attach(compiled_module(), ours.fileno(), QUEUE, enf.judge, 0)
    try:
        blocked = CASES[2:4]
        queue.dispatch(batch(blocked))
        assert queue.counts()["fast"] == 1
        queue.forget()
        queue.dispatch(nfq_packet(3, 0, blocked[1][0], last=True))
        assert {k: queue.counts()[k] for k in ("judged", "fast", "errors")} == {
            "judged": 2, "fast": 1, "errors": 0
        }  # fmt: skip
        assert [read_verdict(kernel.recv(256))[2] for _ in range(3)] == [
            marks.BLOCK | marks.FIRST,
            marks.BLOCK,
            marks.BLOCK,
        ]
    finally:
        queue.close()
        ours.close()
        kernel.close()


@pytest.mark.parametrize(
    ("raw", "want"),
    [("", fastpath.SPIN_US), ("0", 0), ("200", 200), ("-5", 0), ("99999", fastpath.SPIN_US_MAX),
     ("fast", fastpath.SPIN_US)],
)  # fmt: skip
def test_the_spin_after_a_read_is_bounded(
    monkeypatch: pytest.MonkeyPatch, raw: str, want: int
) -> None:
    monkeypatch.setenv("STOCKADE_ENFORCER_SPIN_US", raw)
    assert fastpath.spin_us() == want


def _spinning_queue(spin_ns: int) -> tuple[fastpath.CompiledQueue, socket.socket, socket.socket]:
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    queue = fastpath.CompiledQueue.attach(
        compiled_module(), ours.fileno(), QUEUE, enforcer().judge, 0
    )
    queue._lib.fp_set_spin(queue._q, spin_ns // 1000)  # past the 1 ms users get: a slow machine
    return queue, ours, kernel


def test_a_packet_that_comes_while_the_loop_spins_is_answered() -> None:
    queue, ours, kernel = _spinning_queue(5_000_000_000)
    wake_r, wake_w = os.pipe()
    verdicts: list[tuple[int, int, int | None]] = []

    def kernel_side() -> None:  # the next packet comes soon after the first one is answered
        kernel.settimeout(10)
        verdicts.append(read_verdict(kernel.recv(256)))
        time.sleep(0.2)  # the loop has read all there was: it spins (5 s at most)
        kernel.send(nfq_packet(2, CASES[1][1], CASES[1][0], last=True))
        verdicts.append(read_verdict(kernel.recv(256)))
        os.write(wake_w, b"!")

    try:
        kernel.send(nfq_packet(1, CASES[0][1], CASES[0][0], last=True))
        peer = threading.Thread(target=kernel_side)
        peer.start()
        assert queue.serve(wake_r, 30.0) is True  # back at once when the other descriptor is
        peer.join()
        assert [(i, v) for i, v, _ in verdicts] == [(1, NF_ACCEPT), (2, NF_ACCEPT)]
        counts = queue.counts()
        # the spin found packet 2, unless another task wanted the core (a loaded machine): then
        # the loop gave the core away and slept, and the packet woke it
        assert counts["spin_hits"] == 1 or counts["spin_yielded"] >= 1
    finally:
        queue.close()
        for closing in (ours, kernel):
            closing.close()
        os.close(wake_r)
        os.close(wake_w)


def test_the_spin_never_outlasts_the_serving_time() -> None:
    queue, ours, kernel = _spinning_queue(5_000_000_000)
    try:
        kernel.send(nfq_packet(1, CASES[0][1], CASES[0][0], last=True))
        started = time.monotonic()
        assert queue.serve(-1, 0.1) is False
        assert time.monotonic() - started < 2.0
        kernel.settimeout(2)
        assert read_verdict(kernel.recv(256))[:2] == (1, NF_ACCEPT)
    finally:
        queue.close()
        ours.close()
        kernel.close()


def test_switched_off_the_pure_python_loop_runs_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert compiled_module() is not None
    monkeypatch.setenv("STOCKADE_ENFORCER_FASTPATH", "0")
    assert fastpath.compiled() is None
    opened: list[int] = []
    monkeypatch.setattr(
        fastpath.PythonQueue, "open", classmethod(lambda cls, num, judge, fail: opened.append(num))
    )
    with caplog.at_level(logging.INFO, logger="stockade.enforcer"):
        fastpath.open_queue(QUEUE, enforcer().judge, 0)
    assert opened == [QUEUE]
    assert "pure-Python verdict loop; the compiled one is switched off" in caplog.text


# Whole conversations, sequence numbers as the kernel passes them: what the compiled loop answers
# alone from a connection's first segment (fastpath_own.c), and where it hands it back to Python.


class Conversation:
    """One TCP connection's segments with payload, client and server sequence numbers kept."""

    def __init__(self, sport: int, dport: int = 8080, src: str = PAY.ip, dst: str = ORD.ip):
        self.src, self.dst, self.sport, self.dport = src, dst, sport, dport
        self.seq = [1000 + sport, 900_000 + sport]
        self.out: list[tuple[bytes, int]] = []

    def send(self, data: bytes, *, server: bool = False, flags: int = ACK | PSH) -> Conversation:
        d = int(server)
        ends = ((self.dst, self.src, self.dport, self.sport) if server
                else (self.src, self.dst, self.sport, self.dport))  # fmt: skip
        mark = marks.REPLY if server else (marks.FIRST if not self.out else 0)
        self.out.append((seg(*ends, self.seq[d], self.seq[1 - d], data, flags), mark))
        self.seq[d] = (self.seq[d] + len(data) + (1 if flags & FIN else 0)) & 0xFFFFFFFF
        return self

    def exchange(self, request: bytes, *answer: bytes) -> Conversation:
        self.send(request)
        for part in answer:
            self.send(part, server=True)
        return self


def seg(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, data: bytes,
        flags: int = ACK | PSH) -> bytes:  # fmt: skip
    import ipaddress

    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + data
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
        ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed,
    )  # fmt: skip
    return ip + tcp


JSON_REQ = (b"POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Length: 23\r\n"
            b"content-type: application/json\r\n\r\n{\"order\": 12, \"qty\": 2}")  # fmt: skip
HEADERS = b"HTTP/1.0 200 OK\r\nServer: BaseHTTP/0.6\r\nDate: Sat, 05 Dec 2026 05:13:03 GMT\r\n"
HEADERS += b"content-length: 12\r\n\r\n"
BODY = b'{"ok": true}'
CARD_REQ = b"POST /pay HTTP/1.1\r\nHost: orders\r\nContent-Length: 31\r\n\r\n" + CARD


# A TLS 1.3 ClientHello as Python's ssl (OpenSSL 3) wrote it for server_hostname="orders", kept
# as bytes: a fresh one each run made the "answered in C from the first segment" test fail about
# one run in 25 (some ClientHellos' random bytes send the connection to Python; still judged
# right there, cause not found; reproduce with ssl.create_default_context().wrap_bio(...)).
_CLIENT_HELLO = bytes.fromhex(
    "1603010200010001fc0303003b86a1d45c2ab83da08645a21557f8170ffd9ae52201428e4f9736165876f220"
    "394f9c68df58542c6d2279058855d2a801ee9c6dbfc1c48518b37a9f0f3eae600024130213031301c02cc030"
    "c02bc02fcca9cca8c024c028c023c027009f009e006b006700ff0100018f0000000b00090000066f72646572"
    "73000b000403000102000a00160014001d0017001e0019001801000101010201030104002300000016000000"
    "170000000d002a0028040305030603080708080809080a080b08040805080604010501060103030301030204"
    "0205020602002b00050403040303002d00020101003300260024001d0020edf129e56e39c0d2bdd055075628"
    "7d6ba46c136e3759f3dc8c2a2aba0b8cd249001500e700000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000"
)


def _tls_hello() -> bytes:
    return _CLIENT_HELLO


def conversations() -> dict[str, list[tuple[bytes, int]]]:
    c = Conversation
    chunked = (b"POST /pay HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"8\r\n4111 111\r\n17\r\n1 1111 1111\"}\r\n0\r\n\r\n")  # fmt: skip
    out_of_order = c(41007).exchange(JSON_REQ, HEADERS, BODY)
    late = out_of_order.out.pop(1)
    out_of_order.out.insert(2, late)
    return {
        "keep-alive": c(41001)
        .exchange(JSON_REQ, HEADERS, BODY)
        .exchange(JSON_REQ, HEADERS, BODY)
        .exchange(JSON_REQ, HEADERS, BODY)
        .out,
        "card in the third request": c(41002)
        .exchange(JSON_REQ, HEADERS, BODY)
        .exchange(JSON_REQ, HEADERS, BODY)
        .exchange(CARD_REQ)
        .send(JSON_REQ)
        .out,
        "card across two segments": c(41003)
        .exchange(JSON_REQ, HEADERS, BODY)
        .send(CARD_REQ[:-15])
        .send(CARD_REQ[-15:])
        .out,
        "card in the response": c(41004)
        .exchange(JSON_REQ, HEADERS, b'{"card": "4111-1111-1111-1111"}')
        .out,
        "segment ending in a digit": c(41005).send(JSON_REQ).send(b"4111 1111 1111 1111").out,
        "chunked card": c(41006).exchange(JSON_REQ, HEADERS, BODY).send(chunked).out,
        "out of order": out_of_order.out,
        "retransmitted": c(41013).exchange(JSON_REQ, HEADERS, BODY).exchange(JSON_REQ, HEADERS).out
        + c(41013).exchange(JSON_REQ, HEADERS, BODY).exchange(JSON_REQ, HEADERS).out[3:5]
        + c(41013).exchange(JSON_REQ, HEADERS, BODY).exchange(JSON_REQ, HEADERS, CARD).out[5:],
        "ssn word in the body": c(41008).exchange(JSON_REQ, HEADERS, b'{"ssn": "078-05-1120"}').out,
        "FIN after data": c(41009).exchange(JSON_REQ, HEADERS, BODY).send(b"", flags=ACK | FIN).out,
        "TLS": c(41010, 8443).exchange(_tls_hello(), b"\x16\x03\x03\x00\x02\x02\x00").out,
        "redis on the HTTP port": c(41011).exchange(REDIS, b"+OK\r\n").out,
        "denied pair": c(41012, src=CRM.ip).exchange(JSON_REQ, HEADERS).out,
        "port reused by a new connection": c(41001).exchange(CARD_REQ).out,
    }


@pytest.mark.parametrize("name", list(conversations()))
def test_connections_answered_in_c_get_the_verdicts_and_events_of_python(name: str) -> None:
    cases = conversations()["keep-alive"] + conversations()[name]  # the pair's advice is known
    results = {}
    for path in PATHS:
        events: list[Any] = []
        results[path] = (RUNS[path](enforcer(events), cases), _events(events))
    assert results["own"] == results["python"] == results["compiled"]


def test_plain_http_is_answered_in_c_from_the_first_segment_without_python() -> None:
    judged: list[int] = []
    enf = enforcer()
    judge = enf.judge

    def counting(payload: bytes, mark: int) -> tuple[int, bool]:
        judged.append(mark)
        return judge(payload, mark)

    enf.judge = counting  # type: ignore[method-assign]
    counts: dict[str, int] = {}
    cases = [p for n in ("keep-alive", "TLS") for p in conversations()[n]]
    got = run_compiled(enf, cases, counts, own=True, one_by_one=True)
    # accepted, DLP keeps watching: the verdict is final but for DLP (SCAN)
    assert [(m or 0) & ~(marks.FIRST | marks.REPLY) for _, _, m in got] == [SCANNING] * len(cases)
    assert judged == [] and counts["owned"] == 2 and counts["judged"] == 0


def test_a_match_hands_the_connection_back_with_every_packet_in_order() -> None:
    seen: list[bytes] = []
    events: list[Any] = []
    enf = enforcer(events)
    judge = enf.judge

    def recording(payload: bytes, mark: int) -> tuple[int, bool]:
        seen.append(payload)
        return judge(payload, mark)

    enf.judge = recording  # type: ignore[method-assign]
    counts: dict[str, int] = {}
    request = b"POST /x HTTP/1.1\r\nHost: orders\r\n\r\n" + b'{"x": "4111 1111 1111 1111"}'
    cases = (
        Conversation(41020)
        .exchange(JSON_REQ, HEADERS, BODY)
        .send(request[:-11])
        .send(
            request[-11:]  # cut after "4111 1111 ": the prefilter matches in the second part
        )
        .out
    )
    got = run_compiled(enf, cases, counts, own=True, one_by_one=True)
    assert seen == [p for p, _ in cases]  # the four answered in C, replayed, then the last
    assert [m for _, _, m in got][-1] == marks.BLOCK
    assert counts["handed"] == counts["handed_match"] == 1
    assert counts["replayed"] == len(cases) - 1
    assert [e.kind for e in events] == ["dlp.blocked"]


def test_a_new_policy_forgets_the_connections_answered_in_c() -> None:
    enf = enforcer()
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    queue = fastpath.CompiledQueue.attach(
        compiled_module(), ours.fileno(), QUEUE, enf.judge, 0,
        advise=enf.advise, dlp=fastpath.dlp_expressions(enf._dlp), end=enf.inspector.end_seen,
    )  # fmt: skip
    try:
        cases = conversations()["keep-alive"]
        queue.dispatch(batch(cases[:3]))
        assert queue.counts()["owned"] == 1
        queue.forget()  # the enforcer's update(): the new inspector starts with no flows
        queue.dispatch(batch(cases[3:4], 4))  # judged by Python, as a flow it never saw
        assert queue.counts()["judged"] == 1 and queue.counts()["replayed"] == 0
    finally:
        queue.close()
        ours.close()
        kernel.close()


def test_an_ended_connection_is_kept_for_the_grace_then_freed_in_c() -> None:
    enf = enforcer()
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    queue = fastpath.CompiledQueue.attach(
        compiled_module(), ours.fileno(), QUEUE, enf.judge, 0,
        advise=enf.advise, dlp=fastpath.dlp_expressions(enf._dlp), end=enf.inspector.end_seen,
    )  # fmt: skip
    try:
        talk = Conversation(41030).exchange(JSON_REQ, HEADERS, BODY)
        queue.dispatch(batch(talk.out))
        assert queue.counts()["owned"] == 1
        client_fin = talk.send(b"", flags=ACK | FIN).out.pop()[0]
        queue.ended(client_fin)  # one direction: the connection is still open
        again = Conversation(41030).exchange(JSON_REQ, HEADERS, BODY).out
        queue.dispatch(nfq_packet(4, marks.REPLY, again[1][0], last=True))  # a retransmission
        assert queue.counts()["retransmitted"] == 1 and queue.counts()["handed"] == 0
        # from inside the headers to past what came: new bytes, some seen, for Python to trim
        overlap = seg(ORD.ip, PAY.ip, 8080, 41030, 900_000 + 41030 + 4,
                      1000 + 41030 + len(JSON_REQ), HEADERS + BODY)  # fmt: skip
        queue.dispatch(nfq_packet(5, marks.REPLY, overlap, last=True))
        assert queue.counts()["handed"] == queue.counts()["handed_order"] == 1
        assert queue.counts()["replayed"] == 3
        talk = Conversation(41031).exchange(JSON_REQ, HEADERS, BODY)
        queue.dispatch(batch(talk.out, 6))
        for fin in (talk.send(b"", flags=ACK | FIN).out.pop()[0],
                    talk.send(b"", server=True, flags=ACK | FIN).out.pop()[0]):  # fmt: skip
            queue.ended(fin)  # both ways: kept END_GRACE seconds, as Python keeps its flow
        queue.dispatch(nfq_packet(9, marks.REPLY, talk.out[1][0], last=True))
        # within the grace: handed back with its past, judged as Python judges it
        assert queue.counts()["handed"] == 2 and queue.counts()["handed_end"] == 1
        assert queue.counts()["replayed"] == 6
        talk = Conversation(41032).exchange(JSON_REQ, HEADERS, BODY)
        queue.dispatch(batch(talk.out, 10))
        for fin in (talk.send(b"", flags=ACK | FIN).out.pop()[0],
                    talk.send(b"", server=True, flags=RST_FLAG).out.pop()[0]):  # fmt: skip
            queue.ended(fin)
        time.sleep(END_GRACE + 2.1)  # the C clock counts whole seconds
        queue.dispatch(nfq_packet(13, marks.REPLY, talk.out[1][0], last=True))
        # past the grace: freed, its packets with it; the late packet goes to Python alone
        assert queue.counts()["handed"] == 2 and queue.counts()["replayed"] == 6
    finally:
        queue.close()
        ours.close()
        kernel.close()


HTTP_LINES = [
    b"GET / HTTP/1.1\r\n", b"GET / HTTP/1.0\n", b"DELETE /x?y=1 HTTP/1.1\r\r\n",
    b"CONNECT orders:443 HTTP/1.1\r\n", b"GET  / HTTP/1.1\r\n", b"GET / HTTP/1.2\r\n",
    b"get / HTTP/1.1\r\n", b"GET / HTTP/1.1", b"FETCH / HTTP/1.1\r\n", b"GET /\t HTTP/1.1\r\n",
    b"GET / HTTP/1.1 \r\n", b"PROPFIND /a HTTP/1.1\r\nHost: x\r\n\r\n", b"GE",
    b"GET " + b"a" * 600 + b" HTTP/1.1\r\n", b"GET /" + b"\xff" * 10 + b" HTTP/1.1\r\n",
]  # fmt: skip


def test_the_c_protocol_check_never_claims_what_python_detects_otherwise() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from stockade.firewall.enforce.inspector import _hello_pending
    from stockade.network.protocols import detect

    lib, ffi = compiled_module().lib, compiled_module().ffi
    hello = _tls_hello()

    def check(data: bytes) -> None:
        app = lib.fp_app(ffi.from_buffer(data), len(data))
        if app == fastpath.PAIR_HTTP:
            assert detect(data, b"").protocol == "proto.http", data
        elif app == fastpath.PAIR_TLS:
            det = detect(data, b"")
            assert det.protocol == "proto.tls", data
            # a hello that parses: the only TLS a rule naming proto.tls lets through
            assert det.encrypted, data
            assert not _hello_pending(bytearray(data), bytearray())
        else:
            assert app == 0

    # record and handshake headers that fit, around a body that is no ClientHello
    fakes = [
        b"\x16\x03\x01\x00\x06\x01\x00\x00\x02\x03\x03",
        b"\x16\x03\x01\x00\x30\x01\x00\x00\x2c\x03\x03" + b"A" * 44,
    ]
    for fake in fakes:
        assert lib.fp_app(fake, len(fake)) == 0, fake
    for data in [*HTTP_LINES, JSON_REQ, CARD_REQ, REDIS, hello, hello[:100], hello + b"x", *fakes]:
        check(data)
    assert lib.fp_app(JSON_REQ, len(JSON_REQ)) == fastpath.PAIR_HTTP
    assert lib.fp_app(hello, len(hello)) == fastpath.PAIR_TLS
    assert lib.fp_app(b"GET / HTTP/1.1", 14) == 0  # no end of line yet: Python waits

    @settings(max_examples=400, deadline=None)
    @given(
        st.sampled_from([JSON_REQ, hello, *HTTP_LINES]), st.integers(0, 40), st.binary(max_size=3)
    )
    def altered(base: bytes, at: int, junk: bytes) -> None:
        check(base[:at] + junk + base[at + len(junk) :])

    altered()

    # anywhere in the hello: its vectors and extensions, which the C walk must read as tls.py
    @settings(max_examples=600, deadline=None)
    @given(st.integers(0, len(hello) - 1), st.binary(min_size=1, max_size=2))
    def altered_hello(at: int, junk: bytes) -> None:
        check(hello[:at] + junk + hello[at + len(junk) :])

    altered_hello()


# --- copies of clean segments (clean.py): read in order, no verdict -------------------------


def run_with_copies(
    path: str, enf: Enforcer, cases: list[tuple[bytes, int, bool]]
) -> list[tuple[int, int, int | None]]:
    """The verdicts of the queued packets of ``cases`` (payload, mark, is a copy), the copies
    handed to the queue's ``copy`` in their place, as the enforcer's loop does."""
    fail = 0 if enf.settings.fail_open else marks.BLOCK
    out: list[tuple[int, int, int | None]] = []
    if path == "python":
        pyq = fastpath.PythonQueue(None, enf.judge, fail)
        for i, (payload, mark, copy) in enumerate(cases, 1):
            if copy:
                pyq.copy(payload, mark)
            else:
                pyq.verdict(Recorded(i, payload, mark, out))
        return out
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    extra: dict[str, Any] = (
        {"advise": enf.advise, "dlp": fastpath.dlp_expressions(enf._dlp)} if path == "own" else {}
    )
    queue = fastpath.CompiledQueue.attach(
        compiled_module(), ours.fileno(), QUEUE, enf.judge, fail, **extra
    )
    try:
        kernel.settimeout(2)
        for i, (payload, mark, copy) in enumerate(cases, 1):
            if copy:
                queue.copy(payload, mark)
            else:
                assert queue.dispatch(nfq_packet(i, mark, payload, last=True)) == 1
                out.append(read_verdict(kernel.recv(256)))
        return out
    finally:
        queue.close()
        ours.close()
        kernel.close()


def _with_copies() -> dict[str, list[tuple[bytes, int, bool]]]:
    """Conversations whose segments after the first go as the kernel's first look sends them:
    a copy when clean, queued when not."""
    c = Conversation
    closing = c(42003).exchange(JSON_REQ, HEADERS)
    closing.send(BODY, server=True, flags=ACK | PSH | FIN)  # the server answers and closes
    convs = {
        "card cut after a clean segment": c(42001)
        .exchange(JSON_REQ, HEADERS, BODY)
        .send(CARD_REQ[:-22])
        .send(CARD_REQ[-22:])
        .out,
        "clean keep-alive": c(42002)
        .exchange(JSON_REQ, HEADERS, BODY)
        .exchange(JSON_REQ, HEADERS, BODY)
        .send(JSON_REQ)
        .out,
        "the server answers and closes": closing.send(JSON_REQ).out,
    }
    from stockade.firewall.enforce.clean import Direction

    out = {}
    for name, packets in convs.items():
        directions: dict[int, Direction] = {}
        cases = []
        for k, (payload, mark) in enumerate(packets):
            seq = struct.unpack("!I", payload[24:28])[0]
            d = directions.setdefault(bool(mark & marks.REPLY), Direction.opened(seq - 1))
            clean = d.segment(seq, payload[40:])[1]  # the example policy: SSNs too (SHORT)
            cases.append((payload, mark, k > 0 and clean))
        out[name] = cases
    return out


@pytest.mark.parametrize("name", list(_with_copies()))
def test_copies_of_clean_segments_give_the_same_verdicts_and_events_on_every_path(
    name: str,
) -> None:
    cases = _with_copies()[name]
    assert any(copy for _, _, copy in cases) and not cases[0][2]
    results = {}
    for path in PATHS:
        events: list[Any] = []
        results[path] = (run_with_copies(path, enforcer(events), cases), _events(events))
    assert results["own"] == results["python"] == results["compiled"]
    verdicts, events = results["python"]
    if name.startswith("card"):
        # the last segment completes the card: queued, blocked, with the masked evidence
        assert not cases[-1][2] and verdicts[-1][2] is not None and verdicts[-1][2] & marks.BLOCK
        assert [e["kind"] for e in events] == ["dlp.blocked"]
    else:
        assert not events and all(not (m or 0) & marks.BLOCK for _, _, m in verdicts)


def nflog_copy(payload: bytes, mark: int) -> bytes:
    """One NFULNL_MSG_PACKET message as the kernel sends a clean segment's copy: the packet mark
    and the whole packet (ends.EndLog.whole)."""
    attrs = _attr(2, struct.pack("!I", mark)) + _attr(9, payload)  # NFULA_MARK, NFULA_PAYLOAD
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(0x8000 + QUEUE)) + attrs
    return struct.pack("=IHHII", 16 + len(body), 4 << 8, 0, 0, 0) + body


def test_copies_wait_while_they_keep_coming_and_are_read_before_the_next_queued_packet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The compiled loop does not wake for every copy while copies keep coming (a wake-up each
    cost a new connection about as much as its trip through the queue): a copy waits, but never
    past the next packet read from the queue, so the card cut across a clean segment is still
    blocked as on the Python path; left alone, waiting copies are read when due."""
    monkeypatch.setenv("STOCKADE_ENFORCER_COPIES_WAIT_US", "100000")
    cases = _with_copies()["card cut after a clean segment"]
    python_events: list[Any] = []
    expected = run_with_copies("python", enforcer(python_events), cases)
    events: list[Any] = []
    enf = enforcer(events)
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    copies_ours, copies_kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    queue = fastpath.CompiledQueue.attach(
        compiled_module(), ours.fileno(), QUEUE, enf.judge, 0,
        advise=enf.advise, dlp=fastpath.dlp_expressions(enf._dlp),
    )  # fmt: skip
    got: list[tuple[int, int, int | None]] = []
    waited = 0  # copies still unread after a serve() that ran while they came
    try:
        assert queue.read_copies(copies_ours.fileno())
        kernel.settimeout(2)
        for i, (payload, mark, copy) in enumerate(cases, 1):
            if copy:
                copies_kernel.send(nflog_copy(payload, mark | marks.CLEAN))
                before = queue.counts().get("copied_fast", 0)
                queue.serve(-1, 0.01)
                waited += queue.counts().get("copied_fast", 0) == before
            else:
                kernel.send(nfq_packet(i, mark, payload, last=True))
                deadline = time.monotonic() + 5
                while not select_readable(kernel) and time.monotonic() < deadline:
                    queue.serve(-1, 0.01)
                got.append(read_verdict(kernel.recv(256)))
        copies_kernel.send(nflog_copy(cases[1][0], cases[1][1] | marks.CLEAN))  # a retransmission
        for _ in range(30):  # due after 100 ms: read though no packet comes
            queue.serve(-1, 0.01)
        counts = queue.counts()
    finally:
        queue.close()
        for s in (ours, kernel, copies_ours, copies_kernel):
            s.close()
    assert got == expected
    assert _events(events) == _events(python_events)
    assert [e["kind"] for e in _events(events)] == ["dlp.blocked"]
    assert waited >= 1, "every copy woke the loop at once"
    assert counts.get("copies_due", 0) >= 1


def select_readable(sock: socket.socket) -> bool:
    import select

    return bool(select.select([sock], [], [], 0)[0])


def test_the_compiled_loop_reads_the_ends_and_only_python_s_connections_reach_python() -> None:
    """With the ends' socket read in C (read_ends), the FINs of a connection answered in C are
    noted there (a late packet within the grace is handed back with its past) without a call
    into Python; the end of a connection Python judged goes to Python's end callback. (Read in
    Python, a batch of a hundred ends held the queue up a millisecond or more.)"""
    enf = enforcer()
    seen: list[bytes] = []

    def end(packet: bytes) -> None:
        seen.append(packet)
        enf.inspector.end_seen(packet)

    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ends_ours, ends_kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    queue = fastpath.CompiledQueue.attach(
        compiled_module(), ours.fileno(), QUEUE, enf.judge, 0,
        advise=enf.advise, dlp=fastpath.dlp_expressions(enf._dlp), end=end,
    )  # fmt: skip
    try:
        assert queue.read_ends(ends_ours.fileno())
        kernel.settimeout(2)
        owned = Conversation(41040).exchange(JSON_REQ, HEADERS, BODY)
        judged = Conversation(41041).exchange(REDIS, b"+OK\r\n")  # Python's: not HTTP
        cases = owned.out + judged.out
        assert queue.dispatch(batch(cases)) == len(cases)
        for _ in cases:
            read_verdict(kernel.recv(256))
        assert queue.counts()["owned"] == 1
        fins = [
            owned.send(b"", flags=ACK | FIN).out.pop()[0],
            owned.send(b"", server=True, flags=ACK | FIN).out.pop()[0],
            judged.send(b"", flags=ACK | FIN).out.pop()[0],
        ]
        for fin in fins:
            ends_kernel.send(nflog_copy(fin, 0))
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            queue.serve(-1, 0.01)
        assert seen == [fins[2]], "only the end of Python's connection reaches Python"
        queue.dispatch(nfq_packet(90, marks.REPLY, owned.out[1][0], last=True))
        read_verdict(kernel.recv(256))
        # the owned connection ended both ways in C: a late packet goes back with its past
        assert queue.counts()["handed"] == queue.counts()["handed_end"] == 1
    finally:
        queue.close()
        for s in (ours, kernel, ends_ours, ends_kernel):
            s.close()


@pytest.mark.parametrize(
    ("head", "spins"),
    [
        (JSON_REQ.partition(b"\r\n\r\n")[0] + b"\r\n\r\n", True),  # the body is written next
        (JSON_REQ, False),  # the body came with the head
        (b"GET /orders HTTP/1.1\r\nHost: orders\r\n\r\n", False),  # no body
        (b"POST /o HTTP/1.1\r\nContent-Length: 0\r\n\r\n", False),
        (b"POST /o HTTP/1.1\r\ncontent-length:  12\r\nExpect: 100-continue\r\n\r\n", False),
        (b"PUT /o HTTP/1.1\r\nCONTENT-LENGTH: 7\r\n\r\n", True),
    ],
)
def test_the_loop_spins_briefly_after_a_request_head_whose_body_follows(
    head: bytes, spins: bool
) -> None:
    """Clients write a body apart from its head a few microseconds later (Python's http.client
    does): after answering such a head in C the loop polls without sleeping for a moment
    (STOCKADE_ENFORCER_BODY_SPIN_US), so the body does not cost a wake-up; not after any other
    first segment, and never past the serving time."""
    enf = enforcer()
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    queue = fastpath.CompiledQueue.attach(
        compiled_module(), ours.fileno(), QUEUE, enf.judge, 0,
        advise=enf.advise, dlp=fastpath.dlp_expressions(enf._dlp),
    )  # fmt: skip
    # 20 ms, past the 1 ms users get: a loaded machine may take the core from the loop for
    # longer than a short spin, which then never starts
    queue._lib.fp_set_body_spin(queue._q, 20_000)
    try:
        first = Conversation(41050).send(head).out[0]
        kernel.send(nfq_packet(1, first[1], first[0], last=True))
        started = time.monotonic()
        assert queue.serve(-1, 0.2) is False
        assert time.monotonic() - started < 2.0
        kernel.settimeout(2)
        assert read_verdict(kernel.recv(256))[:2] == (1, NF_ACCEPT)
        counts = queue.counts()
        assert counts["owned"] == 1
        spun = counts.get("spin_misses", 0) + counts.get("spin_hits", 0)
        assert spun == (1 if spins else 0)
    finally:
        queue.close()
        ours.close()
        kernel.close()
