"""The verdict handler on hand-built IP packets (no kernel): marks, events, masked evidence."""

from __future__ import annotations

import ipaddress
import struct
import time

from stockade.firewall.enforce import marks
from stockade.firewall.enforce.inspector import Inspector
from stockade.firewall.policy.endpoints import Directory
from stockade.firewall.policy.files import load_files, parse_texts
from stockade.network.dlp.engine import DlpEngine
from tests.firewall.conftest import EXAMPLES
from tests.firewall.test_policy_model import CRM, ORD, PAY

POLICY = load_files([EXAMPLES / "policy.yaml"])
SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01


def packet(
    src: str, dst: str, sport: int, dport: int, flags: int, seq: int, payload: bytes = b""
) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload
    total = 20 + len(tcp)
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        total,
        1,
        0,
        64,
        6,
        0,
        ipaddress.ip_address(src).packed,
        ipaddress.ip_address(dst).packed,
    )
    return ip + tcp


def inspector(events: list) -> Inspector:
    return Inspector(POLICY, Directory([PAY, ORD, CRM]), dlp_engine=DlpEngine(), emit=events.append)


def test_denied_connection_is_blocked_on_its_syn_with_the_rule() -> None:
    events: list = []
    insp = inspector(events)
    assert insp.packet(packet(CRM.ip, ORD.ip, 40000, 8080, SYN, 100)) == (True, marks.BLOCK)
    assert [e.kind for e in events] == ["firewall.blocked"] and events[0].data[
        "rule"
    ] == "no-marketing-in-cde"


def test_card_at_the_very_end_of_a_request_is_blocked_before_delivery() -> None:
    events: list = []
    insp = inspector(events)
    assert insp.packet(packet(PAY.ip, ORD.ip, 40001, 8080, SYN, 100)) == (
        True,
        0,
    )  # needs the protocol
    body = b'{"card": "4111 1111 1111 1111"}'
    req = b"POST /pay HTTP/1.1\r\nHost: orders\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    assert insp.packet(packet(PAY.ip, ORD.ip, 40001, 8080, ACK | PSH, 101, req)) == (
        True,
        marks.BLOCK,
    )
    assert [e.kind for e in events] == ["dlp.blocked"]
    assert events[0].data["evidence"] == "4111 **** **** 1111" and "4111 1111" not in repr(
        events[0].to_dict()
    )


def test_clean_request_is_inspected_and_the_flow_keeps_being_watched_for_data() -> None:
    events: list = []
    insp = inspector(events)
    insp.packet(packet(PAY.ip, ORD.ip, 40002, 8080, SYN, 7))
    req = b"GET /orders HTTP/1.1\r\nHost: orders\r\n\r\n"
    accept, mark = insp.packet(packet(PAY.ip, ORD.ip, 40002, 8080, ACK | PSH, 8, req))
    # allowed by cde-api, but the CDE's DLP rules keep looking: the verdict is final but for
    # DLP sensors the kernel's first look covers (the SSN's 9 digits among them; clean.py)
    assert accept and mark == marks.SCAN | marks.SCAN_SHORT
    assert events == []


def test_wrong_protocol_on_an_allowed_port_is_blocked_once_detected() -> None:
    events: list = []
    insp = inspector(events)
    insp.packet(packet(PAY.ip, ORD.ip, 40003, 8080, SYN, 7))
    redis = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
    assert insp.packet(packet(PAY.ip, ORD.ip, 40003, 8080, ACK | PSH, 8, redis))[1] == marks.BLOCK
    assert events[0].kind == "firewall.blocked" and events[0].data["app"] == "proto.redis"


def test_garbage_and_truncated_packets_are_let_through_unharmed() -> None:
    insp = inspector([])
    for junk in (
        b"",
        b"\x45",
        b"\x60" + b"\x00" * 10,
        packet(PAY.ip, ORD.ip, 1, 2, SYN, 0)[:30],
        b"\xff" * 64,
    ):
        assert insp.packet(junk) == (True, 0)
    assert insp.stats["malformed"] >= 1


HTTP_ONLY = parse_texts(
    [
        (
            "http-only.yaml",
            """
apiVersion: stockade.dev/v1
kind: FirewallPolicy
spec:
  groups:
    - {name: cde, selector: {namespace: shop, labels: {pci: cde}}, mode: protect}
  rules:
    - {name: api, from: [cde], to: [cde], ports: [tcp/8080], protocols: [proto.http]}
""",
        )
    ]
)
GET = b"GET / HTTP/1.1\r\nHost: orders\r\n\r\n"
REDIS = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"


