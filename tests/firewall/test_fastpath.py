"""The enforcer's two NFQUEUE loops (fastpath.py) on the same queued packets: the compiled one (C,
fed real nfnetlink_queue messages through a socketpair that stands for the kernel, its verdict
messages read back) and the pure-Python reference (netfilterqueue's packet object is the seam:
a recorder with its interface). Both must give every packet the same verdict and mark, and the
same events."""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Callable
from typing import Any

import pytest

from stockade.firewall.enforce import fastpath, marks, nft
from stockade.firewall.enforce.enforcer import Enforcer
from stockade.firewall.policy.endpoints import Directory
from stockade.network.dlp.engine import DlpEngine
from tests.firewall.test_inspector import ACK, FIN, POLICY, PSH, SYN, packet
from tests.firewall.test_policy_model import CRM, ORD, PAY

PATHS = ["python", "compiled"]
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
    enf: Enforcer, cases: list[tuple[bytes, int]], counts: dict[str, int] | None = None
) -> list[tuple[int, int, int | None]]:
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    fail = 0 if enf.settings.fail_open else marks.BLOCK
    queue = fastpath.CompiledQueue.attach(compiled_module(), ours.fileno(), QUEUE, enf.judge, fail)
    try:
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


RUNS: dict[str, Run] = {"python": run_python, "compiled": run_compiled}

EXPECTED_MARKS = [
    None,
    None,
    marks.BLOCK | marks.FIRST,  # the packet's own bits stay
    marks.BLOCK,
    marks.BLOCK | marks.REPLY,
    marks.BLOCK | marks.FIRST,
    marks.BLOCK,
    marks.BLOCK,
    marks.BLOCK | marks.FIRST,
    marks.BLOCK,
    None,  # a new connection, GET: allowed by cde-api, DLP keeps watching
    marks.BLOCK | marks.FIRST | 0x4000,
    marks.BLOCK,  # no rule lets payments send DNS to orders
    None,
    None,
]


@pytest.mark.parametrize("path", PATHS)
def test_every_queued_packet_gets_its_verdict_and_mark(path: str) -> None:
    events: list[Any] = []
    got = RUNS[path](enforcer(events), CASES)
    assert [(i, v) for i, v, _ in got] == [(i, NF_ACCEPT) for i in range(1, len(CASES) + 1)]
    assert [m for _, _, m in got] == EXPECTED_MARKS
    assert [e.kind for e in events] == [
        "dlp.blocked", "firewall.blocked", "firewall.blocked", "dlp.blocked", "firewall.blocked"
    ]  # fmt: skip
    assert all("4111 1111" not in repr(e.to_dict()) for e in events)


def test_both_loops_agree_packet_for_packet_and_event_for_event() -> None:
    results = {}
    for path in PATHS:
        events: list[Any] = []
        results[path] = (RUNS[path](enforcer(events), CASES), [e.to_dict() for e in events])
    strip = [{k: v for k, v in e.items() if k not in ("id", "at")} for e in results["python"][1]]
    ours = [{k: v for k, v in e.items() if k not in ("id", "at")} for e in results["compiled"][1]]
    assert results["python"][0] == results["compiled"][0]
    assert strip == ours


def test_segments_behind_a_decision_are_answered_in_c_without_python() -> None:
    counts: dict[str, int] = {}
    run_compiled(enforcer(), CASES, counts)
    # 40001's two segments behind its block, 40003's second segment; the denied connection's
    # data after its SYN; its FIN goes to Python (the flow ends there)
    assert counts == {"judged": len(CASES) - 4, "fast": 4, "errors": 0}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("fail_open", [True, False])
def test_a_failing_judge_applies_the_fail_mode(path: str, fail_open: bool) -> None:
    enf = enforcer(fail_open=fail_open)

    def broken(payload: bytes, mark: int = 0) -> tuple[bool, int]:
        raise RuntimeError("a bug in the verdict handler")

    enf.inspector.packet = broken  # type: ignore[method-assign]
    got = RUNS[path](enf, CASES[:3])
    assert [m for _, _, m in got] == (
        [None] * 3 if fail_open else [marks.BLOCK | marks.FIRST, marks.BLOCK | marks.REPLY,
                                      marks.BLOCK | marks.FIRST]
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
        assert queue.counts() == {"judged": 2, "fast": 1, "errors": 0}
        assert [read_verdict(kernel.recv(256))[2] for _ in range(3)] == [
            marks.BLOCK | marks.FIRST,
            marks.BLOCK,
            marks.BLOCK,
        ]
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
