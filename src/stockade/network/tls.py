"""TLS handshake facts from the first bytes of a connection: version, SNI, ALPN, cipher suite.

Reads the ClientHello from the client stream and the ServerHello from the server stream. Records
may split a hello (or carry several messages), the ClientHello may use the SSLv2-compatible
format, and TLS 1.3 is only visible in the ``supported_versions`` extension. A HelloRetryRequest is
a ServerHello with a fixed random; the real ServerHello follows it. Truncated input yields what
was parsed, with ``complete=False``. The chosen ALPN of TLS 1.3 travels in EncryptedExtensions
and cannot be seen; it is reported for TLS 1.2 and below only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Literal

from . import tls_certs, tls_suites
from .interface import CertificateInfo, TlsInfo

HANDSHAKE, CHANGE_CIPHER_SPEC, ALERT, APPLICATION_DATA = 22, 20, 21, 23
CLIENT_HELLO, SERVER_HELLO = 1, 2
CERTIFICATE, CERTIFICATE_REQUEST, SERVER_HELLO_DONE = 11, 13, 14
EXT_SNI, EXT_ALPN, EXT_SUPPORTED_VERSIONS = 0, 16, 43
MAX_RECORD = 16384 + 2048  # TLSCiphertext limit (RFC 8446 5.2)
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")

VERSIONS = {0x0002: "SSL2.0", 0x0300: "SSL3.0", 0x0301: "TLS1.0", 0x0302: "TLS1.1",
            0x0303: "TLS1.2", 0x0304: "TLS1.3"}  # fmt: skip

# IANA TLS Cipher Suites registry, the suites seen in practice (checked against `openssl ciphers
# -stdname` in tests).
CIPHER_SUITES: dict[int, str] = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0x1304: "TLS_AES_128_CCM_SHA256",
    0x1305: "TLS_AES_128_CCM_8_SHA256",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAA: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xC009: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    0xC00A: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0xC023: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    0xC024: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    0xC028: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    0xC0AC: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
    0xC0AD: "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
    0xC0AE: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
    0xC0AF: "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256",
    0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0x009E: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    0x009F: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA",
    0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
    0x003C: "TLS_RSA_WITH_AES_128_CBC_SHA256",
    0x003D: "TLS_RSA_WITH_AES_256_CBC_SHA256",
    0x0033: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
    0x0039: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
    0x0067: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
    0x006B: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
    0xC09C: "TLS_RSA_WITH_AES_128_CCM",
    0xC09D: "TLS_RSA_WITH_AES_256_CCM",
    0xC09E: "TLS_DHE_RSA_WITH_AES_128_CCM",
    0xC09F: "TLS_DHE_RSA_WITH_AES_256_CCM",
    0x00A8: "TLS_PSK_WITH_AES_128_GCM_SHA256",
    0x00A9: "TLS_PSK_WITH_AES_256_GCM_SHA384",
    0xC012: "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    0x0005: "TLS_RSA_WITH_RC4_128_SHA",
    0x0004: "TLS_RSA_WITH_RC4_128_MD5",
    0xC011: "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    0x00FF: "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
    0x5600: "TLS_FALLBACK_SCSV",
}


def version_name(code: int) -> str:
    if code in VERSIONS:
        return VERSIONS[code]
    if code >> 8 == 0x7F:  # pre-RFC 8446 drafts
        return "TLS1.3"
    return f"0x{code:04x}"


def cipher_name(code: int) -> str:
    return CIPHER_SUITES.get(code) or tls_suites.extra_name(code) or f"0x{code:04X}"


def _grease(code: int) -> bool:
    # RFC 8701 reserved values 0x?A?A: clients sprinkle them to keep servers tolerant.
    return code & 0x0F0F == 0x0A0A and code >> 12 == (code >> 4) & 0xF


def looks_like_record(data: bytes) -> bool:
    """A TLS record header: handshake/alert/ccs/appdata type, 3.x version, sane length."""
    return (
        len(data) >= 5
        and data[0] in (HANDSHAKE, CHANGE_CIPHER_SPEC, ALERT, APPLICATION_DATA)
        and data[1] == 3
        and data[2] <= 4
        and struct.unpack_from("!H", data, 3)[0] <= MAX_RECORD
    )


def looks_like_sslv2_hello(data: bytes) -> bool:
    return (
        len(data) >= 5
        and data[0] & 0x80 != 0
        and data[2] == CLIENT_HELLO
        and data[3] in (0, 3)
        and data[4] <= 4
        and ((data[0] & 0x7F) << 8 | data[1]) >= 9
    )


def handshake_bytes(stream: bytes, *, until_ccs: bool = False) -> tuple[bytes, bool]:
    """Concatenated handshake payloads of the leading records, and whether input ran out mid-way.
    Stops at application data or alerts (TLS 1.3 encrypts the rest of the handshake), and with
    ``until_ccs`` at ChangeCipherSpec (before TLS 1.3 the Finished after it is encrypted)."""
    out = bytearray()
    pos = 0
    while pos < len(stream):
        if len(stream) - pos < 5:
            return bytes(out), True
        ctype, major, _minor, length = struct.unpack_from("!BBBH", stream, pos)
        if major != 3 or length > MAX_RECORD:
            break
        if ctype not in (HANDSHAKE, CHANGE_CIPHER_SPEC) or (until_ccs and ctype != HANDSHAKE):
            break
        body = stream[pos + 5 : pos + 5 + length]
        if ctype == HANDSHAKE:
            out += body
        if len(body) < length:
            return bytes(out), True
        pos += 5 + length
    return bytes(out), False


def handshake_messages(data: bytes) -> tuple[list[tuple[int, bytes]], bool]:
    """(type, body) of each handshake message; a cut-short last body is returned as is."""
    msgs = []
    pos = 0
    while len(data) - pos >= 4:
        mtype = data[pos]
        length = int.from_bytes(data[pos + 1 : pos + 4], "big")
        body = data[pos + 4 : pos + 4 + length]
        msgs.append((mtype, body))
        if len(body) < length:
            return msgs, True
        pos += 4 + length
    return msgs, pos != len(data)


class _Reader:
    """Bounds-checked cursor; reading past the end raises _Short (truncated input)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise _Short
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def vec(self, width: int) -> bytes:
        return self.take(int.from_bytes(self.take(width), "big"))

    def left(self) -> int:
        return len(self.data) - self.pos


