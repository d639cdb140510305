"""What one sensor run watched, as a ``network.observed`` event: the evidence that traffic was
inspected over a period (a compliance report needs it to say "nothing in clear", rather than
"nothing known")."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from stockade.model import Event, Severity
from stockade.network.connection import ConnectionRecord


class Observation:
    """Tallies connection records as they stream by; keeps no record."""

    def __init__(self, source: str = "sensor", tls_min_version: str = "TLS1.2") -> None:
        self.source = source
        self.tls_min_version = tls_min_version
        self.certificates = 0  # TLS connections whose server certificate was seen (TLS <= 1.2)
        self.connections = 0
        self.tls = 0
        self.encrypted = 0
        self.dlp_hits = 0
        self.protocols: Counter[str] = Counter()
        self.first: float | None = None
        self.last: float | None = None

    def add(self, rec: ConnectionRecord) -> None:
        self.connections += 1
        self.encrypted += rec.encrypted
        self.tls += rec.tls is not None
        self.certificates += rec.tls is not None and rec.tls.certificate is not None
        self.dlp_hits += len(rec.hits)
        self.protocols[rec.protocol] += 1
        # (what min and max keep: the earlier value unless the new one is below or above it)
        start, end = rec.start, rec.end
        if self.first is None or start < self.first:
            self.first = start
        if self.last is None or end > self.last:
            self.last = end

    def add_plain(
        self, count: int, protocol: str, first: float, last: float, dlp_hits: int = 0
    ) -> None:
        """``add`` of ``count`` records of clear ``protocol`` connections without TLS, with
        ``dlp_hits`` DLP hits in all, the earliest starting at ``first``, the latest ending at
        ``last``."""
        self.connections += count
        self.dlp_hits += dlp_hits
        self.protocols[protocol] += count
        if self.first is None or first < self.first:
            self.first = first
        if self.last is None or last > self.last:
            self.last = last

    def event(self, capture: str) -> Event:
        """The summary event; ``capture`` says what was watched (a file, interfaces)."""
        return Event(
            kind="network.observed",
            message=f"{self.connections} connections observed on {capture}, "
            f"{self.encrypted} encrypted, {self.dlp_hits} DLP hits",
            severity=Severity.NEGLIGIBLE,
            source=self.source,
            data={
                "capture": capture,
                "connections": self.connections,
                "encrypted": self.encrypted,
                "tls": self.tls,
                "tls_certificates": self.certificates,
                "tls_min_version": self.tls_min_version,
                "dlp_hits": self.dlp_hits,
                "protocols": dict(self.protocols.most_common(20)),
                "first": _iso(self.first),
                "last": _iso(self.last),
            },
        )


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()