def test_a_new_connection_on_a_reused_port_pair_is_judged_afresh() -> None:
    events: list = []
    insp = Inspector(HTTP_ONLY, Directory([PAY, ORD]), emit=events.append)
    insp.packet(packet(PAY.ip, ORD.ip, 41000, 8080, SYN, 1000))
    assert insp.packet(packet(PAY.ip, ORD.ip, 41000, 8080, ACK | PSH, 1001, GET))[1] == marks.ALLOW
    # Its FINs stayed in the kernel (decided): the same pair now carries another connection.
    assert insp.packet(packet(PAY.ip, ORD.ip, 41000, 8080, SYN, 90000))[1] == 0
    assert insp.packet(packet(PAY.ip, ORD.ip, 41000, 8080, ACK | PSH, 90001, REDIS))[1] == (
        marks.BLOCK
    )
    assert [e.kind for e in events] == ["firewall.blocked"]
    # A retransmitted SYN (same initial sequence number) is the same connection.
    assert insp.packet(packet(PAY.ip, ORD.ip, 41000, 8080, SYN, 90000))[1] == marks.BLOCK
    # The old server's side opening a connection on the same pair is a new connection too (judged
    # as orders -> payments:41000, which no rule allows).
    insp.packet(packet(ORD.ip, PAY.ip, 8080, 41000, SYN, 7))
    assert len(events) == 2 and events[-1].data["src_ip"] == ORD.ip
    assert events[-1].data["port"] == 41000


def test_decided_flows_keep_only_their_mark_and_closed_or_idle_flows_are_forgotten() -> None:
    insp = inspector([])
    insp.packet(packet(PAY.ip, ORD.ip, 41001, 8080, SYN, 5))
    insp.packet(packet(PAY.ip, ORD.ip, 41001, 8080, ACK | PSH, 6, REDIS))  # blocked: decided
    (flow,) = insp._flows.values()
    assert flow.mark == marks.BLOCK and flow.streams == [None, None] and flow.dlp == [None, None]
    insp.packet(packet(PAY.ip, ORD.ip, 41001, 8080, ACK | FIN, 6 + len(REDIS)))
    insp.packet(packet(ORD.ip, PAY.ip, 8080, 41001, ACK | FIN, 500))
    assert insp._flows == {}  # closed both ways
    insp.packet(packet(PAY.ip, ORD.ip, 41002, 8080, SYN, 5))
    insp.packet(packet(PAY.ip, ORD.ip, 41002, 8080, ACK | PSH, 6, GET))  # undecided: DLP watches
    assert len(insp._flows) == 1 and insp.expire(idle=3600) == 0
    assert insp.expire(now=time.monotonic() + 3601, idle=3600) == 1 and insp._flows == {}


def test_a_blocked_clear_http_request_is_answered_and_other_blocks_are_reset() -> None:
    insp = inspector([])
    insp.packet(packet(PAY.ip, ORD.ip, 41003, 8080, SYN, 100))
    body = b'{"card": "4111 1111 1111 1111"}'
    req = b"POST /pay HTTP/1.1\r\nHost: orders\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    assert insp.packet(packet(PAY.ip, ORD.ip, 41003, 8080, ACK | PSH, 101, req))[1] == marks.BLOCK
    reply = insp.reply
    assert reply is not None and (reply.client, reply.server_port) == (PAY.ip, 8080)
    assert (reply.request_seq, reply.request_end) == (101, 101 + len(req))
    assert reply.event == "dlp.blocked" and "4111 **** **** 1111" in reply.reason
    assert "4111 1111" not in repr(reply)
    # not HTTP (Redis on the HTTP port): a reset, no answer
    insp.packet(packet(PAY.ip, ORD.ip, 41004, 8080, SYN, 5))
    assert insp.packet(packet(PAY.ip, ORD.ip, 41004, 8080, ACK | PSH, 6, REDIS))[1] == marks.BLOCK
    assert insp.reply is None
    # denied at the SYN: nothing to answer
    assert insp.packet(packet(CRM.ip, ORD.ip, 41005, 8080, SYN, 9))[1] == marks.BLOCK
    assert insp.reply is None


