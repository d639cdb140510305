"""The human report: one Rich table of active findings, worst first, and a summary of counts."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table
from rich.text import Text

from stockade.model import Severity
from stockade.scanning.results import ScanReport, vuln

STYLES = {
    Severity.CRITICAL: "bold red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.NEGLIGIBLE: "dim",
    Severity.UNKNOWN: "dim",
}


def build_table(report: ScanReport) -> Table:
    table = Table(title=_title(report), title_justify="left", show_lines=False)
    for col in ("Severity", "ID", "Package", "Installed", "Fixed in", "Type"):
        table.add_column(col, overflow="fold")
    for g in report.ordered(active_only=True):
        d = vuln(g)
        sev = g.finding.severity
        table.add_row(
            Text(str(sev).upper(), style=STYLES[sev]),
            g.finding.id,
            d.package if d else g.finding.resource.name,
            d.installed_version if d else "",
            (d.fixed_version or f"({d.fix_state})") if d else "",
            d.package_type if d else "",
        )
    return table


def summary_lines(report: ScanReport) -> list[str]:
    gate = report.gate
    counts = gate.counts(active_only=True)
    parts = [f"{n} {name}" for name, n in counts.items() if n]
    packages = len(report.inventory.packages)
    checked = f" ({report.checked_packages} checked)" if report.unchecked else ""
    lines = [
        f"{len(gate.active)} vulnerabilities in {packages} packages{checked}"
        + (f": {', '.join(parts)}" if parts else "")
        + (f" ({len(gate.suppressed)} suppressed)" if gate.suppressed else "")
    ]
    lines += [f"NOT CHECKED: {line}" for line in report.coverage_lines()]
    if report.signatures is not None:
        lines.append(f"signatures: {report.signatures.summary()}")
        lines += [f"  rejected {line}" for line in report.signatures.rejected[:5]]
        lines += [
            f"attestation: {a.predicate_type} by {a.signer.text()}"
            for a in report.signatures.attestations
        ]
    by: dict[str, int] = {}
    for g in gate.suppressed:
        assert g.suppression is not None
        by[g.suppression.by] = by.get(g.suppression.by, 0) + 1
    if by:
        lines.append("suppressed: " + ", ".join(f"{n} by {k}" for k, n in sorted(by.items())))
    for rule in gate.expired_rules:
        lines.append(
            f"expired ignore: {rule.id} (expired {rule.expires}, {rule.source}:{rule.line}) "
            "no longer suppresses"
        )
    skipped = report.skipped
    for reason in skipped[:5]:
        lines.append(f"skipped: {reason}")
    if len(skipped) > 5:
        lines.append(f"skipped: {len(skipped) - 5} more (see the JSON report)")
    if report.database and report.database.built:
        lines.append(f"advisory database built {report.database.built:%Y-%m-%d %H:%M} UTC")
        lines += [f"warning: {w}" for w in report.database.warnings]
    else:
        lines.append("advisory database: EMPTY - no vulnerability data was used (--allow-stale-db)")
    if gate.fail_on is not None:
        verdict = "FAIL" if report.exit_code else "PASS"
        line = f"policy: {verdict} ({len(gate.failing)} at or above {gate.fail_on}"
        if report.unchecked_failed:
            line += "; incomplete scan, --allow-unchecked accepts it"
        elif report.incomplete:
            line += "; incomplete scan allowed by --allow-unchecked"
        lines.append(line + ")")
    return lines


def _title(report: ScanReport) -> str:
    inv = report.inventory
    title = inv.source
    if inv.image and inv.image.manifest_digest:
        title += f" ({inv.image.manifest_digest[:19]})"
    if inv.distro:
        title += f" · {inv.distro.pretty_name or inv.distro.id + ' ' + inv.distro.version_id}"
    return title


def render_table(report: ScanReport, *, width: int = 120, color: bool = False) -> str:
    buf = io.StringIO()
    console = Console(
        file=buf, width=width, force_terminal=color, no_color=not color, highlight=False
    )
    if report.gate.active:
        console.print(build_table(report))
    else:
        console.print(_title(report))
    for line in summary_lines(report):
        console.print(line, markup=False)
    return buf.getvalue()
