"""The outcome of one scan, as every report format reads it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stockade.scanning.gate import GatedFinding, GateResult
from stockade.scanning.interface import Inventory, VulnerabilityDetails


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseInfo:
    """The advisory data a scan used: when it was built and from what."""

    built: datetime | None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanReport:
    inventory: Inventory
    gate: GateResult
    scanned_at: datetime
    database: DatabaseInfo | None = None
    tool_version: str = ""
    match_skipped: tuple[str, ...] = ()  # packages the matcher could not check, with reasons

    @property
    def skipped(self) -> tuple[str, ...]:
        return self.inventory.skipped + self.match_skipped

    def ordered(self, *, active_only: bool = False) -> list[GatedFinding]:
        """Findings worst first, then by id and package: the order every report uses."""
        items = self.gate.active if active_only else self.gate.findings
        return sorted(items, key=sort_key)


def sort_key(g: GatedFinding) -> tuple[int, str, str, str]:
    d = g.finding.details
    pkg = d.package if isinstance(d, VulnerabilityDetails) else ""
    ver = d.installed_version if isinstance(d, VulnerabilityDetails) else ""
    return (-int(g.finding.severity), g.finding.id, pkg, ver)


def vuln(g: GatedFinding) -> VulnerabilityDetails | None:
    d = g.finding.details
    return d if isinstance(d, VulnerabilityDetails) else None