def test_without_the_syn_the_kernel_marks_say_which_packet_starts_a_connection() -> None:
    events: list = []
    insp = Inspector(HTTP_ONLY, Directory([PAY, ORD]), emit=events.append)
    first = marks.FIRST
    # The SYN stayed in the kernel; the first data segment starts the flow, judged once.
    assert insp.packet(packet(PAY.ip, ORD.ip, 41020, 8080, ACK | PSH, 1001, GET), first)[1] == (
        marks.ALLOW
    )
    # The same pair, a later connection: FIRST again, so it is judged afresh (not ALLOW).
    assert insp.packet(packet(PAY.ip, ORD.ip, 41020, 8080, ACK | PSH, 7001, REDIS), first)[1] == (
        marks.BLOCK
    )
    assert [e.kind for e in events] == ["firewall.blocked"]
    # A server that speaks first: the REPLY mark keeps the roles right (client payments, port
    # 8080), and a POP3 greeting is not what the rule allows.
    banner = packet(ORD.ip, PAY.ip, 8080, 41021, ACK | PSH, 501, b"+OK POP3 ready\r\n")
    assert insp.packet(banner, first | marks.REPLY)[1] == marks.BLOCK
    assert events[-1].data["src_ip"] == PAY.ip and events[-1].data["port"] == 8080
    assert events[-1].data["app"] == "proto.pop3"


def test_the_peer_stream_starts_where_the_first_segment_acknowledges() -> None:
    insp = inspector([])
    pk = packet(PAY.ip, ORD.ip, 41022, 8080, ACK | PSH, 1001, GET)
    pk = pk[:28] + struct.pack("!I", 5001) + pk[32:]  # the client acknowledges up to 5001
    insp.packet(pk, marks.FIRST)
    # The server's second segment overtakes its first: it must wait, not start the stream.
    insp.packet(packet(ORD.ip, PAY.ip, 8080, 41022, ACK | PSH, 5009, b"world"), marks.REPLY)
    insp.packet(packet(ORD.ip, PAY.ip, 8080, 41022, ACK | PSH, 5001, b"HTTP/1.1"), marks.REPLY)
    (flow,) = insp._flows.values()
    assert bytes(flow.heads[1]) == b"HTTP/1.1world"


def test_a_connection_that_ended_in_the_kernel_is_forgotten_after_the_grace() -> None:
    """FINs of connections under inspection pass in the kernel; their copies (NFLOG, see ends.py)
    free the flow END_GRACE seconds after both directions ended, not when it idles out."""
    from stockade.firewall.enforce.inspector import END_GRACE

    insp = inspector([])
    req = b"GET /orders HTTP/1.1\r\nHost: orders\r\n\r\n"
    for port in (42001, 42002):
        insp.packet(packet(PAY.ip, ORD.ip, port, 8080, ACK | PSH, 8, req), marks.FIRST)
    assert len(insp._flows) == 2  # undecided: the CDE's DLP rules keep looking
    now = time.monotonic()
    insp.end_seen(packet(PAY.ip, ORD.ip, 42001, 8080, ACK | FIN, 8 + len(req)), now)
    insp.end_seen(packet(ORD.ip, PAY.ip, 8080, 42001, ACK | FIN, 900), now)
    insp.end_seen(packet(PAY.ip, ORD.ip, 42002, 8080, ACK | FIN, 8 + len(req)), now)  # half-closed
    insp.end_seen(packet(PAY.ip, ORD.ip, 42999, 8080, ACK | FIN, 1), now)  # never seen: ignored
    assert insp.stats["packets"] == 2 and len(insp._flows) == 2  # copies are no packets to judge
    assert insp.expire(now + END_GRACE / 2) == 0  # a retransmission still finds its flow
    assert insp.expire(now + END_GRACE + 0.1) == 1
    assert [k[1] for k in insp._flows] == [42002]  # the half-closed one may still send data


def test_the_verdict_loop_collector_is_put_back() -> None:
    """The enforcer's loop freezes the start-up heap and collects the young generation less often
    (benchmarks/firewall_verdict.py measures with the same two calls); stopping restores both."""
    import gc

    from stockade.firewall.enforce.enforcer import (
        YOUNG_COLLECTION_AFTER,
        quiet_collector,
        restore_collector,
    )

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    saved = quiet_collector()
    try:
        assert gc.get_threshold() == (YOUNG_COLLECTION_AFTER, *before[1:])
        assert gc.get_freeze_count() > frozen
    finally:
        restore_collector(saved)
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, 0)


TLS_ONLY = parse_texts(
    [
        (
            "tls-only.yaml",
            """
spec:
  groups:
    - {name: cde, selector: {namespace: shop, labels: {pci: cde}}, mode: protect}
  rules:
    - {name: api, from: [cde], to: [cde], ports: [tcp/8443], protocols: [proto.tls]}
""",
        )
    ]
)


