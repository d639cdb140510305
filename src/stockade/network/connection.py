"""The connection record the sensor emits for every flow, and the events derived from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

from stockade.model import Event, Severity
from stockade.model.redact import redact, redact_text
from stockade.model.resource import ResourceRef
from stockade.network.interface import DlpMatch, TlsInfo, flow_key
from stockade.network.tls_policy import TlsPolicy, facts, violations

WEAK_TLS = frozenset({"SSL2.0", "SSL3.0", "TLS1.0", "TLS1.1"})  # below the default minimum
DEFAULT_POLICY = TlsPolicy()


@dataclass(frozen=True, slots=True, kw_only=True)
class Hit:
    direction: str  # "client" (client to server) or "server"
    match: DlpMatch


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionRecord:
    id: str
    start: float
    end: float
    transport: str  # "tcp" | "udp"
    ip_version: int
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    client: ResourceRef
    server: ResourceRef
    protocol: str
    encrypted: bool
    upgrade: str | None = None
    tls: TlsInfo | None = None
    bytes_to_server: int = 0
    bytes_to_client: int = 0
    packets_to_server: int = 0
    packets_to_client: int = 0
    flags_client: str = ""
    flags_server: str = ""
    state: str = "closed"  # closed | reset | timeout | evicted | active
    gaps: int = 0
    inspected: int = 0  # bytes both ways that went through detection and DLP
    hits: tuple[Hit, ...] = ()
    details: tuple[tuple[str, str], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data, every string through the masking gate: protocol metadata
        (paths, host names, SNI, user names, banners) is whatever the peers sent.

        Every string value passes the gate; the keys are this module's own literals, the
        numbers cannot hold text and the times are this module's ISO spelling of a number, which
        never holds a card or an SSN (at most ten digits close together, none nine in a row or
        grouped 3-2-4; tests/security/test_masking_gate.py holds it), so the walk skips them
        (``plain()`` is the record unmasked: tests hold ``redact(plain())`` to the same answer)."""
        mask = redact_text
        return {
            "id": self.id,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "transport": mask(self.transport),
            "ip_version": self.ip_version,
            "client": {
                "ip": mask(self.client_ip),
                "port": self.client_port,
                **_masked(self.client),
            },
            "server": {
                "ip": mask(self.server_ip),
                "port": self.server_port,
                **_masked(self.server),
            },
            "protocol": mask(self.protocol),
            "encrypted": self.encrypted,
            "upgrade": mask(self.upgrade) if self.upgrade is not None else None,
            "tls": redact(self._tls()) if self.tls is not None else None,
            "bytes": {"to_server": self.bytes_to_server, "to_client": self.bytes_to_client},
            "packets": {"to_server": self.packets_to_server, "to_client": self.packets_to_client},
            "tcp_flags": {"client": mask(self.flags_client), "server": mask(self.flags_server)},
            "state": mask(self.state),
            "gaps": self.gaps,
            "inspected_bytes": self.inspected,
            "dlp": redact([_hit(h) for h in self.hits]) if self.hits else [],
            "details": redact(dict(self.details)) if self.details else {},
        }

    def plain(self) -> dict[str, Any]:
        """:meth:`to_dict` before masking (the reference it is tested against; never output)."""
        return {
            "start": _iso(self.start),
            "end": _iso(self.end),
            "transport": self.transport,
            "ip_version": self.ip_version,
            "client": self._peer(self.client_ip, self.client_port, self.client),
            "server": self._peer(self.server_ip, self.server_port, self.server),
            "protocol": self.protocol,
            "encrypted": self.encrypted,
            "upgrade": self.upgrade,
            "tls": self._tls() if self.tls is not None else None,
            "bytes": {"to_server": self.bytes_to_server, "to_client": self.bytes_to_client},
            "packets": {"to_server": self.packets_to_server, "to_client": self.packets_to_client},
            "tcp_flags": {"client": self.flags_client, "server": self.flags_server},
            "state": self.state,
            "gaps": self.gaps,
            "inspected_bytes": self.inspected,
            "dlp": [_hit(h) for h in self.hits],
            "details": dict(self.details),
        }

    @staticmethod
    def _peer(ip: str, port: int, ref: ResourceRef) -> dict[str, Any]:
        return {"ip": ip, "port": port, **ref.to_dict()}

    def _tls(self) -> dict[str, Any]:
        tls = self.tls
        assert tls is not None
        return {
            "version": tls.version,
            "sni": tls.sni,
            "alpn": list(tls.alpn),
            "alpn_chosen": tls.alpn_chosen,
            "cipher": tls.cipher,
            "client_max_version": tls.client_max_version,
            **facts(tls, self.start),
        }


