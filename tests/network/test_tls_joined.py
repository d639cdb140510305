"""A connection the capture joined after its TLS handshake: real TLS 1.2 and 1.3 sessions (two
``ssl`` objects in memory) of which only the records after the handshake were captured, with
no TCP handshake either, are TLS (version unknown, joined mid-connection) on the Python and the
compiled path alike; random bytes, text that opens with a record header, and record framing
around text are not, and DLP still reads every byte of them."""

from __future__ import annotations

import dataclasses
import os
import ssl
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.identity import Directory
from stockade.network import tls
from stockade.network.capture import fastpcap
from stockade.network.protocols import detect
from stockade.network.sensor import run_pcap
from tests.network import frames as F
from tests.network import tls_talk as T

CARD = b"4111111111111111"
REQUESTS = [
    b"GET /orders/1 HTTP/1.1\r\nHost: orders\r\n\r\n",
    b'POST /pay HTTP/1.1\r\nHost: orders\r\nContent-Length: 26\r\n\r\n{"card": "4111111111111111"}',
    b"GET /orders/2 HTTP/1.1\r\nHost: orders\r\n\r\n",
]


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, T.Exchange]:
    d = tmp_path_factory.mktemp("joined")
    files = T.certificate("orders", dns=("orders.shop.svc",)).files(d, "orders")
    return {
        name: T.after_handshake(T.server_context(*files, version=v), T.client_context(), REQUESTS)
        for name, v in (("tls13", ssl.TLSVersion.TLSv1_3), ("tls12", ssl.TLSVersion.TLSv1_2))
    }


def _sides(ex: T.Exchange) -> tuple[bytes, bytes]:
    return tuple(b"".join(data for d, data in ex.chunks if d == side) for side in (0, 1))  # type: ignore[return-value]


def _records(path: Path, inspectors: Any, mode: str, mp: pytest.MonkeyPatch) -> list[Any]:
    mp.setenv("STOCKADE_SENSOR_FASTPATH", mode)
    out: list[Any] = []
    run_pcap(path, inspectors=inspectors, identities=Directory(), on_record=out.append,
             keep=False)  # fmt: skip
    return [dataclasses.replace(r, id=r.id.rsplit("-", 1)[1]) for r in out]


def _both_paths(path: Path, inspectors: Any, mp: pytest.MonkeyPatch) -> Any:
    """The one record of ``path``, the same on the Python path and the compiled one."""
    ref = _records(path, inspectors, "0", mp)
    mp.setenv("STOCKADE_SENSOR_FASTPATH", "1")
    assert fastpcap.compiled() is not None
    assert _records(path, inspectors, "1", mp) == ref == _records(path, inspectors, "replay", mp)
    (rec,) = ref
    return rec


