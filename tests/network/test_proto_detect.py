"""Protocol detection on bytes captured from real clients and servers on this machine
(tests/network/fixtures/capture_protocols.py regenerates them), plus short and hostile input."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.network.protocols import DETECTORS, SLUGS, detect

FIXTURES = Path(__file__).parent / "fixtures" / "protocols"


def pair(name: str) -> tuple[bytes, bytes]:
    return (FIXTURES / f"{name}.c2s").read_bytes(), (FIXTURES / f"{name}.s2c").read_bytes()


# name: (protocol, encrypted, upgrade, details that must be present)
EXPECTED = {
    "http_get": ("proto.http", False, None,
                 {"http.method": "GET", "http.path": "/orders", "http.host": "orders.default.svc",
                  "http.status": "404"}),
    "http_post_json": ("proto.http", False, None,
                       {"http.method": "POST", "http.path": "/pay", "http.status": "201"}),
    "h2c_upgrade": ("proto.http2", False, "h2c", {"http.path": "/index.html"}),
    "h2_prior_knowledge": ("proto.http2", False, None, {"http.method": "GET", "http.path": "/index.html"}),
    "grpc_unary": ("proto.grpc", False, None, {"grpc.method": "/demo.Orders/Get"}),
    "tls13_alpn": ("proto.tls", True, None,
                   {"tls.version": "TLS1.3", "tls.sni": "orders.default.svc", "tls.alpn": "h2,http/1.1"}),
    "tls12_alpn": ("proto.tls", True, None, {"tls.version": "TLS1.2"}),
    "tls13_hrr": ("proto.tls", True, None, {"tls.version": "TLS1.3", "tls.sni": "hrr.test"}),
    "postgres_plain": ("proto.postgres", False, None,
                       {"postgres.user": "stockade", "postgres.database": "stockade_test"}),
    "postgres_ssl_refused": ("proto.postgres", False, None, {"postgres.ssl": "refused"}),
    "postgres_ssl": ("proto.postgres", True, "postgres-sslrequest", {"tls.version": "TLS1.3"}),
    "mysql_plain": ("proto.mysql", False, None,
                    {"mysql.version": "5.5.5-10.11.19-MariaDB-0+deb12u1", "mysql.user": "app"}),
    "mysql_ssl": ("proto.mysql", True, "mysql-ssl", {"tls.version": "TLS1.3"}),
    "redis_set": ("proto.redis", False, None, {"redis.command": "SET"}),
    "redis_inline": ("proto.redis", False, None, {"redis.command": "PING"}),
    "ssh_client": ("proto.ssh", True, None, {"ssh.client_software": "OpenSSH_9.2p1", "ssh.server_software": "OpenSSH_9.2p1"}),
    "dns_udp": ("proto.dns", False, None,
                {"dns.transport": "udp", "dns.qname": "orders.default.svc.cluster.local.", "dns.qtype": "A"}),
    "dns_tcp": ("proto.dns", False, None, {"dns.transport": "tcp", "dns.rcode": "0"}),
    "mongodb_hello": ("proto.mongodb", False, None, {"mongodb.opcode": "OP_MSG"}),
    "kafka_apiversions": ("proto.kafka", False, None,
                          {"kafka.api": "ApiVersions", "kafka.client_id": "orders-svc"}),
    "smtp_starttls": ("proto.smtp", True, "smtp-starttls", {}),
    "imap_starttls": ("proto.imap", True, "imap-starttls", {}),
    "pop3_stls": ("proto.pop3", True, "pop3-stls", {}),
}  # fmt: skip


def test_every_fixture_has_an_expectation() -> None:
    assert {p.stem for p in FIXTURES.glob("*.c2s")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_capture(name: str) -> None:
    client, server = pair(name)
    protocol, encrypted, upgrade, details = EXPECTED[name]
    got = detect(client, server)
    assert (got.protocol, got.encrypted, got.upgrade) == (protocol, encrypted, upgrade)
    assert details.items() <= dict(got.details).items()
    assert got.protocol in SLUGS


@pytest.mark.parametrize(
    "name",
    [
        "http_get",
        "tls13_alpn",
        "postgres_plain",
        "redis_set",
        "dns_tcp",
        "grpc_unary",
        "ssh_client",
    ],
)
def test_one_direction_is_enough_for_client_first_protocols(name: str) -> None:
    client, _ = pair(name)
    assert detect(client, b"").protocol == EXPECTED[name][0]


def test_server_first_protocols_from_the_server_alone() -> None:
    assert detect(b"", pair("tls13_alpn")[1]).protocol == "proto.tls"
    assert detect(b"", b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").protocol == "proto.ssh"
    assert detect(b"", MYSQL_GREETING).protocol == "proto.mysql"


def test_query_strings_never_reach_details() -> None:
    for name in ("http_get", "h2c_upgrade", "h2_prior_knowledge"):
        values = " ".join(v for _, v in detect(*pair(name)).details)
        assert "token" not in values and "sid=" not in values and "?" not in values


# Before the bytes that refine it arrive, a protocol looks like the one it is built on.
GENERALISES = {"proto.grpc": ("proto.http2",), "proto.http2": ("proto.http",)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_truncated_prefixes_never_crash_nor_mislabel(name: str) -> None:
    client, server = pair(name)
    expected = EXPECTED[name][0]
    for cut in range(0, min(len(client), 96)):
        got = detect(client[:cut], b"")
        # Short input may be unknown or weak, but a confident answer must be the right one.
        if got.confidence >= 0.8:
            assert got.protocol in {expected, *GENERALISES.get(expected, ())}, (cut, got)
    for cut in range(0, min(len(server), 64)):
        detect(client, server[:cut])


def client_hello() -> bytes:
    """A real ClientHello (python ssl), what follows an accepted upgrade."""
    stream = (FIXTURES / "tls13_alpn.c2s").read_bytes()
    return stream[: 5 + struct.unpack_from("!H", stream, 3)[0]]


def test_sslrequest_alone_is_a_weak_postgres_guess_and_n_refuses() -> None:
    ssl_request = struct.pack("!iI", 8, 80877103)
    assert detect(ssl_request[:4], b"").confidence < 0.8
    got = detect(ssl_request, b"")
    assert got.protocol == "proto.postgres" and not got.encrypted
    # 'S' only says yes: encrypted once the ClientHello that follows parses
    assert not detect(ssl_request, b"S").encrypted
    assert detect(ssl_request + client_hello(), b"S").encrypted
    assert not detect(ssl_request, b"N").encrypted


def test_gssenc_request_accepted() -> None:
    got = detect(struct.pack("!iI", 8, 80877104), b"G")
    assert (got.protocol, got.encrypted, got.upgrade) == ("proto.postgres", True, "postgres-gssenc")


# Hand-built from the documented layout (HandshakeV10, SSLRequest, HandshakeResponse41) to pin
# the capability logic; the real MariaDB captures are in EXPECTED above.
def _mysql_greeting(caps: int) -> bytes:
    body = (b"\x0a" + b"8.0.36\0" + struct.pack("<I", 11) + b"abcdefgh" + b"\0"
            + struct.pack("<H", caps & 0xFFFF) + b"\x21" + struct.pack("<H", 2)
            + struct.pack("<H", caps >> 16) + b"\x15" + bytes(10) + b"ijklmnopqrst\0"
            + b"caching_sha2_password\0")  # fmt: skip
    return len(body).to_bytes(3, "little") + b"\0" + body


MYSQL_GREETING = _mysql_greeting(0x81FFFF)


def test_mysql_ssl_request_means_encrypted() -> None:
    ssl_request = (
        struct.pack("<I", 0x0200 | 0x0800 | 0x8000)
        + struct.pack("<I", 1 << 24)
        + b"\x21"
        + bytes(23)
    )
    client = len(ssl_request).to_bytes(3, "little") + b"\x01" + ssl_request
    assert not detect(client, MYSQL_GREETING).encrypted  # asked for, not yet begun
    got = detect(client + client_hello(), MYSQL_GREETING)
    assert (got.protocol, got.encrypted, got.upgrade) == ("proto.mysql", True, "mysql-ssl")
    assert dict(got.details)["mysql.version"] == "8.0.36"


def test_mysql_plain_login() -> None:
    body = (
        struct.pack("<I", 0x0200 | 0x8000)
        + struct.pack("<I", 1 << 24)
        + b"\x21"
        + bytes(23)
        + b"app\0"
    )
    client = len(body).to_bytes(3, "little") + b"\x01" + body
    got = detect(client, MYSQL_GREETING)
    assert not got.encrypted and dict(got.details)["mysql.user"] == "app"


def test_imap_and_pop3_starttls() -> None:
    imap = detect(
        b"a1 CAPABILITY\r\na2 STARTTLS\r\n" + client_hello(),
        b"* OK IMAP4rev1 ready\r\n* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\na2 OK Begin TLS\r\n",
    )
    assert (imap.protocol, imap.encrypted, imap.upgrade) == ("proto.imap", True, "imap-starttls")
    pop = detect(
        b"CAPA\r\nSTLS\r\n" + client_hello(),
        b"+OK POP3 ready\r\n+OK\r\nSTLS\r\n.\r\n+OK Begin TLS\r\n",
    )
    assert (pop.protocol, pop.encrypted, pop.upgrade) == ("proto.pop3", True, "pop3-stls")
    plain = detect(b"USER bob\r\n", b"+OK POP3 ready\r\n")
    assert plain.protocol == "proto.pop3" and not plain.encrypted


def test_smtp_without_starttls_is_clear() -> None:
    got = detect(b"EHLO client\r\nMAIL FROM:<a@b.c>\r\n", b"220 mx ESMTP\r\n250 mx\r\n")
    assert (got.protocol, got.encrypted) == ("proto.smtp", False)


def test_port_is_never_an_input_and_garbage_is_unknown() -> None:
    assert detect(b"\x00\x01\x02hello world", b"\xff\xfe").protocol == "proto.unknown"
    assert detect(b"", b"").protocol == "proto.unknown"


def test_registry_is_explicit_and_slugs_are_stable() -> None:
    assert [d.SLUG for d in DETECTORS][:5] == [
        "proto.tls",
        "proto.ssh",
        "proto.grpc",
        "proto.http2",
        "proto.http",
    ]
    assert len(set(SLUGS)) == len(SLUGS)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_random_bytes_never_raise(client: bytes, server: bytes) -> None:
    got = detect(client, server)
    assert got.protocol in SLUGS and 0.0 <= got.confidence <= 1.0


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(EXPECTED)), st.integers(0, 4095), st.integers(0, 255))
def test_bit_flips_in_real_captures_never_raise(name: str, at: int, value: int) -> None:
    client, server = pair(name)
    if client:
        i = at % len(client)
        detect(client[:i] + bytes([value]) + client[i + 1 :], server)
    if server:
        i = at % len(server)
        detect(client, server[:i] + bytes([value]) + server[i + 1 :])


def _bson(key: str) -> bytes:
    body = b"\x10" + key.encode() + b"\0" + struct.pack("<i", 1) + b"\0"
    return struct.pack("<i", 4 + len(body)) + body


def test_mongodb_legacy_op_query_and_reply() -> None:
    # OP_QUERY (2004) to admin.$cmd, as drivers sent before OP_MSG; OP_REPLY (1) answers it.
    body = struct.pack("<i", 0) + b"admin.$cmd\0" + struct.pack("<ii", 0, -1) + _bson("isMaster")
    query = struct.pack("<iiii", 16 + len(body), 7, 0, 2004) + body
    reply_body = struct.pack("<iqii", 8, 0, 0, 1) + _bson("ok")
    reply = struct.pack("<iiii", 16 + len(reply_body), 99, 7, 1) + reply_body
    got = detect(query, reply)
    assert (got.protocol, got.confidence) == ("proto.mongodb", 1.0)
    assert dict(got.details) == {"mongodb.opcode": "OP_QUERY", "mongodb.command": "isMaster"}
    assert detect(query, b"").confidence == 0.8


def test_kafka_response_with_the_same_correlation_id() -> None:
    client, _ = pair("kafka_apiversions")
    correlation = struct.unpack_from("!i", client, 8)[0]
    response = struct.pack("!ii", 10, correlation) + bytes(6)
    assert detect(client, response).confidence == 1.0
    assert detect(client, struct.pack("!ii", 10, correlation + 1) + bytes(6)).confidence == 0.8


def test_sslv2_compatible_hello_is_tls() -> None:
    specs = bytes.fromhex("00002f000035")
    body = b"\x01\x03\x01" + struct.pack("!HHH", len(specs), 0, 16) + specs + bytes(16)
    got = detect(struct.pack("!H", 0x8000 | len(body)) + body, b"")
    assert (got.protocol, got.encrypted) == ("proto.tls", True)


def test_http2_server_settings_alone() -> None:
    _, server = pair("h2_prior_knowledge")
    assert detect(b"", server).protocol == "proto.http2"


def test_dns_rejects_garbage_headers() -> None:
    query, _ = pair("dns_udp")
    assert detect(query, b"").protocol == "proto.dns"
    compressed = query[:12] + b"\xc0\x0c" + query[-4:]  # pointer in a first question
    assert detect(compressed, b"").protocol != "proto.dns"
    many = query[:4] + struct.pack("!H", 900) + query[6:]  # QDCOUNT 900
    assert detect(many, b"").protocol != "proto.dns"


# -- request targets as RFC 9112 section 3.2 defines them (issue 13) ---------------------------

TARGETS = {
    b"GET /api/v1/fetch?url=http://169.254.169.254/latest/x HTTP/1.1": ("/api/v1/fetch", None),
    b"GET /a/b;jsessionid=1?x=1#f HTTP/1.1": ("/a/b", None),
    b"GET http://host.example/p/q?token=1 HTTP/1.1": ("/p/q", None),
    b"GET http://host.example HTTP/1.1": ("/", None),
    b"GET https://host.example:8443?x=http://y/z HTTP/1.1": ("/", None),
    b"OPTIONS * HTTP/1.1": ("*", None),
    b"CONNECT db.internal:5432 HTTP/1.1": (None, "db.internal:5432"),
}


@pytest.mark.parametrize("line", sorted(TARGETS))
def test_request_target_forms(line: bytes) -> None:
    details = dict(detect(line + b"\r\nHost: h\r\n\r\n", b"").details)
    path, authority = TARGETS[line]
    assert details.get("http.path") == path
    assert details.get("http.authority") == authority


def test_http2_path_with_a_url_in_the_query() -> None:
    from tests.network import frames as F

    block = F.hpack_literals(
        [(":method", "GET"), (":scheme", "http"), (":authority", "api"),
         (":path", "/api/v1/fetch?url=http://169.254.169.254/latest/x")]
    )  # fmt: skip
    client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + F.h2_frame(1, 0x5, 1, block)
    assert dict(detect(client, b"").details)["http.path"] == "/api/v1/fetch"


# -- the first segment: the search stops where no later detector can change the answer ---------


def _client_only_inputs() -> list[bytes]:
    """Every capture's client side, whole and cut short, and its hostile variants."""
    out = [
        b"",
        b"GET",
        b"POST / HTTP/1.1\r\n",
        b"*1\r\n$4\r\nPING\r\n",
        b"PING\r\n",
        b"a1 NOOP\r\n",
    ]
    for name in sorted(EXPECTED):
        client, _ = pair(name)
        out += [client[:cut] for cut in (*range(0, 48), 64, 96, 200, 512, len(client))]
    return out