def _hit(h: Hit) -> dict[str, Any]:
    m = h.match
    return {
        "direction": h.direction,
        "sensor": m.sensor,
        "masked": m.masked,
        "offset": m.start,
        "confidence": m.confidence,
    }


@lru_cache(maxsize=4096)
def _masked(ref: ResourceRef) -> dict[str, Any]:
    """``ref.to_dict()`` through the masking gate, once per peer (the same few peers recur in
    thousands of records; the dict is only read: JSON output and the store's rows)."""
    return cast(dict[str, Any], redact(ref.to_dict()))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def events_for(
    rec: ConnectionRecord, source: str = "sensor", policy: TlsPolicy = DEFAULT_POLICY
) -> list[Event]:
    """``dlp.sensitive_in_clear`` per sensor and direction; the TLS facts ``policy`` alerts on
    (``tls.weak_version`` below its minimum version, ``tls.weak_cipher``,
    ``tls.certificate_expired``, ...), one event each."""
    if not rec.hits and rec.tls is None:
        return []  # the common case: no event, so nothing to build
    out: list[Event] = []
    at = datetime.fromtimestamp(rec.start, UTC)
    where = f"{rec.client.display()} -> {rec.server.display()}:{rec.server_port}"
    # DLP only ever sees bytes before any TLS starts, so every hit was in clear
    grouped: dict[tuple[str, str], list[Hit]] = {}
    for h in rec.hits:
        grouped.setdefault((h.match.sensor, h.direction), []).append(h)
    for (sensor, direction), hits in sorted(grouped.items()):
        evidence = sorted({h.match.masked for h in hits})
        out.append(
            Event(
                kind="dlp.sensitive_in_clear",
                severity=Severity.HIGH,
                source=source,
                at=at,
                message=f"{sensor} in clear {rec.protocol} {where}: {', '.join(evidence[:5])}",
                resource=rec.client,
                peer=rec.server,
                data={
                    "connection": rec.id,
                    "flow": flow_key(
                        rec.transport,
                        rec.client_ip,
                        rec.client_port,
                        rec.server_ip,
                        rec.server_port,
                    ),
                    "sensor": sensor,
                    "direction": direction,
                    "protocol": rec.protocol,
                    "evidence": evidence,
                    "count": len(hits),
                    "server_port": rec.server_port,
                    "client_ip": rec.client_ip,
                    "server_ip": rec.server_ip,
                },
            )
        )
    if rec.tls is not None:
        out += _tls_events(rec, rec.tls, source, policy, at, where)
    return out


def _tls_events(
    rec: ConnectionRecord,
    tls: TlsInfo,
    source: str,
    policy: TlsPolicy,
    at: datetime,
    where: str,
) -> list[Event]:
    return [
        Event(
            kind=v.kind,
            severity=v.severity,
            source=source,
            at=at,
            message=f"{v.text} {where}",
            resource=rec.client,
            peer=rec.server,
            data={
                "connection": rec.id,
                "fact": v.fact,
                "version": tls.version,
                "sni": tls.sni,
                "cipher": tls.cipher,
                "server_port": rec.server_port,
                "client_ip": rec.client_ip,
                "server_ip": rec.server_ip,
                **v.data,
            },
        )
        for v in violations(tls, rec.start, policy)
    ]