class _Short(Exception):
    pass


@dataclass(slots=True)
class _Hello:
    legacy_version: int | None = None
    versions: list[int] = field(default_factory=list)
    sni: str | None = None
    alpn: list[str] = field(default_factory=list)
    cipher: int | None = None
    hrr: bool = False
    complete: bool = False


def _extensions(r: _Reader, hello: _Hello, server: bool) -> None:
    if r.left() == 0:
        return  # extensions are optional before TLS 1.2
    declared = r.u16()
    ext = _Reader(r.data[r.pos : r.pos + declared])  # parse what arrived, extension by extension
    r.pos += declared
    while ext.left():
        etype = ext.u16()
        body = _Reader(ext.vec(2))
        if etype == EXT_SNI and not server:
            names = _Reader(body.vec(2))
            while names.left():
                kind, name = names.u8(), names.vec(2)
                if kind == 0:
                    hello.sni = name.decode("ascii", "replace")
        elif etype == EXT_ALPN:
            protos = _Reader(body.vec(2))
            while protos.left():
                hello.alpn.append(protos.vec(1).decode("ascii", "replace"))
        elif etype == EXT_SUPPORTED_VERSIONS:
            if server:
                hello.versions = [body.u16()]
            else:
                listed = _Reader(body.vec(1))
                while listed.left():
                    code = listed.u16()
                    if not _grease(code):
                        hello.versions.append(code)
    if r.pos > len(r.data):
        raise _Short


def parse_client_hello(body: bytes) -> _Hello:
    hello = _Hello()
    r = _Reader(body)
    try:
        hello.legacy_version = r.u16()
        r.take(32)  # random
        r.vec(1)  # session id
        r.vec(2)  # cipher suites
        r.vec(1)  # compression methods
        _extensions(r, hello, server=False)
        hello.complete = True
    except _Short:
        pass
    return hello


def parse_server_hello(body: bytes) -> _Hello:
    hello = _Hello()
    r = _Reader(body)
    try:
        hello.legacy_version = r.u16()
        hello.hrr = r.take(32) == HRR_RANDOM
        r.vec(1)
        hello.cipher = r.u16()
        r.u8()  # compression
        _extensions(r, hello, server=True)
        hello.complete = True
    except _Short:
        pass
    return hello


def parse_sslv2_client_hello(data: bytes) -> _Hello:
    """SSLv2-compatible ClientHello (RFC 5246 E.2): no extensions, so no SNI or ALPN."""
    hello = _Hello()
    length = (data[0] & 0x7F) << 8 | data[1]
    r = _Reader(data[2 : 2 + length])
    try:
        r.u8()  # msg type
        hello.legacy_version = r.u16()
        specs, session_id, challenge = r.u16(), r.u16(), r.u16()
        hello.complete = len(data) >= 2 + length and 9 + specs + session_id + challenge == length
    except _Short:
        pass
    return hello


