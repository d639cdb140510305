from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from tests.admission.webhook import EXAMPLES


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockade", *args], capture_output=True, text=True, timeout=120
    )


def test_manifest_points_at_the_service_with_the_ca(tmp_path: Path) -> None:
    out = run(
        "admission",
        "manifest",
        "--cert-dir",
        str(tmp_path / "c"),
        "--namespace",
        "sec",
        "--failure-policy",
        "Fail",
        "--timeout",
        "3",
    )
    assert out.returncode == 0, out.stderr
    cfg = yaml.safe_load(out.stdout)
    hook = cfg["webhooks"][0]
    assert cfg["kind"] == "ValidatingWebhookConfiguration"
    assert (
        hook["sideEffects"] == "None"
        and hook["failurePolicy"] == "Fail"
        and hook["timeoutSeconds"] == 3
    )
    assert hook["clientConfig"]["service"] == {
        "namespace": "sec",
        "name": "stockade-admission",
        "path": "/validate",
        "port": 443,
    }
    assert (
        base64.b64decode(hook["clientConfig"]["caBundle"])
        == (tmp_path / "c" / "ca.crt").read_bytes()
    )
    excluded = hook["namespaceSelector"]["matchExpressions"][0]["values"]
    assert set(excluded) == {"kube-system", "sec"}
    resources = hook["rules"][0]["resources"]
    assert {"pods", "deployments", "cronjobs", "pods/ephemeralcontainers"} <= set(resources)
    certs = run("admission", "certs", "--cert-dir", str(tmp_path / "c"), "--namespace", "sec")
    assert (
        certs.stdout.encode() == (tmp_path / "c" / "ca.crt").read_bytes()
    )  # reused, not regenerated


def test_offline_tests_pass_and_a_wrong_expectation_fails(tmp_path: Path) -> None:
    ok = run("admission", "test", str(EXAMPLES))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "7 passed, 0 failed" in ok.stdout
    suite = tmp_path / "suite"
    shutil.copytree(EXAMPLES, suite)
    text = (
        (suite / "stockade-test.yaml")
        .read_text()
        .replace(
            "resource: Deployment/prod/pay\n    result: allow",
            "resource: Deployment/prod/pay\n    result: deny",
        )
    )
    (suite / "stockade-test.yaml").write_text(text)
    bad = run("admission", "test", str(suite), "--format", "json")
    assert bad.returncode == 1
    assert '"actual": "allow"' in bad.stdout


def test_bad_policy_is_a_configuration_error_with_its_line(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("spec:\n  rules:\n    - name: r\n      criteria:\n        privilegd: true\n")
    out = run("admission", "policy", "set", str(policy), "--db", str(tmp_path / "db.sqlite"))
    assert out.returncode == 2
    assert (
        f"{policy}:5" in out.stderr and "privilegd" in out.stderr and "Traceback" not in out.stderr
    )


def test_policy_is_kept_in_the_store(tmp_path: Path) -> None:
    db = str(tmp_path / "db.sqlite")
    assert "no-critical-vulnerabilities" in run("admission", "policy", "show", "--db", db).stdout
    out = run("admission", "policy", "set", str(EXAMPLES / "policy.yaml"), "--db", db)
    assert out.returncode == 0, out.stderr
    assert "no-log4shell" in run("admission", "policy", "show", "--db", db).stdout


def test_missing_test_dir_is_a_usage_error(tmp_path: Path) -> None:
    assert run("admission", "test", str(tmp_path / "nope")).returncode == 2
    (tmp_path / "empty").mkdir()
    assert run("admission", "test", str(tmp_path / "empty")).returncode == 2
