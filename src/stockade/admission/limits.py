"""What one client may cost the webhook: header and body time, header and body bytes, connections.

uvicorn bounds none of these by default (its httptools parser takes headers of any size and a
connection that never finishes its request headers stays open), so the servers use these
protocols: every request's headers must be complete within ``header_timeout`` seconds of the
connection being accepted (TLS handshake included) or of the previous response, a request's line
and headers may not exceed ``max_header_bytes`` while they are incomplete, and at most
``max_connections`` connections are open at once (the next one is closed at once).

Two HTTP parsers enforce the same limits: h11 (pure Python, the reference) and httptools (llhttp,
compiled: the webhook's default when installed, a fraction of h11's cost per request).
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

HTTP_PARSERS = ("h11", "httptools")
# The Kubernetes API server's own request limit. Defined here, not in stockade.admission.review
# (which imports it from here): the controller serves through these limits and never reviews.
MAX_BODY = 3 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    header_timeout: float = 10.0  # seconds to receive a request's line and headers
    body_timeout: float = 10.0  # seconds to receive its body once the headers are in
    max_header_bytes: int = 32 * 1024  # request line and headers together
    max_body_bytes: int = MAX_BODY  # the API server's own request limit
    max_connections: int = 256  # open connections at once
    keep_alive: int = 30  # seconds an idle keep-alive connection stays open
    # seconds the requests still open at shutdown get to finish: a console's live event stream
    # never does, and without a bound it held SIGTERM off until the caller's kill
    shutdown_grace: int = 5
    http: str = "h11"  # the HTTP parser, one of HTTP_PARSERS


def best_http_parser() -> str:
    """httptools when it is installed (``uvicorn[standard]``), else h11."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


class _Limited:
    """The header timer and the connection cap, for either of uvicorn's HTTP protocols: put
    first among the bases, its methods run around the protocol's own (``super()``)."""

    limits: Limits
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    connections: set[Any]
    cycle: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._accepted_at = self.loop.time()  # built at accept, before the TLS handshake
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        if len(self.connections) > self.limits.max_connections:
            transport.close()
            return
        self._arm(self._accepted_at)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        self._arm(self.loop.time())  # the next request's headers have the same time
        super().on_response_complete()  # type: ignore[misc]

    def _arm(self, since: float) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        delay = max(since + self.limits.header_timeout - self.loop.time(), 0.0)
        self._header_timer = self.loop.call_later(delay, self._headers_overdue, self.cycle)

    def _headers_overdue(self, cycle_when_armed: object) -> None:
        # A new request cycle means its headers arrived in time; otherwise close.
        if self.cycle is cycle_when_armed and not self.transport.is_closing():
            self.transport.close()


def protocol_for(limits: Limits) -> type[asyncio.Protocol]:
    """The uvicorn HTTP protocol class that enforces ``limits`` with ``limits.http``'s parser."""
    if limits.http == "httptools":
        return _httptools_protocol(limits)
    if limits.http != "h11":
        raise ValueError(f"unknown HTTP parser {limits.http!r}")

    class LimitedH11Protocol(_Limited, H11Protocol):
        """h11 bounds a request's headers itself (``h11_max_incomplete_event_size``)."""

    LimitedH11Protocol.limits = limits
    return LimitedH11Protocol


class _HeadWithBody:
    """The transport as one response sees it: the response's head (status line and headers) is
    held until its first body bytes and leaves with them in one write (one TLS record, one send,
    one segment: uvicorn writes them apart, and the client woke for each; at 1,000 reviews/s the
    paced p50 went 0.54 -> 0.43 ms, the serving CPU 0.392 -> 0.380 ms a review). Only for a response of known length with a body to come: a streamed one
    (chunked) and the answer to HEAD get their head at once, as before. Anything else
    (``100 Continue``, close) passes through; a held head is written before a close (an app
    that failed after it started its answer)."""

    __slots__ = ("_cycle", "_held", "_state", "_transport")

    def __init__(self, transport: asyncio.Transport, cycle: Any) -> None:
        self._transport = transport
        self._cycle = cycle
        self._held = b""
        self._state = 0  # 0: no head yet, 1: head held, 2: head written

    def write(self, data: bytes) -> None:
        if self._state == 1:
            self._state = 2
            data, self._held = self._held + data, b""
        elif self._state == 0 and self._cycle.response_started:
            self._state = 2
            # HEAD: no body write follows; chunked: a stream, whose head the client awaits
            if not self._cycle.chunked_encoding and self._cycle.scope["method"] != "HEAD":
                self._state = 1
                self._held = data
                return
        self._transport.write(data)

    def close(self) -> None:
        if self._state == 1:
            self._state = 2
            self._transport.write(self._held)
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, ...
        return getattr(self._transport, name)


def _httptools_protocol(limits: Limits) -> type[asyncio.Protocol]:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class LimitedHttpToolsProtocol(_Limited, HttpToolsProtocol):
        """llhttp keeps no bound on a request's headers: the bytes that arrive while they are
        incomplete are counted here, and past ``max_header_bytes`` the answer is 431 and the
        connection closes (a chunk that also ends the previous request counts from the next
        one, so the buffer holds at most the limit and one read)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_headers = True  # the next bytes are a request's line and headers
            self._header_bytes = 0
            self._ended = False  # a request ended within the chunk being parsed

        def on_headers_complete(self) -> None:
            self._in_headers = False
            self._header_bytes = 0
            super().on_headers_complete()
            self.cycle.transport = _HeadWithBody(self.transport, self.cycle)

        def on_message_complete(self) -> None:
            self._in_headers = True
            self._ended = True
            super().on_message_complete()

        def data_received(self, data: bytes) -> None:
            self._ended = False
            super().data_received(data)
            if not self._in_headers or self.transport.is_closing():
                return
            if not self._ended:
                self._header_bytes += len(data)
            if self._header_bytes > limits.max_header_bytes:
                self._refuse_headers()

        def _refuse_headers(self) -> None:
            msg = f"request headers exceed {limits.max_header_bytes} bytes"
            body = msg.encode()
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: text/plain; charset=utf-8\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + body
            )
            self.transport.close()

    LimitedHttpToolsProtocol.limits = limits
    return LimitedHttpToolsProtocol


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
        timeout_graceful_shutdown=limits.shutdown_grace,
        # the client's address is the TCP peer's: X-Forwarded-For from loopback is not believed
        # (login throttling and audit count by address)
        proxy_headers=False,
        **tls,
    )
    uvicorn.Server(config).run(sockets=[sock] if sock is not None else None)
