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
import warnings
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning

from .interface import CertificateInfo

MAX_CERTS = 10
MAX_CERT_BYTES = 64 * 1024
# Below these a key is weak (NIST SP 800-57 part 1: 112-bit security from 2014 on).
MIN_KEY_BITS = {"RSA": 2048, "DSA": 2048, "EC": 224}

# What cryptography raises on hostile DER or extensions it cannot decode (a name attribute of an
# unexpected ASN.1 string type surfaces as a KeyError from its bindings).
_X509_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.ExtensionNotFound,
    x509.AttributeNotFound,
    x509.UnsupportedGeneralNameType,
)


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
    # A peer's malformed certificate (a negative serial) must not print a warning per connection.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        try:
            return _leaf(x509.load_der_x509_certificate(der), chain_length)
        except _X509_ERRORS:
            return None


def _leaf(cert: x509.Certificate, chain_length: int) -> CertificateInfo:
    dns, ips = _alt_names(cert)
    key_type, key_bits = _key(cert)
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=f"{cert.serial_number:x}",
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
        self_signed=_self_signed(cert),
        dns_names=dns,
        ip_addresses=ips,
        key_type=key_type,
        key_bits=key_bits,
        signature_hash=_signature_hash(cert),
        chain_length=chain_length,
    )


def _alt_names(cert: x509.Certificate) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return (), ()
    dns = tuple(san.get_values_for_type(x509.DNSName))[:100]
    ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))[:100]
    return dns, ips


def _key(cert: x509.Certificate) -> tuple[str, int]:
    try:
        key = cert.public_key()
    except _X509_ERRORS:
        return "", 0
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    return "", 0


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, *_X509_ERRORS):
        return False
    return True


def _signature_hash(cert: x509.Certificate) -> str | None:
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return "unknown"
    return algorithm.name if algorithm is not None else None


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
