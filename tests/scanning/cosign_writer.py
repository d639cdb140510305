"""Images, signatures and attestations written into a real registry exactly as cosign stores them,
made with keys and certificates created here: a test CA acting as Fulcio (root and intermediate,
short-lived code-signing leaves with the OIDC issuer extensions) and a test Rekor key that signs
SignedEntryTimestamps over the canonical bundle payload."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
ISSUER = "https://token.actions.example.test"
SUBJECT = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def pem_public(key: Any) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# -- the registry -------------------------------------------------------------------------------------
class Pusher:
    """Uploads blobs and manifests over the distribution API (POST + PUT, then PUT manifest)."""

    def __init__(self, host: str, repo: str) -> None:
        self.base, self.repo = f"http://{host}", repo
        self.http = httpx.Client(timeout=10)
        self.uploaded: set[str] = set()

    def blob(self, data: bytes) -> dict[str, Any]:
        if sha(data) in self.uploaded:
            return {"digest": sha(data), "size": len(data)}
        self.uploaded.add(sha(data))
        start = self.http.post(f"{self.base}/v2/{self.repo}/blobs/uploads/")
        assert start.status_code == 202, start.text
        location = start.headers["location"]
        url = location if location.startswith("http") else self.base + location
        sep = "&" if "?" in url else "?"
        done = self.http.put(f"{url}{sep}digest={sha(data)}", content=data)
        assert done.status_code == 201, done.text
        return {"digest": sha(data), "size": len(data)}

    def manifest(self, tag: str, doc: dict[str, Any]) -> str:
        data = json.dumps(doc).encode()
        put = self.http.put(
            f"{self.base}/v2/{self.repo}/manifests/{tag}",
            content=data,
            headers={"Content-Type": doc.get("mediaType", OCI_MANIFEST)},
        )
        assert put.status_code == 201, put.text
        return sha(data)

    def image(self, tag: str, content: bytes) -> str:
        """A one-layer image; returns its manifest digest."""
        import gzip
        import io
        import tarfile

        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            info = tarfile.TarInfo("etc/app.txt")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        layer = gzip.compress(raw.getvalue(), mtime=0)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [sha(raw.getvalue())]},
            }
        ).encode()
        return self.manifest(
            tag,
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    **self.blob(config),
                },
                "layers": [
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **self.blob(layer)}
                ],
            },
        )

    def signatures(
        self,
        digest: str,
        layers: list[tuple[bytes, dict[str, str]]],
        *,
        suffix: str = "sig",
        media_type: str = SIMPLE_SIGNING,
    ) -> None:
        """The ``sha256-<hex>.sig`` (or ``.att``) manifest cosign writes: one layer per signature,
        a config listing their diff ids."""
        descriptors = [
            {"mediaType": media_type, **self.blob(payload), "annotations": ann}
            for payload, ann in layers
        ]
        config = json.dumps(
            {
                "architecture": "",
                "created": "0001-01-01T00:00:00Z",
                "history": [{"created": "0001-01-01T00:00:00Z"}],
                "os": "",
                "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descriptors]},
                "config": {},
            }
        ).encode()
        self.manifest(
            f"{digest.replace(':', '-')}.{suffix}",
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    **self.blob(config),
                },
                "layers": descriptors,
            },
        )

    def close(self) -> None:
        self.http.close()


# -- payloads -----------------------------------------------------------------------------------------
def simple_signing(reference: str, digest: str, **optional: str) -> bytes:
    doc: dict[str, Any] = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": optional or None,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def statement(
    name: str, digest: str, predicate_type: str = "https://slsa.dev/provenance/v1"
) -> bytes:
    return json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": predicate_type,
            "subject": [{"name": name, "digest": {"sha256": digest.removeprefix("sha256:")}}],
            "predicate": {"buildType": "https://example.test/build"},
        }
    ).encode()


def pae(payload_type: str, payload: bytes) -> bytes:
    return b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)


def ecdsa_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


# -- Fulcio and Rekor stand-ins -----------------------------------------------------------------------
def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _der_utf8(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 128
    return bytes([0x0C, len(raw)]) + raw


@dataclass
class Sigstore:
    """A private Fulcio (root + intermediate) and Rekor, written to ``workdir`` as PEM files."""

    workdir: Path
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __post_init__(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.root = self._ca("test fulcio root", self.root_key, self.root_key, None)
        self.inter_key = ec.generate_private_key(ec.SECP384R1())
        self.inter = self._ca("test fulcio intermediate", self.inter_key, self.root_key, self.root)
        self.rekor_key = ec.generate_private_key(ec.SECP256R1())
        self.root_pem = self.workdir / "fulcio-root.pem"
        self.inter_pem = self.workdir / "fulcio-intermediate.pem"
        self.rekor_pem = self.workdir / "rekor.pub"
        self.root_pem.write_text(pem_cert(self.root))
        self.inter_pem.write_text(pem_cert(self.inter))
        self.rekor_pem.write_bytes(pem_public(self.rekor_key))
        self.log_index = 1000

    def _ca(
        self, cn: str, key: Any, signer: Any, parent: x509.Certificate | None
    ) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(parent.subject if parent else _name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(days=1))
            .not_valid_after(self.now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(signer, hashes.SHA384())
        )

    def leaf(
        self,
        *,
        subject: str = SUBJECT,
        issuer: str = ISSUER,
        not_before: dt.datetime | None = None,
        lifetime: dt.timedelta = dt.timedelta(minutes=10),
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """An ephemeral key and its Fulcio-style certificate (SAN email or URI, issuer extensions)."""
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or self.now - dt.timedelta(minutes=1)
        san = (
            x509.RFC822Name(subject)
            if "@" in subject and "://" not in subject
            else x509.UniformResourceIdentifier(subject)
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.inter.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + lifetime)
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(
                x509.UnrecognizedExtension(
                    x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1"), issuer.encode()
                ),
                critical=False,
            )
            .add_extension(
                x509.UnrecognizedExtension(
                    x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"), _der_utf8(issuer)
                ),
                critical=False,
            )
            .sign(self.inter_key, hashes.SHA384())
        )
        return key, cert

    def bundle(
        self,
        body: dict[str, Any],
        *,
        integrated: dt.datetime | None = None,
        rekor_key: ec.EllipticCurvePrivateKey | None = None,
    ) -> str:
        """cosign's bundle annotation: the entry and a SignedEntryTimestamp over its canonical form."""
        signer = rekor_key or self.rekor_key
        log_id = hashlib.sha256(
            signer.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).hexdigest()
        self.log_index += 1
        payload = {
            "body": b64(json.dumps(body).encode()),
            "integratedTime": int((integrated or self.now).timestamp()),
            "logIndex": self.log_index,
            "logID": log_id,
        }
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return json.dumps(
            {"SignedEntryTimestamp": b64(ecdsa_sign(signer, canonical)), "Payload": payload}
        )

    def hashedrekord(
        self, payload: bytes, signature: bytes, cert: x509.Certificate
    ) -> dict[str, Any]:
        return {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {
                    "hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}
                },
                "signature": {
                    "content": b64(signature),
                    "publicKey": {"content": b64(pem_cert(cert).encode())},
                },
            },
        }

    def intoto(self, statement_bytes: bytes, cert: x509.Certificate) -> dict[str, Any]:
        return {
            "apiVersion": "0.0.1",
            "kind": "intoto",
            "spec": {
                "content": {
                    "hash": {"algorithm": "sha256", "value": "0" * 64},
                    "payloadHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(statement_bytes).hexdigest(),
                    },
                },
                "publicKey": b64(pem_cert(cert).encode()),
            },
        }

    def keyless_annotations(
        self,
        payload: bytes,
        *,
        subject: str = SUBJECT,
        issuer: str = ISSUER,
        integrated: dt.datetime | None = None,
        not_before: dt.datetime | None = None,
    ) -> dict[str, str]:
        """A keyless cosign signature of ``payload``, as the layer's annotations."""
        key, cert = self.leaf(subject=subject, issuer=issuer, not_before=not_before)
        signature = ecdsa_sign(key, payload)
        return {
            "dev.cosignproject.cosign/signature": b64(signature),
            "dev.sigstore.cosign/certificate": pem_cert(cert),
            "dev.sigstore.cosign/chain": pem_cert(self.inter) + pem_cert(self.root),
            "dev.sigstore.cosign/bundle": self.bundle(
                self.hashedrekord(payload, signature, cert), integrated=integrated
            ),
        }
