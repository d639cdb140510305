"""Parsing a leaf certificate's DER with ``cryptography`` (imported here only, so a sensor
that never sees a TLS 1.2 certificate never loads it); see :mod:`stockade.network.tls_certs`."""

from __future__ import annotations

import warnings

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning

from .interface import CertificateInfo

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