@pytest.mark.parametrize("name", ["tls13", "tls12"])
def test_a_capture_joined_after_the_handshake_is_tls(
    sessions: dict[str, T.Exchange],
    name: str,
    inspectors: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ex = sessions[name]
    path = ex.pcap(tmp_path / "joined.pcap", ts=1_700_000_000.0, opening=False)
    rec = _both_paths(path, inspectors, monkeypatch)
    assert (rec.protocol, rec.encrypted, rec.tls) == ("proto.tls", True, None)
    assert ("tls.joined", "mid-connection") in rec.details
    assert rec.hits == () and "S" not in rec.flags_client + rec.flags_server  # no SYN seen


def test_the_head_cut_inside_a_record_still_chains(sessions: dict[str, T.Exchange]) -> None:
    client, server = _sides(sessions["tls13"])
    assert detect(client[:-7], server[:-40]).protocol == "proto.tls"
    assert detect(client[:-2] + b"\x17", server).protocol == "proto.tls"


def test_a_capture_joined_inside_a_record_finds_the_next_one(
    sessions: dict[str, T.Exchange],
    inspectors: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A capture that began during a long record sees the rest of it first: the chain is
    found at the next record, on both paths."""
    ex = sessions["tls12"]
    cut = T.Exchange([(d, data[17:] if i < 2 else data) for i, (d, data) in enumerate(ex.chunks)],
                     ex.version, ex.cipher)  # fmt: skip
    client, server = _sides(cut)
    assert client[:1] != b"\x17" and server[:1] != b"\x17"
    path = cut.pcap(tmp_path / "cut.pcap", ts=1_700_000_000.0, opening=False)
    rec = _both_paths(path, inspectors, monkeypatch)
    assert (rec.protocol, rec.encrypted, rec.tls) == ("proto.tls", True, None)


def _record(body: bytes, ctype: int = 23) -> bytes:
    return struct.pack("!BHH", ctype, 0x0303, len(body)) + body


def test_what_is_not_a_joined_tls_connection(sessions: dict[str, T.Exchange]) -> None:
    client, server = _sides(sessions["tls12"])
    noise = os.urandom(4096)
    text = b"\x17\x03\x03 card " + CARD + b" and some more words of a plain stream"
    fake = _record(b"card " + CARD + b" in a record of text, not of ciphertext")
    not_tls = [
        (b"\x17\x03\x03" + noise, b"\x17\x03\x03" + noise[::-1]),  # random bytes
        (text, server),  # text opening with a record header
        (client + b"card " + CARD, server),  # records, then clear bytes
        (fake + fake + fake, server),  # record framing around text
        (_first_records(client, 2), b""),  # one direction: two records are not enough
        (b"", _first_records(server, 2)),
        (client[: 5 + 16], server[: 5 + 16]),  # two cut records: no complete one
        (client, server.replace(b"\x17\x03\x03", b"\x17\x03\x01")),  # two record versions
        (client + _record(b"\x00" * 8) + client, server),  # a body shorter than an AEAD tag
        (client + _record(os.urandom(40), 22) + client, server),  # a handshake record
        (_record(os.urandom(40), 21) + _record(os.urandom(40)), server),  # an alert first
        (b"x" * 30 + client, server),  # text before the first header is no record's tail
        (os.urandom(30) + client[: len(client) // 2 + 3], server),  # one record after the cut
    ]
    for c, s in not_tls:
        got = detect(c, s)
        assert (got.protocol, got.encrypted) == ("proto.unknown", False), (c[:20], s[:20])


def _first_records(data: bytes, n: int) -> bytes:
    pos = 0
    for _ in range(n):
        pos += 5 + int.from_bytes(data[pos + 3 : pos + 5], "big")
    return data[:pos]


@pytest.mark.parametrize("name", ["tls13", "tls12"])
@pytest.mark.parametrize("side", [0, 1])
def test_a_capture_of_one_side_joined_after_the_handshake_is_tls(
    sessions: dict[str, T.Exchange],
    name: str,
    side: int,
    inspectors: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Asymmetric routing, or a tap on one side: only one direction's packets are captured.
    Three complete sealed records in that direction are the evidence (as three across both
    directions are): TLS, version unknown, on both paths."""
    ex = sessions[name]
    packets = T._packets(ex, 41000, 443)[3:]
    sender = b"\x0a\x00\x00\x01" if side == 0 else b"\x0a\x00\x00\x02"
    one = [p for p in packets if p[12:16] == sender]  # the IPv4 source address
    path = tmp_path / "one-side.pcap"
    path.write_bytes(F.pcap([(1_700_000_000.0 + i / 1000, F.ether(p)) for i, p in enumerate(one)]))
    rec = _both_paths(path, inspectors, monkeypatch)
    assert (rec.protocol, rec.encrypted, rec.tls) == ("proto.tls", True, None)
    assert ("tls.joined", "mid-connection") in rec.details
    sides = _sides(ex)
    assert detect(*((sides[0], b"") if side == 0 else (b"", sides[1]))).protocol == "proto.tls"


def test_what_is_not_a_joined_tls_connection_seen_from_one_side(
    sessions: dict[str, T.Exchange],
) -> None:
    """Random bytes, text, records around text or followed by clear bytes, and too short a
    chain are refused when only one direction is seen, from either side."""
    client, _server = _sides(sessions["tls12"])
    noise = os.urandom(8192)
    fake = _record(b"card " + CARD + b" in a record of text, not of ciphertext")
    one_sided = [
        noise,
        b"\x17\x03\x03" + noise,
        b"\x17\x03\x03\x00\x20" + noise,  # one header, then random bytes
        b"\x17\x03\x03 card " + CARD + b" and some more words of a plain stream" * 20,
        fake * 5,  # record framing around text
        client + b"card " + CARD,  # records, then clear bytes
        _first_records(client, 2),  # two complete records
        _record(os.urandom(40)) + _record(os.urandom(40), 22) + _record(os.urandom(40)),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 40,
        b"x" * 30 + client,
    ]
    for data in one_sided:
        for c, s in ((data, b""), (b"", data)):
            got = detect(c, s)
            assert got.protocol != "proto.tls" and not got.encrypted, data[:20]


@settings(max_examples=300, deadline=None)
@given(
    st.binary(min_size=1, max_size=3000),
    st.sampled_from([b"", b"\x17\x03\x03", b"\x17\x03\x01\x00\x10"]),
)
def test_random_bytes_seen_from_one_side_are_never_tls(data: bytes, head: bytes) -> None:
    assert not tls.joined_mid_connection(head + data, b"")
    assert not tls.joined_mid_connection(b"", head + data)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([21, 22, 23, 24]), st.binary(max_size=60),
                          st.integers(0, 3)), min_size=1, max_size=6))  # fmt: skip
