"""The cryptography under image signatures: public keys, Fulcio certificates, Rekor bundles, DSSE.

Everything is checked offline against what the caller supplies (keys, root and intermediate
certificates, Rekor public keys); nothing is fetched. Every function raises :class:`BadSignature`
with a one-line reason; the caller turns it into a rejected signature, never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from stockade.model.errors import ConfigError, StockadeError

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

# Fulcio's OIDC issuer: v1 holds the raw UTF-8 bytes, v2 a DER UTF8String (both still issued).
OID_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_MAX_CHAIN = 5


class BadSignature(StockadeError):
    """A signature, certificate or bundle that does not verify (the message says why)."""


def b64decode(text: object, what: str) -> bytes:
    if not isinstance(text, str) or not text:
        raise BadSignature(f"{what} is missing or not a string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadSignature(f"{what} is not valid base64") from None


# -- keys ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A public key a signature may be verified with, and the name reports give it."""

    name: str
    key: PublicKey

    @property
    def fingerprint(self) -> str:
        return "sha256:" + hashlib.sha256(spki(self.key)).hexdigest()


def spki(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(pem: bytes, what: str) -> PublicKey:
    """A PEM public key (ECDSA P-256/P-384, RSA of 2048 bits or more, Ed25519)."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm, TypeError):
        raise ConfigError("not a PEM public key", subject=what) from None
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in ("secp256r1", "secp384r1"):
        return key
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise ConfigError(
        "unsupported key type (ECDSA P-256/P-384, RSA >= 2048 bits or Ed25519)", subject=what
    )


def read_key_file(path: str) -> TrustedKey:
    return TrustedKey(name=path, key=load_public_key(_read(path), path))


def _read(path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", subject=path) from None
    if len(data) > 1024 * 1024:
        raise ConfigError("larger than 1 MiB: not a key or certificate file", subject=path)
    return data


def verify_with(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` over ``data`` verifies with ``key`` (SHA-256; Ed25519 pure)."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


# -- certificates ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TrustRoot:
    """Offline keyless trust: Fulcio roots (anchors), intermediates and Rekor public keys."""

    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
    rekor_keys: tuple[PublicKey, ...] = ()


def read_certificates(path: str) -> tuple[x509.Certificate, ...]:
    try:
        certs = tuple(x509.load_pem_x509_certificates(_read(path)))
    except ValueError:
        raise ConfigError("not PEM certificates", subject=path) from None
    return certs


def load_trust_root(
    roots: Sequence[str], intermediates: Sequence[str], rekor_keys: Sequence[str]
) -> TrustRoot:
    if not roots or not rekor_keys:
        raise ConfigError("a keyless trust root needs Fulcio root certificates and a Rekor key")
    return TrustRoot(
        roots=tuple(c for p in roots for c in read_certificates(p)),
        intermediates=tuple(c for p in intermediates for c in read_certificates(p)),
        rekor_keys=tuple(read_key_file(p).key for p in rekor_keys),
    )


def parse_certificates(pem: object, what: str) -> list[x509.Certificate]:
    if not isinstance(pem, str) or not pem.strip():
        raise BadSignature(f"{what} is missing or empty")
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise BadSignature(f"{what} is not PEM certificates") from None


def _valid_at(cert: x509.Certificate, when: datetime, what: str) -> None:
    if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        raise BadSignature(
            f"{what} was not valid at the signing time {when:%Y-%m-%dT%H:%M:%SZ} (valid "
            f"{cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} to "
            f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ})"
        )


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def verify_chain(
    leaf: x509.Certificate,
    extra: Sequence[x509.Certificate],
    root: TrustRoot,
    when: datetime,
) -> None:
    """The leaf is a code-signing certificate, valid at ``when``, issued through CA certificates
    (the supplied intermediates or ``extra`` ones) by one of the supplied roots."""
    _valid_at(leaf, when, "the signing certificate")
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    except ValueError:
        raise BadSignature("the signing certificate has malformed extensions") from None
    if eku is None or ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise BadSignature("the signing certificate is not for code signing")
    anchors = {r.public_bytes(serialization.Encoding.DER) for r in root.roots}
    candidates = [*root.roots, *root.intermediates, *extra]
    current = leaf
    for _ in range(_MAX_CHAIN):
        issuer = _issuer_of(current, candidates)
        if issuer is None:
            raise BadSignature("the signing certificate does not chain to the trusted roots")
        if not _is_ca(issuer):
            raise BadSignature("a certificate in the chain is not a CA")
        _valid_at(issuer, when, f"the CA certificate {issuer.subject.rfc4514_string()!r}")
        if issuer.public_bytes(serialization.Encoding.DER) in anchors:
            return
        current = issuer
    raise BadSignature("the certificate chain is too long")


def _issuer_of(
    cert: x509.Certificate, candidates: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    for candidate in candidates:
        if candidate.subject != cert.issuer or candidate == cert:
            continue
        try:
            cert.verify_directly_issued_by(candidate)
        except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
            continue
        return candidate
    return None


@dataclass(frozen=True, slots=True)
class CertIdentity:
    subjects: tuple[str, ...]  # SAN emails and URIs
    issuer: str | None  # the Fulcio OIDC issuer extension


def identity_of(cert: x509.Certificate) -> CertIdentity:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        subjects = tuple(
            [
                *san.get_values_for_type(x509.RFC822Name),
                *san.get_values_for_type(x509.UniformResourceIdentifier),
            ]
        )
    except x509.ExtensionNotFound:
        subjects = ()
    except ValueError:
        raise BadSignature("the signing certificate has a malformed SAN") from None
    return CertIdentity(subjects=subjects, issuer=_oidc_issuer(cert))


def _oidc_issuer(cert: x509.Certificate) -> str | None:
    for ext in cert.extensions:
        if ext.oid == OID_ISSUER_V2 and isinstance(ext.value, x509.UnrecognizedExtension):
            return _der_utf8(ext.value.value)
    for ext in cert.extensions:
        if ext.oid == OID_ISSUER_V1 and isinstance(ext.value, x509.UnrecognizedExtension):
            try:
                return ext.value.value.decode("utf-8")
            except UnicodeDecodeError:
                raise BadSignature("the certificate's OIDC issuer is not UTF-8") from None
    return None


def _der_utf8(raw: bytes) -> str:
    """A DER UTF8String (tag 12) with a short or long-form length."""
    if len(raw) < 2 or raw[0] != 0x0C:
        raise BadSignature("the certificate's OIDC issuer is not a UTF8String")
    length, pos = raw[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 2 or len(raw) < 2 + count:
            raise BadSignature("the certificate's OIDC issuer has a bad length")
        length, pos = int.from_bytes(raw[2 : 2 + count], "big"), 2 + count
    if len(raw) != pos + length:
        raise BadSignature("the certificate's OIDC issuer has a bad length")
    try:
        return raw[pos:].decode("utf-8")
    except UnicodeDecodeError:
        raise BadSignature("the certificate's OIDC issuer is not UTF-8") from None


# -- Rekor bundles ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LogEntry:
    """A Rekor entry whose SignedEntryTimestamp verified: its body and when it was logged."""

    body: dict[str, Any]
    integrated_time: datetime
    log_index: int


def canonical_json(value: Any) -> bytes:
    """RFC 8785 for what a Rekor payload holds (strings, integers, objects): sorted keys, no
    whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def verify_bundle(text: object, rekor_keys: Sequence[PublicKey]) -> LogEntry:
    """Check cosign's ``dev.sigstore.cosign/bundle`` annotation: the SignedEntryTimestamp over the
    canonical payload verifies with a supplied Rekor key whose id is the payload's logID."""
    if not isinstance(text, str):
        raise BadSignature("the Rekor bundle is missing")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise BadSignature("the Rekor bundle is not JSON") from None
    payload = doc.get("Payload") if isinstance(doc, dict) else None
    if not isinstance(payload, dict):
        raise BadSignature("the Rekor bundle has no Payload")
    body_b64, when, index, log_id = (
        payload.get("body"),
        payload.get("integratedTime"),
        payload.get("logIndex"),
        payload.get("logID"),
    )
    if not (
        isinstance(body_b64, str)
        and isinstance(when, int)
        and isinstance(index, int)
        and _is_int(when)
        and _is_int(index)
        and isinstance(log_id, str)
    ):
        raise BadSignature(
            "the Rekor bundle's Payload lacks body, integratedTime, logIndex or logID"
        )
    set_sig = b64decode(doc.get("SignedEntryTimestamp"), "the SignedEntryTimestamp")
    signed = canonical_json(
        {"body": body_b64, "integratedTime": when, "logID": log_id, "logIndex": index}
    )
    for key in rekor_keys:
        if hashlib.sha256(spki(key)).hexdigest() == log_id.lower() and verify_with(
            key, set_sig, signed
        ):
            break
    else:
        raise BadSignature("the Rekor SignedEntryTimestamp does not verify with the Rekor keys")
    try:
        body = json.loads(b64decode(body_b64, "the Rekor entry body"))
        moment = datetime.fromtimestamp(when, UTC)
    except (ValueError, RecursionError, OverflowError, OSError):
        raise BadSignature("the Rekor entry body or time is malformed") from None
    if not isinstance(body, dict):
        raise BadSignature("the Rekor entry body is not an object")
    return LogEntry(body=body, integrated_time=moment, log_index=index)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_entry_matches(
    entry: LogEntry, *, signature: bytes, payload_sha256: str, cert: x509.Certificate
) -> None:
    """The logged entry is this signature: same signature, payload digest and certificate."""
    kind, spec = entry.body.get("kind"), entry.body.get("spec")
    if not isinstance(spec, dict):
        raise BadSignature("the Rekor entry has no spec")
    if kind == "hashedrekord":
        data_hash = _path(spec, "data", "hash", "value")
        logged_sig = _path(spec, "signature", "content")
        logged_key = _path(spec, "signature", "publicKey", "content")
        if b64decode(logged_sig, "the logged signature") != signature:
            raise BadSignature("the Rekor entry is for another signature")
    elif kind == "intoto":
        data_hash = _path(spec, "content", "payloadHash", "value")
        logged_key = spec.get("publicKey")
        if logged_key is None:  # intoto 0.0.2 keeps the key next to each envelope signature
            sigs = _path(spec, "content", "envelope", "signatures")
            first = sigs[0] if isinstance(sigs, list) and sigs else None
            logged_key = first.get("publicKey") if isinstance(first, dict) else None
    else:
        raise BadSignature(f"unsupported Rekor entry kind {str(kind)[:40]!r}")
    if not isinstance(data_hash, str) or data_hash.lower() != payload_sha256:
        raise BadSignature("the Rekor entry is for another payload")
    logged = parse_certificates(
        b64decode(logged_key, "the logged certificate").decode("utf-8", "replace"),
        "the logged certificate",
    )
    if logged[0] != cert:
        raise BadSignature("the Rekor entry is for another certificate")


def _path(doc: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


# -- DSSE --------------------------------------------------------------------------------------------
def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what an envelope's signatures sign."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
