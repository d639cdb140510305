"""In-band upgrades to TLS, judged by what follows: one answer for the passive sensor and the
inline enforcer.

Several protocols open in clear and may switch to TLS on the same connection: PostgreSQL's
SSLRequest (and GSSENCRequest), MySQL's SSL request, STARTTLS in SMTP, IMAP, POP3 (``STLS``),
FTP (``AUTH TLS``) and XMPP, LDAP's StartTLS extended operation and HTTP's ``Upgrade: TLS/1.x``.
Asking proves nothing, so :func:`judge` looks at the first bytes of both directions and answers

- ``encrypted``: the server accepted and the client's TLS ClientHello that follows parses
  (PostgreSQL's GSSAPI encryption counts once the server answers 'G'),
- ``clear``: the server refused or never offered it, or the client went on without asking,
- ``undecided``: only more bytes can tell (the enforcer holds its require-TLS verdict meanwhile).

``None`` means the connection does not open like any of these (direct TLS, plain HTTP, ...):
protocol detection alone decides. Harmless commands before the upgrade (``EHLO``, ``CAPA``, a
root DSE search) keep it undecided; anything else is data in clear. Only the first
:data:`WINDOW` bytes of each direction count and at most :data:`MAX_COMMANDS` commands: an upgrade
still undecided there is clear, so a client cannot keep the enforcer waiting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .. import tls
from . import mysql, postgres

WINDOW = 4096
MAX_COMMANDS = 16
State = Literal["undecided", "encrypted", "clear"]


@dataclass(frozen=True, slots=True)
class Judgement:
    state: State
    kind: str  # "postgres-sslrequest", "smtp-starttls", "ldap-starttls", ...
    client_tls: int | None = None  # where TLS starts in each direction, once encrypted
    server_tls: int | None = None


def judge(client: bytes, server: bytes, *, final: bool = False) -> Judgement | None:
    """Whether an in-band upgrade to TLS took place, from the first bytes of each direction.
    ``final``: no more bytes will come (the capture or the connection ended)."""
    client, server = client[:WINDOW], server[:WINDOW]
    final = final or len(client) >= WINDOW or len(server) >= WINDOW
    if client[:1].isalpha() and server[:1] not in _GREETING_STARTS and server[3:4] != b"\0":
        # A client that opens with a letter (an HTTP request line, ...) and a server that sent
        # no text or MySQL greeting: every probe but HTTP's answers None on its first test
        # (PostgreSQL's requests open with a zero, LDAP's with 0x30, XMPP's with space or "<").
        return _http(client, server, final)
    return _judge_all(client, server, final)


def _judge_all(client: bytes, server: bytes, final: bool) -> Judgement | None:
    """:func:`judge` asking every probe in order (the reference its shortcut is tested against)."""
    for probe in (_postgres, _mysql, _ldap, _xmpp, _http, _lines):
        found = probe(client, server, final)
        if found is not None:
            return found
    return None


_GREETING_STARTS = (b"2", b"*", b"+")  # the first byte of each of _GREETINGS


def _waiting(kind: str, final: bool) -> Judgement:
    return Judgement("clear" if final else "undecided", kind)


def _hello_after(kind: str, client: bytes, at: int, server_at: int, final: bool) -> Judgement:
    """The upgrade was accepted: encrypted once the client's ClientHello at ``at`` parses."""
    check = tls.opens_with_hello(client[at:], server=False)
    if check.state == "tls":
        return Judgement("encrypted", kind, at, server_at)
    if check.state == "more" and not final:
        return Judgement("undecided", kind)
    return Judgement("clear", kind)


# PostgreSQL ----------------------------------------------------------------------------------

_SSL = postgres.SSL_REQUEST_BYTES
_GSS = postgres.GSSENC_REQUEST_BYTES


