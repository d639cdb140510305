"""Machine-readable renderings of compliance findings: JSON (schema-stable) and JUnit XML.

Kept free of Rich so the API and the webhook can reuse them; the CLI draws tables itself.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from stockade.compliance.junit import Case, junit_xml
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
    return junit_xml(name, (_case(f) for f in findings))


def _case(f: Finding) -> Case:
    suite = _detail(f, "benchmark") or "other"
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
    base = Case(suite=suite, classname=f.id, name=f.resource.display())
    if f.status == Status.FAIL:
        return replace(
            base,
            outcome="failure",
            message=f"{f.title} [{f.severity}]",
            type=str(f.severity),
            text=text,
        )
    if f.status == Status.ERROR:
        return replace(base, outcome="error", message=_detail(f, "reason") or f.title, text=text)
    if f.status in (Status.NOT_APPLICABLE, Status.INFO, Status.WARN):
        return replace(
            base, outcome="skipped", message=f"{f.status}: {_detail(f, 'reason') or f.title}"
        )
    return base
