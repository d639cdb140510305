"""The Helm chart (deploy/helm/stockade) rendered by Helm's own engine: the Helm v4 Go SDK that the
PyPI wheel helm-python-sdk ships as a shared library (there is no helm binary in Debian 12). Each
variant gives the same objects as ``stockade deploy manifests`` with the same options, and each
object validates against the Kubernetes schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from stockade.deploy.render import Options, render
from tests.deploy.rendered import REPO, make_ca
from tests.deploy.test_render import KUBERNETES_VERSIONS, _normal
from tests.support import require

try:
    import helm_python as helm
except ImportError:  # pragma: no cover - outside the test extra
    helm = None


@pytest.fixture(autouse=True)
def _helm_installed() -> None:
    require(helm is not None, "helm-python-sdk (the test extra) is not installed")
    helm.disable_logging()  # its note that base/ is a link, on every render


CHART = REPO / "deploy" / "helm" / "stockade"


def helm_template(values: dict[str, Any], namespace: str = "stockade") -> list[dict[str, Any]]:
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values, name="stockade", namespace=namespace)
    return [d for text in rendered.values() for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_ca(tmp_path_factory.mktemp("tls"))


VARIANTS = {
    "single node": ({}, {}),
    "production": (
        {"postgresUrlSecret": "stockade-postgres"},
        {"postgres_url_secret": "stockade-postgres"},
    ),
    "other namespace": (
        {"postgresUrlSecret": "pg-url", "controllerReplicas": 3, "image": "r.example/s:1.2"},
        {
            "postgres_url_secret": "pg-url",
            "controller_replicas": 3,
            "image": "r.example/s:1.2",
            "namespace": "sec-tools",
        },
    ),
    "pinned images": (
        {"image": "r.example/s@sha256:" + "a" * 64, "agentImage": "r.example/a@sha256:" + "b" * 64},
        {
            "image": "r.example/s@sha256:" + "a" * 64,
            "agent_image": "r.example/a@sha256:" + "b" * 64,
        },
    ),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_chart_renders_what_deploy_manifests_prints(variant: str, ca: bytes) -> None:
    values, options = VARIANTS[variant]
    namespace = options.get("namespace", "stockade")
    charted = helm_template({"ca": ca.decode(), "createNamespace": True, **values}, namespace)
    printed = render(Options(ca_pem=ca, **options))
    assert [(o["kind"], o["metadata"]["name"]) for o in charted] == [
        (o["kind"], o["metadata"]["name"]) for o in printed
    ]
    assert _normal(charted) == _normal(printed)
    for obj in charted:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_helm_install_leaves_the_namespace_to_the_user(ca: bytes) -> None:
    """Helm keeps its release in the namespace, so by default the chart does not make it."""
    charted = helm_template({"ca": ca.decode()})
    printed = [o for o in render(Options(ca_pem=ca)) if o["kind"] != "Namespace"]
    assert _normal(charted) == _normal(printed)


def test_the_chart_uses_the_base_files_themselves() -> None:
    """No copy to drift: the chart's base is the package's folder, as deploy/base is."""
    assert (CHART / "base").resolve() == (REPO / "src/stockade/deploy/base").resolve()
    assert not list((CHART / "templates").glob("*.yaml"))[1:]  # one template: objects.yaml


@pytest.mark.parametrize(
    ("values", "namespace", "message"),
    [
        ({}, "stockade", "the CA certificate is required"),
        ({"controllerReplicas": 2}, "stockade", "SQLite cannot be shared"),
        ({"postgresUrlSecret": "pg", "controllerReplicas": 0}, "stockade", "at least 1"),
        ({"image": "r.example/s"}, "stockade", "give a tag"),
        ({"image": "r.example/s@sha256:" + "c" * 64}, "stockade", "agentImage"),
        ({}, "Not_A_Namespace", "not a Kubernetes namespace name"),
    ],
)
def test_bad_values_fail_with_a_reason(
    values: dict[str, Any], namespace: str, message: str, ca: bytes
) -> None:
    if values or namespace != "stockade":
        values = {"ca": ca.decode(), **values}
    with pytest.raises(helm.HelmError, match=message):
        helm_template(values, namespace)


def test_lint_is_clean(ca: bytes) -> None:
    result = helm.lint(str(CHART), {"ca": ca.decode()}, namespace="stockade", strict=True)
    assert result["errors"] == []
    assert all(m["severity"] <= 1 for m in result["messages"]), result["messages"]  # info only


def test_no_chart_file_escapes_the_repository() -> None:
    for path in CHART.rglob("*"):
        assert Path(path).resolve().is_relative_to(REPO)
