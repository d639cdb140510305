"""What one client may cost the webhook: header and body time, header and body bytes, connections.

uvicorn bounds none of these by default (its httptools parser takes headers of any size and a
connection that never finishes its request headers stays open), so the webhook serves with h11
and this protocol: every request's headers must be complete within ``header_timeout`` seconds of
the connection being accepted (TLS handshake included) or of the previous response, and at most
``max_connections`` connections are open at once (the next one is closed at once).
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from stockade.admission.review import MAX_BODY


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    header_timeout: float = 10.0  # seconds to receive a request's line and headers
    body_timeout: float = 10.0  # seconds to receive its body once the headers are in
    max_header_bytes: int = 32 * 1024  # request line and headers together
    max_body_bytes: int = MAX_BODY  # the API server's own request limit
    max_connections: int = 256  # open connections at once
    keep_alive: int = 30  # seconds an idle keep-alive connection stays open


def protocol_for(limits: Limits) -> type[asyncio.Protocol]:
    """The uvicorn HTTP protocol class that enforces ``limits``."""

    class LimitedH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._accepted_at = self.loop.time()  # built at accept, before the TLS handshake
            self._header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                transport.close()
                return
            self._arm(self._accepted_at)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            self._arm(self.loop.time())  # the next request's headers have the same time
            super().on_response_complete()

        def _arm(self, since: float) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            delay = max(since + limits.header_timeout - self.loop.time(), 0.0)
            self._header_timer = self.loop.call_later(delay, self._headers_overdue, self.cycle)

        def _headers_overdue(self, cycle_when_armed: object) -> None:
            # A new request cycle means its headers arrived in time; otherwise close.
            if self.cycle is cycle_when_armed and not self.transport.is_closing():
                self.transport.close()

    return LimitedH11Protocol


# TLS 1.2 suites the servers offer: AEAD with forward secrecy only (no CBC); TLS 1.3 is unaffected.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def run_uvicorn(
    app: Any,
    *,
    host: str,
    port: int,
    limits: Limits,
    certfile: str | None = None,
    keyfile: str | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve ``app`` until interrupted within ``limits``: the one uvicorn setup of the webhook and
    the controller (HTTPS with AEAD suites when a certificate is given). ``sock``: an already
    listening socket to serve instead of binding ``host:port`` (a worker of several)."""
    import ssl

    import uvicorn

    tls: dict[str, Any] = {}
    if certfile is not None and keyfile is not None:
        tls = {
            "ssl_certfile": certfile,
            "ssl_keyfile": keyfile,
            "ssl_version": ssl.PROTOCOL_TLS_SERVER,
            "ssl_ciphers": TLS12_CIPHERS,
        }
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_for(limits),
        h11_max_incomplete_event_size=limits.max_header_bytes,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_keep_alive=limits.keep_alive,
        # the client's address is the TCP peer's: X-Forwarded-For from loopback is not believed
        # (login throttling and audit count by address)
        proxy_headers=False,
        **tls,
    )
    uvicorn.Server(config).run(sockets=[sock] if sock is not None else None)
