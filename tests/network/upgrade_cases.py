"""One table of connections that upgrade in-band (or do not), driving the judgement itself, the
passive sensor and the inline enforcer (tests/network/test_upgrades.py,
tests/firewall/test_inspector_upgrades.py).

Where the repository holds bytes from real clients and servers (tests/network/fixtures/protocols,
see MANIFEST.json) they are cut into the turns the two sides took; FTP, XMPP, LDAP and HTTP's
``Upgrade: TLS`` are built from their RFC layouts around a real ClientHello and ServerHello.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "protocols"


def fixture(name: str) -> tuple[bytes, bytes]:
    return (FIXTURES / f"{name}.c2s").read_bytes(), (FIXTURES / f"{name}.s2c").read_bytes()


def _first_record(stream: bytes) -> bytes:
    return stream[: 5 + struct.unpack_from("!H", stream, 3)[0]]


HELLO = _first_record(fixture("tls13_alpn")[0])  # python ssl's ClientHello
SERVER_HELLO = _first_record(fixture("tls13_alpn")[1])


def cut(data: bytes, *markers: bytes) -> list[bytes]:
    """``data`` split after the end of the line holding each marker, in order."""
    out, pos = [], 0
    for m in markers:
        end = data.index(b"\n", data.index(m, pos)) + 1
        out.append(data[pos:end])
        pos = end
    return [*out, data[pos:]]


@dataclass(frozen=True)
class Case:
    turns: list[tuple[int, bytes]]  # (0: client to server, 1: server to client, bytes)
    state: str | None  # what judge() says at the end: encrypted, clear, or None (no upgrade)
    kind: str | None  # the upgrade named in the record when encrypted
    decides: int  # the turn after which the answer is known (the enforcer's verdict)

    @property
    def encrypted(self) -> bool:
        return self.state == "encrypted" or (self.state is None and self.kind == "tls")


def _cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    c, s = fixture("postgres_ssl")
    cases["postgres_sslmode_require"] = Case(
        [(0, c[:8]), (1, s[:1]), (0, c[8:]), (1, s[1:])], "encrypted", "postgres-sslrequest", 2
    )
    c, s = fixture("postgres_ssl_refused")
    cases["postgres_ssl_refused_then_clear"] = Case(
        [(0, c[:8]), (1, s[:1]), (0, c[8:]), (1, s[1:])], "clear", None, 2
    )
    c, s = fixture("postgres_plain")
    cases["postgres_sslmode_disable"] = Case([(0, c), (1, s)], None, None, 0)
    gss_refused = struct.pack("!iI", 8, 80877104)
    c, s = fixture("postgres_ssl")
    cases["postgres_gssenc_refused_then_ssl"] = Case(
        [(0, gss_refused), (1, b"N"), (0, c[:8]), (1, s[:1]), (0, c[8:]), (1, s[1:])],
        "encrypted",
        "postgres-sslrequest",
        4,
    )
    c, s = fixture("mysql_ssl")
    cases["mysql_ssl"] = Case(
        [(1, s[:104]), (0, c[:36]), (0, c[36:]), (1, s[104:])], "encrypted", "mysql-ssl", 2
    )
    c, s = fixture("mysql_plain")
    cases["mysql_without_ssl"] = Case([(1, s[:104]), (0, c), (1, s[104:])], "clear", None, 1)
    c, s = fixture("smtp_starttls")
    sc = cut(s, b"ESMTP ready", b"250 SIZE")
    cc = cut(c, b"ehlo", b"STARTTLS")
    cases["smtp_starttls"] = Case(
        [(1, sc[0]), (0, cc[0]), (1, sc[1]), (0, cc[1]), (1, sc[2]), (0, cc[2])],
        "encrypted",
        "smtp-starttls",
        5,
    )
    cases["smtp_starttls_refused_then_mail"] = Case(
        [
            (1, sc[0]),
            (0, cc[0]),
            (1, sc[1]),
            (0, cc[1]),
            (1, b"454 4.7.0 TLS not available\r\n"),
            (0, b"MAIL FROM:<a@shop.example>\r\n"),
        ],
        "clear",
        None,
        5,
    )
    cases["smtp_auth_before_starttls"] = Case(
        [(1, sc[0]), (0, cc[0]), (1, sc[1]), (0, b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n")],
        "clear",
        None,
        3,
    )
    c, s = fixture("imap_starttls")
    sc = cut(s, b"ready.", b"CAPABILITY IMAP4rev1 SASL", b"Pre-login", b"Begin TLS")
    cc = cut(c, b"CAPABILITY", b"STARTTLS")
    cases["imap_starttls"] = Case(
        [
            (1, sc[0]),
            (0, cc[0]),
            (1, sc[1] + sc[2]),
            (0, cc[1]),
            (1, sc[3]),
            (0, cc[2]),
            (1, sc[4]),
        ],
        "encrypted",
        "imap-starttls",
        5,
    )
    c, s = fixture("pop3_stls")
    sc = cut(s, b"ready.", b"\n.\r", b"Begin TLS")  # greeting, CAPA's answer, STLS's, TLS
    cc = cut(c, b"CAPA", b"STLS")
    cases["pop3_stls"] = Case(
        [(1, sc[0]), (0, cc[0]), (1, sc[1]), (0, cc[1]), (1, sc[2]), (0, cc[2]), (1, sc[3])],
        "encrypted",
        "pop3-stls",
        5,
    )
    cases["pop3_user_in_clear"] = Case(
        [(1, b"+OK Dovecot ready.\r\n"), (0, b"USER bob\r\n")], "clear", None, 1
    )
    cases["ftp_auth_tls"] = Case(
        [
            (1, b"220 FTP server ready\r\n"),
            (0, b"FEAT\r\n"),
            (1, b"211-Features:\r\n AUTH TLS\r\n PBSZ\r\n211 End\r\n"),
            (0, b"AUTH TLS\r\n"),
            (1, b"234 AUTH TLS successful\r\n"),
            (0, HELLO),
            (1, SERVER_HELLO),
        ],
        "encrypted",
        "ftp-auth-tls",
        5,
    )
    cases["ftp_user_in_clear"] = Case(
        [(1, b"220 FTP server ready\r\n"), (0, b"USER anonymous\r\n")], "clear", None, 1
    )
    stream = (
        b"<?xml version='1.0'?><stream:stream to='shop.example' xmlns='jabber:client' "
        b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
    )
    features = (
        b"<?xml version='1.0'?><stream:stream from='shop.example' id='c2s1' xmlns='jabber:client'"
        b" xmlns:stream='http://etherx.jabber.org/streams' version='1.0'><stream:features>"
        b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
        b"</stream:features>"
    )
    cases["xmpp_starttls"] = Case(
        [
            (0, stream),
            (1, features),
            (0, b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
            (1, b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
            (0, HELLO),
            (1, SERVER_HELLO),
        ],
        "encrypted",
        "xmpp-starttls",
        4,
    )
    cases["xmpp_auth_in_clear"] = Case(
        [
            (0, stream),
            (1, features),
            (
                0,
                b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGJvYgBz</auth>",
            ),
        ],
        "clear",
        None,
        2,
    )
    oid = b"1.3.6.1.4.1.1466.20037"
    start_tls = b"\x30\x1d\x02\x01\x01\x77\x18\x80\x16" + oid  # RFC 4511 4.14.1
    ok = b"\x30\x0c\x02\x01\x01\x78\x07\x0a\x01\x00\x04\x00\x04\x00"
    refused = b"\x30\x0c\x02\x01\x01\x78\x07\x0a\x01\x02\x04\x00\x04\x00"
    bind = b"\x30\x0c\x02\x01\x02\x60\x07\x02\x01\x03\x04\x00\x80\x00"  # simple bind, v3
    cases["ldap_starttls"] = Case(
        [(0, start_tls), (1, ok), (0, HELLO), (1, SERVER_HELLO)], "encrypted", "ldap-starttls", 2
    )
    cases["ldap_starttls_refused_then_bind"] = Case(
        [(0, start_tls), (1, refused), (0, bind)], "clear", None, 2
    )
    cases["ldap_bind_in_clear"] = Case([(0, bind)], "clear", None, 0)
    cases["http_upgrade_tls"] = Case(
        [
            (
                0,
                b"OPTIONS * HTTP/1.1\r\nHost: shop.example\r\nUpgrade: TLS/1.2\r\n"
                b"Connection: Upgrade\r\n\r\n",
            ),
            (
                1,
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: TLS/1.2, HTTP/1.1\r\n"
                b"Connection: Upgrade\r\n\r\n",
            ),
            (0, HELLO),
            (1, SERVER_HELLO),
        ],
        "encrypted",
        "http-upgrade-tls",
        2,
    )
    c, s = fixture("h2c_upgrade")
    cases["http_upgrade_h2c_is_clear"] = Case([(0, c), (1, s)], None, None, 0)
    c, s = fixture("tls13_alpn")
    # with TLS required the enforcer waits for the server's hello: it names the version, which
    # must reach the requirement's minVersion (TLS 1.2 by default)
    cases["direct_tls"] = Case([(0, c), (1, s)], None, "tls", 1)
    return cases


CASES = _cases()
