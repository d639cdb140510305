"""Values that cross the network pillar's boundaries: the flow engine (capture, reassembly)
hands the first bytes of each direction to the protocol detectors, TLS inspection and DLP engine.

Implementations live in ``stockade.network.protocols`` (``detect(client, server) -> Detection``),
``stockade.network.tls`` (``inspect(client, server) -> TlsInfo | None``) and
``stockade.network.dlp`` (``DlpEngine(...).stream() -> DlpStream`` with ``feed(bytes)`` and
``close()`` returning ``list[DlpMatch]``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True, kw_only=True)
class Detection:
    protocol: (
        str  # stable slug: "proto.http", "proto.http2", "proto.grpc", "proto.tls", "proto.dns",
    )
    # "proto.postgres", "proto.mysql", "proto.redis", "proto.mongodb", "proto.kafka", "proto.ssh",
    # "proto.quic", "proto.unknown"
    encrypted: bool = False  # TLS, SSH, QUIC, or an in-protocol upgrade (SSLRequest, STARTTLS)
    upgrade: str | None = None  # "postgres-sslrequest", "smtp-starttls", ...
    details: tuple[tuple[str, str], ...] = ()  # e.g. ("http.host", "api"), ("http.method", "POST")
    confidence: float = (
        1.0  # 1.0: both directions agree or one is unambiguous; lower on short input
    )
    # "proto.smtp", "proto.imap", "proto.pop3" are detected too (STARTTLS upgrades)


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateInfo:
    """The leaf certificate a peer sent in clear (TLS 1.2 and below), as parsed; judging it against
    a time or a name is ``stockade.network.tls_certs``' job."""

    subject: str  # RFC 4514: "CN=orders.shop.svc,O=Shop"
    issuer: str
    serial: str  # hex
    not_before: float  # POSIX seconds, UTC
    not_after: float
    self_signed: bool  # issuer == subject and its own key verifies the signature
    dns_names: tuple[str, ...] = ()  # subjectAltName dNSName entries
    ip_addresses: tuple[str, ...] = ()  # subjectAltName iPAddress entries
    key_type: str = ""  # "RSA", "EC", "Ed25519", "Ed448", "DSA", or "" when unknown
    key_bits: int = 0
    signature_hash: str | None = None  # "sha256", "sha1", "md5"; None for Ed25519/Ed448
    chain_length: int = 1  # certificates in the message (the leaf and what the peer sent with it)


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsInfo:
    version: str | None  # negotiated: "TLS1.3", "TLS1.2", "TLS1.0", "SSL3.0"
    client_max_version: str | None = None
    sni: str | None = None
    alpn: tuple[str, ...] = ()  # offered by the client
    alpn_chosen: str | None = None
    cipher: str | None = None  # IANA name of the chosen suite: "TLS_AES_128_GCM_SHA256"
    client_versions: tuple[str, ...] = ()  # offered (supported_versions, or legacy_version)
    hello_retry: bool = False  # the server answered with a HelloRetryRequest
    sslv2_hello: bool = False  # the ClientHello used the SSLv2-compatible format
    complete: bool = True  # False when a hello was truncated: the fields hold what was parsed
    # The server's certificate: "seen" (parsed into ``certificate``), "encrypted" (TLS 1.3),
    # "absent" (resumed session, anonymous suite, or past the bytes inspected), "unparsable".
    certificate_status: str | None = None
    certificate: CertificateInfo | None = None
    # Client certificates (mTLS): "sent", "requested_not_sent" (the client answered with an empty
    # list), "requested" (the answer was not in the bytes inspected), "not_requested", "encrypted".
    client_certificate: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DlpMatch:
    sensor: str  # stable slug: "dlp.payment_card", "dlp.us_ssn", "dlp.iban", "dlp.email", ...
    masked: str  # never the full value: "4111 **** **** 1111", "***-**-6789"
    start: int  # offset in the stream (direction) where the match begins
    end: int
    confidence: float = 1.0
    context: str = ""  # masked surrounding words that raised confidence, if any
    label: str | None = None  # validator's label: card brand ("visa"), IBAN country, phone form


def flow_key(transport: str, client_ip: str, client_port: int, server_ip: str, port: int) -> str:
    """One connection as every agent that sees it names it (the sensor on the wire, the enforcer
    in the kernel's queue): ``tcp/10.0.0.5:40312>10.0.0.9:8080``. DLP events carry it as
    ``data.flow``, so the connection graph counts a finding once however many agents report it."""
    return f"{transport}/{_address(client_ip)}:{client_port}>{_address(server_ip)}:{port}"


@lru_cache(maxsize=4096)
def _address(text: str) -> str:
    import ipaddress

    try:
        return ipaddress.ip_address(text).compressed  # one spelling for both agents
    except ValueError:
        return text
