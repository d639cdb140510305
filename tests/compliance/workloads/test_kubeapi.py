"""Reading a live cluster over real HTTPS with a generated CA: bearer tokens, client certificates
(inline and as files), in-cluster service accounts, pagination, and refusals."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from stockade.compliance.workloads import check_objects, kubeapi
from stockade.model import ConfigError, InputError, Status

from .kube_server import TOKEN, Pki, make_pki, serve


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


def _pods(n: int) -> list[dict[str, Any]]:
    # as the API server lists them: no kind or apiVersion on items
    return [
        {
            "metadata": {"name": f"web-{i}", "namespace": "shop"},
            "spec": {
                "serviceAccountName": "web",
                "containers": [
                    {
                        "name": "web",
                        "image": "nginx:1.27",
                        "securityContext": {"privileged": i == 0},
                    }
                ],
            },
        }
        for i in range(n)
    ]


CLUSTER = {
    "/api/v1/namespaces": [{"metadata": {"name": "shop"}}, {"metadata": {"name": "kube-system"}}],
    "/api/v1/pods": [
        *_pods(7),
        {
            "metadata": {
                "name": "api-6b7d9-x2",
                "namespace": "shop",
                "ownerReferences": [
                    {"kind": "ReplicaSet", "name": "api-6b7d9", "controller": True}
                ],
            },
            "spec": {"hostNetwork": True, "containers": [{"name": "api", "image": "api:1"}]},
        },
    ],
    "/apis/apps/v1/deployments": [
        {
            "metadata": {"name": "api", "namespace": "shop"},
            "spec": {
                "template": {
                    "spec": {"hostNetwork": True, "containers": [{"name": "api", "image": "api:1"}]}
                }
            },
        }
    ],
    "/apis/rbac.authorization.k8s.io/v1/clusterroles": [
        {
            "metadata": {"name": "everything"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
        }
    ],
    "/apis/networking.k8s.io/v1/networkpolicies": [
        {"metadata": {"name": "deny", "namespace": "shop"}, "spec": {}}
    ],
}
KINDS = {
    "namespaces": "NamespaceList",
    "pods": "PodList",
    "deployments": "DeploymentList",
    "clusterroles": "ClusterRoleList",
    "networkpolicies": "NetworkPolicyList",
}


def kubeconfig(tmp: Path, server: str, user: dict[str, Any], cluster: dict[str, Any]) -> Path:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "test",
        "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "c", "user": "u"}}],
    }
    path = tmp / "kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return path


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_token_auth_lists_everything_and_pages(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kubeapi, "PAGE", 3)
    with serve(pki, tmp_path, CLUSTER, KINDS) as url:
        cfg = kubeconfig(
            tmp_path, url, {"token": TOKEN}, {"certificate-authority-data": b64(pki.ca_pem)}
        )
        manifests = kubeapi.fetch(kubeapi.from_kubeconfig(cfg))
    kinds = sorted({m.obj["kind"] for m in manifests})
    assert kinds == ["ClusterRole", "Deployment", "Namespace", "NetworkPolicy", "Pod"]
    pods = [m.obj["metadata"]["name"] for m in manifests if m.obj["kind"] == "Pod"]
    assert pods == [
        f"web-{i}" for i in range(7)
    ]  # three pages; the ReplicaSet's pod is left to its owner
    findings = check_objects(manifests, profile="baseline")
    failed = {(f.id, f.resource.display()) for f in findings if f.status == Status.FAIL}
    assert ("pss.baseline.privileged", "pod:shop/web-0") in failed
    assert ("pss.baseline.host_namespaces", "deployment:shop/api") in failed
    assert ("cis.rbac.wildcards", "clusterrole:everything") in failed
    assert ("cis.netpol.namespace_missing", "namespace:kube-system") in failed
    assert ("cis.netpol.namespace_missing", "namespace:shop") not in failed


def test_client_certificate_files_and_data(pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(pki.ca_pem)
    (tmp_path / "admin.crt").write_bytes(pki.client_pem)
    (tmp_path / "admin.key").write_bytes(pki.client_key_pem)
    with serve(pki, tmp_path, CLUSTER, KINDS) as url:
        files = kubeconfig(
            tmp_path,
            url,
            {"client-certificate": "admin.crt", "client-key": "admin.key"},
            {"certificate-authority": "ca.crt"},
        )
        assert len(kubeapi.fetch(kubeapi.from_kubeconfig(files))) == 12
        inline = kubeconfig(
            tmp_path,
            url,
            {
                "client-certificate-data": b64(pki.client_pem),
                "client-key-data": b64(pki.client_key_pem),
            },
            {"certificate-authority-data": b64(pki.ca_pem)},
        )
        assert len(kubeapi.fetch(kubeapi.from_kubeconfig(inline))) == 12


def test_refusals_and_untrusted_servers(pki: Pki, tmp_path: Path) -> None:
    other = make_pki()
    with serve(pki, tmp_path, CLUSTER, KINDS) as url:
        no_auth = kubeconfig(tmp_path, url, {}, {"certificate-authority-data": b64(pki.ca_pem)})
        with pytest.raises(InputError, match="HTTP 401"):
            kubeapi.fetch(kubeapi.from_kubeconfig(no_auth))
        wrong_ca = kubeconfig(
            tmp_path, url, {"token": TOKEN}, {"certificate-authority-data": b64(other.ca_pem)}
        )
        with pytest.raises(InputError, match="cannot reach"):
            kubeapi.fetch(kubeapi.from_kubeconfig(wrong_ca))
        rogue = kubeconfig(
            tmp_path,
            url,
            {
                "client-certificate-data": b64(pki.rogue_client_pem),
                "client-key-data": b64(pki.rogue_client_key_pem),
            },
            {"certificate-authority-data": b64(pki.ca_pem)},
        )
        with pytest.raises(InputError):
            kubeapi.fetch(kubeapi.from_kubeconfig(rogue))


def test_in_cluster_service_account(pki: Pki, tmp_path: Path) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "ca.crt").write_bytes(pki.ca_pem)
    (sa / "token").write_text(TOKEN + "\n")
    with serve(pki, tmp_path, CLUSTER, KINDS) as url:
        port = url.rsplit(":", 1)[1]
        cluster = kubeapi.in_cluster(
            sa, {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port}
        )
        assert len(kubeapi.fetch(cluster)) == 12
    with pytest.raises(ConfigError, match="not running in a cluster"):
        kubeapi.in_cluster(sa, {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("key: [unclosed", "invalid YAML"),
        ("- a list", "not a mapping"),
        ("kind: Config\n", "no current-context"),
        ("current-context: x\ncontexts: []\n", "no context named 'x'"),
        (
            "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
            "clusters: [{name: c, cluster: {server: https://h}}]\n"
            "users: [{name: u, user: {exec: {command: aws}}}]\n",
            "exec or auth-provider",
        ),
    ],
)
def test_bad_kubeconfigs(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "kc"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        kubeapi.from_kubeconfig(path)


def _rs_pod(name: str, **spec: Any) -> dict[str, Any]:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7c5d", "controller": True}
    containers = [{"name": "web", "image": "nginx:1.27"}]
    return {
        "metadata": {"name": name, "namespace": "shop", "ownerReferences": [owner]},
        "spec": {"serviceAccountName": "web", "containers": containers, **spec},
    }


def test_pods_that_differ_from_their_template_are_checked_too(pki: Pki, tmp_path: Path) -> None:
    """A pod made from a template is left to its controller, unless the pod shows what the
    template cannot: an ephemeral container added by kubectl debug, or a container a mutating
    webhook injected (Istio's istio-init adds NET_ADMIN and NET_RAW)."""
    template = {
        "spec": {
            "serviceAccountName": "web",
            "containers": [{"name": "web", "image": "nginx:1.27"}],
        }
    }
    deploy_owner = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "web",
        "controller": True,
    }
    istio_init = {
        "name": "istio-init",
        "image": "docker.io/istio/proxyv2:1.22.1",
        "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}},
    }
    debug = {
        "name": "debugger-x7",
        "image": "busybox:1.36",
        "securityContext": {"privileged": True},
    }
    cluster = {
        "/apis/apps/v1/deployments": [
            {"metadata": {"name": "web", "namespace": "shop"}, "spec": {"template": template}}
        ],
        "/apis/apps/v1/replicasets": [
            {
                "metadata": {
                    "name": "web-7c5d",
                    "namespace": "shop",
                    "ownerReferences": [deploy_owner],
                },
                "spec": {"template": template},
            }
        ],
        "/api/v1/pods": [
            _rs_pod("web-7c5d-aaaaa"),
            _rs_pod("web-7c5d-bbbbb", initContainers=[istio_init]),
            _rs_pod("web-7c5d-ccccc", ephemeralContainers=[debug]),
        ],
    }
    kinds = {"deployments": "DeploymentList", "replicasets": "ReplicaSetList", "pods": "PodList"}
    with serve(pki, tmp_path, cluster, kinds) as url:
        cfg = kubeconfig(
            tmp_path, url, {"token": TOKEN}, {"certificate-authority-data": b64(pki.ca_pem)}
        )
        manifests = kubeapi.fetch(kubeapi.from_kubeconfig(cfg))
    shown = sorted(f"{m.obj['kind']}/{m.obj['metadata']['name']}" for m in manifests)
    assert shown == ["Deployment/web", "Pod/web-7c5d-bbbbb", "Pod/web-7c5d-ccccc"]
    failed = {
        (f.id, f.resource.display())
        for f in check_objects(manifests, profile="baseline")
        if f.status == Status.FAIL
    }
    assert ("pss.baseline.capabilities", "pod:shop/web-7c5d-bbbbb") in failed
    assert ("pss.baseline.privileged", "pod:shop/web-7c5d-ccccc") in failed
