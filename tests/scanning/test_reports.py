from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from stockade.model import Severity
from stockade.scanning.gate import Policy
from stockade.scanning.policy_files import load_ignore_file, load_vex
from stockade.scanning.reports import renderer
from stockade.scanning.reports.cyclonedx import render_cyclonedx
from stockade.scanning.reports.json_report import render_json
from stockade.scanning.reports.sarif import render_sarif, security_severity
from stockade.scanning.reports.table import render_table
from tests.scanning.scan_support import (
    DIGEST,
    IMAGE,
    OPENSSL,
    finding,
    gate,
    report,
    sample_findings,
)

SARIF_SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())


def suppressing_policy(tmp_path: Path) -> Policy:
    (tmp_path / "ign.yaml").write_text(
        "ignore:\n  - {id: CVE-2024-0003, reason: accepted, expires: 2020-01-01}\n"
        "  - {id: CVE-2023-32681, reason: not reachable}\n"
    )
    (tmp_path / "v.json").write_text(
        json.dumps(
            {
                "@context": "https://openvex.dev/ns/v0.2.0",
                "statements": [
                    {
                        "vulnerability": {"name": "CVE-2024-0001"},
                        "products": [{"@id": f"{IMAGE}@{DIGEST}"}],
                        "status": "not_affected",
                        "justification": "vulnerable_code_not_in_execute_path",
                    },
                    {
                        "vulnerability": {"name": "CVE-2024-0002"},
                        "products": [{"@id": f"{IMAGE}:1.0"}],
                        "status": "under_investigation",
                    },
                ],
            }
        )
    )
    return Policy(
        fail_on=Severity.HIGH,
        ignore_rules=load_ignore_file(tmp_path / "ign.yaml"),
        vex=load_vex(tmp_path / "v.json"),
    )


def test_json_report_is_stable_and_keeps_suppressed(tmp_path: Path) -> None:
    rep = report(suppressing_policy(tmp_path))
    text = render_json(rep)
    assert text == render_json(rep)
    data = json.loads(text)
    assert data["schema"] == "stockade.scan/v1"
    assert data["target"]["manifest_digest"] == DIGEST
    assert data["summary"] == {
        "packages": 5,
        "findings": 5,
        "active": 3,
        "suppressed": 2,
        "by_severity": {
            "critical": 0,
            "high": 2,
            "medium": 0,
            "low": 1,
            "negligible": 0,
            "unknown": 0,
        },
    }
    assert data["policy"]["failed"] is True and data["policy"]["fail_on"] == "high"
    assert [e["id"] for e in data["policy"]["expired_ignores"]] == ["CVE-2024-0003"]
    sev = [f["severity"] for f in data["findings"]]
    assert sev == ["critical", "high", "high", "medium", "low"]  # worst first
    crit = data["findings"][0]
    assert crit["suppressed"]["by"] == "vex" and crit["suppressed"]["vex_status"] == "not_affected"
    assert crit["package"] == "openssl" and crit["fixed_version"] == "3.0.13-1~deb12u1"
    libc = next(f for f in data["findings"] if f["id"] == "CVE-2024-0002")
    assert libc["suppressed"] is None and libc["vex_status"] == "under_investigation"
    assert data["database"]["built"].startswith("2026-11-26")


def test_sarif_validates_against_the_2_1_0_schema(tmp_path: Path) -> None:
    data = json.loads(render_sarif(report(suppressing_policy(tmp_path))))
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(data)
    run = data["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert set(rules) == {
        "CVE-2024-0001",
        "CVE-2024-0002",
        "CVE-2024-0003",
        "GHSA-j8r2-6x86-q33q",
        "GHSA-35jh-r3h4-6jhm",
    }
    assert rules["CVE-2024-0001"]["properties"]["security-severity"] == "9.8"  # CVSS wins
    assert rules["GHSA-35jh-r3h4-6jhm"]["properties"]["security-severity"] == "8.0"  # by severity
    for res in run["results"]:
        assert run["tool"]["driver"]["rules"][res["ruleIndex"]]["id"] == res["ruleId"]
        uri = res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert not uri.startswith("/")
    by_rule = {r["ruleId"]: r for r in run["results"]}
    uri = by_rule["GHSA-j8r2-6x86-q33q"]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert uri["uri"] == "usr/lib/python3/dist-packages/requests-2.25.0.dist-info/METADATA"
    assert by_rule["CVE-2024-0001"]["suppressions"][0]["kind"] == "external"
    assert "suppressions" not in by_rule["CVE-2024-0002"]
    assert by_rule["CVE-2024-0001"]["level"] == "error"


