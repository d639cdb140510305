"""``stockade agent run`` against the lab as if it were a cluster, end to end with a real controller.

The lab's pods are described to the agent by Kubernetes API documents (the recorded pod document,
renamed, relabelled and readdressed from the lab's inventory, all on node ``lab-node``) served by
the local list/watch server of tests/identity/kubeserver.py. The agent finds each pod's host-side
veth from the pod's network namespace, captures there, and reports to the controller:

- a card posted in clear from marketing/crm to shop/orders arrives as a DLP event naming both pods;
- a pod added to the API after the start is attached to its veth; deleted, it is let go;
- the node CIS benchmark runs at start and again after a watched configuration file changes;
- the crm pod gets a process whose root filesystem is a small root filesystem of its own (the
  lab's other processes share the host's root, which the agent does not take for a container's):
  its scan lands at the controller under the image digest the pod's containerStatuses name;
- quarantine in a cluster: the agent's enforcer follows the controller's quarantines, cutting a
  pod's traffic on the node (and writing its deny-all NetworkPolicy through the API) and restoring
  it when lifted (the policy deleted), also for a pod quarantined before the
  API described it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stockade.lab.inventory import Inventory, load
from tests.api.controller import LAB_CARD, SRC, Controller, running_controller
from tests.api.lab import lab_command, stop
from tests.identity.kubeserver import FakeApiServer, document
from tests.scanning.scan_cli_support import make_db
from tests.support import require_root

pytestmark = [pytest.mark.root, pytest.mark.slow]

TOKEN = "lab-cluster-token"
NODE = "lab-node"
PODS = "/api/v1/pods"
IMAGE = (
    "k8s.gcr.io/nginx-slim@sha256:8b4501fe0fe221df663c22e16539f399e89594552f400408303c42f3dd8d0e52"
)
LATE = "payments"  # described to the API only after the agent started


def pod_document(inv: Inventory, name: str) -> dict[str, Any]:
    """The recorded pod document as the lab pod ``name``: name, namespace, labels, IPs, node."""
    p = inv.pod(name)
    doc = document("pod")
    meta = doc["metadata"]
    meta.update(name=p.name, namespace=p.namespace, labels=dict(p.labels))
    meta.pop("ownerReferences")
    doc["spec"]["nodeName"] = NODE
    doc["status"]["podIP"] = p.ipv4
    doc["status"]["podIPs"] = [{"ip": p.ipv4}, {"ip": p.ipv6}]
    return doc


def kubeconfig(tmp: Path, api: FakeApiServer) -> Path:
    (tmp / "k8s-ca.crt").write_bytes(api.files.ca_cert.read_bytes())
    path = tmp / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: lab\n"
        f"clusters: [{{name: lab, cluster: {{server: '{api.url}', certificate-authority: k8s-ca.crt}}}}]\n"
        f"users: [{{name: agent, user: {{token: {TOKEN}}}}}]\n"
        "contexts: [{name: lab, context: {cluster: lab, user: agent}}]\n"
    )
    return path


def rootfs(tmp: Path) -> Path:
    """A container's root filesystem: an os-release and one Python package with a known advisory."""
    root = tmp / "crm-root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text(Path("/etc/os-release").read_text())
    meta = root / "usr/lib/python3/dist-packages/urllib3-2.0.7.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: urllib3\nVersion: 2.0.7\n")
    return root


def wait_for(check: Callable[[], Any], timeout: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"no {what} within {timeout}s; agent log:\n{log.read_text()[-4000:]}")


