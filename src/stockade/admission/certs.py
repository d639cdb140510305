"""A private CA and a serving certificate: the webhook's (SAN ``<service>.<namespace>.svc``) and
the controller's (``stockade.api``, which names its own hosts through :func:`ensure_certificate`).

Keys are ECDSA P-256: small, and fast to handshake. Private keys are written with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stockade.model.atomicfile import write_atomically
from stockade.model.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingFiles:
    ca_cert: Path
    cert: Path
    key: Path

    def ca_pem(self) -> bytes:
        return self.ca_cert.read_bytes()


def service_names(service: str, namespace: str) -> list[str]:
    base = f"{service}.{namespace}.svc"
    return [base, f"{base}.cluster.local", f"{service}.{namespace}", service, "localhost"]


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Stockade"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _covers(cert_path: Path, names: list[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    have = set(sans.get_values_for_type(x509.DNSName))
    remaining = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    return set(names) <= have and remaining > dt.timedelta(days=30)


def ensure_serving_cert(
    directory: Path, *, service: str, namespace: str, days: int = 365
) -> ServingFiles:
    """The webhook's files: reused from ``directory`` when they still fit, else made anew."""
    return ensure_certificate(
        directory, service_names(service, namespace), ca_name="Stockade admission CA", days=days
    )


def ensure_certificate(
    directory: Path, names: list[str], *, ca_name: str, days: int = 365
) -> ServingFiles:
    """A CA and a certificate for the DNS ``names`` (first one the subject; 127.0.0.1 and ::1
    always included) in ``directory``: reused when they still cover the names for 30 more days,
    else made anew."""
    files = ServingFiles(
        ca_cert=directory / "ca.crt", cert=directory / "tls.crt", key=directory / "tls.key"
    )
    if (
        files.cert.exists()
        and files.key.exists()
        and files.ca_cert.exists()
        and _covers(files.cert, names)
    ):
        return files
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create {directory}: {exc.strerror}") from exc
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = _name(ca_name)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days * 5))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca_subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    # Each file whole or not at all, the CA last: a client that waits for ca.crt (an agent's
    # --controller-ca, a test) never reads a half-written one, and finds the key and the
    # certificate it vouches for already in place.
    write_atomically(
        files.key,
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        mode=0o600,
        fsync=True,
    )
    write_atomically(files.cert, cert.public_bytes(pem), mode=0o644, fsync=True)
    write_atomically(files.ca_cert, ca.public_bytes(pem), mode=0o644, fsync=True)
    # The CA key is not kept: a new certificate means a new CA and a new caBundle.
    return files
