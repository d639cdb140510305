"""Running a benchmark on a node: every check becomes one compliance Finding."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

from stockade.compliance.cis.audits import (
    AuditError,
    FactSet,
    NotApplicable,
    ProcessFacts,
    gather,
    run_script,
)
from stockade.compliance.cis.components import Resolver
from stockade.compliance.cis.model import Benchmark, Check, CheckType, Test, Tests
from stockade.compliance.cis.node import FileProblem, Node
from stockade.compliance.cis.operators import compare
from stockade.compliance.interface import CheckDetails
from stockade.model import Finding, Pillar, ResourceRef, Status
from stockade.model.progress import NullObserver, Observer

_MAX_OFFENDERS = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    benchmark: Benchmark
    node_name: str
    roles: tuple[str, ...]  # detected or given
    roles_detected: bool
    process_source: str
    findings: tuple[Finding, ...]
    seconds: float

    def counts(self) -> dict[str, int]:
        out = {str(s): 0 for s in Status}
        for f in self.findings:
            out[str(f.status)] += 1
        return out


def node_name(node: Node) -> str:
    if node.live:
        return socket.gethostname()
    try:
        name = node.read_text("/etc/hostname").strip()
    except FileProblem:
        name = ""
    return name or node.root.name


def run(
    benchmark: Benchmark,
    node: Node,
    *,
    roles: Sequence[str] | None = None,
    extra: Sequence[Check] = (),
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
    observer: Observer | None = None,
) -> RunResult:
    """Evaluate every check of ``benchmark`` (plus ``extra`` custom checks) on ``node``.

    ``roles`` overrides role detection; ``only``/``skip`` select checks by slug or benchmark
    number (a section number selects the whole section)."""
    started = time.perf_counter()
    observer = observer or NullObserver()
    resolver = Resolver(benchmark, node)
    detected = roles is None
    active = set(roles) if roles is not None else resolver.roles()
    name = node_name(node)
    resource = ResourceRef(
        kind="host" if benchmark.platform == "docker" else "node",
        name=name,
        labels=(("roles", ",".join(sorted(active))),),
    )
    checks = [c for c in (*benchmark.checks, *extra) if not only or _selected(c, only)]
    handle = observer.task(f"{benchmark.id} on {name}", total=len(checks))
    findings = []
    for check in checks:
        if _selected(check, skip):
            status, evidence, reason = Status.INFO, "", "skipped (--skip)"
        else:
            status, evidence, reason = evaluate(check, resolver, active, detected)
        findings.append(_finding(check, benchmark, resource, status, evidence, reason, resolver))
        observer.advance(handle)
    observer.finish(handle)
    return RunResult(
        benchmark=benchmark,
        node_name=name,
        roles=tuple(sorted(active)),
        roles_detected=detected,
        process_source=node.process_source,
        findings=tuple(findings),
        seconds=time.perf_counter() - started,
    )


def _selected(check: Check, patterns: Sequence[str]) -> bool:
    for p in patterns:
        if p in (check.id, check.benchmark_id):
            return True
        if check.benchmark_id.startswith(p + ".") or check.id.startswith(p + "."):
            return True
    return False


def evaluate(
    check: Check, resolver: Resolver, roles: set[str], detected: bool
) -> tuple[Status, str, str]:
    """(status, evidence, reason) for one check."""
    # why the check's component is absent, when the node says more than "not found" (k3s
    # keeping its data in SQLite: no etcd)
    absent = resolver.state(check.component).absent_reason if check.component else ""
    if check.role and check.role not in roles:
        how = "detected" if detected else "selected with --role"
        reason = f"node role {check.role} not {how} ({_roles(roles)})"
        return Status.NOT_APPLICABLE, "", f"{reason}: {absent}" if absent and detected else reason
    if check.component and not resolver.state(check.component).present:
        return (
            Status.NOT_APPLICABLE,
            "",
            absent or f"{check.component} is neither running nor declared on this node",
        )
    if check.applies_if and not any(
        resolver.node.exists(resolver.substitute(p)) for p in check.applies_if
    ):
        shown = ", ".join(resolver.substitute(p) for p in check.applies_if)
        return Status.NOT_APPLICABLE, "", f"not present: {shown}"
    if check.type is CheckType.SKIP:
        return Status.INFO, "", "not evaluated by this benchmark (marked skip)"
    audit = check.audit
    if audit is not None and audit.script:
        return _script(check, resolver)
    if audit is None:
        return Status.WARN, "", "manual check: review by hand"
    try:
        facts = gather(audit, resolver)
        if check.tests is None:
            reason = (
                "manual check: review the evidence"
                if check.type is CheckType.MANUAL
                else "no tests"
            )
            return Status.WARN, _summarise(facts), reason
        if check.not_applicable_if is not None:
            unfit, why = _judge(_resolved(check.not_applicable_if, resolver), facts)
            if not unfit:
                return Status.NOT_APPLICABLE, why, f"not applicable on this node: {why}"
        failed, evidence = _judge(
            _resolved(_tests_for(check, check.tests, resolver), resolver), facts
        )
        if check.type is CheckType.MANUAL:
            # the tests of a manual check only gather evidence; a person decides
            return Status.WARN, evidence, "manual check: review the evidence"
    except NotApplicable as exc:
        if check.missing == "fail" and check.type is CheckType.AUTOMATED:
            return _fail(check), "", str(exc)
        return Status.NOT_APPLICABLE, "", str(exc)
    except AuditError as exc:
        return Status.ERROR, "", str(exc)
    if not failed:
        return Status.PASS, evidence, ""
    return _fail(check), evidence, ""


def _tests_for(check: Check, tests: Tests, resolver: Resolver) -> Tests:
    """The check's ``tests``, or those it gives for the launcher its component runs inside."""
    if check.launcher_tests and check.component:
        launcher = resolver.state(check.component).launcher
        for bin_spec, own in check.launcher_tests:
            if bin_spec == launcher:
                return own
    return tests


