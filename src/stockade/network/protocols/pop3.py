"""POP3: ``+OK`` greeting, ``USER``/``CAPA``/``STLS`` commands (STLS: see ``upgrades``)."""

from __future__ import annotations

import re

from .base import FULL, STRONG, WEAK, Guess, lines, starts_like

SLUG = "proto.pop3"
# probe()'s best while the server has sent nothing: none, it waits for the greeting
CLIENT_ONLY_CEILING = 0.0
_COMMAND = re.compile(rb"^(USER|PASS|CAPA|STLS|APOP|AUTH|STAT|LIST|RETR|QUIT)\b", re.IGNORECASE)


def possible(client: bytes, server: bytes) -> bool:
    """Whether more bytes could still make this POP3 (see ``could_become``): the server's
    greeting starts ``+OK`` (or its start); the client waits for it."""
    if server:
        return starts_like(server, b"+OK")
    return not client


def probe(client: bytes, server: bytes) -> Guess | None:
    server_lines = [ln for ln in lines(server) if ln]
    greeting = bool(server_lines) and server_lines[0].startswith(b"+OK")
    command = bool(_COMMAND.match(client))
    if not greeting:
        return None  # the server always speaks first; without it this could be Redis
    score = FULL if command else STRONG if b"POP3" in server_lines[0].upper() else WEAK
    return Guess(protocol=SLUG, confidence=score)
