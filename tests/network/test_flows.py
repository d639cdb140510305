"""The flow table with the real detectors and DLP engine, on conversations built per RFC 793."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.lab.inventory import Inventory, Pod
from stockade.network.analysis import Inspectors
from stockade.network.capture.decode import LINK_RAW, Decoder
from stockade.network.connection import ConnectionRecord, events_for
from stockade.network.flows import FlowConfig, FlowTable
from tests.network import frames as F

CARD = b"4111111111111111"


@pytest.fixture(scope="module")
def inspectors() -> Inspectors:
    return Inspectors.default()


def _inventory() -> Inventory:
    pods = (
        Pod(
            name="payments",
            namespace="shop",
            labels=(("app", "payments"),),
            netns="x-payments",
            host_if="vh-p",
            ipv4="10.0.0.1",
            ipv6="fd00::1",
        ),
        Pod(
            name="orders",
            namespace="shop",
            labels=(("app", "orders"),),
            netns="x-orders",
            host_if="vh-o",
            ipv4="10.0.0.2",
            ipv6="fd00::2",
        ),
    )
    return Inventory(prefix="x-", node_netns="x-node", pods=pods, state_dir="/nonexistent")


def _run(
    packets: list[bytes],
    inspectors: Inspectors | None,
    config: FlowConfig | None = None,
) -> tuple[list[ConnectionRecord], FlowTable, Decoder]:
    records: list[ConnectionRecord] = []
    table = FlowTable(inspectors, _inventory().directory(), records.append, config)
    dec = Decoder(table)
    for i, p in enumerate(packets):
        dec.frame(1000.0 + i * 0.001, LINK_RAW, p, 0, len(p))
    table.flush()
    return records, table, dec


def _post(body: bytes) -> bytes:
    return b"POST /pay HTTP/1.1\r\nHost: orders\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


@pytest.mark.parametrize("v6", [False, True])
def test_clear_http_card_is_found_with_both_workloads(inspectors: Inspectors, v6: bool) -> None:
    req = _post(b'{"card_number": "' + CARD + b'"}')
    c, s = ("fd00::1", "fd00::2") if v6 else ("10.0.0.1", "10.0.0.2")
    recs, _, _ = _run(
        F.conversation(
            c, s, 40000, 8080, req, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", v6=v6
        ),
        inspectors,
    )
    (r,) = recs
    assert (r.client.name, r.server.name, r.server_port, r.ip_version) == (
        "payments",
        "orders",
        8080,
        6 if v6 else 4,
    )
    assert r.protocol == "proto.http" and not r.encrypted and r.state == "closed"
    assert [(h.direction, h.match.sensor) for h in r.hits] == [("client", "dlp.payment_card")]
    assert CARD.decode() not in json.dumps(r.to_dict())
    ev = events_for(r)
    assert (
        [e.kind for e in ev] == ["dlp.sensitive_in_clear"]
        and ev[0].resource == r.client
        and ev[0].peer == r.server
    )
    assert CARD.decode() not in json.dumps([e.to_dict() for e in ev])


def test_card_split_across_segments_is_found(inspectors: Inspectors) -> None:
    req = _post(b'{"card_number": "' + CARD + b'"}')
    cut = req.index(CARD) + 7
    recs, _, _ = _run(
        F.conversation(
            "10.0.0.1", "10.0.0.2", 40000, 8080, req, b"HTTP/1.1 200 OK\r\n\r\n", split=cut
        ),
        inspectors,
    )
    assert [h.match.sensor for h in recs[0].hits] == ["dlp.payment_card"]


def test_reordered_and_duplicated_segments_still_found(inspectors: Inspectors) -> None:
    req = _post(b'{"card_number": "' + CARD + b'"}')
    pk = F.conversation(
        "10.0.0.1",
        "10.0.0.2",
        40000,
        8080,
        req,
        b"HTTP/1.1 200 OK\r\n\r\n",
        split=req.index(CARD) + 5,
    )
    pk = [*pk[:3], pk[4], pk[3], pk[4], *pk[5:]]  # second half first, then first, then second again
    recs, _, _ = _run(pk, inspectors)
    assert [h.match.sensor for h in recs[0].hits] == ["dlp.payment_card"]


def test_luhn_invalid_and_order_ids_are_not_cards(inspectors: Inspectors) -> None:
    req = _post(
        b'{"card_number": "4111111111111112", "order": 20261127045959, "ts": 1764215999123}'
    )
    recs, _, _ = _run(
        F.conversation("10.0.0.1", "10.0.0.2", 40000, 8080, req, b"HTTP/1.1 200 OK\r\n\r\n"),
        inspectors,
    )
    assert [h for h in recs[0].hits if h.match.sensor == "dlp.payment_card"] == []


def test_syn_ack_first_names_the_server(inspectors: Inspectors) -> None:
    pk = F.conversation(
        "10.0.0.1", "10.0.0.2", 40000, 8080, b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n"
    )
    recs, _, _ = _run(pk[1:], inspectors)  # the SYN was not captured
    assert (recs[0].client_port, recs[0].server_port, recs[0].client.name) == (
        40000,
        8080,
        "payments",
    )


def _tls_pair(name: str) -> tuple[bytes, bytes]:
    folder = Path(__file__).parent / "fixtures" / "protocols"
    return (folder / f"{name}.c2s").read_bytes(), (folder / f"{name}.s2c").read_bytes()


def test_tls_flow_is_encrypted_and_not_scanned(inspectors: Inspectors) -> None:
    # a real handshake, then an application data record whose bytes would be a card in clear
    client, server = _tls_pair("tls13_alpn")
    data = b"card " + CARD + b" "
    record = b"\x17\x03\x03" + struct.pack("!H", len(data)) + data
    recs, _, _ = _run(
        F.conversation("10.0.0.1", "10.0.0.2", 40000, 443, client + record, server + record),
        inspectors,
    )
    assert recs[0].hits == () and recs[0].encrypted


def test_capture_gap_does_not_join_bytes_across_the_hole(inspectors: Inspectors) -> None:
    req = _post(b'{"card_number": "4111111111111111"}')
    cut = req.index(CARD) + 8
    pk = F.conversation(
        "10.0.0.1", "10.0.0.2", 40000, 8080, req, b"HTTP/1.1 200 OK\r\n\r\n", split=cut
    )
    del pk[3]  # the first half was never captured; the server's ACK reveals the hole
    recs, _, _ = _run(pk, inspectors)
    assert recs[0].gaps == 1 and recs[0].hits == ()


def test_half_open_flood_stays_bounded(inspectors: Inspectors) -> None:
    cfg = FlowConfig(max_flows=500)
    syns = [
        F.ipv4("10.0.0.1", "10.0.0.2", 6, F.tcp(1024 + i % 60000, 80, i, 0, F.SYN))
        for i in range(5000)
    ]
    real = F.conversation(
        "10.0.0.1",
        "10.0.0.2",
        7,
        8080,
        _post(b'{"card": "' + CARD + b'"}'),
        b"HTTP/1.1 200 OK\r\n\r\n",
    )
    recs, table, _ = _run(real[:4] + syns + real[4:], inspectors, cfg)
    assert table.stats.peak_flows <= 501 and table.stats.half_open_dropped >= 4500
    assert [r.server_port for r in recs] == [8080] and recs[0].hits  # the real connection survived


def test_memory_bound_with_out_of_order_data(inspectors: Inspectors) -> None:
    cfg = FlowConfig(memcap=200_000, ooo_limit=64 * 1024)
    pk = []
    for i in range(50):  # each flow holds 8 KiB out of order: 400 KB would exceed the cap
        pk += [
            F.ipv4("10.0.0.1", "10.0.0.2", 6, F.tcp(2000 + i, 80, 0, 0, F.SYN)),
            F.ipv4("10.0.0.2", "10.0.0.1", 6, F.tcp(80, 2000 + i, 0, 1, F.SYN | F.ACK)),
            F.ipv4("10.0.0.1", "10.0.0.2", 6, F.tcp(2000 + i, 80, 1001, 1, F.ACK, b"x" * 8192)),
        ]
    _, table, _ = _run(pk, inspectors, cfg)
    assert table.stats.peak_memory <= 200_000 + 8192 and table.stats.memcap_evictions > 0
    assert table.memory == 0  # everything freed after the flush


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(0, 40))
def test_hostile_packets_never_crash_the_pipeline(
    inspectors: Inspectors, rnd: random.Random, flips: int
) -> None:
    req = _post(b'{"card_number": "' + CARD + b'", "ssn": "536-22-8401"}')
    pk = F.conversation(
        "10.0.0.1", "10.0.0.2", 40000, 8080, req, b"HTTP/1.1 200 OK\r\n\r\n", split=40
    )
    pk += F.conversation(
        "fd00::1", "fd00::2", 40001, 5432, b"\0\0\0\x08\x04\xd2\x16\x2f", b"S\x16\x03\x03", v6=True
    )
    out = []
    for p in pk:
        b = bytearray(p[: rnd.randrange(len(p) + 1)] if rnd.random() < 0.2 else p)
        for _ in range(flips // 4):
            if b:
                b[rnd.randrange(len(b))] = rnd.randrange(256)
        out.append(bytes(b))
    rnd.shuffle(out)
    recs, table, _ = _run(out, inspectors)
    assert table.memory == 0
    for r in recs:
        assert CARD.decode() not in json.dumps(r.to_dict())


def _pg_startup_and_query(sql: bytes) -> bytes:
    params = b"user\0postgres\0database\0postgres\0\0"
    startup = struct.pack("!II", 8 + len(params), 196608) + params
    query = b"Q" + struct.pack("!I", 4 + len(sql) + 1) + sql + b"\0"
    return startup + query


def test_postgres_ssl_refused_session_is_still_inspected(inspectors: Inspectors) -> None:
    """SSLRequest answered 'N': the session continues in clear and its SQL is scanned."""
    ssl_request = bytes.fromhex("0000000804d2162f")
    sql = b"INSERT INTO customers (name, card) VALUES ('Alice', '" + CARD + b"')"
    c, s = "10.0.0.1", "10.0.0.2"
    pk = [
        F.ipv4(c, s, 6, F.tcp(40000, 5432, 0, 0, F.SYN)),
        F.ipv4(s, c, 6, F.tcp(5432, 40000, 100, 1, F.SYN | F.ACK)),
        F.ipv4(c, s, 6, F.tcp(40000, 5432, 1, 101, F.ACK | F.PSH, ssl_request)),
        F.ipv4(s, c, 6, F.tcp(5432, 40000, 101, 9, F.ACK | F.PSH, b"N")),
    ]
    rest = _pg_startup_and_query(sql)
    pk.append(F.ipv4(c, s, 6, F.tcp(40000, 5432, 9, 102, F.ACK | F.PSH, rest)))
    pk.append(F.ipv4(c, s, 6, F.tcp(40000, 5432, 9 + len(rest), 102, F.ACK | F.RST)))
    recs, _, _ = _run(pk, inspectors)
    assert [h.match.sensor for h in recs[0].hits] == ["dlp.payment_card"]
    assert recs[0].protocol == "proto.postgres" and not recs[0].encrypted