def _resolved(tests: Tests, resolver: Resolver) -> Tests:
    """Tests with ``${comp.key}`` variables in their expected values replaced."""
    items: list[Test | Tests] = []
    for item in tests.items:
        if isinstance(item, Tests):
            items.append(_resolved(item, resolver))
        elif isinstance(item.value, str) and "${" in item.value:
            items.append(dataclasses.replace(item, value=resolver.substitute(item.value)))
        else:
            items.append(item)
    return dataclasses.replace(tests, items=tuple(items))


def _fail(check: Check) -> Status:
    return Status.FAIL if check.scored and check.type is CheckType.AUTOMATED else Status.WARN


def _roles(roles: set[str]) -> str:
    return (
        "roles: " + ", ".join(sorted(roles)) if roles else "no Kubernetes or Docker component found"
    )


def _judge(tests: Tests, facts: list[FactSet | ProcessFacts]) -> tuple[int, str]:
    """Evaluate the tests on every fact set; returns (number failing, evidence)."""
    failing: list[str] = []
    passing: list[str] = []
    for fs in facts:
        seen: list[str] = []
        ok = _holds(tests, fs, seen)
        line = (
            f"{fs.subject}: {'; '.join(dict.fromkeys(seen))}"
            if len(facts) > 1 or isinstance(fs, FactSet)
            else "; ".join(dict.fromkeys(seen))
        )
        (passing if ok else failing).append(line)
    shown = failing[:_MAX_OFFENDERS] if failing else passing[:_MAX_OFFENDERS]
    more = (len(failing) if failing else len(passing)) - len(shown)
    evidence = " | ".join(shown) + (f" | ... and {more} more" if more > 0 else "")
    if len(facts) > 1:
        evidence = (
            f"{len(failing)} of {len(facts)} failing: {evidence}"
            if failing
            else f"all {len(facts)} pass: {evidence}"
        )
    return len(failing), evidence


def _holds(tests: Tests | Test, fs: FactSet | ProcessFacts, seen: list[str]) -> bool:
    if isinstance(tests, Tests):
        results = [_holds(item, fs, seen) for item in tests.items]  # evaluate all: full evidence
        return all(results) if tests.combine == "and" else any(results)
    value, source = fs.get(tests)
    if tests.key == "text" and value is not None:
        source = f"contents of {fs.subject}"
    seen.append(source)
    unset = value is None or value == [] or value == ""
    if not tests.present:
        return unset
    if unset:
        return False
    if not tests.op:
        return True
    assert value is not None
    return compare(tests.op, value, tests.value)


def _summarise(facts: list[FactSet | ProcessFacts]) -> str:
    parts = []
    for fs in facts[:_MAX_OFFENDERS]:
        if isinstance(fs, FactSet):
            shown = {k: v for k, v in fs.values.items() if k not in ("text", "path")}
            parts.append(f"{fs.subject}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
        else:
            parts.append(fs.subject)
    return " | ".join(parts)


def _script(check: Check, resolver: Resolver) -> tuple[Status, str, str]:
    assert check.audit is not None
    try:
        code, out = run_script(check.audit.script, check.audit.timeout, str(resolver.node.root))
    except AuditError as exc:
        return Status.ERROR, "", str(exc)
    if code is None:
        return Status.ERROR, "", f"script {out}"
    evidence = f"exit {code}" + (f": {out}" if out else "")
    if code == 0:
        return Status.PASS, evidence, ""
    if code == 1:
        return _fail(check), evidence, ""
    return Status.ERROR, evidence, f"script exited with {code} (0 pass, 1 fail, other error)"


def _finding(
    check: Check,
    benchmark: Benchmark,
    resource: ResourceRef,
    status: Status,
    evidence: str,
    reason: str,
    resolver: Resolver,
) -> Finding:
    expected = check.tests.describe() if check.tests is not None else ""
    return Finding(
        id=check.id,
        pillar=Pillar.COMPLIANCE,
        title=check.title,
        severity=check.severity,
        resource=resource,
        status=status,
        details=CheckDetails(
            benchmark=benchmark.id if check.benchmark_id else "custom",
            benchmark_id=check.benchmark_id,
            section=check.section,
            level=check.level,
            scored=check.scored,
            evidence=evidence,
            expected=_sub(resolver, expected),
            remediation=_sub(resolver, check.remediation),
            reason=reason,
        ),
        compliance=check.refs,
    )


def _sub(resolver: Resolver, text: str) -> str:
    try:
        return resolver.substitute(text)
    except (KeyError, FileProblem):
        return text
