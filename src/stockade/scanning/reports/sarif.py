"""SARIF 2.1.0 for GitHub code scanning and other SARIF consumers.

One rule per vulnerability id, one result per (vulnerability, package). GitHub ranks security
results by the rule's ``security-severity`` property (a CVSS-like number as a string), so it is set
from the highest CVSS score seen for that id, else from the severity. Result locations point at the
package's evidence file inside the image (``var/lib/dpkg/status``, a ``METADATA`` file, a jar).
Suppressed findings are written with a ``suppressions`` entry instead of being dropped.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from stockade.model import Severity
from stockade.scanning.advisories.cvss import is_v2
from stockade.scanning.gate import GatedFinding
from stockade.scanning.results import ScanReport, vuln

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://github.com/stockade-project/stockade"

# Midpoints of the CVSS bands GitHub uses to turn security-severity into a label.
_SEVERITY_SCORE = {
    Severity.CRITICAL: 9.5,
    Severity.HIGH: 8.0,
    Severity.MEDIUM: 5.5,
    Severity.LOW: 2.0,
    Severity.NEGLIGIBLE: 0.0,
    Severity.UNKNOWN: 0.0,
}
_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.NEGLIGIBLE: "note",
    Severity.UNKNOWN: "note",
}


def security_severity(g: GatedFinding) -> float:
    d = vuln(g)
    if d is not None and d.cvss_score is not None:
        score = round(float(d.cvss_score), 1)
        # A v2 score is on v2's scale (no critical band): capped so GitHub labels it as the
        # finding's severity says, high, not critical.
        return min(score, 8.9) if is_v2(d.cvss_vector) else score
    return _SEVERITY_SCORE[g.finding.severity]


def render_sarif(report: ScanReport) -> str:
    return json.dumps(sarif_dict(report), indent=2, ensure_ascii=False)


def sarif_dict(report: ScanReport) -> dict[str, Any]:
    ordered = report.ordered()
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for g in ordered:
        rid = g.finding.id
        if rid not in index:
            index[rid] = len(rules)
            rules.append(_rule(g))
        else:
            rule = rules[index[rid]]
            score = max(float(rule["properties"]["security-severity"]), security_severity(g))
            rule["properties"]["security-severity"] = f"{score:.1f}"
    results = [_result(report, g, index[g.finding.id]) for g in ordered]
    inv = report.inventory
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "stockade",
                "version": report.tool_version or "0",
                "informationUri": INFO_URI,
                "rules": rules,
            }
        },
        "automationDetails": {"id": f"stockade/image/{_automation_name(report)}/"},
        "invocations": [_invocation(report)],
        "results": results,
        "properties": {
            "target": inv.source,
            "manifestDigest": inv.image.manifest_digest if inv.image else None,
            "failed": report.gate.failed,
            "complete": not report.incomplete,
            "packages": len(inv.packages),
            "unchecked": [u.to_dict() for u in report.unchecked],
        },
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _invocation(report: ScanReport) -> dict[str, Any]:
    """What the scan could not check, as SARIF tool notifications (a consumer that sees no
    results must still learn that part of the target was never looked at)."""
    notes = [
        {
            "descriptor": {"id": "stockade.unchecked"},
            "level": "error" if report.unchecked_failed else "warning",
            "message": {"text": line},
        }
        for line in report.coverage_lines()
    ]
    return {"executionSuccessful": True, "toolExecutionNotifications": notes}


def _automation_name(report: ScanReport) -> str:
    inv = report.inventory
    if inv.image and inv.image.name:
        return inv.image.name
    return inv.source


def _rule(g: GatedFinding) -> dict[str, Any]:
    f = g.finding
    d = vuln(g)
    aliases = ", ".join(d.aliases) if d and d.aliases else ""
    help_text = f"{f.id}: {f.title}"
    if aliases:
        help_text += f"\nAliases: {aliases}"
    if d and d.urls:
        help_text += "\n" + "\n".join(d.urls)
    rule: dict[str, Any] = {
        "id": f.id,
        "name": _rule_name(f.id),
        "shortDescription": {"text": f"{f.id} ({f.severity})"},
        "fullDescription": {"text": f.title or f.id},
        "help": {"text": help_text, "markdown": _help_markdown(g)},
        "defaultConfiguration": {"level": _LEVEL[f.severity]},
        "properties": {
            "security-severity": f"{security_severity(g):.1f}",
            "tags": ["security", "vulnerability", str(f.severity)],
            "precision": "very-high",
        },
    }
    if d and d.urls:
        rule["helpUri"] = d.urls[0]
    return rule


def _rule_name(vid: str) -> str:
    return "".join(ch for ch in vid.title() if ch.isalnum()) or "Vulnerability"


def _help_markdown(g: GatedFinding) -> str:
    f = g.finding
    d = vuln(g)
    lines = [f"**{f.id}** ({f.severity})", "", f.title or ""]
    if d:
        lines += [
            "",
            "| Package | Installed | Fixed in |",
            "| --- | --- | --- |",
            f"| {d.package} | {d.installed_version} | {d.fixed_version or d.fix_state} |",
        ]
        if d.urls:
            lines += ["", *(f"- <{u}>" for u in d.urls)]
    return "\n".join(lines)


def _result(report: ScanReport, g: GatedFinding, rule_index: int) -> dict[str, Any]:
    f = g.finding
    d = vuln(g)
    target = report.inventory.source
    if d:
        fix = f"fixed in {d.fixed_version}" if d.fixed_version else f"no fix ({d.fix_state})"
        text = (
            f"{d.package} {d.installed_version} is affected by {f.id} "
            f"({f.severity}, {fix}) in {target}"
        )
    else:
        text = f"{f.id} ({f.severity}) in {target}"
    result: dict[str, Any] = {
        "ruleId": f.id,
        "ruleIndex": rule_index,
        "level": _LEVEL[f.severity],
        "message": {"text": text},
        "locations": _locations(report, g),
        "partialFingerprints": {"stockade/v1": _fingerprint(report, g)},
        "properties": {
            "severity": str(f.severity),
            "package": d.package if d else None,
            "installedVersion": d.installed_version if d else None,
            "fixedVersion": d.fixed_version if d else None,
            "purl": d.purl if d else None,
        },
    }
    if g.suppression is not None:
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": f"{g.suppression.by}: {g.suppression.reason}",
            }
        ]
    return result


def _locations(report: ScanReport, g: GatedFinding) -> list[dict[str, Any]]:
    d = vuln(g)
    paths = list(d.locations) if d and d.locations else []
    if not paths:
        # SARIF consumers need a file: fall back to the scanned target itself.
        paths = [report.inventory.source]
    out = []
    for p in paths[:10]:
        out.append(
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": _uri(p)},
                    "region": {"startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 1},
                },
                "message": {"text": f"evidence for {d.package if d else g.finding.id}"},
            }
        )
    return out


def _uri(path: str) -> str:
    """An image path as a relative URI reference (GitHub cannot map absolute file URIs)."""
    from urllib.parse import quote

    return quote(path.lstrip("/"), safe="/:@-._~!$&'()*+,;=")


def _fingerprint(report: ScanReport, g: GatedFinding) -> str:
    d = vuln(g)
    inv = report.inventory
    name = inv.image.name if inv.image and inv.image.name else inv.source
    key = "|".join([g.finding.id, d.package if d else "", d.installed_version if d else "", name])
    return hashlib.sha256(key.encode()).hexdigest()[:32]