@dataclass
class Cluster:
    inv: Inventory
    prefix: str
    api: FakeApiServer
    controller: Controller
    agent: subprocess.Popen[str]
    log: Path
    watched: Path

    def read(self, path: str, **params: Any) -> Any:
        with self.controller.client("reader") as c:
            answer = c.get(path, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def post_card(self, pod: str = "crm") -> str:
        proc = subprocess.run(
            [
                *("ip", "netns", "exec", f"{self.prefix}{pod}", "curl", "-s", "-m", "2"),
                *("-o", "/dev/null", "-w", "%{http_code}"),
                *("-d", f"card={LAB_CARD}", f"http://{self.inv.pod('orders').ipv4}:8080/"),
            ],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return proc.stdout.strip()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_root("ip", "nsenter", "curl")
    tmp = tmp_path_factory.mktemp("agent-lab")
    prefix = f"na{os.getpid() % 10000}-"
    state = tmp / "lab.json"
    with ExitStack() as stack:
        up = lab_command("up", "--prefix", prefix, "--state", str(state), "--no-databases")
        stack.callback(lab_command, "down", "--prefix", prefix, "--state", str(state))
        assert up.returncode == 0, up.stderr
        inv = load(state)
        api = stack.enter_context(FakeApiServer(tmp, TOKEN))
        api.change("/api/v1/namespaces", "ADDED", document("namespace"))
        for p in inv.pods:
            if not p.external and p.name != LATE:
                api.change(PODS, "ADDED", pod_document(inv, p.name))
        controllers = running_controller("sqlite", tmp_path_factory, "unused")
        controller = next(controllers)
        stack.callback(lambda: next(controllers, None))
        # the crm pod's container: a process in the pod's namespace, chrooted into its own root
        container = subprocess.Popen(
            [
                *("ip", "netns", "exec", f"{prefix}crm", sys.executable, "-c"),
                "import os, sys, time; os.chroot(sys.argv[1]); os.chdir('/'); time.sleep(300)",
                str(rootfs(tmp)),
            ]
        )
        stack.callback(lambda: (container.kill(), container.wait()))
        watched = tmp / "kubelet-config.yaml"
        watched.write_text("kind: KubeletConfiguration\nreadOnlyPort: 0\n")
        log = tmp / "agent.log"
        env = {
            **os.environ,
            "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "STOCKADE_CONTROLLER_TOKEN": controller.tokens["agent"],
            "STOCKADE_SPOOL_DIR": str(tmp / "spool"),
        }
        with log.open("w") as out:
            agent = subprocess.Popen(
                [
                    *(sys.executable, "-m", "stockade", "agent", "run", "--node", NODE),
                    *("--identities", f"kubernetes:{kubeconfig(tmp, api)}"),
                    *("--node-netns", f"{prefix}node", "--role", "worker"),
                    *("--db", make_db(tmp / "node.db")),
                    *("--watch-file", str(watched), "--watch-every", "1s"),
                    *("--heartbeat", "2s", "--duration", "300", "--enforce"),
                    "--quarantine-network-policy",
                    *("--controller", controller.base, "--controller-ca", str(controller.ca)),
                    *("--agent-name", "lab-agent"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
            )
        stack.callback(stop, agent)
        c = Cluster(inv, prefix, api, controller, agent, log, watched)
        # start-up (imports, the first watch, the enforcer's rules) takes seconds on a quiet
        # machine and far longer on a loaded CI runner: the bound only catches a hang
        wait_for(lambda: "pod marketing/crm on vh-crm" in log.read_text(), 90, "crm attached", log)
        wait_for(lambda: "enforcing" in log.read_text(), 60, "the enforcer", log)
        yield c


def test_connections_reach_the_controller_attributed_to_the_pods(cluster: Cluster) -> None:
    def dlp_event() -> Any:
        assert cluster.post_card() == "200"
        events = cluster.read("/api/v1/events", kind="dlp.sensitive_in_clear")["events"]
        return next((e for e in events if e["resource"]["name"] == "crm"), None)

    event = wait_for(dlp_event, 20, "DLP event from crm", cluster.log)
    assert (event["resource"]["namespace"], event["resource"]["kind"]) == ("marketing", "pod")
    assert (event["peer"]["namespace"], event["peer"]["name"]) == ("shop", "orders")
    assert LAB_CARD not in str(event)  # masked on the way
    agents = {a["name"]: a for a in cluster.read("/api/v1/agents")}
    assert agents["lab-agent"]["node"] == NODE and agents["lab-agent"]["up"]
    assert {"network.sensor", "cis", "scan"} <= set(agents["lab-agent"]["capabilities"])


def test_pods_are_followed_as_they_come_and_go(cluster: Cluster) -> None:
    doc = pod_document(cluster.inv, LATE)
    cluster.api.change(PODS, "ADDED", doc)
    attached = f"pod shop/{LATE} on vh-{LATE}"
    wait_for(lambda: attached in cluster.log.read_text(), 10, "the late pod attached", cluster.log)
    cluster.api.change(PODS, "DELETED", doc)
    gone = f"pod shop/{LATE} gone from vh-{LATE}"
    wait_for(lambda: gone in cluster.log.read_text(), 10, "the late pod let go", cluster.log)


def test_cis_runs_again_after_a_watched_file_changes(cluster: Cluster) -> None:
    def runs() -> list[Any]:
        items = cluster.read("/api/v1/cis/runs")["items"]
        return [r for r in items if r["node"] == NODE]

    first = len(wait_for(runs, 20, "the first CIS run", cluster.log))
    cluster.watched.write_text("kind: KubeletConfiguration\nreadOnlyPort: 10255\n")
    wait_for(lambda: len(runs()) > first, 15, "a CIS run after the change", cluster.log)
    assert f"file:{cluster.watched}" in cluster.log.read_text()


def test_a_running_containers_filesystem_is_scanned(cluster: Cluster) -> None:
    def scanned() -> Any:
        items = cluster.read("/api/v1/images")["items"]
        return next((i for i in items if IMAGE.split("@")[1] in str(i)), None)

    image = wait_for(scanned, 40, "the crm container's scan", cluster.log)
    assert image["digest"] == IMAGE.split("@")[1]
    detail = cluster.read(f"/api/v1/images/{image['digest']}")
    assert "CVE-2024-37891" in {v["id"] for v in detail["vulnerabilities"]["items"]}


def test_quarantine_follows_the_controller_and_the_pods(cluster: Cluster) -> None:
    def change(method: str, workload: str) -> None:
        with cluster.controller.client("operator") as c:
            answer = c.request(method, f"/api/v1/quarantine/{workload}")
        assert answer.status_code in (200, 201), answer.text

    assert cluster.post_card() == "200"
    change("POST", "marketing/crm")
    wait_for(lambda: cluster.post_card() == "000", 15, "crm cut off", cluster.log)
    # the cluster's half: a deny-all NetworkPolicy selecting crm's labels, through the API
    policy = wait_for(
        lambda: cluster.api.networkpolicies.get(("marketing", "stockade-quarantine-crm")),
        15,
        "crm's quarantine NetworkPolicy",
        cluster.log,
    )
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    crm = pod_document(cluster.inv, "crm")
    assert policy["spec"]["podSelector"]["matchLabels"] == crm["metadata"]["labels"]
    change("DELETE", "marketing/crm")
    wait_for(lambda: cluster.post_card() == "200", 15, "crm back", cluster.log)
    wait_for(
        lambda: ("marketing", "stockade-quarantine-crm") not in cluster.api.networkpolicies,
        15,
        "crm's NetworkPolicy deleted with the lift",
        cluster.log,
    )

    # quarantined while the API does not describe it: cut as soon as the pod arrives
    change("POST", f"shop/{LATE}")
    time.sleep(5)  # the enforcer asks the controller every 2 s: it has the list before the pod
    assert cluster.post_card(LATE) == "200"
    cluster.api.change(PODS, "ADDED", pod_document(cluster.inv, LATE))
    wait_for(lambda: cluster.post_card(LATE) == "000", 15, "the late pod cut off", cluster.log)
    change("DELETE", f"shop/{LATE}")
    wait_for(lambda: cluster.post_card(LATE) == "200", 15, "the late pod back", cluster.log)
