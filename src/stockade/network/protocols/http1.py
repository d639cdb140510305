"""HTTP/1.x: a request line from the client, a status line from the server."""

from __future__ import annotations

import functools
import re

from .base import FULL, PARTIAL, STRONG, WEAK, Guess, first_line, lines, new_guess

SLUG = "proto.http"
# probe()'s best while the server has sent nothing: a request line without a status line
CLIENT_ONLY_CEILING = STRONG
METHODS = (
    b"GET",
    b"POST",
    b"PUT",
    b"DELETE",
    b"HEAD",
    b"OPTIONS",
    b"PATCH",
    b"CONNECT",
    b"TRACE",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
)
_REQUEST = re.compile(rb"^([A-Z]{3,10}) (\S{1,4096}) HTTP/1\.([01])$")
_STATUS = re.compile(rb"^HTTP/1\.([01]) ([1-5][0-9]{2})(?: |$)")


def request_headers(client: bytes) -> dict[str, str]:
    """Header fields of the first request (lower-case names), as far as they are present."""
    out: dict[str, str] = {}
    for line in lines(client)[1:]:
        if not line:
            break
        name, sep, value = line.partition(b":")
        if sep:
            out[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return out


def request_header(client: bytes, name: str) -> str | None:
    """``request_headers(client).get(name)`` (``name`` in lower case) without decoding the others
    and without splitting the body: over the lines of ``lines(client)[1:]`` before the first
    empty one (trailing CRs aside), the last whose name, stripped of white space and in lower
    case, is ``name``; the property test holds it to :func:`request_headers`."""
    data = client[:4096]
    start = data.find(b"\n") + 1
    if not start:
        return None  # one line: no header field
    empty = _EMPTY_LINE.search(data, start - 1)
    end = empty.start() + 1 if empty is not None else len(data)
    found = None
    # over the lines in lower case (what IGNORECASE folds in bytes), each found from the LF
    # before it: a literal lead the regex engine looks for at C speed
    for found in _field(name).finditer(data[:end].lower(), start - 1, end):  # noqa: B007
        pass  # (the last one wins)
    if found is None:
        return None
    return data[found.start(1) : found.end(1)].rstrip(b"\r").strip().decode("latin-1")


_EMPTY_LINE = re.compile(rb"\n\r*(?:\n|\Z)")  # the end of the line before an empty one
_SPACE = rb"[ \t\r\x0b\x0c]*"  # what bytes.strip() removes (a line holds no LF)


@functools.lru_cache(maxsize=16)
def _field(name: str) -> re.Pattern[bytes]:
    """A header line named ``name`` (in lower case), from the LF before it: its value up to the
    end of the line in group 1."""
    want = re.escape(name.encode("latin-1").lower())
    return re.compile(rb"\n" + _SPACE + want + _SPACE + rb":([^\n]*)")


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_PATH_END = re.compile(r"[/?#]")
_PARAMS = re.compile(r"[?;#]")
_AUTHORITY = re.compile(r"[^/?#@\s]+:[0-9]{1,5}")


def target_path(target: str) -> str:
    """The path of a request target as RFC 9112 section 3.2 reads it, without query, matrix
    parameters or fragment (they carry tokens and personal data: never keep them).

    origin-form ``/p?q`` is ``/p``; absolute-form ``http://host/p?q`` (to proxies) is ``/p``;
    asterisk-form ``*`` stays ``*``; authority-form ``host:443`` (CONNECT) has no path: ``""``.
    Only a target that *starts* with a scheme is absolute: ``/fetch?url=http://x/y`` is ``/fetch``.
    """
    if target.startswith("/") or target == "*":
        path = target
    elif _SCHEME.match(target):
        rest = target.split("://", 1)[1]
        cut = _PATH_END.search(rest)
        path = rest[cut.start() :] if cut else ""
        path = path if path.startswith("/") else "/" + path
    else:  # authority-form, or nothing HTTP defines
        return ""
    return _PARAMS.split(path, maxsplit=1)[0] or "/"


def target_authority(target: str) -> str | None:
    """``host:port`` of an authority-form target (CONNECT), else None."""
    if target.startswith("/") or target == "*" or _SCHEME.match(target):
        return None
    return target if _AUTHORITY.fullmatch(target) else None


def possible(client: bytes, server: bytes) -> bool:
    """Whether more bytes could still make this an HTTP/1 request line (see
    :func:`could_become`): the client's bytes begin with a method and a space, or are the start
    of one, and a line that began within the first 512 bytes has not run past them without its
    end; whatever the server sent is the start of a status line."""
    if server[:7] != b"HTTP/1."[: len(server[:7])]:
        return False
    if not client:
        return True
    head = client[:11]
    if not any(head.startswith(m + b" ") or (m + b" ").startswith(head) for m in METHODS):
        return False
    return len(client) < 512 or b"\n" in client[:512]


def probe(client: bytes, server: bytes) -> Guess | None:
    details: list[tuple[str, str]] = []
    score = 0.0
    line = first_line(client)
    if line is not None:
        m = _REQUEST.match(line)
        if m and m.group(1) in METHODS:
            score = STRONG
            details.append(("http.method", m.group(1).decode()))
            target = m.group(2).decode("latin-1")
            path = target_path(target)
            if path:
                details.append(("http.path", path))
            authority = target_authority(target)
            if authority:
                details.append(("http.authority", authority))
            host = request_header(client, "host")
            if host:
                details.append(("http.host", host))
    elif any(client.startswith(method + b" ") for method in METHODS):
        score = PARTIAL
        details.append(("http.method", client.split(b" ", 1)[0].decode()))
    elif len(client) < 8 and client and any(method.startswith(client) for method in METHODS):
        score = WEAK
    sm = _STATUS.match(server[:64])
    if sm:
        details.append(("http.status", sm.group(2).decode()))
        score = FULL if score >= PARTIAL else STRONG
    elif server.startswith(b"HTTP/1.") and score:
        score = max(score, PARTIAL)
    if not score:
        return None
    return new_guess(SLUG, score, tuple(details))
