"""Identity from the Kubernetes API, against a local HTTPS server that speaks list/watch with
recorded API documents (tests/identity/kubeserver.py): pods appear, change and go; owners resolve
through ReplicaSets and Jobs; a 410 forces a relist; a cut stream resumes from the last
resourceVersion; node-local scope; kubeconfig with the test CA and a bearer token."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stockade.admission.certs import ensure_certificate
from stockade.identity import Directory
from stockade.identity.kubeapi import KubernetesIdentity, api_client
from stockade.identity.sources import opened
from stockade.model.errors import ConfigError, InputError
from tests.identity.kubeserver import FakeApiServer, document
from tests.network import frames as F

TOKEN = "test-token-7f3a"
PODS, RS, JOBS = "/api/v1/pods", "/apis/apps/v1/replicasets", "/apis/batch/v1/jobs"
NODE = "gke-k9s-default-pool-0fa2fb89-lbtf"  # the recorded pod's node


def kubeconfig(tmp: Path, server: FakeApiServer, token: str = TOKEN) -> Path:
    (tmp / "ca.crt").write_bytes(server.files.ca_cert.read_bytes())
    path = tmp / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        f"clusters: [{{name: local, cluster: {{server: '{server.url}', certificate-authority: ca.crt}}}}]\n"
        f"users: [{{name: reader, user: {{token: {token}}}}}]\n"
        "contexts: [{name: test, context: {cluster: local, user: reader}}]\n"
    )
    return path


def pod(
    name: str,
    ip: str,
    *,
    namespace: str = "default",
    node: str = NODE,
    labels: dict[str, str] | None = None,
    owner: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The recorded pod document, renamed and readdressed."""
    doc = document("pod")
    meta = doc["metadata"]
    meta.update(name=name, namespace=namespace, labels=labels or {"app": "nginx"})
    if owner is None:
        meta.pop("ownerReferences")
    else:
        meta["ownerReferences"][0].update(kind=owner[0], name=owner[1])
    doc["spec"]["nodeName"] = node
    doc["status"]["podIP"] = ip
    doc["status"]["podIPs"] = [{"ip": ip}]
    return doc


def seed(api: FakeApiServer) -> None:
    api.change("/api/v1/namespaces", "ADDED", document("namespace"))
    api.change("/api/v1/nodes", "ADDED", document("node"))
    api.change("/api/v1/services", "ADDED", document("service"))
    api.change(RS, "ADDED", document("replicaset"))
    api.change(PODS, "ADDED", document("pod"))


@pytest.fixture
def api(tmp_path: Path) -> Iterator[FakeApiServer]:
    with FakeApiServer(tmp_path, TOKEN) as server:
        seed(server)
        yield server


def provider(tmp: Path, api: FakeApiServer, **kw: Any) -> KubernetesIdentity:
    return KubernetesIdentity(
        api_client(kubeconfig(tmp, api)), backoff=(0.01, 0.05), watch_seconds=20, **kw
    )


def at(directory: Directory, ip: str) -> Any:
    return directory.workload_at(ip)


def wait(directory: Directory, check: Any, timeout: float = 1.0) -> float:
    """Seconds until ``check(directory)`` held; fails after ``timeout``."""
    start = time.monotonic()
    assert directory.wait_until(check, timeout), "the directory did not catch up in time"
    return time.monotonic() - start


