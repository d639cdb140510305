"""Judging a framework's requirements against the latest stored findings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stockade.compliance.frameworks.evidence import Window
from stockade.compliance.frameworks.model import Framework, Requirement, matches

# requirement outcomes, worst first
FAIL, ERROR, WARN, PASS = "FAIL", "ERROR", "WARN", "PASS"
NOT_ASSESSED, MANUAL = "NOT_ASSESSED", "MANUAL"
OUTCOMES = (FAIL, ERROR, WARN, PASS, NOT_ASSESSED, MANUAL)


@dataclass(slots=True, kw_only=True)
class CheckEvidence:
    """What one check (finding id) says toward one requirement."""

    id: str
    title: str
    severity: str
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)  # resource, evidence, location


@dataclass(slots=True, kw_only=True)
class RequirementResult:
    requirement: Requirement
    status: str
    checks: list[CheckEvidence]
    reason: str = ""  # why the requirement is NOT_ASSESSED or MANUAL


@dataclass(slots=True, kw_only=True)
class Report:
    framework: Framework
    results: list[RequirementResult]
    generated_at: datetime
    findings_considered: int
    runs: list[str]
    window: Window | None = None  # the period whose events were read as evidence
    events_considered: int = 0

    def summary(self) -> dict[str, int]:
        counts = Counter(r.status for r in self.results)
        return {o: counts.get(o, 0) for o in OUTCOMES} | {"requirements": len(self.results)}


def latest(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of the newest run of each family (pillar and benchmark): a check that was run
    again replaces its older results, while other families keep theirs."""
    rows = list(rows)
    newest: dict[tuple[str, str], tuple[Any, int, str]] = {}
    for r in rows:
        fam = _family(r)
        key = (_aware(r["at"]), r.get("pk") or 0, r["run_id"])
        if fam not in newest or key[:2] > newest[fam][:2]:
            newest[fam] = key
    keep = {(fam, v[2]) for fam, v in newest.items()}
    return [r for r in rows if (_family(r), r["run_id"]) in keep]


def _family(row: dict[str, Any]) -> tuple[str, str]:
    return str(row.get("pillar")), str((row.get("details") or {}).get("benchmark") or "")


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _selected(req: Requirement, framework_id: str, row: dict[str, Any]) -> bool:
    tags = row.get("compliance") or []
    if isinstance(tags, list) and not req.tags(framework_id).isdisjoint(map(str, tags)):
        return True
    return any(matches(s, row) for s in req.selectors)


def evaluate(
    framework: Framework,
    rows: Iterable[dict[str, Any]],
    *,
    evidence: Iterable[dict[str, Any]] = (),
    window: Window | None = None,
    max_failures: int = 200,
) -> Report:
    """One result per requirement from the latest stored findings and the evidence rows that
    events of ``window`` gave (``evidence.rows_from_events``)."""
    current = latest(rows)
    from_events = list(evidence)
    results = []
    for req in framework.requirements:
        checks: dict[str, CheckEvidence] = {}
        for row in (*current, *from_events):
            if not _selected(req, framework.id, row):
                continue
            ev = checks.setdefault(
                row["finding_id"],
                CheckEvidence(id=row["finding_id"], title=row["title"], severity=row["severity"]),
            )
            ev.counts[row["status"]] += 1
            if row["status"] in (FAIL, ERROR, WARN) and len(ev.failures) < max_failures:
                details = row.get("details") or {}
                ev.failures.append(
                    {
                        "status": row["status"],
                        "resource": _display(row.get("resource") or {}),
                        "evidence": details.get("evidence") or details.get("reason") or "",
                        "location": details.get("location") or "",
                    }
                )
        status, reason = _status(req, checks, window)
        results.append(
            RequirementResult(
                requirement=req,
                status=status,
                checks=sorted(checks.values(), key=_worst_first),
                reason=reason,
            )
        )
    return Report(
        framework=framework,
        results=results,
        generated_at=datetime.now(UTC),
        findings_considered=len(current),
        runs=sorted({r["run_id"] for r in current}),
        window=window,
        events_considered=len(from_events),
    )


def _status(
    req: Requirement, checks: dict[str, CheckEvidence], window: Window | None
) -> tuple[str, str]:
    """The requirement's outcome and, when it is not judged, why. PASS needs evidence that
    passed: checks that were all not applicable (or only informational) assess nothing."""
    total: Counter[str] = Counter()
    for c in checks.values():
        total.update(c.counts)
    if total["FAIL"]:
        return FAIL, ""
    if total["ERROR"]:
        return ERROR, ""
    if total["WARN"]:
        return WARN, ""  # a manual or unscored check that did not pass: someone has to look
    if total["PASS"]:
        return PASS, ""
    if not req.automated:
        return MANUAL, "no automated evidence: " + req.manual
    if checks:
        counted = ", ".join(f"{n} {k.lower().replace('_', ' ')}" for k, n in sorted(total.items()))
        return (
            NOT_ASSESSED,
            f"{len(checks)} mapped checks ran and none passed or failed ({counted})",
        )
    where = f" or events from {window.text()}" if window else ""
    return NOT_ASSESSED, f"no stored results{where} for its checks"


def _worst_first(c: CheckEvidence) -> tuple[int, str]:
    rank = next((i for i, s in enumerate((FAIL, ERROR, WARN)) if c.counts.get(s)), 3)
    return rank, c.id


def _display(res: dict[str, Any]) -> str:
    ns = f"{res['namespace']}/" if res.get("namespace") else ""
    return f"{res.get('kind', '?')}:{ns}{res.get('name', '?')}"