def test_sarif_security_severity_of_a_cvss_v2_score_stays_high() -> None:
    """A v2 score is on v2's scale, where 10.0 is high: GitHub must not label it critical (the
    table says high); v3 scores are written as they are."""
    findings = [
        finding(
            "CVE-2014-0160",
            OPENSSL,
            Severity.HIGH,
            fixed="1.0.1g-1",
            cvss=10.0,
            vector="AV:N/AC:L/Au:N/C:C/I:C/A:C",
        ),
        finding(
            "CVE-2014-0224", OPENSSL, Severity.MEDIUM, cvss=6.8, vector="AV:N/AC:M/Au:N/C:P/I:P/A:P"
        ),
        *sample_findings()[:1],
    ]
    got = {g.finding.id: security_severity(g) for g in gate(findings=findings).findings}
    assert got == {"CVE-2014-0160": 8.9, "CVE-2014-0224": 6.8, "CVE-2024-0001": 9.8}


def test_sarif_schema_check_is_not_vacuous() -> None:
    data = json.loads(render_sarif(report()))
    data["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(SARIF_SCHEMA).validate(data)


def test_cyclonedx_validates_and_affects_refer_to_components(tmp_path: Path) -> None:
    text = render_cyclonedx(report(suppressing_policy(tmp_path)))
    errors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text, all_errors=True)
    assert errors is None, list(errors)
    bom = json.loads(text)
    assert bom["specVersion"] == "1.5"
    refs = {c["bom-ref"] for c in bom["components"]}
    libraries = [c for c in bom["components"] if c["type"] == "library"]
    assert len(libraries) == 5  # and the distribution as an operating-system component
    assert [c["name"] for c in bom["components"] if c["type"] == "operating-system"] == ["debian"]
    affected = [a["ref"] for v in bom["vulnerabilities"] for a in v["affects"]]
    assert len(affected) == 5 and set(affected) <= refs
    vulns = {v["id"]: v for v in bom["vulnerabilities"]}
    assert vulns["CVE-2024-0001"]["analysis"]["state"] == "not_affected"
    assert vulns["CVE-2024-0001"]["analysis"]["justification"] == "code_not_reachable"
    assert vulns["CVE-2024-0002"]["analysis"]["state"] == "in_triage"
    assert vulns["CVE-2024-0001"]["ratings"][0]["method"] == "CVSSv31"
    assert {r["id"] for r in vulns["GHSA-j8r2-6x86-q33q"]["references"]} == {
        "CVE-2023-32681",
        "PYSEC-2023-74",
    }
    assert bom["metadata"]["component"]["version"] == DIGEST


def test_cyclonedx_schema_check_is_not_vacuous() -> None:
    bom = json.loads(render_cyclonedx(report()))
    bom["vulnerabilities"][0]["ratings"][0]["severity"] = "catastrophic"
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(bom)) is not None


def test_table_sorted_with_summary(tmp_path: Path) -> None:
    text = render_table(report(suppressing_policy(tmp_path)), width=160)
    lines = text.splitlines()
    rows = [ln for ln in lines if "│" in ln and ("CVE" in ln or "GHSA" in ln)]
    assert [r.split("│")[1].strip() for r in rows] == ["HIGH", "HIGH", "LOW"]
    assert (
        "CVE-2024-0001" not in text.split("vulnerabilities in")[0]
    )  # suppressed: not in the table
    assert "3 vulnerabilities in 5 packages: 2 high, 1 low (2 suppressed)" in text
    assert "suppressed: 1 by ignore-file, 1 by vex" in text
    assert "expired ignore: CVE-2024-0003" in text
    assert "policy: FAIL (2 at or above high)" in text


def test_renderer_names() -> None:
    for name in ("table", "json", "sarif", "cyclonedx"):
        assert renderer(name)(report())
    from stockade.model import UsageError

    with pytest.raises(UsageError):
        renderer("xml")


def test_scan_cyclonedx_reads_back_whole() -> None:
    """One CycloneDX writer: what `scan --format cyclonedx` writes, the SBOM reader reads back with
    every package's layer, source package and locations (they were lost before)."""
    from dataclasses import replace

    from stockade.scanning.sbom.cyclonedx import from_dict

    base = report()
    inv = base.inventory
    packages = tuple(
        replace(p, source_name=f"{p.name}-src", source_version=p.version) for p in inv.packages
    )
    scanned = replace(base, inventory=replace(inv, packages=packages))
    back = from_dict(json.loads(render_cyclonedx(scanned)))

    def facts(pkgs):
        return sorted((p.name, p.version, p.layer, p.source_name, p.locations) for p in pkgs)

    assert facts(back.packages) == facts(packages)