def test_pods_appear_change_labels_and_disappear(tmp_path: Path, api: FakeApiServer) -> None:
    with provider(tmp_path, api) as ids:
        d = ids.directory
        listed = at(d, "10.44.0.229")
        assert (listed.namespace, listed.name, listed.node) == (
            "default",
            "nginx-7fb78fb6d8-2w75j",
            NODE,
        )
        assert listed.owner == "Deployment/nginx"  # its ReplicaSet is not listed: the hash tells
        assert listed.images == (
            "k8s.gcr.io/nginx-slim@sha256:8b4501fe0fe221df663c22e16539f399e89594552f400408303c42f3dd8d0e52",
        )
        svc = d.lookup(ipaddress.ip_address("10.47.248.116").packed)
        assert (svc.kind, svc.namespace, svc.name) == ("service", "default", "dictionary1")
        assert d.lookup(ipaddress.ip_address("192.168.64.107").packed).display() == "node:minikube"
        assert ids.namespace_labels("kube-system") == {}

        api.wait_watching(PODS)
        new = document("pod-standalone")  # a pod without owner, recorded with its init container
        api.change(PODS, "ADDED", new)
        assert wait(d, lambda d: at(d, "172.17.0.6") is not None) < 1.0
        w = at(d, "172.17.0.6")
        assert w.name == "nginx" and w.owner == "" and w.images[0].startswith("nginx@sha256:482ead")

        new["metadata"]["labels"] = {"app": "web", "pci": "cde"}
        api.change(PODS, "MODIFIED", new)
        wait(d, lambda d: dict(at(d, "172.17.0.6").labels) == {"app": "web", "pci": "cde"})
        assert d.lookup(ipaddress.ip_address("172.17.0.6").packed).labels == (
            ("app", "web"),
            ("pci", "cde"),
        )

        api.change(PODS, "DELETED", new)
        wait(d, lambda d: at(d, "172.17.0.6") is None)
        assert d.lookup(ipaddress.ip_address("172.17.0.6").packed).kind == "external"
        assert len(api.list_requests(PODS)) == 1  # one list, then only the watch


def test_owner_chain_reaches_the_deployment_and_the_cronjob(
    tmp_path: Path, api: FakeApiServer
) -> None:
    api.change(
        PODS,
        "ADDED",
        pod(
            "icx-db-7d4b578979-q7x2m",
            "10.44.1.5",
            namespace="icx",
            labels={"app": "icx-db"},
            owner=("ReplicaSet", "icx-db-7d4b578979"),
        ),
    )
    api.change(
        PODS,
        "ADDED",
        pod(
            "hello-1567179180-k8z9d",
            "10.44.1.6",
            labels={"job-name": "hello-1567179180"},
            owner=("Job", "hello-1567179180"),
        ),
    )
    for i, kind in enumerate(("statefulset", "daemonset")):
        doc = document(kind)
        api.change(
            PODS,
            "ADDED",
            pod(f"p{i}", f"10.44.1.{20 + i}", owner=(doc["kind"], doc["metadata"]["name"])),
        )
    deployment, cronjob = document("deployment"), document("cronjob")
    with provider(tmp_path, api) as ids:
        d = ids.directory
        # no pod-template-hash label: only the ReplicaSet's own owner reference can tell
        assert at(d, "10.44.1.5").owner == f"Deployment/{deployment['metadata']['name']}"
        assert at(d, "10.44.1.6").owner == "Job/hello-1567179180"  # its Job is not known yet
        assert at(d, "10.44.1.20").owner == "StatefulSet/nginx-sts"
        assert at(d, "10.44.1.21").owner == "DaemonSet/fluentd-gcp-v3.2.0"
        api.wait_watching(JOBS)
        api.change(JOBS, "ADDED", document("job"))
        cron = f"CronJob/{cronjob['metadata']['name']}"
        assert wait(d, lambda d: at(d, "10.44.1.6").owner == cron) < 1.0
        api.change(JOBS, "DELETED", document("job"))  # the Job goes; the pod keeps what it knew
        api.change(PODS, "DELETED", pod("hello-1567179180-k8z9d", "10.44.1.6"))
        wait(d, lambda d: at(d, "10.44.1.6") is None)
        assert at(d, "10.44.1.5").owner == "Deployment/icx-db"


def test_410_gone_forces_a_relist(tmp_path: Path, api: FakeApiServer) -> None:
    with provider(tmp_path, api) as ids:
        d = ids.directory
        api.wait_watching(PODS)
        api.compact(PODS)  # the watch ends, and its resume finds its resourceVersion compacted
        api.change(PODS, "DELETED", document("pod"))
        api.change(PODS, "ADDED", pod("late", "10.44.2.2"))
        wait(d, lambda d: at(d, "10.44.2.2") is not None and at(d, "10.44.0.229") is None, 3.0)
        reflector = next(r for r in ids.reflectors if r.collection.name == "pods")
        assert reflector.stats.relists_gone >= 1
        assert len(api.list_requests(PODS)) >= 2
        start = time.monotonic()
    assert time.monotonic() - start < 1  # stopping does not wait for a watch opened meanwhile


