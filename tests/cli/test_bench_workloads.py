"""``stockade bench workloads`` and ``stockade report compliance`` end to end, in subprocesses."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from tests.support import require

GOLDEN = Path(__file__).resolve().parents[1] / "compliance" / "workloads" / "golden"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockade", *args],
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
    )


def test_clean_manifests_exit_0_and_json_is_schema_stable(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    out = run(
        "bench",
        "workloads",
        str(GOLDEN / "cis.netpol.namespace_missing-PASS"),
        "-f",
        "json",
        "--db",
        db,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc) == {"schema", "tool", "generated_at", "profile", "summary", "findings"}
    assert doc["schema"] == "stockade.compliance.findings/v1" and doc["profile"] == "restricted"
    assert doc["summary"]["FAIL"] == 0 and doc["summary"]["PASS"] == doc["summary"]["total"] > 20
    f = doc["findings"][0]
    assert set(f) == {
        "id",
        "pillar",
        "title",
        "severity",
        "status",
        "resource",
        "details",
        "compliance",
    }
    assert {"benchmark", "benchmark_id", "evidence", "expected", "remediation", "location"} <= set(
        f["details"]
    )


def test_fail_on_threshold_and_junit(tmp_path: Path) -> None:
    folder = str(GOLDEN / "pss.baseline.privileged-FAIL")
    db = ["--db", str(tmp_path / "s.db")]
    assert run("bench", "workloads", folder, "--profile", "baseline", *db).returncode == 0
    assert (
        run(
            "bench", "workloads", folder, "--profile", "baseline", "--fail-on", "critical", *db
        ).returncode
        == 1
    )
    out = run(
        "bench",
        "workloads",
        folder,
        "--fail-on",
        "high",
        "-f",
        "junit",
        "-o",
        str(tmp_path / "j.xml"),
        *db,
    )
    assert out.returncode == 1 and out.stdout == ""
    root = ET.parse(tmp_path / "j.xml").getroot()
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert {"pss-baseline", "pss-restricted", "cis-kubernetes-5", "stockade-workloads"} <= set(
        suites
    )
    failure = suites["pss-baseline"].find("testcase[@classname='pss.baseline.privileged']/failure")
    assert failure is not None and "privileged=true" in failure.text


def test_stdin_malformed_input_and_usage_errors(tmp_path: Path) -> None:
    db = ["--db", str(tmp_path / "s.db")]
    text = (GOLDEN / "pss.baseline.host_ports-FAIL" / "manifest.yaml").read_text()
    out = run("bench", "workloads", "-", "--profile", "baseline", "-f", "json", *db, stdin=text)
    assert out.returncode == 0
    assert any(
        f["id"] == "pss.baseline.host_ports" and f["status"] == "FAIL"
        for f in json.loads(out.stdout)["findings"]
    )
    (tmp_path / "bad.yaml").write_text("kind: Pod\nmetadata: {name: [\n")
    bad = run("bench", "workloads", str(tmp_path / "bad.yaml"), *db)
    assert bad.returncode == 3 and "invalid YAML" in bad.stdout and "Traceback" not in bad.stderr
    missing = run("bench", "workloads", str(tmp_path / "nope"), *db)
    assert missing.returncode == 3 and missing.stderr.startswith("stockade: error:")
    assert run("bench", "workloads", *db).returncode == 2
    assert run("bench", "workloads", str(tmp_path), "--fail-on", "dreadful", *db).returncode == 2
    assert run("bench", "workloads", str(tmp_path), "--profile", "strict", *db).returncode == 2


def test_findings_are_stored_and_reported(tmp_path: Path) -> None:
    db = ["--db", str(tmp_path / "s.db")]
    assert run("bench", "workloads", str(GOLDEN), "--profile", "baseline", *db).returncode == 0
    out = run("report", "compliance", "--framework", "nist-800-190", "-f", "json", *db)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    status = {r["id"]: r["status"] for r in doc["requirements"]}
    assert (
        status["4.5.2"] == "FAIL"
        and status["4.1.3"] == "MANUAL"
        and status["4.1.1"] == "NOT_ASSESSED"
    )
    table = run("report", "compliance", "--framework", "hipaa", *db)
    assert table.returncode == 0 and "164.312(a)(1)" in table.stdout
    assert run("report", "compliance", "--framework", "pci-dss", "--fail", *db).returncode == 1
    junit = run("report", "compliance", "--framework", "gdpr", "-f", "junit", *db)
    assert ET.fromstring(junit.stdout).tag == "testsuites"
    assert run("report", "compliance", "--framework", "sox", *db).returncode == 2


def test_html_report_renders_in_chromium(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    require(browser is not None, "chromium is not installed (apt-get install chromium)")
    db = ["--db", str(tmp_path / "s.db")]
    assert run("bench", "workloads", str(GOLDEN), *db).returncode == 0
    html = tmp_path / "pci.html"
    assert (
        run(
            "report", "compliance", "--framework", "pci-dss", "-f", "html", "-o", str(html), *db
        ).returncode
        == 0
    )
    png = tmp_path / "pci.png"
    shot = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1280,2000",
            f"--screenshot={png}",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert png.exists() and png.stat().st_size > 20_000, shot.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("fmt", ["table", "json", "junit"])
def test_unwritable_output_is_a_clean_error(tmp_path: Path, fmt: str) -> None:
    out = run(
        "bench",
        "workloads",
        str(GOLDEN / "pss.baseline.privileged-PASS"),
        "-f",
        fmt,
        "-o",
        str(tmp_path / "missing" / "out"),
        "--db",
        str(tmp_path / "s.db"),
    )
    assert out.returncode == 3 and out.stderr.startswith("stockade: error: cannot write")


def test_live_cluster_through_kubeconfig(tmp_path: Path) -> None:
    from tests.compliance.workloads.kube_server import TOKEN, make_pki, serve
    from tests.compliance.workloads.test_kubeapi import CLUSTER, KINDS, b64, kubeconfig

    pki = make_pki()
    db = ["--db", str(tmp_path / "s.db")]
    with serve(pki, tmp_path, CLUSTER, KINDS) as url:
        cfg = kubeconfig(
            tmp_path, url, {"token": TOKEN}, {"certificate-authority-data": b64(pki.ca_pem)}
        )
        out = run("bench", "workloads", "--kubeconfig", str(cfg), "-f", "json", *db)
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        failed = {
            (f["id"], f["resource"]["name"]) for f in doc["findings"] if f["status"] == "FAIL"
        }
        assert ("pss.baseline.privileged", "web-0") in failed
        assert all(f["details"]["location"] == "cluster:test" for f in doc["findings"])
        both = run("bench", "workloads", str(tmp_path), "--kubeconfig", str(cfg), *db)
        assert both.returncode == 2
        (tmp_path / "bad").mkdir()
        bad = kubeconfig(
            tmp_path / "bad",
            url,
            {"token": "wrong"},
            {"certificate-authority-data": b64(pki.ca_pem)},
        )
        refused = run("bench", "workloads", "--kubeconfig", str(bad), *db)
        assert refused.returncode == 3 and "HTTP 401" in refused.stderr


def test_markup_in_manifests_is_printed_literally(tmp_path: Path) -> None:
    text = (GOLDEN / "pss.baseline.privileged-FAIL" / "manifest.yaml").read_text()
    text = text.replace("name: myapp-pod", "name: '[red]x[/red]'")
    report = tmp_path / "table.txt"
    out = run(
        "bench",
        "workloads",
        "-",
        "--profile",
        "baseline",
        "--no-store",
        "-o",
        str(report),
        stdin=text,
    )
    assert out.returncode == 0 and "pod:shop/[red]x[/red]" in report.read_text()
