"""Each pod's host-side interface from its network namespace, on real namespaces and veths.

Two node namespaces side by side, each with a pod namespace holding the SAME addresses behind
veths of the same names and (per-namespace) indexes: from inside, the pods look alike; the agent of
node A must still pick node A's pod, through the host end's ``link_netnsid``."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from stockade.identity import Workload
from stockade.lab import topology
from stockade.network.netns import add_netns, del_netns
from stockade.nodeagent.interfaces import cni_of, discover
from tests.support import require_root

pytestmark = pytest.mark.root
IPV4, IPV6 = "10.99.0.7", "fd99::7"


@pytest.fixture
def twins() -> Iterator[str]:
    require_root("ip", "nsenter")
    prefix = f"nat{os.getpid() % 10000}"
    made = []
    try:
        for side in ("a", "b"):
            node, pod = f"{prefix}{side}-node", f"{prefix}{side}-pod"
            topology.setup_node(node)
            made.append(node)
            add_netns(pod)
            made.append(pod)
            topology.attach_pod(node, pod, "cali0f1e2d3c4b5", IPV4, IPV6)
        yield prefix
    finally:
        for ns in made:
            del_netns(ns)


def test_the_pod_behind_this_nodes_veth_is_found(twins: str) -> None:
    sleeper = subprocess.Popen(["ip", "netns", "exec", f"{twins}a-pod", "sleep", "30"])
    try:
        pods = [("shop/web", Workload(name="web", namespace="shop", addresses=(IPV4, IPV6)))]
        for side in ("a", "b"):
            found = discover(pods, node_netns=f"{twins}{side}-node")
            assert list(found) == ["shop/web"]
            web = found["shop/web"]
            assert web.netns == f"/run/netns/{twins}{side}-pod"
            assert (web.host_if, web.cni) == ("cali0f1e2d3c4b5", "calico")
        a = discover(pods, node_netns=f"{twins}a-node")["shop/web"]
        # the pod's process; it shares the host's root: not a container's filesystem
        assert (a.pid, a.container_root) == (sleeper.pid, False)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_an_address_of_no_local_pod_finds_nothing(twins: str) -> None:
    pods = [("shop/other", Workload(name="other", namespace="shop", addresses=("10.99.0.8",)))]
    assert discover(pods, node_netns=f"{twins}a-node") == {}


def test_cni_hints() -> None:
    assert [cni_of(n) for n in ("cali12ab", "lxc9f", "veth3c", "vh-crm", "eth0")] == [
        "calico",
        "cilium",
        "bridge",
        "lab",
        "unknown",
    ]