def test_client_only_ceilings_hold() -> None:
    for detector in DETECTORS:
        ceiling = getattr(detector, "CLIENT_ONLY_CEILING", 1.0)
        for client in _client_only_inputs():
            guess = detector.probe(client, b"")
            assert guess is None or guess.confidence <= ceiling, (detector.SLUG, client[:40])


def test_client_only_search_gives_the_exhaustive_answer() -> None:
    for client in _client_only_inputs():
        assert detect(client, b"") == detect(client, b"", exhaustive=True), client[:40]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(EXPECTED)), st.integers(0, 4095), st.integers(0, 255), st.binary())
def test_client_only_search_on_altered_captures(
    name: str, at: int, value: int, tail: bytes
) -> None:
    client = pair(name)[0] or b"x"
    i = at % len(client)
    for data in (client[:i] + bytes([value]) + client[i + 1 :], tail, bytes([value]) + tail):
        for detector in DETECTORS:
            guess = detector.probe(data, b"")
            assert guess is None or guess.confidence <= getattr(
                detector, "CLIENT_ONLY_CEILING", 1.0
            )
        assert detect(data, b"") == detect(data, b"", exhaustive=True)


def test_http_request_alone_asks_no_detector_after_http1() -> None:
    """The firewall's first segment: once HTTP/1 answers, the database and mail detectors that
    follow cannot beat it without server bytes, so they are not run."""
    import sys

    asked: list[str] = []

    def watch(frame, event, _arg):  # type: ignore[no-untyped-def]
        if event == "call" and frame.f_code.co_name == "probe":
            asked.append(Path(frame.f_code.co_filename).stem)

    client, _ = pair("http_post_json")
    sys.setprofile(watch)
    try:
        got = detect(client, b"")
    finally:
        sys.setprofile(None)
    assert got.protocol == "proto.http"
    assert list(dict.fromkeys(asked)) == [
        "tls",
        "ssh",
        "grpc",
        "http2",
        "http1",
    ]  # gRPC asks HTTP/2


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([b"GET / HTTP/1.1", b"Host: a", b" HOST :b ", b"host:", b"X: y", b"",
                         b"\r", b"junk", b"Upgrade: h2c", b"upgrade:\tX", b"\xe9: \xe9",
                         b"X-Pad: " + b"p" * 4070, b"Host: c" + b"\r" * 30, b"\x0bhOsT\x0c:\x0bv\r",
                         b"host:\r\r", b"ho\rst: x", b"host", b"\r\r", b"h\xe9: a:b", b"host :\tb c "]),
        max_size=8,
    ),
    st.sampled_from([b"\n", b"\r\n"]),
    st.sampled_from(["host", "upgrade", "\xe9"]),
)  # fmt: skip
def test_one_request_header_as_in_all_of_them(parts: list[bytes], eol: bytes, name: str) -> None:
    from stockade.network.protocols.http1 import request_header, request_headers

    client = eol.join(parts)
    assert request_header(client, name) == request_headers(client).get(name)