def test_records_of_text_or_of_the_wrong_kind_from_one_side_are_not_tls(
    parts: list[tuple[int, bytes, int]],
) -> None:
    """Chains that break a rule somewhere (a body shorter than an AEAD tag, a handshake or
    heartbeat record, text bodies): never TLS from one side."""
    data = b""
    broken = all(kind == 0 for _, _, kind in parts) or parts[0][0] != 23  # all text; not data first
    for ctype, body, kind in parts:
        if kind == 0:
            body = b"card number 4111 1111 1111 1111 " + body.hex().encode()  # text
        broken = broken or ctype in (22, 24) or len(body) < 16
        data += _record(body, ctype)
    if broken:
        assert not tls.joined_mid_connection(data, b"")
        assert not tls.joined_mid_connection(b"", data)


def test_a_fake_sealed_prefix_never_hides_clear_text(
    inspectors: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records of random bytes, then a card in clear: not TLS, and the card is found on both
    paths (DLP reads a direction without a hello from its first byte)."""
    prefix = b"".join(_record(os.urandom(64)) for _ in range(3))
    request = prefix + b"POST /pay HTTP/1.1\r\n\r\ncard=" + CARD
    answer = b"".join(_record(os.urandom(80)) for _ in range(2))
    conv = F.conversation("10.0.0.1", "10.0.0.2", 41000, 443, request, answer)
    path = tmp_path / "fake.pcap"
    path.write_bytes(F.pcap([(1.0 + i / 100, F.ether(p)) for i, p in enumerate(conv[3:])]))
    rec = _both_paths(path, inspectors, monkeypatch)
    assert (rec.protocol, rec.encrypted) == ("proto.unknown", False)
    assert [(h.direction, h.match.masked) for h in rec.hits] == [("client", "4111********1111")]


def test_sealed_records_counts_only_a_whole_chain() -> None:
    body = os.urandom(100)
    two = _record(body) + _record(body[:50], 21)
    assert tls.sealed_records(two) == (2, 0x0303)
    assert tls.sealed_records(two + b"\x17\x03") == (2, 0x0303)
    assert tls.sealed_records(two + b"\x16") == (0, 0)
    assert tls.sealed_records(two + b"\x17\x03\x01") == (0, 0)
    assert tls.sealed_records(b"") == (0, 0)
