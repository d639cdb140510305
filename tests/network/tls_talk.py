"""Real TLS on loopback for the TLS facts tests: certificates made with ``cryptography``, a Python
``ssl`` server in a thread, and a client whose every byte each way is recorded (an ``SSLObject``
over memory BIOs on a real socket), turned into a pcap of the same bytes in the order they
crossed the wire."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.network import frames as F

NOW = dt.datetime.now(dt.UTC)
Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: Key

    def files(self, folder: Path, name: str) -> tuple[Path, Path]:
        crt, key = folder / f"{name}.crt", folder / f"{name}.key"
        crt.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return crt, key


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def certificate(
    cn: str,
    *,
    dns: tuple[str, ...] = (),
    issuer: Issued | None = None,
    ca: bool = False,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    key: Key | None = None,
) -> Issued:
    """A certificate for ``cn``/``dns``: signed by ``issuer``, or self-signed without one."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False
        )
    signer = issuer.key if issuer else key
    return Issued(builder.sign(signer, hashes.SHA256()), key)


@dataclass
class Exchange:
    """The bytes of one real TLS connection, in the order they crossed the wire."""

    chunks: list[tuple[int, bytes]]  # (0 client->server | 1 server->client, bytes)
    version: str | None
    cipher: str | None

    def pcap(
        self, path: Path, *, ts: float, cport: int = 41000, sport: int = 443, opening: bool = True
    ) -> Path:
        """``opening=False``: without the TCP handshake (a capture that joined the connection)."""
        return write_pcap(path, [(self, ts, cport, sport)], opening=opening)


def write_pcap(
    path: Path, exchanges: list[tuple[Exchange, float, int, int]], *, opening: bool = True
) -> Path:
    frames: list[tuple[float, bytes]] = []
    for ex, ts, cport, sport in exchanges:
        packets = _packets(ex, cport, sport)[0 if opening else 3 :]
        frames += [(ts + i / 1000, F.ether(p)) for i, p in enumerate(packets)]
    path.write_bytes(F.pcap(frames))
    return path


def _packets(ex: Exchange, cport: int, sport: int) -> list[bytes]:
    cli, srv = "10.0.0.1", "10.0.0.2"
    seq = [1000, 50000]
    out = [
        F.ipv4(cli, srv, 6, F.tcp(cport, sport, seq[0], 0, F.SYN)),
        F.ipv4(srv, cli, 6, F.tcp(sport, cport, seq[1], seq[0] + 1, F.SYN | F.ACK)),
        F.ipv4(cli, srv, 6, F.tcp(cport, sport, seq[0] + 1, seq[1] + 1, F.ACK)),
    ]
    seq = [seq[0] + 1, seq[1] + 1]
    for d, data in ex.chunks:
        for i in range(0, len(data), 1400):  # segments of a typical MSS
            part = data[i : i + 1400]
            src, dst = (cli, srv) if d == 0 else (srv, cli)
            ports = (cport, sport) if d == 0 else (sport, cport)
            tcp = F.tcp(*ports, seq[d], seq[1 - d], F.ACK | F.PSH, part)
            out.append(F.ipv4(src, dst, 6, tcp))
            seq[d] += len(part)
    out.append(F.ipv4(cli, srv, 6, F.tcp(cport, sport, seq[0], seq[1], F.ACK | F.FIN)))
    out.append(F.ipv4(srv, cli, 6, F.tcp(sport, cport, seq[1], seq[0] + 1, F.ACK | F.FIN)))
    return out


def talk(
    server_ctx: ssl.SSLContext,
    client_ctx: ssl.SSLContext,
    sni: str | None,
    request: bytes = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
) -> Exchange:
    """One TLS connection to a real ``ssl`` server on 127.0.0.1: handshake, one request, one
    answer; every byte recorded. The client verifies nothing (the certificates are the subject)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(4096)
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (OSError, ssl.SSLError) as exc:
            failure.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    chunks: list[tuple[int, bytes]] = []
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    with socket.create_connection(listener.getsockname(), timeout=10) as sock:

        def flush() -> None:
            data = outgoing.read()
            if data:
                sock.sendall(data)
                chunks.append((0, data))

        def pump() -> None:
            flush()
            data = sock.recv(65536)
            if not data:
                raise ConnectionError(f"server closed: {failure}")
            chunks.append((1, data))
            incoming.write(data)

        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pump()
        flush()
        tls.write(request)
        flush()
        answer = b""
        while b"ok" not in answer:
            try:
                answer += tls.read(4096)
            except ssl.SSLWantReadError:
                pump()
        version, cipher = tls.version(), (tls.cipher() or (None,))[0]
    thread.join(10)
    listener.close()
    return Exchange(chunks, version, cipher)


def after_handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, requests: list[bytes]
) -> Exchange:
    """A real TLS connection in memory (two ``SSLObject``s over memory BIOs, no socket), of
    which only what follows the handshake is kept: each request and its answer (the request's
    bytes back, after a status line), as a capture that joined the connection late sees it."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="orders.shop.svc")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = [False, False]
    while not all(done):
        for i, side in enumerate((client, server)):
            if not done[i]:
                with contextlib.suppress(ssl.SSLWantReadError):  # the other side's bytes next
                    side.do_handshake()
                    done[i] = True
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    chunks: list[tuple[int, bytes]] = []
    for request in requests:
        client.write(request)
        chunks.append((0, c_out.read()))
        s_in.write(chunks[-1][1])
        got = server.read(65536)
        server.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(got) + got)
        chunks.append((1, s_out.read()))
        c_in.write(chunks[-1][1])
        client.read(65536)
    version, cipher = client.version(), (client.cipher() or (None,))[0]
    return Exchange(chunks, version, cipher)


def server_context(
    cert: Path,
    key: Path,
    *,
    version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    ciphers: str | None = None,
    client_ca: Path | None = None,
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = version
    if ciphers:
        ctx.set_ciphers(ciphers)
    ctx.load_cert_chain(cert, key)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    return ctx


def client_context(
    *, ciphers: str | None = None, cert: tuple[Path, Path] | None = None
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        ctx.set_ciphers(ciphers)
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx
