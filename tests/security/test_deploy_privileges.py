"""What the deployment grants, checked on every rendered variant (both Kustomize overlays and
``stockade deploy manifests``): only the agent is privileged in any way, and only as listed."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.deploy.rendered import OVERLAYS, kustomize, make_ca, python

AGENT_CAPABILITIES = {"NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"}
AGENT_HOST_PATHS = {"/": "/host", "/run/netns": "/run/netns"}  # host path -> mount point
READ = {"get", "list", "watch"}
AGENT_RBAC = {
    ("", "pods"): READ,
    ("", "namespaces"): READ,
    ("", "services"): READ,
    ("", "nodes"): READ,
    ("apps", "replicasets"): READ,
    ("batch", "jobs"): READ,
    # the quarantine's deny-all NetworkPolicies (--quarantine-network-policy): never update/patch
    ("networking.k8s.io", "networkpolicies"): {"create", "delete", "get", "list"},
}


@pytest.fixture(scope="module", params=[*(f"kustomize {o}" for o in OVERLAYS), *OVERLAYS])
def objects(request, tmp_path_factory) -> list[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("deploy")
    ca = make_ca(tmp / "tls")
    if request.param.startswith("kustomize "):
        return kustomize(request.param.split()[1], tmp, ca)
    return python(ca, request.param)


def _workloads(objects):
    return [o for o in objects if o["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Job")]


def _is_agent(obj) -> bool:
    return obj["kind"] == "DaemonSet" and obj["metadata"]["name"] == "stockade-agent"


def test_only_the_agent_has_host_access_and_none_is_privileged(objects):
    workloads = _workloads(objects)
    assert {o["kind"] for o in workloads} == {"Deployment", "DaemonSet"}
    for obj in workloads:
        pod = obj["spec"]["template"]["spec"]
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container.get("securityContext", {})
            assert context.get("privileged", False) is False, container["name"]
            added = set(context.get("capabilities", {}).get("add", []))
            assert context["capabilities"]["drop"] == ["ALL"]
            if _is_agent(obj):
                assert added == AGENT_CAPABILITIES
            else:
                assert not added
                assert context["allowPrivilegeEscalation"] is False
                assert context["readOnlyRootFilesystem"] is True
        host = {k for k in ("hostNetwork", "hostPID", "hostIPC") if pod.get(k)}
        assert host == ({"hostNetwork", "hostPID"} if _is_agent(obj) else set())


def test_controller_runs_as_non_root(objects):
    controller = next(o for o in objects if o["kind"] == "Deployment")
    pod = controller["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False


def test_host_paths_are_the_agents_listed_mounts_read_only(objects):
    for obj in _workloads(objects):
        pod = obj["spec"]["template"]["spec"]
        host_volumes = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
        if not _is_agent(obj):
            assert host_volumes == {}
            continue
        mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
        mounted = {path: mounts[name]["mountPath"] for name, path in host_volumes.items()}
        assert mounted == AGENT_HOST_PATHS
        for name in host_volumes:
            assert mounts[name].get("readOnly") is True, name
        args = pod["containers"][0]["args"]
        assert args[args.index("--host-root") + 1] == "/host"
        assert "/var/run/docker.sock" not in str(pod) and "containerd.sock" not in str(pod)


def test_every_container_has_requests_and_limits(objects):
    for obj in _workloads(objects):
        for container in obj["spec"]["template"]["spec"]["containers"]:
            resources = container["resources"]
            assert set(resources["limits"]) >= {"cpu", "memory"}, container["name"]
            assert set(resources["requests"]) >= {"cpu", "memory"}, container["name"]


def test_rbac_is_least_privilege(objects):
    roles = [o for o in objects if o["kind"] in ("ClusterRole", "Role")]
    assert [r["metadata"]["name"] for r in roles] == ["stockade-agent"]
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in roles[0]["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        assert "*" not in rule["apiGroups"]
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    assert granted == AGENT_RBAC
    for binding in (o for o in objects if o["kind"].endswith("Binding")):
        assert binding["roleRef"]["name"] not in ("cluster-admin", "admin", "edit")


def test_webhook_has_the_ca_of_the_agents(objects):
    hook = next(o for o in objects if o["kind"] == "ValidatingWebhookConfiguration")
    ca_secret = next(o for o in objects if o["kind"] == "Secret")
    assert ca_secret["metadata"]["name"] == "stockade-ca"
    assert set(ca_secret["data"]) == {"ca.crt"}  # never the serving key
    bundle = base64.b64decode(hook["webhooks"][0]["clientConfig"]["caBundle"])
    assert bundle.startswith(b"-----BEGIN CERTIFICATE-----")
    assert bundle == base64.b64decode(ca_secret["data"]["ca.crt"])


def test_network_policy_denies_all_but_stockades_own_paths(objects):
    policies = {o["metadata"]["name"]: o for o in objects if o["kind"] == "NetworkPolicy"}
    assert policies["stockade-default-deny"]["spec"]["podSelector"] == {}
    controller = policies["stockade-controller"]["spec"]
    ports = sorted(p["port"] for rule in controller["ingress"] for p in rule["ports"])
    assert ports == [8443, 8444]
    egress = {p["port"] for rule in controller["egress"] for p in rule["ports"]}
    assert egress == {53, 5432, 443}