def test_a_dropped_stream_resumes_from_the_last_resource_version(
    tmp_path: Path, api: FakeApiServer
) -> None:
    with provider(tmp_path, api) as ids:
        d = ids.directory
        api.wait_watching(PODS)
        mark = api.bookmark(PODS)
        reflector = next(r for r in ids.reflectors if r.collection.name == "pods")
        deadline = time.monotonic() + 2
        while reflector.resource_version != str(mark) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reflector.resource_version == str(mark)  # a bookmark moves the resourceVersion
        api.drop(PODS)
        api.change(PODS, "ADDED", pod("during-the-cut", "10.44.3.3"))
        wait(d, lambda d: at(d, "10.44.3.3") is not None, 3.0)
        watches = api.watch_requests(PODS)
        assert [w["resourceVersion"] for w in watches][:2] == [
            watches[0]["resourceVersion"],
            str(mark),
        ]
        assert all(w.get("allowWatchBookmarks") == "true" for w in watches)
        assert len(api.list_requests(PODS)) == 1  # resumed, not relisted
        assert reflector.stats.resumes >= 1


def test_node_scope_watches_its_own_pods_and_keeps_peers_bounded(
    tmp_path: Path, api: FakeApiServer
) -> None:
    api.change(PODS, "ADDED", pod("remote-a", "10.45.0.1", node="worker-2"))
    api.change(PODS, "ADDED", pod("remote-b", "10.45.0.2", node="worker-2"))
    with provider(tmp_path, api, node=NODE, max_peers=1) as ids:
        d = ids.directory
        selectors = {q.get("fieldSelector") for q in api.list_requests(PODS)}
        assert selectors == {f"spec.nodeName={NODE}", f"spec.nodeName!={NODE}"}
        assert at(d, "10.44.0.229").node == NODE
        peers = [w for w in d.workloads if w.node == "worker-2"]
        assert len(peers) == 1 and ids.dropped == {"pods@peers": 1}
        api.wait_watching(PODS, 2)
        api.change(PODS, "ADDED", pod("local-new", "10.44.0.7"))  # local pods are never capped
        wait(d, lambda d: at(d, "10.44.0.7") is not None)


def test_a_wrong_token_is_one_clear_error(tmp_path: Path, api: FakeApiServer) -> None:
    ids = KubernetesIdentity(
        api_client(kubeconfig(tmp_path, api, token="wrong")), backoff=(0.01, 0.05)
    )
    start = time.monotonic()
    with pytest.raises(InputError) as err:
        ids.start(timeout=10.0)
    assert time.monotonic() - start < 5  # refused is final: no waiting out the timeout
    assert "401" in str(err.value) and "\n" not in str(err.value)


def test_a_server_the_ca_did_not_sign_is_refused(tmp_path: Path, api: FakeApiServer) -> None:
    config = kubeconfig(tmp_path, api)
    other = ensure_certificate(tmp_path / "other", ["localhost"], ca_name="another CA")
    (tmp_path / "ca.crt").write_bytes(other.ca_cert.read_bytes())
    ids = KubernetesIdentity(api_client(config), backoff=(0.01, 0.05))
    started = time.monotonic()
    with pytest.raises(InputError) as err:
        ids.start(timeout=60)  # refused for good: said at once, not at the deadline
    assert time.monotonic() - started < 30
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value) and "\n" not in str(err.value)
    assert "within" not in str(err.value)
    assert not any(r.synced.is_set() for r in ids.reflectors)