def _postgres(client: bytes, server: bytes, final: bool) -> Judgement | None:
    if len(client) < 8:
        if client and (_SSL.startswith(client) or _GSS.startswith(client)):
            return _waiting("postgres-sslrequest", final)
        return None
    if client[:8] not in (_SSL, _GSS):
        return None
    ssl = client[:8] == _SSL
    kind = "postgres-sslrequest" if ssl else "postgres-gssenc"
    answer = server[:1]
    if not answer:
        return _waiting(kind, final)
    if answer == b"S" and ssl:
        return _hello_after(kind, client, 8, 1, final)
    if answer == b"G" and not ssl:
        return Judgement("encrypted", kind)  # GSSAPI tokens, not TLS: nothing to parse
    if not ssl and answer == b"N":
        # libpq goes on with an SSLRequest after a refused GSSENCRequest
        inner = _postgres(client[8:], server[1:], final)
        if inner is not None:
            return _shift(inner, 8, 1)
    # refused ('N'), or an error from a server that knows no encryption: what follows is clear
    return Judgement("clear", kind) if len(client) > 8 else _waiting(kind, final)


def _shift(j: Judgement, client: int, server: int) -> Judgement:
    if j.client_tls is None or j.server_tls is None:
        return j
    return Judgement(j.state, j.kind, j.client_tls + client, j.server_tls + server)


# MySQL / MariaDB -----------------------------------------------------------------------------


def _mysql(client: bytes, server: bytes, final: bool) -> Judgement | None:
    found = mysql.greeting(server)
    if found is None:
        return None
    kind = "mysql-ssl"
    if len(server) < 4 + int.from_bytes(server[:3], "little"):
        return _waiting(kind, final)  # the capability flags may not be there yet
    if not found[1] & mysql.CLIENT_SSL:
        return Judgement("clear", kind)  # the server offers no TLS: the session is clear
    if len(client) < 8:
        return _waiting(kind, final)
    length = int.from_bytes(client[:3], "little")
    caps = int.from_bytes(client[4:8], "little")
    if client[3] == 1 and length == 32 and caps & mysql.CLIENT_SSL:
        server_at = 4 + int.from_bytes(server[:3], "little")
        return _hello_after(kind, client, 36, server_at, final)
    return Judgement("clear", kind)  # a full login response: the client stays in clear


# line protocols: SMTP, FTP, IMAP, POP3 --------------------------------------------------------

_GREETINGS = (
    (re.compile(rb"^220[ -]"), "smtp-starttls"),  # SMTP, and FTP whose AUTH TLS says otherwise
    (re.compile(rb"^\* (OK|PREAUTH)\b"), "imap-starttls"),
    (re.compile(rb"^\+OK\b"), "pop3-stls"),
)
_PREAMBLE = frozenset({b"EHLO", b"HELO", b"LHLO", b"NOOP", b"RSET", b"CAPA", b"FEAT", b"SYST"})
_IMAP_PREAMBLE = frozenset({b"CAPABILITY", b"NOOP", b"ID"})
_UPGRADE = {b"STARTTLS": "smtp-starttls", b"STLS": "pop3-stls"}
_FTP_TLS = frozenset({b"TLS", b"SSL", b"TLS-C"})
_WORD = re.compile(rb"[A-Za-z0-9.\-]{1,32}\Z")
_Command = tuple[Literal["preamble", "upgrade", "other"], str, bytes]  # what, kind, IMAP tag


def _command(line: bytes, complete: bool) -> _Command | None:
    """What one client line is; None while a partial line cannot tell yet (a server acts on
    complete lines only, so waiting for the rest is safe)."""
    words = line.split(b" ")
    verb = words[0].upper()
    if len(words) == 1 and not complete:
        return None if not verb or _WORD.match(verb) else ("other", "", b"")
    if len(words) == 2 and not complete:
        return None  # "AUTH TL", "a1 STARTT": the second word decides
    if verb in _PREAMBLE:
        return "preamble", "", b""
    if verb in _UPGRADE and len(words) == 1:
        return "upgrade", _UPGRADE[verb], b""
    if verb == b"AUTH":
        if len(words) == 2 and words[1].upper() in _FTP_TLS:
            return "upgrade", "ftp-auth-tls", b""
        return "other", "", b""
    if len(words) >= 2 and _WORD.match(words[0]):  # IMAP: a tag, then the command
        second = words[1].upper()
        if second == b"STARTTLS" and len(words) == 2:
            return "upgrade", "imap-starttls", words[0]
        if second in _IMAP_PREAMBLE:
            return "preamble", "", b""
    return "other", "", b""


