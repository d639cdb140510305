"""Machine-readable renderings of a benchmark run: JSON and JUnit XML (the CLI draws tables)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from stockade.compliance.cis.engine import RunResult
from stockade.compliance.junit import Case, junit_xml
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
    return junit_xml(f"{result.benchmark.id} on {result.node_name}", map(_case, result.findings))


def _case(f: Finding) -> Case:
    text = "; ".join(
        x
        for x in (
            f"evidence: {_d(f, 'evidence')}" if _d(f, "evidence") else "",
            f"expected: {_d(f, 'expected')}" if _d(f, "expected") else "",
            str(_d(f, "reason")),
        )
        if x
    )
    base = Case(
        suite=str(_d(f, "section")) or "custom",
        classname=f.id,
        name=f"{_d(f, 'benchmark_id')} {f.title}".strip(),
    )
    if f.status is Status.FAIL:
        return replace(
            base,
            outcome="failure",
            message=f.title,
            type=str(f.severity),
            text=f"{text}\nremediation: {_d(f, 'remediation')}",
        )
    if f.status is Status.ERROR:
        return replace(base, outcome="error", message=str(_d(f, "reason")))
    if f.status in (Status.NOT_APPLICABLE, Status.INFO):
        return replace(base, outcome="skipped", message=f"{f.status}: {_d(f, 'reason')}")
    if f.status is Status.WARN:
        return replace(base, text=f"WARN: {text}")
    return base
