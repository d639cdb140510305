"""The JSON report (``schema: stockade.scan/v1``), documented in docs/scanning.md.

Stable: keys never change meaning within v1, findings are ordered worst first then by id and
package, and suppressed findings stay in the list with ``suppressed`` set.
"""

from __future__ import annotations

import json
from typing import Any

from stockade.scanning.gate import GatedFinding
from stockade.scanning.interface import Inventory
from stockade.scanning.results import ScanReport

SCHEMA = "stockade.scan/v1"


def report_dict(report: ScanReport) -> dict[str, Any]:
    gate = report.gate
    return {
        "schema": SCHEMA,
        "tool": {"name": "stockade", "version": report.tool_version},
        "scanned_at": report.scanned_at.isoformat(),
        "target": target_dict(report.inventory),
        "database": (
            {
                "built": report.database.built.isoformat() if report.database.built else None,
                "sources": list(report.database.sources),
                "warnings": list(report.database.warnings),
            }
            if report.database
            else None
        ),
        "summary": {
            "packages": len(report.inventory.packages),
            "findings": len(gate.findings),
            "active": len(gate.active),
            "suppressed": len(gate.suppressed),
            "by_severity": gate.counts(active_only=True),
        },
        "policy": {
            "fail_on": str(gate.fail_on) if gate.fail_on is not None else None,
            "ignore_unfixed": gate.ignore_unfixed,
            "failed": gate.failed,
            "failing": len(gate.failing),
            "expired_ignores": [r.to_dict() for r in gate.expired_rules],
            "allow_unchecked": gate.allow_unchecked,
            "incomplete_failed": report.unchecked_failed,
        },
        "coverage": {
            "packages": len(report.inventory.packages),
            "checked": report.checked_packages,
            "complete": not report.incomplete,
            "nothing_identified": report.nothing_identified,
            "unchecked": [u.to_dict() for u in report.unchecked],
            "notes": report.coverage_lines(),
        },
        "skipped": list(report.skipped),
        "signatures": report.signatures.as_dict() if report.signatures else None,
        "findings": [finding_dict(g) for g in report.ordered()],
    }


def target_dict(inv: Inventory) -> dict[str, Any]:
    img = inv.image
    distro = inv.distro
    return {
        "source": inv.source,
        "name": img.name if img else None,
        "tag": img.tag if img else None,
        "manifest_digest": img.manifest_digest if img else None,
        "config_digest": img.config_digest if img else None,
        "platform": img.platform if img else None,
        "layers": {"read": inv.read_layers, "cached": inv.cached_layers},
        "distro": (
            {
                "id": distro.id,
                "version_id": distro.version_id,
                "pretty_name": distro.pretty_name,
                # the Ubuntu FIPS streams its FIPS builds were matched against (none: every one)
                "fips_streams": list(distro.fips_streams),
            }
            if distro
            else None
        ),
    }


def finding_dict(g: GatedFinding) -> dict[str, Any]:
    f = g.finding
    out: dict[str, Any] = {
        "id": f.id,
        "title": f.title,
        "severity": str(f.severity),
        "resource": f.resource.to_dict(),
    }
    out.update(f.details.to_dict() if f.details else {})
    out["vex_status"] = g.vex_status
    sup = g.suppression
    out["suppressed"] = (
        {
            "by": sup.by,
            "reason": sup.reason,
            "source": sup.source or None,
            "expires": sup.expires.isoformat() if sup.expires else None,
            "vex_status": sup.vex_status,
            "justification": sup.justification,
        }
        if sup
        else None
    )
    return out


def render_json(report: ScanReport) -> str:
    return json.dumps(report_dict(report), indent=2, sort_keys=False, ensure_ascii=False)
