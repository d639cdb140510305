"""Running containers from the container runtimes' state on disk (containerd's runtime v2 bundles,
CRI-O's containers/storage), laid out in tmp_path as the runtimes write them, with recorded OCI
runtime specs carrying the CRI annotations (tests/nodeagent/data/README.md); then ``stockade
agent run`` finds them, scans their root filesystems and reports each to a real controller under
the right pod and image digest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stockade.nodeagent.containers import (
    CONTAINERD_TASKS,
    CRIO_CONTAINERS,
    RuntimeState,
    find,
    image_digest,
    repository,
    scan_source,
)
from tests.api.controller import SRC, running_controller
from tests.identity.kubeserver import FakeApiServer, document
from tests.scanning.scan_cli_support import make_db
from tests.support import require_root

DATA = Path(__file__).parent / "data"
TOKEN = "runtime-token"
NODE = "worker-7"
NGINX_ID = "2d538b1bdc00a5f6251c9f47babca6163794a065133bcd2a0a0264a37a533644"
SANDBOX_ID = "bb3b311a34072532d5d8ca35d9c847bde1e67dcec899ebb61db8b0ad3d70d576"
REDIS_ID = "19b7277b9d905f981af64396c9c6bed34d39504ac63e53a75417cb5746887c21"
REDIS_LAYER = "921af5ce8bca9ed3272765d0710817af823b5a22cb146ef1414bddfa4f5c60eb"
NGINX_DIGEST = "sha256:" + "5" * 64  # what the kubelet reports as the pod's imageID
REDIS_DIGEST = "sha256:1961f4617f243f9e5277fbdda907572aa587f6aae12444b30b6a19645b635f32"


def spec(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}-config.json").read_text())


def fill_root(root: Path, package: str = "urllib3", version: str = "2.0.7") -> None:
    """A container root filesystem: an os-release and one Python package."""
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").write_text(Path("/etc/os-release").read_text())
    meta = root / f"usr/lib/python3/dist-packages/{package}-{version}.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")


def containerd_bundle(host: Path, ident: str, doc: dict[str, Any], pid: int | None) -> Path:
    """/run/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/ as the shim leaves it; the
    rootfs is where the snapshot is mounted (here: the merged tree itself)."""
    bundle = host / CONTAINERD_TASKS / ident
    (bundle / "rootfs").mkdir(parents=True)
    (bundle / "config.json").write_text(json.dumps(doc))
    if pid is not None:
        (bundle / "init.pid").write_text(str(pid))
    (bundle / "address").write_text("unix:///run/containerd/s/" + "0" * 64)
    (bundle / "runtime").write_text("io.containerd.runc.v2")
    return bundle


def containerd_tree(host: Path) -> Path:
    """The nginx container of develop/web-with-logger and its pause sandbox."""
    nginx = containerd_bundle(host, NGINX_ID, spec("containerd"), None)
    fill_root(nginx / "rootfs")
    sandbox = spec("containerd")
    notes = sandbox["annotations"]
    notes["io.kubernetes.cri.container-type"] = "sandbox"
    del notes["io.kubernetes.cri.container-name"], notes["io.kubernetes.cri.image-name"]
    sandbox["process"]["args"] = ["/pause"]
    fill_root(containerd_bundle(host, SANDBOX_ID, sandbox, None) / "rootfs", "pause", "3.6")
    # the overlayfs snapshotter's store: snapshot 12 is the container's writable layer only
    snapshots = host / "var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots"
    (snapshots / "12/fs/var/cache/nginx").mkdir(parents=True)
    (snapshots / "12/work").mkdir(parents=True)
    return nginx / "rootfs"


def crio_container(
    host: Path, ident: str, doc: dict[str, Any], pod: tuple[str, str, str], layer: str
) -> Path:
    """/var/lib/containers/storage/overlay-containers/<id>/userdata/ with the kubelet's labels as
    CRI-O copies them into the annotations; the rootfs is overlay/<layer>/merged."""
    namespace, name, container = pod
    notes = doc["annotations"]
    labels = {
        "io.kubernetes.container.name": container,
        "io.kubernetes.pod.name": name,
        "io.kubernetes.pod.namespace": namespace,
    }
    notes.update(labels)
    notes["io.kubernetes.cri-o.Labels"] = json.dumps({**labels, "tier": "backend"})
    merged = f"/var/lib/containers/storage/overlay/{layer}/merged"
    doc["root"]["path"] = notes["io.kubernetes.cri-o.MountPoint"] = merged
    userdata = host / CRIO_CONTAINERS / ident / "userdata"
    userdata.mkdir(parents=True)
    (userdata / "config.json").write_text(json.dumps(doc))
    (host / merged.lstrip("/")).mkdir(parents=True)
    (host / f"var/lib/containers/storage/overlay/{layer}/diff").mkdir(parents=True)
    return host / merged.lstrip("/")


def crio_tree(host: Path) -> Path:
    merged = crio_container(
        host, REDIS_ID, spec("crio"), ("cache", "redis-0", "redis"), REDIS_LAYER
    )
    fill_root(merged, "requests", "2.31.0")
    # stopped: its merged folder unmounted (empty) and its process gone
    crio_container(host, "ab" * 32, spec("crio"), ("cache", "redis-1", "redis"), "cd" * 32)
    (host / CRIO_CONTAINERS / ("ab" * 32) / "userdata/pidfile").write_text("4194000")
    return merged


def test_both_runtimes_layouts_are_read(tmp_path: Path) -> None:
    host = tmp_path / "host"
    nginx_root = containerd_tree(host)
    redis_root = crio_tree(host)
    found = {c.workload: c for c in find(host)}
    assert set(found) == {"develop/web-with-logger", "cache/redis-0", "cache/redis-1"}  # no pause
    nginx = found["develop/web-with-logger"]
    assert (nginx.runtime, nginx.name, nginx.image) == (
        "containerd",
        "web",
        "docker.io/library/nginx:latest",
    )
    assert nginx.digest is None  # containerd's annotations name the image by tag only
    assert nginx.rootfs == nginx_root and scan_source(nginx) == f"dir:{nginx_root}"
    redis = found["cache/redis-0"]
    assert (redis.runtime, redis.name, redis.digest) == ("cri-o", "redis", REDIS_DIGEST)
    assert redis.rootfs == redis_root and scan_source(redis) == f"dir:{redis_root}"
    stopped = found["cache/redis-1"]
    assert stopped.pid == 4194000 and scan_source(stopped) is None


def test_the_digest_comes_from_the_api_when_the_runtime_names_a_tag() -> None:
    from stockade.nodeagent.containers import RuntimeContainer

    nginx = RuntimeContainer(
        id=NGINX_ID,
        runtime="containerd",
        namespace="develop",
        pod="web-with-logger",
        name="web",
        image="docker.io/library/nginx:latest",
        digest=None,
        rootfs=None,
        pid=None,
    )
    api = (
        f"docker.io/library/busybox@sha256:{'1' * 64}",
        f"docker.io/library/nginx@{NGINX_DIGEST}",
    )
    assert image_digest(nginx, api) == NGINX_DIGEST
    assert image_digest(nginx, api[:1]) is None
    assert repository("nginx:1.25") == "docker.io/library/nginx"
    assert repository("bitnami/redis@sha256:" + "2" * 64) == "docker.io/bitnami/redis"
    assert repository("localhost:5000/app:v1") == "localhost:5000/app"
    assert repository("quay.io/crio/redis:alpine") == "quay.io/crio/redis"


def test_old_crio_image_ids_and_labels_only_in_json(tmp_path: Path) -> None:
    """CRI-O 1.18 wrote the image ID (not a digest) in ImageRef; the pod's names may be only in
    the Labels JSON."""
    host = tmp_path / "host"
    doc = spec("crio")
    doc["annotations"]["io.kubernetes.cri-o.ImageRef"] = "98bd7cfc43b8ef0ff130465e3d5427c0771002c2"
    crio_container(host, REDIS_ID, doc, ("cache", "redis-0", "redis"), REDIS_LAYER)
    config = host / CRIO_CONTAINERS / REDIS_ID / "userdata/config.json"
    written = json.loads(config.read_text())
    for key in ("io.kubernetes.pod.name", "io.kubernetes.pod.namespace"):
        del written["annotations"][key]
    config.write_text(json.dumps(written))
    (container,) = find(host)
    assert container.workload == "cache/redis-0" and container.digest is None


def test_hostile_state_is_bounded_and_kept_under_the_host_root(tmp_path: Path) -> None:
    host = tmp_path / "host"
    escape = spec("containerd")
    escape["root"]["path"] = "../../../../etc"
    containerd_bundle(host, "e" * 64, escape, None)
    containerd_bundle(host, "f" * 64, spec("containerd"), None)
    (host / CONTAINERD_TASKS / ("f" * 64) / "config.json").write_bytes(b"{" * 5_000_000)
    (host / CONTAINERD_TASKS / "not-a-container-id").mkdir()
    broken = host / CONTAINERD_TASKS / ("a" * 64)
    broken.mkdir()
    (broken / "config.json").write_text("[1, 2")
    (found,) = find(host)
    assert found.id == "e" * 64 and found.rootfs is None and scan_source(found) is None


def test_a_config_is_parsed_again_only_when_it_changes(tmp_path: Path) -> None:
    host = tmp_path / "host"
    containerd_tree(host)
    state = RuntimeState(host)
    first = state.containers()
    assert state.containers() == first
    config = host / CONTAINERD_TASKS / NGINX_ID / "config.json"
    doc = json.loads(config.read_text())
    doc["annotations"]["io.kubernetes.cri.image-name"] = f"docker.io/library/nginx@{NGINX_DIGEST}"
    config.write_text(json.dumps(doc))
    os.utime(config, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    (changed,) = state.containers()
    assert changed.digest == NGINX_DIGEST
    (host / CONTAINERD_TASKS / NGINX_ID / "config.json").unlink()
    assert state.containers() == []


def test_a_container_without_its_mount_is_read_through_its_process(tmp_path: Path) -> None:
    require_root()
    host = tmp_path / "host"
    root = tmp_path / "own-root"
    fill_root(root)
    proc = subprocess.Popen(
        [
            *(sys.executable, "-c"),
            "import os, sys, time; os.chroot(sys.argv[1]); os.chdir('/'); time.sleep(60)",
            str(root),
        ]
    )
    try:
        deadline = time.monotonic() + 10
        while os.stat(f"/proc/{proc.pid}/root").st_ino != root.stat().st_ino:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        containerd_bundle(host, NGINX_ID, spec("containerd"), proc.pid)  # rootfs not mounted
        (container,) = find(host)
        assert scan_source(container) == f"pid:{proc.pid}"
    finally:
        proc.kill()
        proc.wait()


# -- the agent, end to end ---------------------------------------------------------------------


def pod_doc(namespace: str, name: str, image: str, image_id: str, ip: str) -> dict[str, Any]:
    doc = document("pod")
    meta = doc["metadata"]
    meta.update(name=name, namespace=namespace, labels={"app": name})
    meta.pop("ownerReferences")
    doc["spec"]["nodeName"] = NODE
    doc["status"]["podIP"] = ip
    doc["status"]["podIPs"] = [{"ip": ip}]
    status = doc["status"]["containerStatuses"][0]
    status.update(image=image, imageID=image_id)
    return doc


@pytest.fixture
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    started = running_controller("sqlite", tmp_path_factory, "unused")
    yield next(started)
    next(started, None)


def test_the_agent_scans_the_runtimes_containers_and_reports_them(
    tmp_path: Path, controller: Any
) -> None:
    require_root()
    host = tmp_path / "host"
    containerd_tree(host)
    crio_tree(host)
    with FakeApiServer(tmp_path, TOKEN) as api:
        api.change("/api/v1/namespaces", "ADDED", document("namespace"))
        nginx = pod_doc(
            "develop",
            "web-with-logger",
            "nginx:latest",
            f"docker.io/library/nginx@{NGINX_DIGEST}",
            "10.250.7.10",
        )
        redis = pod_doc("cache", "redis-0", "redis:alpine", "", "10.250.7.11")
        for doc in (nginx, redis):
            api.change("/api/v1/pods", "ADDED", doc)
        (tmp_path / "ca.crt").write_bytes(api.files.ca_cert.read_bytes())
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
            f"clusters: [{{name: k, cluster: {{server: '{api.url}', certificate-authority: ca.crt}}}}]\n"
            f"users: [{{name: u, user: {{token: {TOKEN}}}}}]\n"
            "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
        )
        log = tmp_path / "agent.log"
        env = {
            **os.environ,
            "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "STOCKADE_CONTROLLER_TOKEN": controller.tokens["agent"],
            "STOCKADE_SPOOL_DIR": str(tmp_path / "spool"),
        }
        env.pop("NODE_NAME", None)
        with log.open("w") as out:
            agent = subprocess.Popen(
                [
                    *(sys.executable, "-m", "stockade", "agent", "run", "--node", NODE),
                    *("--identities", f"kubernetes:{kubeconfig}", "--host-root", str(host)),
                    *("--no-sensor", "--no-bench", "--heartbeat", "2s", "--duration", "120"),
                    *("--db", make_db(tmp_path / "node.db")),
                    *("--controller", controller.base, "--controller-ca", str(controller.ca)),
                    *("--agent-name", "runtime-agent"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            images = _wait_for_images(controller, {NGINX_DIGEST, REDIS_DIGEST}, log)
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(60)
    assert images[NGINX_DIGEST]["names"] == ["docker.io/library/nginx:latest"]
    assert images[REDIS_DIGEST]["names"] == ["docker.io/library/redis:alpine"]
    with controller.client("reader") as c:
        events = c.get("/api/v1/events", params={"kind": "scan.completed"}).json()["events"]
        nginx_detail = c.get(f"/api/v1/images/{NGINX_DIGEST}").json()
    pods = {
        (e["data"].get("pod"), e["data"].get("container"), e["data"].get("runtime")) for e in events
    }
    assert ("develop/web-with-logger", "web", "containerd") in pods
    assert ("cache/redis-0", "redis", "cri-o") in pods
    assert all(e["data"].get("node") == NODE for e in events)
    assert "CVE-2024-37891" in {v["id"] for v in nginx_detail["vulnerabilities"]["items"]}
    assert not any(p == "cache/redis-1" for p, _, _ in pods)  # stopped: nothing to scan
    assert "failed" not in log.read_text()


def _wait_for_images(controller: Any, digests: set[str], log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with controller.client("reader") as c:
            items = c.get("/api/v1/images").json()["items"]
        found = {i["digest"]: i for i in items if i.get("digest") in digests}
        if set(found) == digests:
            return found
        time.sleep(0.5)
    raise AssertionError(f"not every container's scan reached the controller:\n{log.read_text()}")
