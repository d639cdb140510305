"""Images, vulnerabilities, CIS runs and framework reports through the controller: the real
``stockade scan`` of the sample image and ``stockade bench k8s`` of a fixture node, each with
``--controller``, against the real controller (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from stockade.model import StockadeError
from tests.api.controller import Controller
from tests.events.agents import agent_env, controller_args, stockade
from tests.support import require

# What the imported advisory records find in the sample image (tests/scanning/test_scan_cli_image)
MEDIUMS = {"CVE-2024-35195", "CVE-2024-3651", "CVE-2024-37891"}
WORKLOAD = "shop/api"


@pytest.fixture(scope="module")
def scanned(controller: Controller, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The sample image scanned by ``stockade scan image --controller``; its image entry."""
    from stockade.lab.samples import build_sample
    from tests.scanning.scan_cli_support import make_db

    try:
        sample = build_sample()
    except StockadeError as exc:
        require(False, f"cannot build the sample image: {exc}")
    tmp = tmp_path_factory.mktemp("agent")
    env = {**agent_env(tmp), "STOCKADE_DB": make_db(tmp / "advisories.db")}
    ref = f"oci:{sample.oci_dir}"
    out = stockade("scan", "image", ref, "--format", "json", *controller_args(controller), env=env)
    assert out.returncode == 0, out.stderr
    assert "controller: scan results uploaded (7 findings)" in out.stderr
    with controller.as_role("reader") as http:
        images = http.get("/api/v1/images").json()["items"]
    mine = [i for i in images if ref in i["names"]]
    assert len(mine) == 1, images
    return mine[0]


def test_a_scan_with_controller_lands_its_vulnerabilities(
    controller: Controller, scanned: dict[str, Any]
) -> None:
    assert scanned["digest"].startswith("sha256:")
    assert scanned["counts"]["medium"] == 3 and scanned["counts"]["low"] == 1
    assert scanned["fixable"]["medium"] == 3
    assert scanned["packages"] == 42 and scanned["complete"] is True
    with controller.as_role("reader") as http:
        detail = http.get(f"/api/v1/images/{scanned['digest']}").json()
    assert detail["packages"]["by_type"]["deb"] > 0 and detail["packages"]["unchecked"] == []
    vulns = detail["vulnerabilities"]["items"]
    assert {v["id"] for v in vulns if v["severity"] == "medium"} == MEDIUMS
    urllib3 = next(v for v in vulns if v["package"] == "urllib3")
    assert urllib3["fixed"] == "2.2.2" and urllib3["fixable"] is True
    assert "GHSA-34jh-p97f-mpxf" in urllib3["aliases"]


def test_filters_by_severity_and_fix(controller: Controller, scanned: dict[str, Any]) -> None:
    path = f"/api/v1/images/{scanned['digest']}"
    with controller.as_role("reader") as http:
        medium = http.get(path, params={"severity": "medium"}).json()["vulnerabilities"]
        unfixed = http.get(path, params={"fixable": "false"}).json()["vulnerabilities"]
        listed = http.get("/api/v1/vulnerabilities", params={"severity": "medium"}).json()
        first = http.get("/api/v1/vulnerabilities", params={"limit": 2}).json()
        bad = http.get(path, params={"severity": "dreadful"})
    assert {v["id"] for v in medium["items"]} == MEDIUMS
    assert unfixed["items"] and all(not v["fixable"] for v in unfixed["items"])
    assert {v["id"] for v in listed["items"]} >= MEDIUMS
    assert len(first["items"]) == 2 and first["next"] == 2  # pages
    assert bad.status_code == 400


def test_a_running_workload_of_the_image_is_affected(
    controller: Controller, scanned: dict[str, Any]
) -> None:
    running = f"registry.local/shop/api@{scanned['digest']}"
    summary = {"image": running, "counts": scanned["counts"], "images": {WORKLOAD: running}}
    with controller.as_role("operator") as http:
        assert http.post("/api/v1/scans/summary", json=summary).status_code == 202
    with controller.as_role("reader") as http:
        images = http.get("/api/v1/images").json()["items"]
        detail = http.get(f"/api/v1/images/{scanned['digest']}").json()
        vulns = http.get("/api/v1/vulnerabilities", params={"severity": "medium"}).json()
    assert next(i for i in images if i["digest"] == scanned["digest"])["workloads"] == [WORKLOAD]
    assert detail["workloads"] == [WORKLOAD]
    for v in vulns["items"]:
        if v["id"] in MEDIUMS:
            assert WORKLOAD in v["workloads"], v
            assert any(i["digest"] == scanned["digest"] for i in v["images"])