def _segments(policy, port: int, *chunks: bytes) -> tuple[list[int], list]:
    """The marks one client connection's segments get, and the events."""
    events: list = []
    insp = Inspector(policy, Directory([PAY, ORD]), emit=events.append)
    seq, out = 1001, []
    for i, chunk in enumerate(chunks):
        mark = marks.FIRST if i == 0 else 0
        out.append(insp.packet(packet(PAY.ip, ORD.ip, 43000, port, ACK | PSH, seq, chunk), mark)[1])
        seq += len(chunk)
    return out, events


def test_bytes_that_cannot_be_http_are_judged_on_an_http_only_port_at_once() -> None:
    """A rule naming proto.http must not let a short exchange in another protocol through while
    the enforcer waits for DECIDE_AFTER bytes: what can no longer become a request line is
    judged as proto.unknown at once (protect: blocked)."""
    for payload in (b"\x00\x01\x02\x03binary", b'{"cmd": "get"}\n', b"GEX / HTTP/1.1\r\n\r\n"):
        got, events = _segments(HTTP_ONLY, 8080, payload)
        assert got == [marks.BLOCK], payload
        assert events[0].kind == "firewall.blocked" and events[0].data["app"] == "proto.unknown"
    # a method's first letters are no request: the next bytes decide
    assert _segments(HTTP_ONLY, 8080, b"G", b"\x00junk")[0] == [0, marks.BLOCK]
    assert _segments(HTTP_ONLY, 8080, b"GET", b" / HTTP/1.1\r\nHost: o\r\n\r\n")[0] == [
        0,
        marks.ALLOW,
    ]
    # a request line that never ends within 512 bytes is none
    assert _segments(HTTP_ONLY, 8080, b"GET /" + b"a" * 600)[0] == [marks.BLOCK]


def test_a_tls_only_port_takes_only_a_hello_that_parses() -> None:
    from tests.firewall.test_fastpath import _tls_hello

    fake = b"\x16\x03\x01\x00\x06\x01\x00\x00\x02\x03\x03"  # headers that fit, no hello
    got, events = _segments(TLS_ONLY, 8443, fake, b"anything at all\n")
    assert got[0] == marks.BLOCK and events[0].data["app"] == "proto.unknown"
    assert _segments(TLS_ONLY, 8443, b"GET / HTTP/1.1\r\nHost: o\r\n\r\n")[0] == [marks.BLOCK]
    hello = _tls_hello()
    assert _segments(TLS_ONLY, 8443, hello)[0] == [marks.ALLOW]
    # a ClientHello split over segments waits for its end, then passes
    assert _segments(TLS_ONLY, 8443, hello[:3], hello[3:60], hello[60:])[0] == [
        0,
        0,
        marks.ALLOW,
    ]


def _ip4(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    head = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        1,
        0,
        64,
        proto,
        0,
        ipaddress.ip_address(src).packed,
        ipaddress.ip_address(dst).packed,
    )
    return head + payload


ECHO = bytes([8, 0, 0, 0, 0, 1, 0, 1]) + b"ping"
UNREACHABLE = bytes([3, 3, 0, 0, 0, 0, 0, 0]) + b"\x45" + bytes(27)


def test_icmp_and_other_ip_protocols_are_judged_by_the_rules_not_let_through() -> None:
    """Protect mode denies what no rule allows, whatever the IP protocol: a ping or an SCTP
    association into a group that allows only tcp/8080 is blocked; an ICMP error passes (it
    belongs to the connection it reports on)."""
    events: list = []
    insp = Inspector(HTTP_ONLY, Directory([PAY, ORD]), emit=events.append)
    assert insp.packet(_ip4(PAY.ip, ORD.ip, 1, ECHO)) == (True, marks.BLOCK)
    assert insp.packet(_ip4(PAY.ip, ORD.ip, 132, bytes(12))) == (True, marks.BLOCK)
    assert insp.packet(_ip4(ORD.ip, PAY.ip, 1, UNREACHABLE)) == (True, 0)
    assert [(e.kind, e.data["l4"]) for e in events] == [
        ("firewall.blocked", "icmp"),
        ("firewall.blocked", "sctp"),
    ]
    pings = parse_texts(
        [
            (
                "ping.yaml",
                """
spec:
  groups:
    - {name: cde, selector: {namespace: shop, labels: {pci: cde}}, mode: protect}
  rules:
    - {name: ping, from: [cde], to: [cde], ports: [icmp]}
""",
            )
        ]
    )
    insp = Inspector(pings, Directory([PAY, ORD]), emit=events.append)
    assert insp.packet(_ip4(PAY.ip, ORD.ip, 1, ECHO)) == (True, marks.ALLOW)
    assert insp.packet(_ip4(PAY.ip, ORD.ip, 132, bytes(12))) == (True, marks.BLOCK)
