"""SMTP: ``220`` greeting, ``EHLO``/``HELO`` from the client (STARTTLS: see ``upgrades``)."""

from __future__ import annotations

import re

from .base import FULL, PARTIAL, STRONG, Guess, lines, starts_like

SLUG = "proto.smtp"
# probe()'s best while the server has sent nothing: a hello without the greeting
CLIENT_ONLY_CEILING = STRONG
_GREETING = re.compile(rb"^220[ -]")
_HELLO = re.compile(rb"^(EHLO|HELO|LHLO) \S", re.IGNORECASE)


_HELLOS = (b"EHLO ", b"HELO ", b"LHLO ")


def possible(client: bytes, server: bytes) -> bool:
    """Whether more bytes could still make this SMTP (see ``could_become``): the server's
    greeting starts ``220`` (or its start), or the client's first bytes are a hello."""
    if server and starts_like(server[:4], b"220 ", b"220-"):
        return True
    if client:
        return starts_like(client[:5].upper(), *_HELLOS)
    return not server


def probe(client: bytes, server: bytes) -> Guess | None:
    server_lines = [ln for ln in lines(server) if ln]
    greeting = bool(server_lines) and bool(_GREETING.match(server_lines[0]))
    hello = bool(_HELLO.match(client))
    if not (greeting or hello):
        return None
    if greeting and hello:
        score = FULL
    elif greeting:
        score = STRONG if b"SMTP" in server_lines[0].upper() else PARTIAL
    else:
        score = STRONG
    details = [("smtp.greeting", server_lines[0][4:64].decode("latin-1"))] if greeting else []
    return Guess(protocol=SLUG, confidence=score, details=tuple(details))