def _accepted(kind: str, tag: bytes, server: bytes) -> int | None:
    """Where the server's TLS starts, when its last line of text accepts the upgrade."""
    at = server.find(b"\n\x16\x03")
    text_end = at + 1 if at >= 0 else server.rfind(b"\n") + 1  # complete lines only
    text = [ln.rstrip(b"\r") for ln in server[:text_end].split(b"\n")]
    text = [ln for ln in text if ln]
    if len(text) < 2:  # the greeting alone answers nothing
        return None
    last = text[-1]
    ok = {
        "smtp-starttls": last.startswith(b"220 "),
        "ftp-auth-tls": last.startswith(b"234"),
        "pop3-stls": last.startswith(b"+OK"),
        "imap-starttls": last.upper().startswith(tag.upper() + b" OK"),
    }[kind]
    return text_end if ok else None


def _lines(client: bytes, server: bytes, final: bool) -> Judgement | None:
    kind = next((k for pattern, k in _GREETINGS if pattern.match(server)), None)
    if kind is None:
        return None
    pos = 0
    for _ in range(MAX_COMMANDS):
        end = client.find(b"\n", pos)
        line = client[pos : end if end >= 0 else len(client)].rstrip(b"\r")
        command = _command(line, end >= 0)
        if command is None:
            return _waiting(kind, final)
        what, asked, tag = command
        if what == "other":
            return Judgement("clear", kind)
        pos = end + 1
        if what == "preamble":
            continue
        kind = asked
        check = tls.opens_with_hello(client[pos:], server=False)
        if check.state == "more":
            return _waiting(kind, final)
        if check.state == "tls":
            server_at = _accepted(kind, tag, server)
            if server_at is None:
                return Judgement("clear", kind)  # a hello the server never agreed to
            return Judgement("encrypted", kind, pos, server_at)
        # refused: the client carries on in clear; its next commands tell
    return Judgement("clear", kind)


# XMPP ----------------------------------------------------------------------------------------

_XMPP_OPEN = re.compile(rb"\s*<(\?xml|stream:stream)\b")
_XMPP_STREAM = re.compile(rb"<stream:stream\b[^>]*>")
_XMPP_ELEMENT = re.compile(rb"\s*<([A-Za-z0-9:_.-]+)[\s/>]")
_XMPP_STARTTLS = re.compile(rb"\s*<starttls\b[^>]*/>|\s*<starttls\b[^>]*>\s*</starttls>")


def _xmpp(client: bytes, server: bytes, final: bool) -> Judgement | None:
    if not _XMPP_OPEN.match(client):
        return None
    kind = "xmpp-starttls"
    header = _XMPP_STREAM.search(client)
    if header is None:  # the stream header may still be on its way
        return _waiting(kind, final) if len(client) < 512 else None
    if b"jabber:" not in header.group(0):
        return None
    rest = client[header.end() :]
    element = _XMPP_ELEMENT.match(rest)
    if element is None:  # the next element's name is still on its way
        return _waiting(kind, final) if len(rest) < 64 else Judgement("clear", kind)
    if element.group(1) != b"starttls":
        return Judgement("clear", kind)  # a stanza before STARTTLS went in clear
    close = _XMPP_STARTTLS.match(rest)
    if close is None:
        return _waiting(kind, final)
    at = header.end() + close.end()
    proceed = re.search(rb"<proceed\b[^>]*(/>|>\s*</proceed>)", server)
    if proceed is None:
        if b"<failure" in server:
            return Judgement("clear", kind)
        return _waiting(kind, final) if not client[at:] else Judgement("clear", kind)
    return _hello_after(kind, client, at, proceed.end(), final)


# LDAP ----------------------------------------------------------------------------------------

_STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
# protocolOp tags of requests (RFC 4511 4.2-4.14): bind, unbind, search, modify, add, delete,
# modDN, compare, abandon, extended
_LDAP_REQUESTS = frozenset({0x60, 0x42, 0x63, 0x66, 0x68, 0x4A, 0x6C, 0x6E, 0x50, 0x77})
_EXTENDED_REQUEST, _EXTENDED_RESPONSE, _SEARCH = 0x77, 0x78, 0x63