def test_an_upload_sent_again_is_stored_once(controller: Controller) -> None:
    body = {
        "run": "ab" * 16,
        "finished_at": "2026-12-01T10:00:00+00:00",
        "image": {"reference": "registry.local/twice:1", "digest": "sha256:" + "1" * 64},
        "packages": {"total": 1, "by_type": {"deb": 1}},
        "findings": [_vuln("CVE-2024-0001", "high", "openssl")],
    }
    with controller.as_role("agent") as http:
        first = http.post("/api/v1/scans", json=body)
        again = http.post("/api/v1/scans", json=body)
    assert first.status_code == 201 and first.json()["stored"] is True
    assert again.status_code == 201 and again.json()["stored"] is False
    with controller.as_role("reader") as http:
        detail = http.get("/api/v1/images/sha256:" + "1" * 64).json()
    assert detail["counts"]["high"] == 1 and len(detail["vulnerabilities"]["items"]) == 1
    with controller.as_role("reader") as http:
        assert http.get("/api/v1/images/sha256:" + "2" * 64).status_code == 404


def _vuln(cve: str, severity: str, package: str) -> dict[str, Any]:
    return {
        "id": cve,
        "pillar": "scanning",
        "title": f"{cve} in {package}",
        "severity": severity,
        "status": "FAIL",
        "resource": {"kind": "image", "name": "registry.local/twice:1"},
        "details": {
            "package": package,
            "package_type": "deb",
            "installed_version": "1.0",
            "fixed_version": "1.1",
            "fix_state": "fixed",
        },
        "compliance": [],
    }


@pytest.mark.root
def test_bench_with_controller_lands_cis_results_and_the_reports_reflect_them(
    controller: Controller, tmp_path: Path
) -> None:
    from tests.compliance.cis.fixtures import GOLDEN, build, load_spec

    require(os.geteuid() == 0, "fixture nodes set file owners with chown (needs root)")
    node = build(load_spec(GOLDEN / "k8s-apiserver-FAIL" / "node.yaml"), tmp_path / "node")
    env = agent_env(tmp_path)
    out = stockade("bench", "k8s", "--root", str(node), *controller_args(controller), env=env)
    assert out.returncode == 0, out.stderr
    assert "controller: CIS run results uploaded (97 findings)" in out.stderr
    with controller.as_role("reader") as http:
        runs = http.get("/api/v1/cis/runs").json()["items"]
        run = next(r for r in runs if r["node"] == "cp-1")
        assert run["benchmark"]["id"] == "cis-kubernetes-1.12" and run["checks"] == 97
        assert run["counts"]["FAIL"] >= 20 and run["worst"] == "critical"
        detail = http.get(f"/api/v1/cis/runs/{run['id']}").json()
        failed = http.get(f"/api/v1/cis/runs/{run['id']}", params={"status": "FAIL"}).json()
        report = http.get("/api/v1/compliance/pci-dss").json()
        html = http.get("/api/v1/compliance/pci-dss", params={"format": "html"})
        missing = http.get("/api/v1/cis/runs/" + "0" * 32)
    by_id = {r["id"]: r for r in detail["results"]}
    anon = by_id["k8s.apiserver.authorization_not_always_allow"]
    assert anon["status"] == "FAIL" and anon["number"] == "1.2.6"
    assert "--authorization-mode=AlwaysAllow" in anon["evidence"]
    assert len(detail["results"]) == 97
    assert {r["status"] for r in failed["results"]} == {"FAIL"}
    assert missing.status_code == 404
    assert run["id"] in report["runs"]
    checks = {c["id"]: c for r in report["requirements"] for c in r["checks"]}
    assert checks["k8s.apiserver.authorization_not_always_allow"]["counts"]["FAIL"] == 1
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "k8s.apiserver.authorization_not_always_allow" in html.text


def test_every_framework_reports_and_an_unknown_one_is_404(controller: Controller) -> None:
    with controller.as_role("reader") as http:
        for framework in ("pci-dss", "hipaa", "gdpr", "nist-800-190"):
            answer = http.get(f"/api/v1/compliance/{framework}")
            assert answer.status_code == 200, answer.text
            assert answer.json()["framework"]["id"] == framework
        assert http.get("/api/v1/compliance/sox").status_code == 404
        assert http.get("/api/v1/compliance/gdpr", params={"format": "pdf"}).status_code == 400
        assert http.get("/api/v1/compliance/gdpr", params={"since": "yesterday"}).status_code == 400
    json.dumps(answer.json())  # plain JSON


def test_the_agents_scan_summary_is_one_the_response_rules_evaluate(
    controller: Controller, scanned: dict[str, Any]
) -> None:
    from stockade.api.responses import scan_summary
    from tests.events.agents import controller_events

    done = [
        e
        for e in controller_events(controller, kind="scan.completed")
        if e["resource"] and e["resource"].get("digest") == scanned["digest"]
    ]
    assert len(done) == 1
    summary = scan_summary(done[0]["data"])  # before: "scan summary image: Field required"
    assert summary.reference == f"{scanned['names'][0]}@{scanned['digest']}"
    assert summary.fixable["medium"] == 3 and set(summary.ids) >= MEDIUMS
    assert "GHSA-9wx4-h78v-vm56" in summary.ids  # aliases as the advisories spell them
