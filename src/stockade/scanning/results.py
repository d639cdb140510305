"""The outcome of one scan, as every report format reads it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from stockade.scanning.gate import GatedFinding, GateResult
from stockade.scanning.interface import Inventory, Unchecked, VulnerabilityDetails

if TYPE_CHECKING:
    from stockade.scanning.signatures import SignatureCheck

NOTHING_IDENTIFIED = (
    "no package identified: nothing was checked (a static binary, or an image without a "
    "package database?)"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseInfo:
    """The advisory data a scan used: when it was built and from what."""

    built: datetime | None
    sources: tuple[str, ...] = ()
    # A token every import or update of the advisory data changes (not shown in reports): what a
    # kept match is valid for (stockade.scanning.match_cache). None: data from before tokens.
    generation: str | None = None
    # What the user must do about the data (sources an earlier release imported that must be
    # imported again), one line each.
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanReport:
    inventory: Inventory
    gate: GateResult
    scanned_at: datetime
    database: DatabaseInfo | None = None
    tool_version: str = ""
    match_skipped: tuple[str, ...] = ()  # packages the matcher could not check, with reasons
    # Distribution releases and ecosystems the advisory data did not cover (see Matcher).
    unchecked: tuple[Unchecked, ...] = ()
    # Cosign signatures verified against the trust the scan was given (None: not asked for).
    signatures: SignatureCheck | None = None

    @property
    def unsigned(self) -> bool:
        """Signatures were verified and none counted."""
        return self.signatures is not None and not self.signatures.signed

    @property
    def skipped(self) -> tuple[str, ...]:
        return self.inventory.skipped + self.match_skipped

    @property
    def nothing_identified(self) -> bool:
        return not self.inventory.packages

    @property
    def incomplete(self) -> bool:
        """Part of the target (or all of it) was not checked: "no vulnerabilities" would lie."""
        return self.nothing_identified or bool(self.unchecked)

    @property
    def checked_packages(self) -> int:
        return len(self.inventory.packages) - sum(u.packages for u in self.unchecked)

    def coverage_lines(self) -> list[str]:
        """One line per thing the scan could not check, for every report format."""
        if self.nothing_identified:
            return [NOTHING_IDENTIFIED]
        return [u.line() for u in self.unchecked]

    @property
    def unchecked_failed(self) -> bool:
        """--fail-on was given, the scan is incomplete and --allow-unchecked was not."""
        gate = self.gate
        return gate.fail_on is not None and self.incomplete and not gate.allow_unchecked

    @property
    def exit_code(self) -> int:
        """3 for an incomplete scan under --fail-on, 1 for failing findings or an image not signed
        as the scan required, else 0."""
        if self.unchecked_failed:
            return 3
        return 1 if self.gate.failed or self.unsigned else 0

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