def _ber(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """(tag, content start, content end) of the BER element at ``pos``; None when cut short.
    Raises ValueError on a length no LDAP message uses."""
    if len(data) < pos + 2:
        return None
    tag, first = data[pos], data[pos + 1]
    if first < 0x80:
        return tag, pos + 2, pos + 2 + first
    n = first & 0x7F
    if not 1 <= n <= 4:
        raise ValueError("indefinite or oversized BER length")
    if len(data) < pos + 2 + n:
        return None
    size = int.from_bytes(data[pos + 2 : pos + 2 + n], "big")
    return tag, pos + 2 + n, pos + 2 + n + size


def _ldap_op(data: bytes, pos: int) -> tuple[int, int, int, int] | None:
    """(protocolOp tag, its content start, its content end, message end) of the LDAPMessage at
    ``pos``; None when cut short. ValueError when it is no LDAPMessage."""
    msg = _ber(data, pos)
    if msg is None:
        return None
    tag, start, end = msg
    mid = _ber(data, start)
    if tag != 0x30 or (mid is not None and (mid[0] != 0x02 or not 1 <= mid[2] - mid[1] <= 4)):
        raise ValueError("not an LDAPMessage")
    if mid is None:
        return None
    op = _ber(data, mid[2])
    if op is None:
        return None
    if mid[2] >= end:
        raise ValueError("not an LDAPMessage")
    return op[0], op[1], op[2], end


def _ldap(client: bytes, server: bytes, final: bool) -> Judgement | None:
    if client[:1] != b"\x30":
        return None
    kind = "ldap-starttls"
    pos = 0
    try:
        for n in range(MAX_COMMANDS):
            found = _ldap_op(client, pos)
            if found is None:
                if n == 0 and len(client) >= 16:
                    return None
                return _waiting(kind, final)
            op, start, _op_end, end = found
            if n == 0 and op not in _LDAP_REQUESTS:
                return None
            if len(client) < end:
                return _waiting(kind, final)
            if op == _SEARCH and client[start : start + 2] == b"\x04\x00":
                pos = end  # the root DSE, read to learn whether StartTLS is supported
                continue
            if op != _EXTENDED_REQUEST or _STARTTLS_OID not in client[start:end]:
                return Judgement("clear", kind)
            server_at = _ldap_accepted(server)
            if server_at is None:
                return _waiting(kind, final) if len(client) == end else Judgement("clear", kind)
            return _hello_after(kind, client, end, server_at, final)
    except ValueError:
        return None if pos == 0 else Judgement("clear", kind)
    return Judgement("clear", kind)


def _ldap_accepted(server: bytes) -> int | None:
    """End of the server's successful ExtendedResponse (resultCode 0), if it came."""
    pos = 0
    try:
        for _ in range(MAX_COMMANDS * 4):
            found = _ldap_op(server, pos)
            if found is None:
                return None
            op, start, _op_end, end = found
            if op == _EXTENDED_RESPONSE:
                return end if server[start : start + 3] == b"\x0a\x01\x00" else None
            pos = end
    except ValueError:
        return None
    return None


# HTTP Upgrade: TLS/1.x (RFC 2817) ------------------------------------------------------------

_HTTP_REQUEST = re.compile(rb"^[A-Z]{3,10} \S+ HTTP/1\.[01]\r?\n")
_UPGRADE_TLS = re.compile(rb"(?im)^upgrade:[^\r\n]*\bTLS/\d")


def _http(client: bytes, server: bytes, final: bool) -> Judgement | None:
    """``Upgrade: h2c`` or a WebSocket stays clear (detection says so); only TLS is judged here."""
    head_end = client.find(b"\r\n\r\n")
    head = client[: head_end if head_end >= 0 else len(client)]
    # the search needs "upgrade:" in some case: most requests have none (a cheap test first,
    # cheaper than the request line's)
    if b"upgrade:" not in head.lower() or not _HTTP_REQUEST.match(client):
        return None
    if not _UPGRADE_TLS.search(head):
        return None
    kind = "http-upgrade-tls"
    if head_end < 0 or not server:
        return _waiting(kind, final)
    if not re.match(rb"HTTP/1\.1 101\b", server):
        return Judgement("clear", kind) if len(server) >= 12 else _waiting(kind, final)
    server_end = server.find(b"\r\n\r\n")
    if server_end < 0:
        return _waiting(kind, final)
    return _hello_after(kind, client, head_end + 4, server_end + 4, final)
