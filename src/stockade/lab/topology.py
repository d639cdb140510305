"""Namespaces, veth pairs and routes for the lab, built with ``ip`` argument lists.

Layout (routed like Calico): a "node" namespace plays the host. Each pod namespace gets a veth
pair: ``eth0`` in the pod, ``vh-<pod>`` in the node. A pod owns a /32 (and an IPv6 /128); its
default route points at a gateway address every host-side veth carries (169.254.1.1 and the
link-local fe80::1), and the node has one host route per pod. Nothing routes out of the node
namespace, so the "outside" address (TEST-NET) is reachable only from our own namespaces.
"""

from __future__ import annotations

from stockade.network.netns import add_netns, in_ns, run

GATEWAY4 = "169.254.1.1"
GATEWAY6 = "fe80::1"


def setup_node(node: str) -> None:
    add_netns(node)
    for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
        run(in_ns(node, "sysctl", "-q", "-w", key))


def attach_pod(node: str, pod_ns: str, host_if: str, ipv4: str, ipv6: str) -> None:
    """Create the pod's veth pair and the addresses and routes on both ends."""
    run(
        [
            "ip",
            "link",
            "add",
            host_if,
            "netns",
            node,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            pod_ns,
        ]
    )
    # host side: gateway addresses, no DAD so routes work at once
    run(["ip", "-n", node, "addr", "add", f"{GATEWAY4}/32", "dev", host_if])
    run(["ip", "-n", node, "-6", "addr", "add", f"{GATEWAY6}/64", "dev", host_if, "nodad"])
    run(["ip", "-n", node, "link", "set", host_if, "up"])
    run(["ip", "-n", node, "route", "add", f"{ipv4}/32", "dev", host_if])
    run(["ip", "-n", node, "-6", "route", "add", f"{ipv6}/128", "dev", host_if])
    # pod side
    run(["ip", "-n", pod_ns, "addr", "add", f"{ipv4}/32", "dev", "eth0"])
    run(["ip", "-n", pod_ns, "-6", "addr", "add", f"{ipv6}/128", "dev", "eth0", "nodad"])
    run(["ip", "-n", pod_ns, "link", "set", "eth0", "up"])
    run(["ip", "-n", pod_ns, "route", "add", GATEWAY4, "dev", "eth0", "scope", "link"])
    run(["ip", "-n", pod_ns, "route", "add", "default", "via", GATEWAY4, "dev", "eth0"])
    run(["ip", "-n", pod_ns, "-6", "route", "add", "default", "via", GATEWAY6, "dev", "eth0"])
