from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from stockade.model import ConfigError, Severity
from stockade.scanning.gate import Policy
from stockade.scanning.policy_files import load_ignore_file, load_vex, purl_base
from tests.scanning.scan_support import DIGEST, IMAGE, gate

TODAY = date(2026, 11, 27)


def by_id(result):
    return {g.finding.id: g for g in result.findings}


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_fail_on_counts_only_findings_at_or_above() -> None:
    assert gate(Policy(fail_on=Severity.CRITICAL)).failed
    res = gate(Policy(fail_on=Severity.HIGH))
    assert {g.finding.id for g in res.failing} == {
        "CVE-2024-0001",
        "CVE-2024-0002",
        "GHSA-35jh-r3h4-6jhm",
    }
    assert not gate(Policy()).failed  # no --fail-on: never fails
    assert gate(Policy(fail_on=Severity.LOW)).counts() == {
        "critical": 1,
        "high": 2,
        "medium": 1,
        "low": 1,
        "negligible": 0,
        "unknown": 0,
    }


def test_ignore_unfixed_suppresses_not_fixed_and_wont_fix() -> None:
    res = gate(Policy(fail_on=Severity.LOW, ignore_unfixed=True))
    sup = {g.finding.id: g.suppression for g in res.suppressed}
    assert set(sup) == {"CVE-2024-0002", "CVE-2024-0003"}
    assert all(s.by == "ignore-unfixed" for s in sup.values())
    assert "wont-fix" in sup["CVE-2024-0003"].reason
    assert len(res.findings) == 5  # kept, not dropped
    assert res.failed  # the fixed critical still fails


def test_ignore_file_by_alias_and_package(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        ".stockadeignore.yaml",
        """
ignore:
  - id: cve-2023-32681            # an alias, in any case
    reason: requests is not used for redirects
  - id: CVE-2024-0001
    package: pkg:deb/debian/openssl   # purl without version matches any version
    reason: patched in our base
    expires: 2027-01-01
  - id: CVE-2024-0002
    package: zlib1g                # other package: must not match libc6
    reason: wrong package
""",
    )
    rules = load_ignore_file(path)
    assert [r.line for r in rules] == [3, 5, 9]
    res = gate(Policy(fail_on=Severity.HIGH, ignore_rules=rules, today=TODAY))
    found = by_id(res)
    assert found["GHSA-j8r2-6x86-q33q"].suppression.reason == "requests is not used for redirects"
    assert found["CVE-2024-0001"].suppression.by == "ignore-file"
    assert found["CVE-2024-0001"].suppression.expires == date(2027, 1, 1)
    assert found["CVE-2024-0002"].active
    assert res.failed and not res.expired_rules


def test_expired_ignore_entry_no_longer_ignores_and_is_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "i.yaml",
        """ignore:
  - id: CVE-2024-0001
    reason: waiting for the vendor
    expires: 2026-11-26
  - id: CVE-2024-0002
    reason: still valid today
    expires: 2026-11-27
""",
    )
    res = gate(Policy(fail_on=Severity.CRITICAL, ignore_rules=load_ignore_file(path), today=TODAY))
    assert by_id(res)["CVE-2024-0001"].active
    assert by_id(res)["CVE-2024-0002"].suppression is not None  # expires at the end of the day
    assert [r.id for r in res.expired_rules] == ["CVE-2024-0001"]
    assert res.failed


