"""Certificates seen in a TLS 1.2 (or older) handshake, and what can be said about them.

Before TLS 1.3 the server's Certificate message travels in clear (RFC 5246 7.4.2): a 24-bit list
length, then each certificate as a 24-bit length and its DER. The leaf is parsed with
``cryptography``; the rest of the chain is only counted. Parsing is bounded (at most
``MAX_CERTS`` certificates of at most ``MAX_CERT_BYTES`` each, every length checked against what
arrived) and a certificate that does not parse is reported as unparsable, never raised.

Judging is separate from parsing because it needs the connection's time and name: ``expired`` and
``not_yet_valid`` against the time the connection started, ``name_matches`` against the SNI by the
rules of RFC 6125 6.4 as browsers apply them (subjectAltName only, no fallback to the common name;
a wildcard only as the whole left-most label, matching exactly one label).
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import Any

from .interface import CertificateInfo

MAX_CERTS = 10
MAX_CERT_BYTES = 64 * 1024
# Below these a key is weak (NIST SP 800-57 part 1: 112-bit security from 2014 on).
MIN_KEY_BITS = {"RSA": 2048, "DSA": 2048, "EC": 224}


def certificate_list(body: bytes) -> list[bytes] | None:
    """The DER certificates of a TLS 1.2 Certificate message (leaf first), at most ``MAX_CERTS``;
    None when the message is malformed or a certificate is larger than ``MAX_CERT_BYTES``."""
    if len(body) < 3:
        return None
    total = int.from_bytes(body[:3], "big")
    if total != len(body) - 3:
        return None
    out: list[bytes] = []
    pos = 3
    while pos < len(body) and len(out) < MAX_CERTS:
        if len(body) - pos < 3:
            return None
        size = int.from_bytes(body[pos : pos + 3], "big")
        if size == 0 or size > MAX_CERT_BYTES or pos + 3 + size > len(body):
            return None
        out.append(body[pos + 3 : pos + 3 + size])
        pos += 3 + size
    return out


def leaf_info(der: bytes, chain_length: int = 1) -> CertificateInfo | None:
    """The leaf's facts, or None when it does not parse as X.509."""
    # cryptography is imported by the first certificate, not by every sensor start
    from .tls_x509 import leaf_info as parse

    return parse(der, chain_length)


# ---------------------------------------------------------------- judging


def expired(cert: CertificateInfo, at: float) -> bool:
    return at > cert.not_after


def not_yet_valid(cert: CertificateInfo, at: float) -> bool:
    return at < cert.not_before


def weak_key(cert: CertificateInfo) -> bool:
    floor = MIN_KEY_BITS.get(cert.key_type)
    return floor is not None and cert.key_bits < floor


def name_matches(cert: CertificateInfo, name: str | None) -> bool | None:
    """Does the certificate cover ``name`` (the SNI)? None when there is no name to compare."""
    if not name:
        return None
    host = name.rstrip(".").lower()
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return any(_dns_match(pattern, host) for pattern in cert.dns_names)
    return str(ip) in cert.ip_addresses


def _dns_match(pattern: str, host: str) -> bool:
    pattern = pattern.rstrip(".").lower()
    if not pattern.startswith("*."):
        return "*" not in pattern and pattern == host
    suffix = pattern[2:]
    if "*" in suffix or suffix.count(".") < 1:  # "*.com" covers a whole public suffix: never
        return False
    label, dot, rest = host.partition(".")
    return bool(label) and bool(dot) and rest == suffix


def facts(cert: CertificateInfo, at: float, sni: str | None) -> dict[str, Any]:
    """The certificate as JSON-ready facts, judged at ``at`` against ``sni``."""
    return {
        "subject": cert.subject,
        "issuer": cert.issuer,
        "serial": cert.serial,
        "not_before": iso(cert.not_before),
        "not_after": iso(cert.not_after),
        "expired": expired(cert, at),
        "not_yet_valid": not_yet_valid(cert, at),
        "self_signed": cert.self_signed,
        "dns_names": list(cert.dns_names),
        "ip_addresses": list(cert.ip_addresses),
        "name_matches_sni": name_matches(cert, sni),
        "key": f"{cert.key_type} {cert.key_bits}" if cert.key_type else "unknown",
        "weak_key": weak_key(cert),
        "signature_hash": cert.signature_hash,
        "chain_length": cert.chain_length,
    }


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()
