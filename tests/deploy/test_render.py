"""One source of truth: the Kustomize overlays and ``stockade deploy manifests`` give the same
objects, the webhook is the one ``stockade admission manifest`` prints, and every object is valid
for the Kubernetes API (offline schemas of kubernetes-validate)."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from stockade.admission.manifest import webhook_configuration
from stockade.cli.app import app
from stockade.deploy.render import Options, base_objects, render
from stockade.model.errors import UsageError
from tests.deploy.rendered import OVERLAYS, REPO, kustomize, make_ca, python
from tests.support import require

KUBERNETES_VERSIONS = ("1.28.0", "1.30.0", "1.33.0")


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def _normal(objects: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Objects by kind/namespace/name, base64 fields decoded (Kustomize wraps its lines)."""
    out = {}
    for obj in objects:
        obj = yaml.safe_load(yaml.safe_dump(obj))
        for name, value in (obj.get("data") or {}).items():
            obj["data"][name] = base64.b64decode(value)
        for hook in obj.get("webhooks", []):
            if "caBundle" in hook["clientConfig"]:
                hook["clientConfig"]["caBundle"] = base64.b64decode(
                    hook["clientConfig"]["caBundle"]
                )
        out[_key(obj)] = obj
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomize_overlay_equals_deploy_manifests(overlay, tmp_path):
    ca = make_ca(tmp_path / "tls")
    assert _normal(kustomize(overlay, tmp_path, ca)) == _normal(python(ca, overlay))


def test_base_is_the_package_data(tmp_path):
    """deploy/base is the package's folder, so a wheel ships what Kustomize reads."""
    require(shutil.which("kubectl") is not None, "kubectl (kustomize) is not installed")
    assert (REPO / "deploy" / "base").resolve() == (REPO / "src/stockade/deploy/base").resolve()
    out = subprocess.run(
        ["kubectl", "kustomize", str(REPO / "deploy" / "base")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert _normal([d for d in yaml.safe_load_all(out) if d]) == _normal(base_objects())


def test_webhook_is_what_admission_manifest_prints():
    hook = next(o for o in base_objects() if o["kind"] == "ValidatingWebhookConfiguration")
    expected = webhook_configuration(ca_pem=b"x", failure_policy="Ignore")
    del expected["webhooks"][0]["clientConfig"]["caBundle"]
    assert hook == expected


def _variants(tmp_path) -> dict[str, list[dict[str, Any]]]:
    ca = make_ca(tmp_path / "tls")
    out = {f"kustomize {o}": kustomize(o, tmp_path, ca) for o in OVERLAYS}
    out |= {f"python {o}": python(ca, o) for o in OVERLAYS}
    out["python other namespace"] = python(
        ca, "production", namespace="sec-tools", controller_replicas=3, image="r.example/s:1.2"
    )
    return out


def test_every_rendered_object_validates_offline(tmp_path):
    for name, objects in _variants(tmp_path).items():
        for obj in objects:
            for version in KUBERNETES_VERSIONS:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except kubernetes_validate.ValidationError as exc:  # pragma: no cover - message
                    pytest.fail(f"{name}: {_key(obj)} on {version}: {exc}")


def test_schema_validation_catches_a_wrong_object():
    """The validator is really checking (strict: unknown fields too)."""
    pod_spec = next(o for o in base_objects() if o["kind"] == "DaemonSet")
    pod_spec["spec"]["template"]["spec"]["hostNetwrk"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod_spec, "1.30.0", strict=True)


def test_namespace_replicas_and_images(tmp_path):
    ca = make_ca(tmp_path / "tls")
    objects = python(
        ca, "production", namespace="sec-tools", controller_replicas=3, image="r.example/s:1.2"
    )
    text = yaml.safe_dump_all(objects)
    assert "namespace: stockade\n" not in text and "- stockade\n" not in text
    by = {o["kind"]: o for o in objects}
    assert by["Namespace"]["metadata"]["name"] == "sec-tools"
    assert by["ClusterRoleBinding"]["subjects"][0]["namespace"] == "sec-tools"
    hook = by["ValidatingWebhookConfiguration"]["webhooks"][0]
    assert hook["clientConfig"]["service"]["namespace"] == "sec-tools"
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == [
        "kube-system",
        "sec-tools",
    ]
    assert by["Deployment"]["spec"]["replicas"] == 3
    assert {c["image"] for c in by["Deployment"]["spec"]["template"]["spec"]["containers"]} == {
        "r.example/s:1.2"
    }
    assert by["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "r.example/s-agent:1.2"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"controller_replicas": 2}, "SQLite cannot be shared"),
        ({"namespace": "Bad_NS"}, "not a Kubernetes namespace"),
        ({"image": "r.example/s"}, "give a tag"),
        ({"image": "r.example/s@sha256:" + "a" * 64}, "--agent-image"),
    ],
)
def test_bad_options_are_usage_errors(options, message):
    with pytest.raises(UsageError, match=message):
        render(Options(ca_pem=b"ca", **options))


def test_cli_prints_the_objects_and_says_what_is_missing(tmp_path):
    missing = subprocess.run(
        [sys.executable, "-m", "stockade", "deploy", "manifests", "--cert-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.startswith("stockade: error: no ") and "deploy certs" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    runner = CliRunner()
    made = runner.invoke(app, ["deploy", "certs", "--cert-dir", str(tmp_path / "tls")])
    assert made.exit_code == 0, made.output
    out = runner.invoke(
        app,
        ["deploy", "manifests", "--cert-dir", str(tmp_path / "tls"), "--postgres-url-secret", "pg"],
    )
    assert out.exit_code == 0, out.output
    kinds = [d["kind"] for d in yaml.safe_load_all(out.stdout) if d]
    assert kinds[0] == "Namespace" and "PodDisruptionBudget" in kinds