def test_exact_purl_with_version(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "i.yaml",
        """ignore:
  - {id: CVE-2024-0001, package: "pkg:deb/debian/openssl@3.0.11-1~deb12u1", reason: this build}
  - {id: CVE-2024-0002, package: "pkg:deb/debian/libc6@2.0", reason: other build}
""",
    )
    found = by_id(gate(Policy(ignore_rules=load_ignore_file(path))))
    assert found["CVE-2024-0001"].suppression is not None
    assert found["CVE-2024-0002"].active


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ignore:\n  - id: CVE-1\n    package: x\n", "line 2: ignore.0.reason: Field required"),
        ("ignore:\n  - id: CVE-1\n    reason: r\n    expires: soon\n", "line 4: ignore.0.expires"),
        (
            "ignore:\n  - id: CVE-1\n    reason: r\n    reasn: typo\n",
            "line 4: ignore.0.reasn: Extra inputs",
        ),
        ("ignore:\n  - id: CVE-1\n    reason: ''\n", "line 3: ignore.0.reason"),
        ("ignore: [\n", "bad.yaml:2: invalid YAML"),
        ("- id: x\n", "line 1: expected a mapping"),
        ("version: 2\n", "line 1: version"),
    ],
)
def test_bad_ignore_files_name_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_ignore_file(path)
    assert expected in str(err.value)
    assert str(path) in str(err.value)


def test_missing_and_binary_policy_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_ignore_file(tmp_path / "nope.yaml")
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_vex(tmp_path / "bin")
    with pytest.raises(ConfigError, match="is a directory"):
        load_vex(tmp_path)
    assert load_ignore_file(write(tmp_path, "empty.yaml", "")) == ()


def vex_doc(*statements: dict) -> str:
    return json.dumps(
        {
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": "https://example.com/vex/1",
            "author": "Security Team",
            "timestamp": "2026-11-01T00:00:00Z",
            "version": 1,
            "statements": list(statements),
        },
        indent=2,
    )


def test_vex_statuses(tmp_path: Path) -> None:
    img_purl = f"pkg:oci/app@{DIGEST.replace(':', '%3A')}?repository_url={IMAGE}"
    path = write(
        tmp_path,
        "a.vex.json",
        vex_doc(
            {
                "vulnerability": {"name": "CVE-2024-0001"},
                "products": [{"@id": img_purl}],
                "status": "not_affected",
                "justification": "vulnerable_code_not_in_execute_path",
            },
            {
                "vulnerability": {"name": "CVE-2021-23337"},
                "products": [{"@id": f"{IMAGE}:1.0"}],
                "status": "fixed",
            },
            {
                "vulnerability": {"name": "CVE-2024-0002"},
                "products": [{"@id": f"{IMAGE}@{DIGEST}"}],
                "status": "under_investigation",
            },
            {
                "vulnerability": "CVE-2023-32681",
                "products": ["pkg:pypi/requests@2.25.0"],
                "status": "affected",
                "action_statement": "upgrade next sprint",
            },
        ),
    )
    res = gate(Policy(fail_on=Severity.MEDIUM, vex=load_vex(path)))
    found = by_id(res)
    crit = found["CVE-2024-0001"]
    assert crit.suppression.by == "vex" and crit.suppression.vex_status == "not_affected"
    assert crit.suppression.justification == "vulnerable_code_not_in_execute_path"
    assert found["GHSA-35jh-r3h4-6jhm"].suppression.vex_status == "fixed"  # by alias
    assert (
        found["CVE-2024-0002"].active and found["CVE-2024-0002"].vex_status == "under_investigation"
    )
    req = found["GHSA-j8r2-6x86-q33q"]
    assert req.active and req.vex_status == "affected" and "next sprint" in req.vex_note
    assert {g.finding.id for g in res.failing} == {"CVE-2024-0002", "GHSA-j8r2-6x86-q33q"}


def test_vex_for_another_image_or_package_does_not_apply(tmp_path: Path) -> None:
    other = "sha256:" + "cd" * 32
    path = write(
        tmp_path,
        "b.vex.json",
        vex_doc(
            {
                "vulnerability": {"name": "CVE-2024-0001"},
                "products": [{"@id": f"{IMAGE}@{other}"}],
                "status": "not_affected",
                "justification": "component_not_present",
            },
            {
                "vulnerability": {"name": "CVE-2024-0002"},
                "products": [{"@id": "pkg:deb/debian/glibc"}],
                "status": "not_affected",
                "impact_statement": "not this package",
            },
            {
                "vulnerability": {"name": "CVE-2024-0003"},
                "products": [
                    {"@id": f"{IMAGE}@{DIGEST}", "subcomponents": [{"@id": "pkg:deb/debian/libc6"}]}
                ],
                "status": "not_affected",
                "justification": "vulnerable_code_not_present",
            },
        ),
    )
    found = by_id(gate(Policy(vex=load_vex(path))))
    assert found["CVE-2024-0001"].active
    assert found["CVE-2024-0002"].active
    assert found["CVE-2024-0003"].suppression.vex_status == "not_affected"  # subcomponent matched


