"""Shared logic of the line-based mail protocols: a greeting, client commands, and the STARTTLS
(SMTP, IMAP) or STLS (POP3) upgrade, accepted when the server says yes or TLS bytes follow."""

from __future__ import annotations

from .. import tls
from .base import Guess, lines


def command_lines(client: bytes) -> list[bytes]:
    return [ln for ln in lines(client) if ln]


def after_command(client: bytes, command: bytes) -> bytes | None:
    """Client bytes after the line holding ``command`` (case-insensitive), or None."""
    lower = client.lower()
    at = lower.find(command.lower())
    if at < 0:
        return None
    end = client.find(b"\n", at)
    return client[end + 1 :] if end >= 0 else b""


def upgraded(client: bytes, command: bytes, server_ok: bool) -> bool:
    rest = after_command(client, command)
    if rest is None:
        return False
    return server_ok or tls.looks_like_record(rest)


def guess(slug: str, score: float, upgrade: str | None, details: list[tuple[str, str]]) -> Guess:
    return Guess(protocol=slug, confidence=score, encrypted=upgrade is not None, upgrade=upgrade,
                 details=tuple(details))  # fmt: skip
