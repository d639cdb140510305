"""Rules naming protocols other than HTTP and TLS: the verdict comes as soon as the first bytes
prove or rule out what the rules name, in the Python handler and in the compiled loop alike.

Captures: tests/network/fixtures/protocols (real clients and servers, see its MANIFEST.json)."""

from __future__ import annotations

from typing import Any

import pytest

from stockade.firewall.enforce import marks, nft
from stockade.firewall.enforce.enforcer import Enforcer
from stockade.firewall.policy.endpoints import Directory
from stockade.firewall.policy.files import parse_texts
from stockade.network.dlp.engine import DlpEngine
from stockade.network.protocols import DETECTORS, could_become, detect
from tests.firewall.test_fastpath import PATHS, QUEUE, RUNS, Conversation, _events
from tests.firewall.test_inspector import _segments
from tests.firewall.test_policy_model import ORD, PAY
from tests.network.test_proto_detect import EXPECTED, pair

SERVER_FIRST = {"proto.mysql", "proto.smtp", "proto.imap", "proto.pop3"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_prefix_of_a_real_conversation_can_still_become_its_protocol(name: str) -> None:
    """``possible`` never rules out the protocol a real conversation turns out to be, at any
    byte it passes through: a wrong "impossible" would judge a real client as proto.unknown."""
    client, server = pair(name)
    slug = detect(client, server).protocol
    if slug in SERVER_FIRST:
        states = [(b"", server[:j]) for j in range(len(server) + 1)]
        states += [(client[:i], server) for i in range(len(client) + 1)]
    else:
        states = [(client[:i], b"") for i in range(len(client) + 1)]
        states += [(client, server[:j]) for j in range(len(server) + 1)]
    for c, s in states:
        assert could_become(slug, c, s), (len(c), len(s))


# what each capture's first bytes may still become besides itself (the same opening)
_AMBIGUOUS = {
    "grpc_unary": {"proto.http2"},
    "h2c_upgrade": {"proto.grpc", "proto.http", "proto.redis"},  # "GET ..." is a Redis inline too
    "http_get": {"proto.redis"},
    "redis_set": {"proto.pop3"},  # "+OK" answers both; detection settles it
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_whole_first_exchange_rules_out_every_other_protocol(name: str) -> None:
    client, server = pair(name)
    slug = detect(client, server).protocol
    others = {d.SLUG for d in DETECTORS if slug != d.SLUG and could_become(d.SLUG, client, server)}
    assert others <= _AMBIGUOUS.get(name, set())


def _policy(rules: str, mode: str = "protect") -> Any:
    return parse_texts(
        [
            (
                "p.yaml",
                "spec:\n  groups:\n    - {name: cde, selector: {namespace: shop}, mode: "
                + mode
                + "}\n  rules:\n"
                + rules,
            )
        ]
    )


REDIS_ONLY = _policy(
    "    - {name: cache, from: [cde], to: [cde], ports: [tcp/6379], protocols: [proto.redis]}\n"
)
NO_REDIS = _policy(
    "    - {name: no-redis, from: [cde], to: [cde], protocols: [proto.redis], action: deny}\n"
    "    - {name: rest, from: [cde], to: [cde]}\n"
)
GRPC_ONLY = _policy(
    "    - {name: rpc, from: [cde], to: [cde], ports: [tcp/50051], protocols: [proto.grpc]}\n"
)
NO_H2 = _policy(
    "    - {name: no-h2, from: [cde], to: [cde], protocols: [proto.http2], action: deny}\n"
    "    - {name: rest, from: [cde], to: [cde]}\n"
)
NO_GRPC = _policy(
    "    - {name: no-grpc, from: [cde], to: [cde], protocols: [proto.grpc], action: deny}\n"
    "    - {name: rest, from: [cde], to: [cde]}\n"
)
PG_OR_MYSQL = _policy(
    "    - {name: db, from: [cde], to: [cde], ports: [tcp/5432],"
    " protocols: [proto.postgres, proto.mysql]}\n"
)


def test_bytes_that_cannot_be_the_protocol_a_rule_allows_are_judged_at_once() -> None:
    """Before: any bytes passed for 2 KiB on a Redis-only (or database-only) port, since those
    detectors could not say "never"."""
    http = b"GET /admin HTTP/1.1\r\nHost: cache\r\n\r\n"
    for policy, port in ((REDIS_ONLY, 6379), (PG_OR_MYSQL, 5432), (GRPC_ONLY, 50051)):
        got, events = _segments(policy, port, http)
        assert got == [marks.BLOCK], port
        assert events[0].data["app"] == "proto.http"
    got, events = _segments(REDIS_ONLY, 6379, b"\x00\x01binary blob\n")
    assert got == [marks.BLOCK] and events[0].data["app"] == "proto.unknown"
    # the real thing, whole or cut anywhere in its array header, is waited for and allowed
    redis = pair("redis_set")[0]
    assert _segments(REDIS_ONLY, 6379, redis)[0] == [marks.ALLOW]
    for cut in range(1, 12):
        assert _segments(REDIS_ONLY, 6379, redis[:cut], redis[cut:])[0] == [0, marks.ALLOW], cut
    postgres = pair("postgres_plain")[0]
    for cut in range(1, 9):
        assert _segments(PG_OR_MYSQL, 5432, postgres[:cut], postgres[cut:])[0] == [
            0,
            marks.ALLOW,
        ], cut


def test_a_weak_guess_of_another_protocol_does_not_let_a_denied_one_through() -> None:
    """ "GE" is a weak HTTP guess; judged HTTP at once, the connection was allowed and the
    inline Redis command that followed passed a deny-Redis rule."""
    got, events = _segments(NO_REDIS, 6379, b"GE", b"T session:1\r\n")
    assert got[0] != marks.ALLOW and marks.ALLOW not in got
    assert events[-1].kind == "firewall.blocked" and events[-1].data["rule"] == "no-redis"
    # the same first letters that go on as HTTP are allowed
    assert _segments(NO_REDIS, 6379, b"GE", b"T / HTTP/1.1\r\nHost: o\r\n\r\n")[0] == [
        0,
        marks.ALLOW,
    ]


def _grpc_segments() -> tuple[bytes, bytes]:
    """The gRPC capture's client bytes cut where its clients often cut them: the preface and
    SETTINGS, then the request's HEADERS."""
    from stockade.network.protocols import http2

    client = pair("grpc_unary")[0]
    at = len(http2.PREFACE)
    for ftype, _flags, _stream, payload in http2.frames(client[at:]):
        if ftype == http2.HEADERS:
            break
        at += 9 + len(payload)
    return client[:at], client[at:]


def test_grpc_is_judged_on_its_headers_not_on_the_http2_preface() -> None:
    """Before: the preface alone was "HTTP/2" (settled), so a deny-gRPC rule let gRPC through
    and a gRPC-only port refused a real gRPC client."""
    preface, headers = _grpc_segments()
    got, events = _segments(NO_GRPC, 50051, preface, headers)
    assert got == [0, marks.BLOCK] and events[0].data["rule"] == "no-grpc"
    assert _segments(GRPC_ONLY, 50051, preface, headers)[0] == [0, marks.ALLOW]
    # plain HTTP/2 with other headers is no gRPC: allowed past the deny rule, refused where
    # only gRPC is
    h2 = pair("h2_prior_knowledge")[0]
    assert _segments(NO_GRPC, 50051, h2)[0] == [marks.ALLOW]
    assert _segments(GRPC_ONLY, 50051, h2)[0] == [marks.BLOCK]


def _enforcer(policy: Any, events: list[Any]) -> Enforcer:
    return Enforcer(
        "node-under-test",
        policy,
        Directory([PAY, ORD]),
        nft.Settings(queue=QUEUE, fail_open=True),
        emit=events.append,
        learn=lambda rows: None,
        dlp_engine=DlpEngine(),
    )


def _conversations() -> dict[str, tuple[Any, list[tuple[bytes, int]]]]:
    preface, headers = _grpc_segments()
    redis, ok = pair("redis_set")
    return {
        "http to a redis-only port": (
            REDIS_ONLY,
            Conversation(42001, 6379).send(b"GET / HTTP/1.1\r\nHost: o\r\n\r\n").out,
        ),
        "binary to a redis-only port": (
            REDIS_ONLY,
            Conversation(42006, 6379).send(b"\x00\x01binary blob\n").out,
        ),
        "h2c upgrade where HTTP/2 is denied": (
            NO_H2,
            Conversation(42007, 8080).exchange(*pair("h2c_upgrade")).out,
        ),
        "plain HTTP where HTTP/2 is denied": (
            NO_H2,
            Conversation(42008, 8080).exchange(*pair("http_get")).out,
        ),
        "redis cut in its header": (
            REDIS_ONLY,
            Conversation(42002, 6379).send(redis[:5]).send(redis[5:]).send(ok, server=True).out,
        ),
        "inline redis after a weak http guess": (
            NO_REDIS,
            Conversation(42003, 6379).send(b"GE").send(b"T k\r\n").out,
        ),
        "grpc behind its preface": (
            NO_GRPC,
            Conversation(42004, 50051).send(preface).send(headers).out,
        ),
        "grpc on a grpc-only port": (
            GRPC_ONLY,
            Conversation(42005, 50051).send(preface).send(headers).out,
        ),
    }


@pytest.mark.parametrize("name", list(_conversations()))
def test_the_compiled_loop_gives_the_same_early_verdicts(name: str) -> None:
    policy, cases = _conversations()[name]
    results = {}
    for path in PATHS:
        events: list[Any] = []
        results[path] = (RUNS[path](_enforcer(policy, events), cases), _events(events))
    assert results["own"] == results["python"] == results["compiled"]
    final = [m for _, _, m in results["python"][0]][-1] or 0
    expected = {
        "http to a redis-only port": marks.BLOCK,
        "binary to a redis-only port": marks.BLOCK,
        "h2c upgrade where HTTP/2 is denied": marks.BLOCK,
        "plain HTTP where HTTP/2 is denied": marks.ALLOW,
        "redis cut in its header": marks.ALLOW,
        "inline redis after a weak http guess": marks.BLOCK,
        "grpc behind its preface": marks.BLOCK,
        "grpc on a grpc-only port": marks.ALLOW,
    }[name]
    assert final & (marks.ALLOW | marks.BLOCK) == expected


DNS_ONLY = _policy(
    "    - {name: dns, from: [cde], to: [cde], ports: [udp/53], protocols: [proto.dns]}\n"
)


def test_an_empty_datagram_is_judged_not_let_through_undecided() -> None:
    """A UDP datagram without payload has no protocol to wait for: before, it passed to a port
    where only DNS is allowed (and every empty datagram after it) with no verdict."""
    from stockade.firewall.enforce.inspector import Inspector
    from tests.firewall.test_fastpath import udp

    events: list[Any] = []
    insp = Inspector(DNS_ONLY, Directory([PAY, ORD]), emit=events.append)
    assert insp.packet(udp(PAY.ip, ORD.ip, 5000, 53, b""), marks.FIRST) == (True, marks.BLOCK)
    assert events[0].data["app"] == "proto.unknown"
    # a query is still a query
    query = pair("dns_udp")[0]
    assert insp.packet(udp(PAY.ip, ORD.ip, 5001, 53, query), marks.FIRST) == (True, marks.ALLOW)
    # where the rule names no protocol, an empty datagram passes as before
    plain = _policy("    - {name: dns, from: [cde], to: [cde], ports: [udp/53]}\n")
    insp = Inspector(plain, Directory([PAY, ORD]))
    assert insp.packet(udp(PAY.ip, ORD.ip, 5002, 53, b""), marks.FIRST)[1] != marks.BLOCK


def _verdict(policy: Any, name: str, cut: int) -> int:
    """The mark a real conversation ends with, its client's first bytes cut at ``cut`` (the
    server speaks first where its protocol does)."""
    from stockade.firewall.enforce.inspector import Inspector

    client, server = pair(name)
    client, server = client[:1500], server[:1500]
    conv = Conversation(43000 + cut, 9000)
    if detect(client, server).protocol in SERVER_FIRST:
        conv.send(server, server=True)
        server = b""
    conv.send(client[:cut]) if cut else None
    conv.send(client[cut:])
    if server:
        conv.send(server, server=True)
    insp = Inspector(policy, Directory([PAY, ORD]))
    mark = 0
    for payload, kernel_mark in conv.out:
        mark = insp.packet(payload, kernel_mark)[1] or mark
    return mark


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n != "dns_udp"))
def test_a_real_conversation_cut_anywhere_gets_the_verdict_of_its_protocol(name: str) -> None:
    """Early decisions never judge a real client wrongly: allowed where only its protocol is,
    blocked where its protocol is denied, wherever its first segment ends."""
    slug = detect(*pair(name)).protocol
    only = _policy(
        f"    - {{name: only, from: [cde], to: [cde], ports: [tcp/9000], protocols: [{slug}]}}\n"
    )
    deny = _policy(
        f"    - {{name: deny-it, from: [cde], to: [cde], protocols: [{slug}], action: deny}}\n"
        "    - {name: rest, from: [cde], to: [cde]}\n"
    )
    client = pair(name)[0]
    for cut in sorted({0, 1, 2, 3, 5, 8, 13, 24, 40, len(client) // 2, len(client) - 1}):
        if not 0 <= cut < len(client):
            continue
        assert _verdict(only, name, cut) == marks.ALLOW, cut
        assert _verdict(deny, name, cut) == marks.BLOCK, cut
