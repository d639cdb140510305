"""HTTP/1.x requests of one client direction, as far as they have arrived.

The head ends where the DLP framing says it does (:func:`..dlp.http_framing._head_end`, RFC 9112
section 2.2: CRLF CRLF or bare LF LF); the body is ``Content-Length`` bytes or chunks. Only what
the WAF needs is kept: the request target, the header lines and the body (de-chunked).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stockade.network.dlp.http_framing import _head_end

MAX_HEAD = 16 * 1024
_REQUEST_LINE = re.compile(rb"[A-Z][A-Z-]{1,15} \S+ HTTP/1\.[01]\Z")


@dataclass(frozen=True, slots=True)
class Request:
    start: int  # offset in the direction's bytes
    end: int  # offset after the last byte that has arrived for it
    complete: bool  # the whole body has arrived (or it has none)
    target: str
    headers: tuple[tuple[str, str], ...]
    body: str


def split(data: bytes, base: int) -> tuple[list[Request], int | None]:
    """Requests in ``data`` (which starts at a request boundary, offset ``base``), and the offset
    where the next unparsed request starts (None when the bytes are not HTTP/1.x requests)."""
    out: list[Request] = []
    pos = 0
    while pos < len(data):
        while pos < len(data) and data[pos] in b"\r\n":
            pos += 1
        if pos == len(data):
            break
        end = _head_end(data, pos)
        if end < 0:
            if len(data) - pos > MAX_HEAD:
                return out, None
            head = data[pos:]  # a head still arriving: its target and lines so far count
            out.append(_request(head, b"", base + pos, base + len(data), False))
            break
        head = data[pos:end]
        line_end = head.find(b"\n")
        if not _REQUEST_LINE.match(head[: line_end if line_end >= 0 else len(head)].rstrip(b"\r")):
            return out, None  # not an HTTP/1.x request (TLS, another protocol, a broken stream)
        fields = _fields(head[line_end + 1 :])
        length, chunked = _body_framing(fields)
        if length is None and not chunked:
            return out, None
        if chunked:
            body, used, done = _dechunk(data, end)
        else:
            assert length is not None
            used = min(length, len(data) - end)
            body, done = data[end : end + used], used == length
        out.append(_request(head, body, base + pos, base + end + used, done))
        if not done:
            break
        pos = end + used
    return out, base + pos


def _request(head: bytes, body: bytes, start: int, end: int, complete: bool) -> Request:
    text = head.decode("latin-1")
    line, _, rest = text.partition("\n")
    parts = line.split(" ")
    target = parts[1] if len(parts) >= 2 else ""
    headers = tuple(
        (n.strip(), v.strip())
        for n, sep, v in (ln.partition(":") for ln in rest.splitlines())
        if sep
    )
    return Request(start, end, complete, target, headers, body.decode("latin-1"))


def _fields(block: bytes) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for ln in block.split(b"\n"):
        name, sep, value = ln.partition(b":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def _body_framing(fields: dict[bytes, bytes]) -> tuple[int | None, bool]:
    if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
        return None, True
    raw = fields.get(b"content-length")
    if raw is None:
        return 0, False
    try:
        n = int(raw)
    except ValueError:
        return None, False
    return (n, False) if n >= 0 else (None, False)


def _dechunk(data: bytes, pos: int) -> tuple[bytes, int, bool]:
    """(body so far, bytes used from pos, complete)."""
    body = bytearray()
    start = pos
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            return bytes(body), len(data) - start, False
        size_text = data[pos:nl].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return bytes(body), len(data) - start, True  # not chunks: stop here
        pos = nl + 1
        if size == 0:  # trailer lines up to an empty one
            while True:
                nl = data.find(b"\n", pos)
                if nl < 0:
                    return bytes(body), len(data) - start, False
                line, pos = data[pos:nl].strip(), nl + 1
                if not line:
                    return bytes(body), pos - start, True
        body += data[pos : pos + size]
        if pos + size > len(data):
            return bytes(body), len(data) - start, False
        pos += size
        nl = data.find(b"\n", pos)
        if nl < 0:
            return bytes(body), len(data) - start, False
        pos = nl + 1
