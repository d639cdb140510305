"""Cosign signatures and attestations of a registry image, verified offline.

Cosign stores them next to the image, under tags derived from the digest it signed::

    REPO:sha256-<hex>.sig   an OCI manifest; each layer is a simple-signing payload
                            (application/vnd.dev.cosign.simplesigning.v1+json) whose annotations hold
                            the base64 signature (dev.cosignproject.cosign/signature) and, keyless,
                            the Fulcio certificate, its chain and the Rekor bundle
                            (dev.sigstore.cosign/certificate, /chain, /bundle)
    REPO:sha256-<hex>.att   the same, with DSSE envelopes (application/vnd.dsse.envelope.v1+json)
                            around in-toto statements

A signature counts only when it verifies with a trusted key, or keyless: its certificate chains to a
supplied Fulcio root, was valid when Rekor logged it (the bundle's integratedTime, whose
SignedEntryTimestamp verifies with a supplied Rekor key), and names an identity (SAN email or URI,
OIDC issuer) the caller trusts; and its payload names the very digest being verified (a signature of
another image copied under this image's tag is rejected). Every signature that does not count is
reported with a one-line reason.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from cryptography import x509

from stockade.model.errors import ConfigError, ImageError, RegistryError
from stockade.scanning.sigstore import (
    BadSignature,
    PublicKey,
    TrustedKey,
    TrustRoot,
    b64decode,
    check_entry_matches,
    identity_of,
    load_trust_root,
    pae,
    parse_certificates,
    read_key_file,
    verify_bundle,
    verify_chain,
    verify_with,
)
from stockade.scanning.sources import manifest as mf
from stockade.scanning.sources.registry import RegistrySource
from stockade.scanning.sources.registry_auth import AuthOptions

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
ANN_SIGNATURE = "dev.cosignproject.cosign/signature"
ANN_CERT = "dev.sigstore.cosign/certificate"
ANN_CHAIN = "dev.sigstore.cosign/chain"
ANN_BUNDLE = "dev.sigstore.cosign/bundle"
SIGNATURE_TYPE = "cosign container image signature"
MAX_SIGNATURES = 32  # layers read per .sig/.att manifest
MAX_PAYLOAD = 1024 * 1024
_MAX_MANIFEST = 4 * 1024 * 1024
_ACCEPT = f"{mf.OCI_MANIFEST}, {mf.DOCKER_MANIFEST}"


@dataclass(frozen=True, slots=True)
class Identity:
    """A keyless signer the caller trusts: certificate subject (SAN email or URI) and OIDC issuer,
    each exact or a glob."""

    subject: str
    issuer: str

    def matches(self, subject: str, issuer: str | None) -> bool:
        return (
            issuer is not None
            and fnmatch.fnmatchcase(subject, self.subject)
            and fnmatch.fnmatchcase(issuer, self.issuer)
        )


@dataclass(frozen=True, slots=True)
class SignatureTrust:
    """Whom to believe: public keys, and keyless identities with the trust root they chain to."""

    keys: tuple[TrustedKey, ...] = ()
    identities: tuple[Identity, ...] = ()
    root: TrustRoot | None = None

    def describe(self) -> str:
        parts = [f"key {k.name}" for k in self.keys]
        parts += [f"identity {i.subject} (issuer {i.issuer})" for i in self.identities]
        return ", ".join(parts) or "nothing"


def load_trust(
    *,
    keys: Sequence[str] = (),
    identities: Sequence[Identity] = (),
    roots: Sequence[str] = (),
    intermediates: Sequence[str] = (),
    rekor_keys: Sequence[str] = (),
) -> SignatureTrust:
    """Read key and certificate files; a keyless identity needs a trust root and vice versa."""
    root = None
    if identities or roots or intermediates or rekor_keys:
        if not identities:
            raise ConfigError("a keyless trust root needs the identities to accept")
        root = load_trust_root(roots, intermediates, rekor_keys)
    if not keys and not identities:
        raise ConfigError("signature verification needs keys or keyless identities")
    return SignatureTrust(
        keys=tuple(read_key_file(k) for k in keys), identities=tuple(identities), root=root
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Signer:
    kind: Literal["key", "identity"]
    name: str  # the key's file (or name) for keys; the certificate subject for identities
    fingerprint: str | None = None  # keys: sha256 of the public key
    issuer: str | None = None  # identities: the OIDC issuer
    signed_at: datetime | None = None  # identities: Rekor's integratedTime

    def text(self) -> str:
        if self.kind == "key":
            return f"key {self.name} ({self.fingerprint})"
        when = f", logged {self.signed_at:%Y-%m-%dT%H:%M:%SZ}" if self.signed_at else ""
        return f"{self.name} (issuer {self.issuer}{when})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "fingerprint": self.fingerprint,
            "issuer": self.issuer,
            "signed_at": self.signed_at.isoformat() if self.signed_at else None,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Attestation:
    predicate_type: str
    signer: Signer


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureCheck:
    """What verifying one image digest found."""

    digest: str
    trusted: str  # what the signatures were checked against (SignatureTrust.describe)
    signers: tuple[Signer, ...] = ()
    attestations: tuple[Attestation, ...] = ()
    rejected: tuple[str, ...] = ()  # one line per signature or attestation that did not count
    found: int = 0  # signatures stored for the digest (valid or not)

    @property
    def signed(self) -> bool:
        return bool(self.signers)

    def summary(self) -> str:
        if self.signed:
            return "signed by " + "; ".join(s.text() for s in self.signers)
        if not self.found:
            return "not signed (no cosign signature stored for this digest)"
        return "not signed by a trusted signer: " + "; ".join(self.rejected[:3])

    def as_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "signed": self.signed,
            "verified_against": self.trusted,
            "signers": [s.as_dict() for s in self.signers],
            "attestations": [
                {"predicate_type": a.predicate_type, "signer": a.signer.as_dict()}
                for a in self.attestations
            ],
            "rejected": list(self.rejected),
            "found": self.found,
        }


# -- the registry side -----------------------------------------------------------------------------
def reference_digest(source: RegistrySource) -> str:
    """The digest the reference names: given, or what its tag points at (an index or manifest)."""
    if source.ref.digest:
        return source.ref.digest
    body = source.client.get(
        f"/v2/{source.ref.repository}/manifests/{source.ref.tag}",
        source.scope,
        f"manifest {source.ref.repository}:{source.ref.tag}",
        {"Accept": mf.ACCEPT},
        limit=_MAX_MANIFEST,
    )
    return mf.sha256_digest(body.content)


def _layers(source: RegistrySource, tag: str, rejected: list[str]) -> list[dict[str, Any]]:
    repo = source.ref.repository
    body = source.client.get_if_present(
        f"/v2/{repo}/manifests/{tag}",
        source.scope,
        f"manifest {repo}:{tag}",
        {"Accept": _ACCEPT},
        limit=_MAX_MANIFEST,
    )
    if body is None:
        return []
    try:
        doc = mf.load_json(body.content, tag)
    except ImageError as exc:
        rejected.append(f"{tag}: {exc.message}")
        return []
    layers = doc.get("layers")
    if not isinstance(layers, list) or not all(isinstance(x, dict) for x in layers):
        rejected.append(f"{tag}: the manifest has no list of layers")
        return []
    if len(layers) > MAX_SIGNATURES:
        rejected.append(
            f"{tag}: {len(layers) - MAX_SIGNATURES} signatures past the first 32 ignored"
        )
    return layers[:MAX_SIGNATURES]


def _blob(source: RegistrySource, layer: Mapping[str, Any]) -> bytes:
    try:
        digest = mf.check_digest_format(layer.get("digest"), "signature layer")
        body = source.client.get(
            f"/v2/{source.ref.repository}/blobs/{digest}",
            source.scope,
            f"blob {digest}",
            limit=MAX_PAYLOAD,
        )
        mf.check_digest(body.content, digest, "signature payload")
    except (ImageError, RegistryError) as exc:
        raise BadSignature(str(exc)) from None
    return body.content


def verify_image(source: RegistrySource, digest: str, trust: SignatureTrust) -> SignatureCheck:
    """Verify every cosign signature and attestation stored for ``digest`` in its repository."""
    mf.check_digest_format(digest, source.reference)
    stem = digest.replace(":", "-")
    rejected: list[str] = []
    signers: list[Signer] = []
    sig_layers = _layers(source, f"{stem}.sig", rejected)
    for n, layer in enumerate(sig_layers, 1):
        try:
            if layer.get("mediaType") != SIMPLE_SIGNING:
                raise BadSignature(f"unexpected media type {str(layer.get('mediaType'))[:60]!r}")
            signer = _simple_signing(layer, _blob(source, layer), digest, trust)
        except BadSignature as exc:
            rejected.append(f"signature {n}: {exc.message}")
            continue
        if signer not in signers:
            signers.append(signer)
    attestations: list[Attestation] = []
    for n, layer in enumerate(_layers(source, f"{stem}.att", rejected), 1):
        try:
            if layer.get("mediaType") != DSSE_ENVELOPE:
                raise BadSignature(f"unexpected media type {str(layer.get('mediaType'))[:60]!r}")
            attestations.append(_attestation(layer, _blob(source, layer), digest, trust))
        except BadSignature as exc:
            rejected.append(f"attestation {n}: {exc.message}")
    return SignatureCheck(
        digest=digest,
        trusted=trust.describe(),
        signers=tuple(signers),
        attestations=tuple(attestations),
        rejected=tuple(rejected),
        found=len(sig_layers),
    )


def verify_reference(
    reference: str,
    trust: SignatureTrust,
    *,
    insecure: bool = False,
    username: str | None = None,
    password: str | None = None,
    auth: AuthOptions | None = None,
    digests: tuple[str, ...] = (),
) -> SignatureCheck:
    """Verify the signatures of the digest a registry reference names (its tag resolved once),
    or of ``digests`` already resolved: the first that carries signatures or attestations (an
    index digest, then the platform manifest chosen from it); the first when none does."""
    from stockade.scanning.sources.interface import parse_registry_reference

    source = RegistrySource(
        parse_registry_reference(reference),
        insecure=insecure,
        username=username,
        password=password,
        auth=auth,
    )
    try:
        if not digests:
            return verify_image(source, reference_digest(source), trust)
        checks = [verify_image(source, d, trust) for d in digests]
        return next((c for c in checks if c.found or c.attestations or c.rejected), checks[0])
    finally:
        source.close()


# -- one signature ---------------------------------------------------------------------------------
def _annotations(layer: Mapping[str, Any]) -> Mapping[str, Any]:
    ann = layer.get("annotations")
    if not isinstance(ann, dict):
        raise BadSignature("the layer has no annotations")
    return ann


def _simple_signing(
    layer: Mapping[str, Any], payload: bytes, digest: str, trust: SignatureTrust
) -> Signer:
    ann = _annotations(layer)
    signature = b64decode(ann.get(ANN_SIGNATURE), "the signature annotation")
    signer = _signer(ann, signature, payload, hashlib.sha256(payload).hexdigest(), trust)
    doc = _json(payload, "the signed payload")
    critical = doc.get("critical")
    claimed = _get(critical, "image", "docker-manifest-digest")
    if not isinstance(critical, dict) or critical.get("type") != SIGNATURE_TYPE:
        raise BadSignature("the signed payload is not a cosign simple-signing payload")
    if claimed != digest:
        raise BadSignature(
            f"the signature is for another image ({str(claimed)[:80]}), not {digest}"
        )
    return signer


def _attestation(
    layer: Mapping[str, Any], envelope: bytes, digest: str, trust: SignatureTrust
) -> Attestation:
    ann = _annotations(layer)
    env = _json(envelope, "the DSSE envelope")
    payload_type = env.get("payloadType")
    if not isinstance(payload_type, str):
        raise BadSignature("the DSSE envelope has no payloadType")
    statement = b64decode(env.get("payload"), "the DSSE payload")
    sigs = env.get("signatures")
    if not isinstance(sigs, list) or not sigs or not isinstance(sigs[0], dict):
        raise BadSignature("the DSSE envelope has no signatures")
    signed = pae(payload_type, statement)
    payload_sha = hashlib.sha256(statement).hexdigest()
    problems: list[str] = []
    signer = None
    for entry in sigs[:MAX_SIGNATURES]:
        try:
            sig = b64decode(entry.get("sig") if isinstance(entry, dict) else None, "the DSSE sig")
            signer = _signer(ann, sig, signed, payload_sha, trust)
            break
        except BadSignature as exc:
            problems.append(exc.message)
    if signer is None:
        raise BadSignature(problems[0])
    doc = _json(statement, "the in-toto statement")
    subjects = doc.get("subject")
    hexes = {_get(s, "digest", "sha256") for s in (subjects if isinstance(subjects, list) else [])}
    if not str(doc.get("_type", "")).startswith("https://in-toto.io/Statement/"):
        raise BadSignature("the DSSE payload is not an in-toto statement")
    if digest.removeprefix("sha256:") not in hexes:
        raise BadSignature(f"the attestation is about another subject, not {digest}")
    predicate = doc.get("predicateType")
    return Attestation(predicate_type=str(predicate)[:200] if predicate else "?", signer=signer)


def _signer(
    ann: Mapping[str, Any], signature: bytes, data: bytes, payload_sha: str, trust: SignatureTrust
) -> Signer:
    """Who made ``signature`` over ``data``: a trusted key, else a trusted keyless identity."""
    for key in trust.keys:
        if verify_with(key.key, signature, data):
            return Signer(kind="key", name=key.name, fingerprint=key.fingerprint)
    if ANN_CERT not in ann:
        raise BadSignature("the signature does not verify with any trusted key")
    if trust.root is None:
        raise BadSignature("keyless signature (certificate), but no keyless trust root was given")
    return _keyless(ann, signature, data, payload_sha, trust, trust.root)


def _keyless(
    ann: Mapping[str, Any],
    signature: bytes,
    data: bytes,
    payload_sha: str,
    trust: SignatureTrust,
    root: TrustRoot,
) -> Signer:
    leaf = parse_certificates(ann.get(ANN_CERT), "the certificate annotation")[0]
    chain = parse_certificates(ann[ANN_CHAIN], "the chain annotation") if ANN_CHAIN in ann else []
    if ANN_BUNDLE not in ann:
        raise BadSignature("no Rekor bundle: the signing time cannot be established offline")
    entry = verify_bundle(ann[ANN_BUNDLE], root.rekor_keys)
    check_entry_matches(entry, signature=signature, payload_sha256=payload_sha, cert=leaf)
    verify_chain(leaf, chain, root, entry.integrated_time)
    if not verify_with(_cert_key(leaf), signature, data):
        raise BadSignature("the signature does not verify with its certificate")
    ident = identity_of(leaf)
    for subject in ident.subjects:
        if any(want.matches(subject, ident.issuer) for want in trust.identities):
            return Signer(
                kind="identity",
                name=subject,
                issuer=ident.issuer,
                signed_at=entry.integrated_time,
            )
    who = ", ".join(ident.subjects) or "no SAN"
    raise BadSignature(
        f"signed by {who[:200]} (issuer {str(ident.issuer)[:120]}), not a trusted identity"
    )


def _cert_key(cert: x509.Certificate) -> PublicKey:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        return key
    raise BadSignature("the certificate's key type is not supported")


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise BadSignature(f"{what} is not JSON") from None
    if not isinstance(doc, dict):
        raise BadSignature(f"{what} is not a JSON object")
    return doc


def _get(doc: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc
