"""IMAP: ``* OK`` greeting, tagged client commands (STARTTLS: see ``upgrades``)."""

from __future__ import annotations

import re

from .base import FULL, PARTIAL, STRONG, Guess, lines, starts_like

SLUG = "proto.imap"
# probe()'s best while the server has sent nothing: a tagged command without the greeting
CLIENT_ONLY_CEILING = PARTIAL
_GREETING = re.compile(rb"^\* (OK|PREAUTH)\b")
_COMMAND = re.compile(
    rb"^([A-Za-z0-9.]{1,16}) (CAPABILITY|LOGIN|STARTTLS|AUTHENTICATE|NOOP|ID|SELECT|LOGOUT)\b",
    re.IGNORECASE,
)


_COMMAND_START = re.compile(rb"[A-Za-z0-9.]{1,16}(?: [A-Za-z]*)?\Z")


def possible(client: bytes, server: bytes) -> bool:
    """Whether more bytes could still make this IMAP (see ``could_become``): the server's
    greeting starts ``* OK`` or ``* PREAUTH`` (or their start), or the client's first bytes are
    a tagged command the detector knows."""
    if server and starts_like(server[:10], b"* OK", b"* PREAUTH"):
        return True
    if client:
        return bool(_COMMAND.match(client)) or (
            b"\n" not in client and _COMMAND_START.match(client[:64]) is not None
        )
    return not server


def probe(client: bytes, server: bytes) -> Guess | None:
    server_lines = [ln for ln in lines(server) if ln]
    greeting = bool(server_lines) and bool(_GREETING.match(server_lines[0]))
    command = _COMMAND.match(client)
    if not (greeting or command):
        return None
    if greeting and command:
        score = FULL
    elif greeting:
        score = STRONG if b"IMAP" in server_lines[0].upper() else PARTIAL
    else:
        score = PARTIAL
    return Guess(protocol=SLUG, confidence=score)
