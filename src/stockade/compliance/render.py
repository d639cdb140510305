"""Machine-readable renderings of compliance findings: JSON (schema-stable) and JUnit XML.

Kept free of Rich so the API and the webhook can reuse them; the CLI draws tables itself.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from stockade.compliance import xmltext
from stockade.model import Finding, Status

FINDINGS_SCHEMA = "stockade.compliance.findings/v1"


def summary(findings: Sequence[Finding]) -> dict[str, int]:
    counts = Counter(str(f.status) for f in findings)
    return {s.value: counts.get(s.value, 0) for s in Status} | {"total": len(findings)}


def findings_json(findings: Sequence[Finding], *, tool: str, profile: str | None = None) -> str:
    """``{"schema", "tool", "generated_at", "profile", "summary", "findings": [...]}``."""
    doc: dict[str, Any] = {
        "schema": FINDINGS_SCHEMA,
        "tool": tool,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "profile": profile,
        "summary": summary(findings),
        "findings": [f.to_dict() for f in findings],
    }
    return json.dumps(doc, indent=2, sort_keys=False)


def _detail(f: Finding, key: str) -> str:
    return str(getattr(f.details, key, "") or "") if f.details else ""


def findings_junit(findings: Sequence[Finding], *, name: str) -> str:
    """One ``testsuite`` per benchmark, one ``testcase`` per (check, resource)."""
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        groups.setdefault(_detail(f, "benchmark") or "other", []).append(f)
    root = ET.Element("testsuites", name=name)
    totals = Counter[str]()
    for bench, items in groups.items():
        suite = ET.SubElement(root, "testsuite", name=bench)
        counts = Counter[str]()
        for f in items:
            case = ET.SubElement(suite, "testcase", classname=f.id, name=f.resource.display())
            _outcome(case, f, counts)
        _count(suite, len(items), counts)
        totals.update(counts)
        totals["tests"] += len(items)
    _count(root, totals.pop("tests", 0), totals)
    return xmltext.tostring(root)


def _outcome(case: ET.Element, f: Finding, counts: Counter[str]) -> None:
    text = "\n".join(
        x
        for x in (
            _detail(f, "evidence"),
            _detail(f, "reason"),
            _detail(f, "location"),
            _detail(f, "remediation"),
        )
        if x
    )
    if f.status == Status.FAIL:
        el = ET.SubElement(
            case, "failure", message=f"{f.title} [{f.severity}]", type=str(f.severity)
        )
        el.text = text
        counts["failures"] += 1
    elif f.status == Status.ERROR:
        el = ET.SubElement(case, "error", message=_detail(f, "reason") or f.title)
        el.text = text
        counts["errors"] += 1
    elif f.status in (Status.NOT_APPLICABLE, Status.INFO, Status.WARN):
        ET.SubElement(case, "skipped", message=f"{f.status}: {_detail(f, 'reason') or f.title}")
        counts["skipped"] += 1


def _count(el: ET.Element, tests: int, counts: Counter[str]) -> None:
    el.set("tests", str(tests))
    for key in ("failures", "errors", "skipped"):
        el.set(key, str(counts.get(key, 0)))