_RECORD = struct.Struct("!BHH").unpack_from  # type, version, length
HELLO_LIMIT = 64 * 1024  # a "hello" claiming more is not taken for one


@dataclass(frozen=True, slots=True)
class HelloCheck:
    """Whether a direction opens with a TLS hello: ``tls`` (a ClientHello or ServerHello that
    parses completely), ``clear`` (anything else), or ``more`` when only more bytes can tell;
    then look again once the direction holds ``need`` bytes."""

    state: Literal["tls", "clear", "more"]
    need: int = 0


TLS, CLEAR = HelloCheck("tls"), HelloCheck("clear")


def opens_with_hello(data: bytes, *, server: bool) -> HelloCheck:
    """Does this direction start with a complete, well-formed hello (the client's ClientHello,
    or with ``server`` the ServerHello)? Two bytes that look like a record header are not
    enough: what follows them must parse. ``need`` grows with what is still missing, so
    looking again as bytes arrive stays linear."""
    if not server and data[:1] and data[0] & 0x80:
        return _sslv2_check(data)
    if data[:1] not in (b"", b"\x16"):
        return CLEAR  # the first test of _records, without its set-up: most clear text stops here
    return _records(data, server=server)


def _records(data: bytes, *, server: bool) -> HelloCheck:
    """:func:`opens_with_hello` past its SSLv2 test: the records and the hello they carry."""
    want = SERVER_HELLO if server else CLIENT_HELLO
    hs = bytearray()
    pos = 0
    while True:
        missing = 4 - len(hs)  # the handshake header, then the rest of the message
        if len(hs) >= 4:
            if hs[0] != want:
                return CLEAR
            size = int.from_bytes(hs[1:4], "big")
            if size > HELLO_LIMIT:
                return CLEAR
            if len(hs) >= 4 + size:
                parse = parse_server_hello if server else parse_client_hello
                return TLS if parse(bytes(hs[4 : 4 + size])).complete else CLEAR
            missing = 4 + size - len(hs)
        header = data[pos : pos + 5]
        if len(header) < 5:
            if (
                header[:1] not in (b"", b"\x16")
                or header[1:2] not in (b"", b"\x03")
                or (len(header) > 2 and header[2] > 4)
            ):
                return CLEAR
            return HelloCheck("more", pos + 5 + missing)
        ctype, major, minor, length = struct.unpack_from("!BBBH", data, pos)
        if ctype != HANDSHAKE or major != 3 or minor > 4 or not 0 < length <= MAX_RECORD:
            return CLEAR  # RFC 8446 5.1: no empty handshake fragments
        end = pos + 5 + length
        if len(data) < end:
            return HelloCheck("more", max(end, pos + 5 + missing))
        hs += data[pos + 5 : end]
        pos = end


# A capture that joined a connection after its handshake sees sealed records only: application
# data (then alerts, a close_notify), each at least an AEAD tag long (RFC 8446 5.2; TLS 1.2's
# ChaCha20-Poly1305 has no explicit nonce), bodies that look like ciphertext, not text.
MID_RECORDS = 3  # complete records in both directions together, at least one each way
MIN_SEALED = 16
RESYNC_TRIES = 32  # candidate record starts tried in a direction that opens inside a record
_SEALED_TYPES = (APPLICATION_DATA, ALERT)
_TEXT = bytes(range(32, 127)) + b"\t\n\r"


def sealed_records(data: bytes) -> tuple[int, int]:
    """(complete records, record version) when every byte of this direction belongs to a chain
    of sealed records: the first application data, then application data or alerts, one record
    version from TLS 1.0 to 1.2 (TLS 1.3 writes 1.2's), lengths that chain exactly to the end
    or into a record cut short there, and bodies at most three quarters text; else (0, 0).

    A capture that joined during a long record sees its tail first: when the bytes do not open
    like a header (a chain that opens with one and breaks is no TLS), the chain may start at one
    of the first :data:`RESYNC_TRIES` candidates within a record's length (the bytes before it
    are a body's tail, held to the same test), and must then hold two complete records at least."""
    starts = [0]
    if not (data[:1] in (b"\x17", b"\x15") and data[1:2] == b"\x03"):  # (text stops here)
        # (one byte found at a time: memchr, where a two-byte needle is a slower search)
        at = data.find(b"\x17", 1, MAX_RECORD + 6)
        starts = []
        while at > 0 and len(starts) < RESYNC_TRIES:
            if data[at + 1 : at + 2] == b"\x03":
                starts.append(at)
            at = data.find(b"\x17", at + 1, MAX_RECORD + 6)
    for start in starts:
        found = _chain(data, start)
        if found is None or (start and found[0] < 2):
            continue
        count, version, text, sealed = found
        lead = start - len(data[:start].translate(None, _TEXT))  # text in the record's tail
        if text * 4 > sealed * 3 or (start >= MIN_SEALED and lead * 4 > start * 3):
            return 0, 0
        return count, version
    return 0, 0


