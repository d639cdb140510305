"""Machine-readable renderings of a benchmark run: JSON and JUnit XML (the CLI draws tables)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

from stockade.compliance.cis.engine import RunResult
from stockade.model import Finding, Status

SCHEMA = "stockade.bench/v1"


def _d(f: Finding, key: str) -> Any:
    return getattr(f.details, key, "") if f.details is not None else ""


def to_dict(result: RunResult, run_id: str | None = None, *, selected: str = "") -> dict[str, Any]:
    """The report; ``selected`` says why this benchmark version was used."""
    b = result.benchmark
    return {
        "schema": SCHEMA,
        "run_id": run_id,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "benchmark": {
            "id": b.id,
            "title": b.title,
            "version": b.version,
            "platform": b.platform,
            "selected": selected,
        },
        "node": {
            "name": result.node_name,
            "roles": list(result.roles),
            "roles_detected": result.roles_detected,
            "process_source": result.process_source,
        },
        "summary": result.counts() | {"total": len(result.findings)},
        "seconds": round(result.seconds, 4),
        "results": [f.to_dict() for f in result.findings],
    }


def to_json(result: RunResult, run_id: str | None = None, *, selected: str = "") -> str:
    return json.dumps(to_dict(result, run_id, selected=selected), indent=2)


def to_junit(result: RunResult) -> str:
    """One testsuite per benchmark section, one testcase per check. FAIL is a failure, ERROR an
    error, NOT_APPLICABLE and INFO are skipped; WARN passes with its reason in system-out."""
    root = ET.Element("testsuites", name=f"{result.benchmark.id} on {result.node_name}")
    sections: dict[str, list[Finding]] = {}
    for f in result.findings:
        sections.setdefault(str(_d(f, "section")) or "custom", []).append(f)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for name, items in sections.items():
        suite = ET.SubElement(root, "testsuite", name=name)
        counts = {"tests": len(items), "failures": 0, "errors": 0, "skipped": 0}
        for f in items:
            case = ET.SubElement(
                suite, "testcase", classname=f.id, name=f"{_d(f, 'benchmark_id')} {f.title}".strip()
            )
            text = "; ".join(
                x
                for x in (
                    f"evidence: {_d(f, 'evidence')}" if _d(f, "evidence") else "",
                    f"expected: {_d(f, 'expected')}" if _d(f, "expected") else "",
                    str(_d(f, "reason")),
                )
                if x
            )
            if f.status is Status.FAIL:
                counts["failures"] += 1
                el = ET.SubElement(case, "failure", message=f.title, type=str(f.severity))
                el.text = f"{text}\nremediation: {_d(f, 'remediation')}"
            elif f.status is Status.ERROR:
                counts["errors"] += 1
                ET.SubElement(case, "error", message=str(_d(f, "reason")))
            elif f.status in (Status.NOT_APPLICABLE, Status.INFO):
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=f"{f.status}: {_d(f, 'reason')}")
            elif f.status is Status.WARN:
                ET.SubElement(case, "system-out").text = f"WARN: {text}"
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
    for k, v in totals.items():
        root.set(k, str(v))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
