"""``stockade bench k8s|docker|processes`` end to end: formats, exit codes, the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from stockade.compliance.cis.node import capture
from stockade.store import open_store
from stockade.store.records import list_findings
from tests.compliance.cis.fixtures import GOLDEN, build, load_spec
from tests.support import require


def stockade(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockade", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _node(tmp_path: Path, folder: str) -> Path:
    require(os.geteuid() == 0, "fixture nodes set file owners with chown (needs root)")
    return build(load_spec(GOLDEN / folder / "node.yaml"), tmp_path / "node")


@pytest.mark.root
def test_json_report_is_stored(tmp_path: Path) -> None:
    node = _node(tmp_path, "k8s-apiserver-FAIL")
    db = f"sqlite:///{tmp_path / 's.db'}"
    out = stockade("bench", "k8s", "--root", str(node), "--format", "json", "--db", db)
    assert out.returncode == 0, out.stderr  # findings alone do not fail without --fail-on
    doc = json.loads(out.stdout)
    assert doc["benchmark"]["id"] == "cis-kubernetes-1.12"
    assert doc["benchmark"]["selected"].startswith("Kubernetes 1.33 (image tag in")
    assert doc["node"] == {
        "name": "cp-1",
        "roles": ["control-plane", "etcd", "worker"],
        "roles_detected": True,
        "process_source": str(node / ".stockade/processes.json"),
    }
    assert doc["summary"]["total"] == 97 and doc["summary"]["FAIL"] >= 20
    by_id = {r["id"]: r for r in doc["results"]}
    anon = by_id["k8s.apiserver.authorization_not_always_allow"]
    assert anon["status"] == "FAIL" and anon["severity"] == "critical"
    assert "--authorization-mode=AlwaysAllow" in anon["details"]["evidence"]
    assert anon["details"]["expected"] == (
        "--authorization-mode or {.authorizers.*.type} nothave AlwaysAllow"
    )
    assert "/etc/kubernetes/manifests/kube-apiserver.yaml" in anon["details"]["remediation"]
    store = open_store(db)
    rows = list_findings(store, run_id=doc["run_id"])
    store.close()
    assert len(rows) == 97
    row = next(r for r in rows if r["finding_id"] == "k8s.apiserver.authorization_not_always_allow")
    assert row["status"] == "FAIL" and row["pillar"] == "compliance"
    assert row["details"]["benchmark_id"] == "1.2.6" and "pci-dss:7.2.1" in row["compliance"]


@pytest.mark.root
def test_exit_codes(tmp_path: Path) -> None:
    node = str(_node(tmp_path, "k8s-apiserver-FAIL"))
    common = ["bench", "k8s", "--root", node, "--no-store", "-f", "json"]
    assert stockade(*common, "--fail-on", "critical").returncode == 1
    assert stockade(*common, "--fail-on-fail").returncode == 1
    assert stockade(*common, "--check", "1.1", "--fail-on-fail").returncode == 0  # files are fine
    assert (
        stockade(*common, "--check", "1.2.15", "--fail-on", "high").returncode == 0
    )  # low severity
    (Path(node) / "var/lib/kubelet/config.yaml").write_text("{{{")
    assert stockade(*common, "--check", "4.2").returncode == 0
    assert stockade(*common, "--check", "4.2", "--strict").returncode == 3


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--role", "kitchen"], 2, "unknown role"),
        (["--benchmark", "cis-9.9"], 2, "no kubernetes benchmark"),
        (["--fail-on", "urgent"], 2, "unknown severity"),
        (["--every", "soon"], 2, "bad duration"),
        (["--max-runs", "2"], 2, "--max-runs needs --every"),
        (["--root", "/nonexistent/node"], 3, "not a directory"),
        (["--processes", "/etc/hostname"], 3, "not valid JSON"),
    ],
)
def test_usage_and_input_errors_are_one_line(args: list[str], code: int, message: str) -> None:
    out = stockade("bench", "k8s", "--no-store", *args)
    assert out.returncode == code, out.stderr
    assert out.stderr.startswith("stockade: error:") and message in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_custom_checks_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "checks:\n  - {id: x, title: t, audit: {files: [/a]}, tests: {key: mode, like: 1}}\n"
    )
    out = stockade("bench", "docker", "--no-store", "--checks", str(bad))
    assert out.returncode == 2 and "unknown test key or operator 'like'" in out.stderr


@pytest.mark.root
def test_every_stores_each_run_and_junit(tmp_path: Path) -> None:
    node = _node(tmp_path, "docker-runtime-FAIL")
    db = f"sqlite:///{tmp_path / 's.db'}"
    report = tmp_path / "report.xml"
    out = stockade(
        "bench",
        "docker",
        "--root",
        str(node),
        "--db",
        db,
        "-f",
        "junit",
        "-o",
        str(report),
        "--every",
        "0.2s",
        "--max-runs",
        "2",
    )
    assert out.returncode == 0, out.stderr
    store = open_store(db)
    runs = {r["run_id"] for r in list_findings(store, pillar="compliance")}
    store.close()
    assert len(runs) == 2
    suites = ET.parse(report).getroot()
    assert suites.get("tests") == "117"
    assert int(suites.get("skipped") or 0) > 0
    privileged = suites.find(".//testcase[@classname='docker.runtime.privileged']")
    assert privileged is not None and privileged.find("system-out") is not None  # WARN: unscored


def test_table_on_this_host_and_process_capture(tmp_path: Path) -> None:
    out = stockade("bench", "k8s", "--no-store")
    assert out.returncode == 0 and "97 checks" in out.stdout and "NOT_APPLICABLE 97" in out.stdout
    cap = tmp_path / "procs.json"
    assert stockade("bench", "processes", "--env", "none", "-o", str(cap)).returncode == 0
    doc = json.loads(cap.read_text())
    assert doc["format"] == "stockade-processes/1"
    assert any(p["pid"] == os.getpid() for p in doc["processes"])
    assert all("env" not in p for p in doc["processes"])
    audit = stockade("bench", "processes")
    me = next(p for p in json.loads(audit.stdout)["processes"] if p["pid"] == os.getpid())
    assert "PATH" not in me["env"]  # only audit-relevant variables by default
    everything = stockade("bench", "processes", "--env", "all")
    me = next(p for p in json.loads(everything.stdout)["processes"] if p["pid"] == os.getpid())
    assert "PATH" in me["env"]
    rerun = stockade("bench", "docker", "--no-store", "--processes", str(cap), "-f", "json")
    assert json.loads(rerun.stdout)["summary"]["ERROR"] == 0


def test_process_capture_keeps_k3s_settings_but_not_its_credentials() -> None:
    """The default capture keeps the K3S_* settings audits read, but not the join token or the
    password of a SQL datastore endpoint (the install script leaves both in k3s's environment):
    the captured file is handed around, and no audit reads a credential."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "K3S_TOKEN": "K10abc::server:s3cr3t-token",
        "K3S_AGENT_TOKEN": "agent-s3cr3t",
        "K3S_DATASTORE_ENDPOINT": "postgres://k3s:db-s3cr3t@db.example:5432/k3s",
        "K3S_DATASTORE_CAFILE": "/etc/k3s/db-ca.crt",
        "K3S_CLUSTER_INIT": "true",
    }
    child = subprocess.Popen(["sleep", "30"], env=env)
    try:
        procs = capture()["processes"]
        assert isinstance(procs, list)
        got = next(p for p in procs if p["pid"] == child.pid)["env"]
    finally:
        child.kill()
        child.wait()
    assert got == {
        "K3S_DATASTORE_ENDPOINT": "postgres://",
        "K3S_DATASTORE_CAFILE": "/etc/k3s/db-ca.crt",
        "K3S_CLUSTER_INIT": "true",
    }
    assert "s3cr3t" not in json.dumps(procs)
