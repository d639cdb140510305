"""A real HTTPS server on loopback that answers Kubernetes List requests like an API server does
(no API server can run here: this is the allowed fake at the seam). Certificates come from a CA the
test generates; clients authenticate with a bearer token or a client certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TOKEN = "sk-test-token"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        b = b.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        b = b.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    elif not ca:
        b = b.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return b.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class Pki:
    ca_pem: bytes
    server_pem: bytes
    server_key_pem: bytes
    client_pem: bytes
    client_key_pem: bytes
    rogue_client_pem: bytes  # signed by another CA: must be refused
    rogue_client_key_pem: bytes


def make_pki() -> Pki:
    ca_key, server_key, client_key, rogue_key = (
        ec.generate_private_key(ec.SECP256R1()) for _ in range(4)
    )
    ca = _cert("sk-test-ca", ca_key, "sk-test-ca", ca_key, ca=True)
    rogue_ca_key = ec.generate_private_key(ec.SECP256R1())
    return Pki(
        ca_pem=_pem(ca),
        server_pem=_pem(_cert("kube-apiserver", server_key, "sk-test-ca", ca_key, server=True)),
        server_key_pem=_key_pem(server_key),
        client_pem=_pem(_cert("admin", client_key, "sk-test-ca", ca_key)),
        client_key_pem=_key_pem(client_key),
        rogue_client_pem=_pem(_cert("admin", rogue_key, "rogue-ca", rogue_ca_key)),
        rogue_client_key_pem=_key_pem(rogue_key),
    )


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:  # keep test output clean
        return

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        self.server.requests.append(self.path)
        has_cert = bool(self.connection.getpeercert())  # type: ignore[attr-defined]
        if self.headers.get("Authorization") != f"Bearer {TOKEN}" and not has_cert:
            self._send(
                401, {"kind": "Status", "status": "Failure", "reason": "Unauthorized", "code": 401}
            )
            return
        items = self.server.collections.get(url.path)
        if items is None:
            self._send(
                404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
            )
            return
        q = parse_qs(url.query)
        limit = int(q.get("limit", ["500"])[0])
        start = int(q.get("continue", ["0"])[0])
        page = items[start : start + limit]
        meta: dict[str, Any] = {"resourceVersion": "4242"}
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
        kind = url.path.rsplit("/", 1)[-1]
        self._send(
            200,
            {
                "kind": self.server.list_kinds.get(kind, "List"),
                "apiVersion": "v1",
                "metadata": meta,
                "items": page,
            },
        )


class _Server(ThreadingHTTPServer):
    collections: dict[str, list[dict[str, Any]]]
    list_kinds: dict[str, str]
    requests: list[str]


@contextmanager
def serve(
    pki: Pki, tmp: Path, collections: dict[str, list[dict[str, Any]]], list_kinds: dict[str, str]
) -> Iterator[str]:
    """Run the server on a free loopback port until the block ends; yields its URL."""
    (tmp / "server.pem").write_bytes(pki.server_pem)
    (tmp / "server.key").write_bytes(pki.server_key_pem)
    (tmp / "ca.pem").write_bytes(pki.ca_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp / "server.pem", tmp / "server.key")
    ctx.load_verify_locations(tmp / "ca.pem")
    ctx.verify_mode = ssl.CERT_OPTIONAL  # a client may use a token instead of a certificate
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.collections, httpd.list_kinds, httpd.requests = collections, list_kinds, []
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