def test_in_cluster_the_service_account_is_used(
    tmp_path: Path, api: FakeApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--identities kubernetes`` in a pod: KUBERNETES_SERVICE_HOST/PORT, the token and the CA of
    the service account (its folder moved here: the client reads fixed paths)."""
    from kubernetes.config import incluster_config

    (tmp_path / "token").write_text(TOKEN)
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(api.files.ca_cert))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(api.httpd.server_address[1]))
    with opened("kubernetes", timeout=10) as directory:
        assert directory.workload_at("10.44.0.229").owner == "Deployment/nginx"
    assert api.list_requests(PODS)


def test_kubeconfig_errors_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read kubeconfig"):
        api_client(tmp_path / "missing")
    bad = tmp_path / "bad"
    bad.write_text("apiVersion: v1\nkind: Config\ncurrent-context: nowhere\ncontexts: []\n")
    with pytest.raises(ConfigError) as err:
        api_client(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError):
        api_client(in_cluster=True)  # no service account here


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockade", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )


def test_the_sensor_names_connections_from_the_api(tmp_path: Path, api: FakeApiServer) -> None:
    packets = F.conversation(
        "10.44.0.229",
        "10.47.248.116",
        40000,
        4001,
        b"GET / HTTP/1.1\r\nHost: d\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    )
    capture = tmp_path / "c.pcap"
    capture.write_bytes(
        F.pcap([(1700000000 + i / 1000, F.ether(p)) for i, p in enumerate(packets)])
    )
    config = kubeconfig(tmp_path, api)
    out = _cli(
        "sensor",
        "--pcap",
        str(capture),
        "--identities",
        f"kubernetes:{config}",
        "--node",
        NODE,
        "--format",
        "json",
        "--no-store",
    )
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout.splitlines()[0])
    assert record["client"]["name"] == "nginx-7fb78fb6d8-2w75j"
    assert (record["server"]["kind"], record["server"]["name"]) == ("service", "dictionary1")


def test_hostile_watch_lines_are_survived(
    tmp_path: Path, api: FakeApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("stockade.identity.kubewatch.MAX_EVENT_BYTES", 4096)
    odd = {
        "metadata": {
            "name": "odd",
            "namespace": "default",
            "labels": ["x"],
            "ownerReferences": "RS",
        },
        "spec": [],
        "status": {"podIPs": "10.9.9.9", "containerStatuses": {"imageID": 3}},
    }
    with provider(tmp_path, api) as ids:
        d = ids.directory
        reflector = next(r for r in ids.reflectors if r.collection.name == "pods")
        api.wait_watching(PODS)
        hostile = [
            b"not json",
            b'{"type": "WHAT", "object": {}}',
            b'["ADDED"]',
            b'{"type": "ERROR", "object": {"code": 500, "message": "etcd is sad"}}',
            json.dumps(
                {"type": "ADDED", "object": pod("big", "10.9.9.8", labels={"x": "y" * 8000})}
            ).encode(),
        ]
        reasons = []
        for errors, line in enumerate([*hostile, None], start=1):
            deadline = time.monotonic() + 3  # each problem ends the stream; the watch resumes
            while reflector.stats.watches < errors and time.monotonic() < deadline:
                time.sleep(0.01)
            assert reflector.stats.errors == errors - 1 and reflector.stats.watches == errors
            reasons.append(reflector.stats.last_error)
            api.raw(PODS, line or json.dumps({"type": "ADDED", "object": odd}).encode())
        api.change(PODS, "ADDED", pod("after", "10.44.9.9"))
        wait(d, lambda d: at(d, "10.44.9.9") is not None, 3.0)
        assert "pod/default/odd" in d.keys("pod/")  # kept, with nothing it could not read
        assert d.entry("pod/default/odd").addresses == () and d.entry("pod/default/odd").owner == ""
        assert [r.split(":")[0] for r in reasons[1:]] == [
            "JSONDecodeError",
            "WatchProblem",
            "WatchProblem",
            "WatchProblem",
            "WatchProblem",
        ]
        assert "etcd is sad" in reasons[4] and "larger than 4096 bytes" in reasons[5]
        assert at(d, "10.9.9.8") is None
        assert len(api.list_requests(PODS)) == 1  # each time resumed, never relisted