def _chain(data: bytes, pos: int) -> tuple[int, int, int, int] | None:
    """The chain of sealed records from ``pos`` to the end: (complete records, version, text
    bytes in their bodies, body bytes), or None when a byte breaks it or none is complete."""
    n, count, version, text, sealed = len(data), 0, 0, 0, 0
    while n - pos >= 5:
        ctype, code, length = _RECORD(data, pos)
        if (
            ctype not in (_SEALED_TYPES if count else (APPLICATION_DATA,))
            or not 0x0301 <= code <= 0x0303
            or (version and code != version)
            or not MIN_SEALED <= length <= MAX_RECORD
        ):
            return None
        version = code
        end = pos + 5 + length
        if end > n:  # the head ends inside this record
            break
        body = data[pos + 5 : end]
        sealed += length
        text += length - len(body.translate(None, _TEXT))
        count += 1
        pos = end
    else:
        tail = data[pos:]  # the first bytes of the next header, or nothing
        if tail and (
            tail[0] not in (_SEALED_TYPES if count else (APPLICATION_DATA,))
            or tail[1:2] not in (b"", b"\x03")
            or (
                len(tail) > 2 and (not 1 <= tail[2] <= 3 or (version and tail[2] != version & 0xFF))
            )
        ):
            return None
    return (count, version, text, sealed) if count else None


def joined_mid_connection(client: bytes, server: bytes) -> bool:
    """Is this the middle of a TLS connection whose handshake the capture missed? Both
    directions nothing but sealed records (:func:`sealed_records`) of one version, at least
    :data:`MID_RECORDS` complete records in all, one at least each way; or, when the capture
    sees one direction only (asymmetric routing, a tap on one side: the other sent nothing
    seen), that direction alone holds :data:`MID_RECORDS` complete records. A record header
    alone proves nothing: random bytes, or text that opens with one, break the chain at once.
    The evidence is the chain itself (each header's type, version and a length that lands
    exactly on the next: under 1 in 10^7 per header for random bytes, so three complete ones
    in one direction are as strict as three across two; the second direction's part in the
    two-way rule is its own chain and the shared version), and it changes no DLP: a direction
    without a hello is read from its first byte either way."""
    if not (client and server):
        one = client or server
        return bool(one) and sealed_records(one)[0] >= MID_RECORDS
    c, c_version = sealed_records(client)
    if not c:
        return False
    s, s_version = sealed_records(server)
    return bool(s) and c_version == s_version and c + s >= MID_RECORDS


def _sslv2_check(data: bytes) -> HelloCheck:
    if len(data) < 5:
        if len(data) >= 3 and data[2] != CLIENT_HELLO:
            return CLEAR
        return HelloCheck("more", 5)
    if not looks_like_sslv2_hello(data):
        return CLEAR
    end = 2 + ((data[0] & 0x7F) << 8 | data[1])
    if len(data) < end:
        return HelloCheck("more", end)
    return TLS if parse_sslv2_client_hello(data).complete else CLEAR


def _client_side(client: bytes) -> _Hello | None:
    if looks_like_sslv2_hello(client):
        return parse_sslv2_client_hello(client)
    if not (looks_like_record(client) and client[0] == HANDSHAKE):
        return None
    data, _cut = handshake_bytes(client)
    msgs, _ = handshake_messages(data)
    if not msgs:
        return _Hello() if len(client) >= 6 and client[5] == CLIENT_HELLO else None
    if msgs[0][0] != CLIENT_HELLO:
        return None
    return parse_client_hello(msgs[0][1])


def _server_side(server: bytes) -> tuple[_Hello | None, bool]:
    """The effective ServerHello (after a HelloRetryRequest, the second one) and the HRR flag."""
    if not (looks_like_record(server) and server[0] == HANDSHAKE):
        return None, False
    data, _cut = handshake_bytes(server)
    msgs, _ = handshake_messages(data)
    hellos = [parse_server_hello(body) for mtype, body in msgs if mtype == SERVER_HELLO]
    if not hellos:
        return None, False
    retried = hellos[0].hrr
    real = [h for h in hellos if not h.hrr]
    return (real[0] if real else hellos[0]), retried


