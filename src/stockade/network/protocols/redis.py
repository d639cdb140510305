"""Redis: RESP arrays of bulk strings (``*3\\r\\n$3\\r\\nSET...``) or inline commands from the
client; a RESP-typed reply from the server."""

from __future__ import annotations

import re

from .base import FULL, PARTIAL, STRONG, WEAK, Guess, first_line

SLUG = "proto.redis"
# probe()'s best while the server has sent nothing: a command without a RESP reply
CLIENT_ONLY_CEILING = STRONG
INLINE = {
    b"PING",
    b"AUTH",
    b"HELLO",
    b"SET",
    b"GET",
    b"INFO",
    b"QUIT",
    b"SELECT",
    b"KEYS",
    b"CLIENT",
    b"COMMAND",
    b"CONFIG",
    b"DEL",
    b"EXISTS",
    b"INCR",
    b"LPUSH",
    b"RPUSH",
    b"HGET",
    b"HSET",
    b"SUBSCRIBE",
    b"PUBLISH",
    b"EVAL",
    b"MONITOR",
    b"FLUSHALL",
    b"SCAN",
}
_ARRAY = re.compile(rb"^\*([1-9][0-9]{0,5})\r\n\$([0-9]{1,9})\r\n")
_REPLY_TYPES = b"+-:$*_,#!=(%~>|"


def _command(client: bytes) -> tuple[float, str] | None:
    m = _ARRAY.match(client)
    if m:
        size = int(m.group(2))
        name = client[m.end() : m.end() + size]
        if len(name) == size and client[m.end() + size : m.end() + size + 2] == b"\r\n":
            return STRONG, name.decode("latin-1").upper()
        return PARTIAL, ""
    if client.startswith(b"*") and len(client) < 8 and re.match(rb"^\*[0-9]*\r?$", client):
        return WEAK, ""
    line = first_line(client, 1024)
    if line is not None:
        word = line.split(b" ", 1)[0].upper()
        if word in INLINE:
            return WEAK, word.decode()
    return None


def _reply(server: bytes) -> bool:
    line = first_line(server, 1024)
    return (
        bool(server)
        and server[0] in _REPLY_TYPES
        and line is not None
        and b"\r\n" in server[: len(line) + 2]
    )


_ARRAY_START = re.compile(
    rb"\*(?:[1-9][0-9]{0,5}(?:\r(?:\n(?:\$(?:[0-9]{1,9}(?:\r\n?)?)?)?)?)?)?\Z"
)


def possible(client: bytes, server: bytes) -> bool:
    """Whether more bytes could still make this Redis (see ``could_become``): the client opens
    with a RESP array of bulk strings, or an inline command the detector knows (or the start of
    either); a server never speaks first."""
    if not client:
        return not server
    if client[:1] == b"*":
        return _ARRAY.match(client) is not None or _ARRAY_START.match(client[:24]) is not None
    line = first_line(client, 1024)
    if line is None:
        if len(client) >= 1024:
            return False
        word, space, _ = client.partition(b" ")
        if space:
            return word.upper() in INLINE
        return any(name.startswith(word.rstrip(b"\r").upper()) for name in INLINE)
    return line.split(b" ", 1)[0].upper() in INLINE


def probe(client: bytes, server: bytes) -> Guess | None:
    found = _command(client)
    if found is None:
        return None
    score, name = found
    if _reply(server):
        # An inline command answered in RESP is as telling as a full array without an answer.
        score = FULL if score >= PARTIAL else STRONG
    details = (("redis.command", name),) if name else ()
    return Guess(protocol=SLUG, confidence=score, details=details)