def test_newest_vex_statement_wins(tmp_path: Path) -> None:
    prod = [{"@id": f"{IMAGE}:1.0"}]
    path = write(
        tmp_path,
        "c.vex.json",
        vex_doc(
            {
                "vulnerability": {"name": "CVE-2024-0001"},
                "products": prod,
                "status": "affected",
                "timestamp": "2026-11-20T00:00:00Z",
            },
            {
                "vulnerability": {"name": "CVE-2024-0001"},
                "products": prod,
                "status": "not_affected",
                "justification": "component_not_present",
                "timestamp": "2026-11-10T00:00:00Z",
            },
        ),
    )
    g = by_id(gate(Policy(vex=load_vex(path))))["CVE-2024-0001"]
    assert g.active and g.vex_status == "affected"


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("{", "bad.json:1: invalid JSON"),
        ('{"statements": []}', "@context: Field required"),
        ('{"@context": "https://example.com", "statements": []}', "not an OpenVEX document"),
        (
            vex_doc(
                {"vulnerability": {"name": "CVE-1"}, "products": ["x"], "status": "not_affected"}
            ),
            "line 8: statements.0: Value error, a not_affected statement needs a justification",
        ),
        (
            vex_doc(
                {"vulnerability": {"name": "CVE-1"}, "products": ["x"], "status": "fixed"},
                {"vulnerability": {"name": "CVE-2"}, "products": ["x"], "status": "gone"},
            ),
            "statements.1.status",
        ),
        (
            vex_doc({"vulnerability": {"name": "CVE-1"}, "products": [], "status": "fixed"}),
            "statements.0.products",
        ),
        (
            vex_doc(
                {
                    "vulnerability": {"name": "CVE-1"},
                    "products": ["x"],
                    "status": "not_affected",
                    "justification": "because",
                }
            ),
            "statements.0.justification",
        ),
    ],
)
def test_bad_vex_documents(tmp_path: Path, doc: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_vex(write(tmp_path, "bad.json", doc))
    assert expected in str(err.value)


def test_vex_then_ignore_then_unfixed_order(tmp_path: Path) -> None:
    ign = write(tmp_path, "i.yaml", "ignore:\n  - {id: CVE-2024-0002, reason: accepted risk}\n")
    vex = write(
        tmp_path,
        "v.json",
        vex_doc(
            {
                "vulnerability": {"name": "CVE-2024-0002"},
                "products": [f"{IMAGE}:1.0"],
                "status": "fixed",
            }
        ),
    )
    g = by_id(
        gate(Policy(ignore_rules=load_ignore_file(ign), vex=load_vex(vex), ignore_unfixed=True))
    )
    assert g["CVE-2024-0002"].suppression.by == "vex"
    g = by_id(gate(Policy(ignore_rules=load_ignore_file(ign), ignore_unfixed=True)))
    assert g["CVE-2024-0002"].suppression.by == "ignore-file"
    assert g["CVE-2024-0003"].suppression.by == "ignore-unfixed"


def test_purl_base() -> None:
    assert (
        purl_base("pkg:deb/debian/openssl@3.0.11?arch=amd64&distro=debian-12")
        == "pkg:deb/debian/openssl"
    )
    assert purl_base("pkg:npm/%40babel/core@7.0.0") == "pkg:npm/@babel/core"
    assert purl_base("pkg:pypi/requests") == "pkg:pypi/requests"