def inspect(client: bytes, server: bytes) -> TlsInfo | None:
    """Handshake facts, or None when neither direction starts with a TLS handshake."""
    ch = _client_side(client)
    sh, retried = _server_side(server)
    if ch is None and sh is None:
        return None
    offered = [] if ch is None else (ch.versions or [v for v in [ch.legacy_version] if v])
    chosen = None
    if sh is not None:
        chosen = sh.versions[0] if sh.versions else sh.legacy_version
    version = version_name(chosen) if chosen is not None else None
    cert_status, cert, client_cert = _certificates(client, server, version)
    return TlsInfo(
        version=version,
        client_max_version=version_name(max(offered)) if offered else None,
        sni=ch.sni if ch else None,
        alpn=tuple(ch.alpn) if ch else (),
        alpn_chosen=sh.alpn[0] if sh is not None and sh.alpn else None,
        cipher=cipher_name(sh.cipher) if sh is not None and sh.cipher is not None else None,
        client_versions=tuple(version_name(v) for v in offered),
        hello_retry=retried,
        sslv2_hello=looks_like_sslv2_hello(client),
        complete=(ch is None or ch.complete) and (sh is None or sh.complete),
        certificate_status=cert_status,
        certificate=cert,
        client_certificate=client_cert,
    )


def _flight(stream: bytes) -> dict[int, bytes]:
    """The first body of each handshake message type sent in clear (before ChangeCipherSpec);
    a cut-short last message is left out."""
    if not (looks_like_record(stream) and stream[0] == HANDSHAKE):
        return {}
    data, _cut = handshake_bytes(stream, until_ccs=True)
    out: dict[int, bytes] = {}
    pos = 0
    while len(data) - pos >= 4:
        end = pos + 4 + int.from_bytes(data[pos + 1 : pos + 4], "big")
        if end > len(data):
            break
        out.setdefault(data[pos], data[pos + 4 : end])
        pos = end
    return out


def _certificates(
    client: bytes, server: bytes, version: str | None
) -> tuple[str | None, CertificateInfo | None, str | None]:
    """(server certificate status, its leaf, client certificate status) from the clear part of
    the handshake. TLS 1.3 encrypts both certificates: nothing is guessed."""
    if version is None:
        return None, None, None
    if version == "TLS1.3":
        return "encrypted", None, "encrypted"
    sent = _flight(server)
    cert, status = None, "absent"
    if CERTIFICATE in sent:
        chain = tls_certs.certificate_list(sent[CERTIFICATE])
        if chain is None:
            status = "unparsable"
        elif chain:
            cert = tls_certs.leaf_info(chain[0], len(chain))
            status = "seen" if cert is not None else "unparsable"
    if CERTIFICATE_REQUEST in sent:
        answer = _flight(client).get(CERTIFICATE)
        if answer is None:
            client_cert = "requested"
        else:
            chain = tls_certs.certificate_list(answer)
            client_cert = "sent" if chain else "requested_not_sent"
    elif SERVER_HELLO_DONE in sent:
        client_cert = "not_requested"
    else:
        client_cert = None
    return status, cert, client_cert


class RecordWalker:
    """Follows a TLS direction's record framing after its hello: every record must have a
    known content type, version 3.x and a length within the limit. The first byte that breaks
    the framing is where clear text starts (a real hello followed by plain data must not switch
    DLP off for the rest of the direction). O(1) per record header."""

    _TYPES = frozenset(
        (CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, 24)
    )  # 24: heartbeat

    def __init__(self) -> None:
        self._skip = 0  # body bytes of the current record still to come
        self._header = bytearray()

    def feed(self, data: bytes) -> int | None:
        """The offset in ``data`` where the framing breaks, or None while it holds."""
        pos, n = 0, len(data)
        while pos < n:
            if self._skip:
                step = min(self._skip, n - pos)
                self._skip -= step
                pos += step
                continue
            take = min(5 - len(self._header), n - pos)
            self._header += data[pos : pos + take]
            start = pos - (len(self._header) - take)  # where this header began in data (maybe <0)
            pos += take
            if len(self._header) < 5:
                return None if self._plausible(self._header) else max(start, 0)
            ctype, major, minor, length = struct.unpack("!BBBH", bytes(self._header))
            self._header.clear()
            if not self._plausible(bytes((ctype, major, minor))) or not 0 < length <= MAX_RECORD:
                return max(start, 0)
            self._skip = length
        return None

    def _plausible(self, head: bytes | bytearray) -> bool:
        return (
            (len(head) < 1 or head[0] in self._TYPES)
            and (len(head) < 2 or head[1] == 3)
            and (len(head) < 3 or head[2] <= 4)
        )
