"""Framework data is well formed and points at real checks; evaluation picks the newest results."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from fnmatch import fnmatchcase

import pytest

from stockade.compliance.cis.loader import builtin
from stockade.compliance.frameworks import FRAMEWORKS, evaluate, load, parse
from stockade.compliance.frameworks.render import (
    REPORT_SCHEMA,
    report_dict,
    report_html,
    report_junit,
)
from stockade.compliance.interface import CheckDetails
from stockade.compliance.workloads import BY_ID, check_objects
from stockade.model import ConfigError, Finding, Pillar, ResourceRef, Severity, Status
from stockade.store import Store
from stockade.store.records import list_findings, record_findings

OURS = ("pss.", "cis.", "workload.")
NODE_IDS = [c.id for p in ("kubernetes", "docker") for c in builtin(p).checks]
PREFIXES = (
    "pss.",
    "cis.",
    "workload.",
    "vuln.",
    "dlp.",
    "tls.",
    "firewall.",
    "proto.",
    "secret.",
    "k8s.",
    "docker.",
    "pillar:",
    "bench:",
)


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_framework_selectors_name_real_checks(name: str) -> None:
    fw = load(name)
    ids = [r.id for r in fw.requirements]
    assert len(ids) == len(set(ids)), "duplicate requirement ids"
    assert any(not r.automated for r in fw.requirements), (
        "requirements without evidence must be listed"
    )
    for req in fw.requirements:
        for sel in req.selectors:
            assert sel.startswith(PREFIXES), (req.id, sel)
            if sel.startswith(OURS):
                assert any(fnmatchcase(c, sel) for c in BY_ID), (
                    f"{name} {req.id}: {sel} matches no check"
                )


def test_node_check_tags_name_known_requirements() -> None:
    """The CIS node checks tag their findings with framework requirements; each tag must exist."""
    known = {t for n in FRAMEWORKS for r in load(n).requirements for t in r.tags(n)}
    refs = {ref for p in ("kubernetes", "docker") for c in builtin(p).checks for ref in c.refs}
    assert refs and not refs - known


def test_every_workload_check_evidences_some_requirement() -> None:
    selectors = [s for n in FRAMEWORKS for r in load(n).requirements for s in r.selectors]
    unmapped = [c for c in BY_ID if not any(fnmatchcase(c, s) for s in selectors)]
    assert not unmapped


def test_parse_rejects_malformed_mappings() -> None:
    with pytest.raises(ConfigError, match="requirements list"):
        parse({"id": "x"}, "x")
    with pytest.raises(ConfigError, match="neither checks nor manual"):
        parse({"requirements": [{"id": "1", "title": "t"}]}, "x")
    with pytest.raises(ConfigError, match="list of strings"):
        parse({"requirements": [{"id": "1", "title": "t", "checks": "pss.*"}]}, "x")


def _node_finding(bench_id: str, status: Status) -> Finding:
    return Finding(
        id="k8s.apiserver.audit_log_path",
        pillar=Pillar.COMPLIANCE,
        title="Audit log path is set",
        severity=Severity.MEDIUM,
        resource=ResourceRef(kind="node", name="cp-1"),
        status=status,
        details=CheckDetails(
            benchmark="cis-kubernetes-1.12", benchmark_id=bench_id, evidence="--audit-log-path"
        ),
    )


PRIV = {
    "kind": "Pod",
    "metadata": {"name": "p", "namespace": "shop"},
    "spec": {
        "containers": [{"name": "c", "image": "x:1", "securityContext": {"privileged": True}}]
    },
}


def test_evaluate_uses_the_newest_run_of_each_family(sqlite_store: Store) -> None:
    record_findings(sqlite_store, check_objects([PRIV], profile="baseline"))
    record_findings(sqlite_store, [_node_finding("1.2.16", Status.FAIL)])
    fixed = {**PRIV, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}
    record_findings(sqlite_store, check_objects([fixed], profile="baseline"))
    report = evaluate(load("pci-dss"), list_findings(sqlite_store))
    by_id = {r.requirement.id: r for r in report.results}
    assert by_id["2.2.4"].status == "PASS"  # the privileged pod was fixed in the newer run
    assert by_id["10.2.1"].status == "FAIL"  # the node check (another family) is still current
    assert by_id["12.1.1"].status == "MANUAL"
    assert by_id["6.3.1"].status == "NOT_ASSESSED"  # no scan results stored
    assert by_id["10.2.1"].checks[0].failures[0]["resource"] == "node:cp-1"


def test_compliance_tags_on_findings_count_as_evidence(sqlite_store: Store) -> None:
    tagged = Finding(
        id="custom.thing",
        pillar=Pillar.COMPLIANCE,
        title="t",
        severity=Severity.LOW,
        resource=ResourceRef(kind="host", name="h"),
        status=Status.FAIL,
        compliance=("gdpr:Art. 32(1)(c)",),
    )
    record_findings(sqlite_store, [tagged])
    report = evaluate(load("gdpr"), list_findings(sqlite_store))
    (res,) = [r for r in report.results if r.requirement.id == "Art. 32(1)(c)"]
    assert res.status == "FAIL" and res.checks[0].id == "custom.thing"


def test_report_renderings_are_stable_and_valid(sqlite_store: Store) -> None:
    record_findings(sqlite_store, check_objects([PRIV]))
    report = evaluate(load("nist-800-190"), list_findings(sqlite_store))
    doc = report_dict(report)
    assert doc["schema"] == REPORT_SCHEMA
    assert set(doc) == {
        "schema",
        "framework",
        "generated_at",
        "findings_considered",
        "runs",
        "window",
        "events_considered",
        "summary",
        "requirements",
    }
    assert set(doc["summary"]) == {
        "FAIL",
        "ERROR",
        "PASS",
        "WARN",
        "NOT_ASSESSED",
        "MANUAL",
        "requirements",
    }
    for req in doc["requirements"]:
        assert set(req) == {
            "id",
            "title",
            "status",
            "reason",
            "automated",
            "selectors",
            "manual",
            "checks",
        }
        for c in req["checks"]:
            assert set(c) == {"id", "title", "severity", "counts", "failures"}
    json.dumps(doc)
    root = ET.fromstring(report_junit(report))
    assert root.tag == "testsuites" and len(root.findall("testsuite")) == len(report.results)
    assert (
        int(root.get("failures"))
        == sum(int(s.get("failures")) for s in root.findall("testsuite"))
        > 0
    )
    html = report_html(report)
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html and "http://" not in html
    assert "pss.baseline.privileged" in html and "4.5.2" in html


def test_reading_only_the_newest_runs_matches_reading_everything(any_store: Store) -> None:
    from stockade.compliance.frameworks.stored import current_findings, latest_runs

    first = record_findings(any_store, check_objects([PRIV], profile="baseline"))
    node = record_findings(any_store, [_node_finding("1.2.16", Status.FAIL)])
    fixed = {**PRIV, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}
    second = record_findings(any_store, check_objects([fixed], profile="baseline"))
    assert first not in latest_runs(any_store) and {node, second} <= set(latest_runs(any_store))
    fw = load("pci-dss")
    lean = {r.requirement.id: r.status for r in evaluate(fw, current_findings(any_store)).results}
    full = {r.requirement.id: r.status for r in evaluate(fw, list_findings(any_store)).results}
    assert lean == full and lean["2.2.4"] == "PASS" and lean["10.2.1"] == "FAIL"


def test_junit_survives_control_characters_from_manifests() -> None:
    from stockade.compliance.render import findings_junit

    obj = {
        "kind": "Pod",
        "metadata": {"name": "a\x01b", "namespace": "n"},
        "spec": {"hostPID": True, "containers": [{"name": "c", "image": "x\x02"}]},
    }
    root = ET.fromstring(findings_junit(check_objects([obj]), name="t"))
    assert any("a\ufffdb" in (c.get("name") or "") for c in root.iter("testcase"))
