"""Programs the lab runs inside pod namespaces (started with ``ip netns exec``).

    python -m stockade.lab.services http  --port 8080
    python -m stockade.lab.services https --port 8443 --cert C --key K [--tls-max 1.1]

An HTTP API on the standard library: POST stores nothing and answers with the byte count;
``GET /bulk?size=N`` streams N bytes (for throughput runs). Listens on IPv4 and IPv6.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

_BULK_LINE = b'{"order": 1200345, "sku": "A-778", "qty": 3, "note": "lorem ipsum dolor sit amet"}\n'
MAX_BULK = 1 << 31


class _Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lab-api/1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def _reply(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(min(length, 1 << 24))
        self._reply(200, json.dumps({"status": "accepted", "bytes": len(data)}).encode())

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/bulk":
            size = min(int(parse_qs(url.query).get("size", ["0"])[0]), MAX_BULK)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            chunk = _BULK_LINE * (65536 // len(_BULK_LINE))
            left = size
            while left > 0:
                part = chunk[: min(left, len(chunk))]
                self.wfile.write(part)
                left -= len(part)
            return
        self._reply(200, b'{"status": "ok"}')


class _DualStackServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def _tls_context(cert: str, key: str, tls_max: str | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if tls_max == "1.1":
        # a deliberately outdated service, so the sensor has a weak TLS version to report
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    elif tls_max == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lab-service")
    ap.add_argument("kind", choices=["http", "https"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--tls-max", choices=["1.1", "1.2"])
    args = ap.parse_args(argv)
    server = _DualStackServer(("::", args.port), _Api)
    if args.kind == "https":
        ctx = _tls_context(args.cert, args.key, args.tls_max)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
