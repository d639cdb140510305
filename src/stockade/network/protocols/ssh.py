"""SSH: both sides open with an identification line ``SSH-2.0-software``; everything after the
key exchange is encrypted."""

from __future__ import annotations

from .base import FULL, WEAK, Guess, first_line, starts_like

SLUG = "proto.ssh"


def _banner(data: bytes) -> str | None:
    if not data.startswith(b"SSH-"):
        return None  # the line would not start so either
    line = first_line(data, 255)
    if line and (line.startswith(b"SSH-2.0-") or line.startswith(b"SSH-1.99-")):
        return line.split(b"-", 2)[2].split(b" ")[0].decode("ascii", "replace")
    return None


def _opens(data: bytes) -> bool:
    """``data`` is an identification line, or the start of one."""
    if not starts_like(data, b"SSH-"):
        return False
    line = first_line(data, 255)
    if line is None:
        return len(data) < 255
    return line.startswith((b"SSH-2.0-", b"SSH-1.99-"))


def possible(client: bytes, server: bytes) -> bool:
    """Whether more bytes could still make this SSH (see ``could_become``): the client opens
    with its identification line (or the start of one); while it has sent nothing, the server's."""
    return _opens(client) if client else not server or _opens(server)


def probe(client: bytes, server: bytes) -> Guess | None:
    if client[:1] != b"S" and server[:1] != b"S":
        return None  # neither a banner nor the start of one
    details = []
    for side, data in (("client", client), ("server", server)):
        software = _banner(data)
        if software is not None:
            details.append((f"ssh.{side}_software", software))
    if details:
        return Guess(protocol=SLUG, confidence=FULL, encrypted=True, details=tuple(details))
    if any(
        d.startswith(b"SSH-") or (len(d) >= 3 and b"SSH-".startswith(d))
        for d in (client, server)
        if d
    ):
        return Guess(protocol=SLUG, confidence=WEAK, encrypted=True)
    return None