def test_a_detection_built_by_its_slots_is_the_one_its_init_builds() -> None:
    import dataclasses

    from stockade.network.interface import Detection

    got = detect(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n")
    fields = [f.name for f in dataclasses.fields(Detection)]
    again = Detection(**{name: getattr(got, name) for name in fields})
    assert got == again and hash(got) == hash(again) and repr(got) == repr(again)


def test_the_http_guess_built_by_its_slots_is_the_one_its_init_builds() -> None:
    import dataclasses

    from stockade.network.protocols import base, http1

    got = http1.probe(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n")
    assert got is not None
    fields = [f.name for f in dataclasses.fields(base.Guess)]
    again = base.Guess(**{name: getattr(got, name) for name in fields})
    assert got == again and hash(got) == hash(again) and repr(got) == repr(again)


def _quic_long(first: int, version: int, dcid: bytes, scid: bytes, size: int) -> bytes:
    """A QUIC long header packet as RFC 9000 17.2 lays it out, its protected rest random."""
    head = bytes([first]) + version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid
    head += bytes([len(scid)]) + scid + b"\x00\x41\x00"  # token length 0, a length, a number
    return head + random.Random(size).randbytes(max(size - len(head), 0))


DCID, SCID = bytes.fromhex("8394c8f03e515708"), b""


@pytest.mark.parametrize(
    ("version", "first", "name"),
    [(1, 0xC3, "1"), (0x6B3343CF, 0xD3, "2"), (0xFF00001D, 0xC3, "draft-29")],
)
def test_a_quic_initial_is_quic_and_encrypted(version: int, first: int, name: str) -> None:
    initial = _quic_long(first, version, DCID, SCID, 1200)
    got = detect(initial, b"")
    assert (got.protocol, got.encrypted, dict(got.details)) == (
        "proto.quic",
        True,
        {"quic.version": name},
    )
    assert got.confidence < 1.0  # the client alone
    server = _quic_long(first, version, b"\x01\x02\x03\x04", DCID, 1200)
    assert detect(initial, server).confidence == 1.0
    # a Version Negotiation packet echoes the client's ids, swapped
    vn = b"\x80\x00\x00\x00\x00" + bytes([len(SCID)]) + SCID + bytes([len(DCID)]) + DCID
    assert detect(initial, vn + b"\x00\x00\x00\x01").confidence == 1.0


def test_what_only_looks_like_a_quic_initial_is_not_quic() -> None:
    ok = _quic_long(0xC3, 1, DCID, SCID, 1200)
    assert detect(ok, b"").protocol == "proto.quic"
    for bad in (
        _quic_long(0xC3, 1, DCID, SCID, 1199),  # an Initial datagram is padded to 1200
        _quic_long(0x43, 1, DCID, SCID, 1200),  # a short header
        _quic_long(0x83, 1, DCID, SCID, 1200),  # the fixed bit unset
        _quic_long(0xE3, 1, DCID, SCID, 1200),  # a Handshake packet, not an Initial
        _quic_long(0xC3, 0x0A0A0A0A, DCID, SCID, 1200),  # an unknown (grease) version
        _quic_long(0xC3, 1, b"\x01\x02\x03", SCID, 1200),  # a first id under 8 bytes
        _quic_long(0xC3, 1, bytes(21), SCID, 1200),  # an id over 20 bytes
    ):
        assert detect(bad, b"").protocol != "proto.quic"
