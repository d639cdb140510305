"""TLS policy as facts and rules: what a connection's handshake says (version, cipher strength,
the server certificate judged at the connection's time and against its SNI, client certificates),
and which of those facts the sensor raises as events.

The facts do not depend on the policy and go into every connection record; the policy only picks
the minimum version and which facts alert. A policy file::

    tls:
      minVersion: TLS1.2          # SSL3.0, TLS1.0, TLS1.1, TLS1.2 or TLS1.3
      alert: [weak_version, weak_cipher, certificate_expired, certificate_self_signed]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from stockade.model import Severity

from . import tls_certs, tls_suites
from .interface import CertificateInfo, TlsInfo

ORDER = ("SSL2.0", "SSL3.0", "TLS1.0", "TLS1.1", "TLS1.2", "TLS1.3")

# fact -> (event kind, severity)
RULES: dict[str, tuple[str, Severity]] = {
    "weak_version": ("tls.weak_version", Severity.MEDIUM),
    "weak_cipher": ("tls.weak_cipher", Severity.HIGH),
    "legacy_cipher": ("tls.weak_cipher", Severity.LOW),
    "certificate_expired": ("tls.certificate_expired", Severity.MEDIUM),
    "certificate_not_yet_valid": ("tls.certificate_not_yet_valid", Severity.MEDIUM),
    "certificate_self_signed": ("tls.certificate_self_signed", Severity.MEDIUM),
    "certificate_name_mismatch": ("tls.certificate_name_mismatch", Severity.MEDIUM),
    "certificate_weak_key": ("tls.certificate_weak_key", Severity.MEDIUM),
    "client_certificate_missing": ("tls.client_certificate_missing", Severity.LOW),
}
DEFAULT_ALERTS = frozenset(RULES) - {"legacy_cipher", "client_certificate_missing"}


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsPolicy:
    min_version: str = "TLS1.2"
    alert: frozenset[str] = field(default=DEFAULT_ALERTS)

    def below_minimum(self, version: str | None) -> bool:
        """A known version older than the minimum (an unnamed one is not judged)."""
        return version in ORDER and ORDER.index(version) < ORDER.index(self.min_version)


@cache
def _policy_file_model() -> Any:
    """The policy file's pydantic model, built on first use: a run without a policy file does
    not pay for pydantic's schema building at start-up."""
    from pydantic import BaseModel, ConfigDict, Field, field_validator

    class _TlsSection(BaseModel):
        model_config = ConfigDict(extra="forbid", populate_by_name=True)
        min_version: str = Field("TLS1.2", alias="minVersion")
        alert: list[str] = Field(default_factory=lambda: sorted(DEFAULT_ALERTS))

        @field_validator("min_version")
        @classmethod
        def _version(cls, v: str) -> str:
            if v not in ORDER[1:]:
                raise ValueError(f"unknown TLS version {v!r} (one of {', '.join(ORDER[1:])})")
            return v

        @field_validator("alert")
        @classmethod
        def _facts(cls, v: list[str]) -> list[str]:
            unknown = sorted(set(v) - set(RULES))
            if unknown:
                raise ValueError(f"unknown facts {unknown} (known: {', '.join(RULES)})")
            return v

    class _PolicyFile(BaseModel):
        model_config = ConfigDict(extra="forbid")
        tls: _TlsSection = Field(default_factory=_TlsSection)  # type: ignore[arg-type]

    return _PolicyFile


def load_policy(path: Path, *, min_version: str | None = None) -> TlsPolicy:
    """Read a TLS policy file (ConfigError, exit 2, on a bad one)."""
    from stockade.config import load_yaml_model  # YAML is read only when there is a file

    section = load_yaml_model(_policy_file_model(), path).tls
    return TlsPolicy(min_version=min_version or section.min_version, alert=frozenset(section.alert))


def parse_min_version(value: str) -> str:
    """``--tls-min-version``: ``TLS1.2``, ``tls1.2`` or ``1.2``."""
    text = value.strip().upper().replace("V", "").replace(" ", "")
    if not text.startswith(("TLS", "SSL")):
        text = "TLS" + text
    if text not in ORDER[1:]:
        raise ValueError(f"unknown TLS version {value!r} (one of {', '.join(ORDER[1:])})")
    return text


# ---------------------------------------------------------------- facts


def facts(info: TlsInfo, at: float) -> dict[str, Any]:
    """What the handshake shows, policy-free, JSON-ready: the cipher's strength, the server
    certificate judged at ``at`` against the SNI (or why it cannot be seen), client certificates."""
    strength = tls_suites.strength(info.cipher)
    cert = info.certificate
    return {
        "cipher_strength": strength.level if info.cipher else None,
        "cipher_weakness": strength.reason or None,
        "certificate_status": info.certificate_status,
        "certificate": tls_certs.facts(cert, at, info.sni) if cert is not None else None,
        "client_certificate": info.client_certificate,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Violation:
    fact: str
    kind: str
    severity: Severity
    text: str  # what is wrong, for the event message
    data: dict[str, Any]


def violations(info: TlsInfo, at: float, policy: TlsPolicy) -> list[Violation]:
    """The facts of one connection that the policy raises as events."""
    found: list[tuple[str, str, dict[str, Any]]] = []
    if policy.below_minimum(info.version):
        found.append(
            ("weak_version", f"{info.version} negotiated (minimum {policy.min_version})", {})
        )
    strength = tls_suites.strength(info.cipher)
    if strength.level in ("weak", "legacy"):
        fact = f"{strength.level}_cipher"
        text = f"{strength.level} cipher suite {info.cipher}: {strength.reason}"
        found.append((fact, text, {"strength": strength.level, "reason": strength.reason}))
    cert = info.certificate
    if cert is not None:
        found += _certificate_violations(info, cert, at)
    if info.client_certificate in ("not_requested", "requested_not_sent"):
        found.append(
            ("client_certificate_missing", f"no client certificate ({info.client_certificate})", {})
        )
    out = []
    for fact, text, extra in found:
        if fact not in policy.alert:
            continue
        kind, severity = RULES[fact]
        out.append(Violation(fact=fact, kind=kind, severity=severity, text=text, data=extra))
    return out


def _certificate_violations(
    info: TlsInfo, cert: CertificateInfo, at: float
) -> list[tuple[str, str, dict[str, Any]]]:
    about = {"subject": cert.subject, "issuer": cert.issuer, "serial": cert.serial}
    window = {
        "not_before": tls_certs.iso(cert.not_before),
        "not_after": tls_certs.iso(cert.not_after),
    }
    out: list[tuple[str, str, dict[str, Any]]] = []
    if tls_certs.expired(cert, at):
        out.append(
            ("certificate_expired", f"certificate expired {window['not_after']}", about | window)
        )
    if tls_certs.not_yet_valid(cert, at):
        text = f"certificate not valid before {window['not_before']}"
        out.append(("certificate_not_yet_valid", text, about | window))
    if cert.self_signed:
        out.append(("certificate_self_signed", f"self-signed certificate {cert.subject}", about))
    if tls_certs.name_matches(cert, info.sni) is False:
        names = list(cert.dns_names) + list(cert.ip_addresses)
        text = f"certificate for {', '.join(names[:5]) or cert.subject} does not cover {info.sni}"
        out.append(("certificate_name_mismatch", text, about | {"names": names[:20]}))
    if tls_certs.weak_key(cert):
        key = f"{cert.key_type} {cert.key_bits}"
        out.append(("certificate_weak_key", f"weak certificate key {key}", about | {"key": key}))
    return out
