"""Each pod's host-side interface, found from the pod's network namespace.

A pod's network namespace is known by its processes (``/proc/PID/ns/net``, the pause container's
and the application's) or, for a namespace with no process yet, by its bind mount under
``/run/netns`` (where CNI plugins and the lab keep them). Inside it, the interface that carries the
pod's address (``eth0``) is one end of a veth pair; its ``link_index`` is the ifindex of the other
end in the node's namespace, and that end names its own peer back, so the match is checked both
ways. Interface indexes are per namespace, so two pod namespaces of different node namespaces (two
labs side by side, say) can look alike from inside: the host end's ``link_netnsid`` settles it
when the node namespace knows that id by name (``ip netns list-id``; containerd and CRI-O keep pod
namespaces under ``/run/netns`` too). Interface names are only hints of the CNI that made them (Calico ``cali*``, Cilium ``lxc*``,
Flannel and the bridge plugin ``veth*``): reported, never trusted to find a pod.

Everything runs ``ip -j`` (inside a namespace through ``nsenter --net``), argument lists only; a
namespace that vanishes meanwhile is skipped until the next look.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stockade.identity.model import Workload
from stockade.network.netns import run

MAX_NAMESPACES = 4096  # more network namespaces than any node runs pods
CNI_HINTS = (("cali", "calico"), ("lxc", "cilium"), ("veth", "bridge"), ("vh-", "lab"))
PAUSE = frozenset({"pause", "/pause"})


@dataclass(frozen=True, slots=True, kw_only=True)
class PodInterface:
    """Where a pod's traffic crosses the node: its host-side interface and its namespace."""

    pod: str  # "namespace/name"
    host_if: str  # in the node's namespace
    cni: str  # the hint its name gives: calico, cilium, bridge, lab or unknown
    netns: str  # a path to the pod's network namespace
    pid: int | None  # the pod's main process (None: no process seen in the namespace)
    container_root: bool = False  # that process's root filesystem is not the node's own


def cni_of(name: str) -> str:
    for prefix, cni in CNI_HINTS:
        if name.startswith(prefix):
            return cni
    return "unknown"


@dataclass(slots=True)
class _Namespace:
    path: str
    pids: list[int]


def namespaces(
    proc: Path = Path("/proc"), named: Path = Path("/run/netns")
) -> dict[tuple[int, int], _Namespace]:
    """Every network namespace on the node by (device, inode): its processes and a path to it."""
    found: dict[tuple[int, int], _Namespace] = {}
    for entry in _entries(named):
        try:
            st = os.stat(entry)
        except OSError:
            continue
        found.setdefault((st.st_dev, st.st_ino), _Namespace(str(entry), []))
    for entry in _entries(proc):
        if not entry.name.isdigit():
            continue
        path = entry / "ns" / "net"
        try:
            st = os.stat(path)
        except OSError:
            continue  # gone, or a kernel thread
        key = (st.st_dev, st.st_ino)
        ns = found.get(key)
        if ns is None:
            if len(found) >= MAX_NAMESPACES:
                continue
            ns = found[key] = _Namespace(str(path), [])
        ns.pids.append(int(entry.name))
    return found


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _links(args: list[str]) -> list[dict[str, Any]]:
    out = run(args, check=False, timeout=10)
    if out.returncode != 0:
        return []
    try:
        data = json.loads(out.stdout or "[]")
    except ValueError:
        return []
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def node_links(node_netns: str | None) -> list[dict[str, Any]]:
    """The node namespace's interfaces (``ip -j link``): the root namespace, or a named one."""
    return _links(["ip", *(["-n", node_netns] if node_netns else []), "-j", "link", "show"])


def _named_ids(node_netns: str | None, named: Path) -> dict[int, tuple[int, int]]:
    """The node namespace's ids of the named namespaces it sees: nsid -> (device, inode)."""
    out = run(
        ["ip", *(["-n", node_netns] if node_netns else []), "-j", "netns", "list-id"],
        check=False,
        timeout=10,
    )
    try:
        rows = json.loads(out.stdout or "[]") if out.returncode == 0 else []
    except ValueError:
        rows = []
    ids: dict[int, tuple[int, int]] = {}
    for row in rows if isinstance(rows, list) else ():
        name = row.get("name") if isinstance(row, dict) else None
        if isinstance(name, str) and isinstance(row.get("nsid"), int) and "/" not in name:
            try:
                st = os.stat(named / name)
            except OSError:
                continue
            ids[row["nsid"]] = (st.st_dev, st.st_ino)
    return ids


def _pod_links(path: str) -> list[dict[str, Any]]:
    return _links(["nsenter", f"--net={path}", "ip", "-j", "address", "show"])


def _addresses(link: dict[str, Any]) -> set[str]:
    out = set()
    for a in link.get("addr_info") or ():
        try:
            out.add(str(ipaddress.ip_address(str(a.get("local", "")))))
        except ValueError:
            continue
    return out


def _own_key(node_netns: str | None) -> tuple[int, int]:
    path = f"/run/netns/{node_netns}" if node_netns else "/proc/self/ns/net"
    st = os.stat(path)
    return st.st_dev, st.st_ino


def main_pid(pids: Iterable[int], proc: Path = Path("/proc")) -> tuple[int | None, bool]:
    """The pod's main process and whether its root filesystem is a container's: not the pause
    container, preferring a process whose root is not the node's; the oldest (lowest id) among
    equals."""
    try:
        host = os.stat("/")
        host_root = (host.st_dev, host.st_ino)
    except OSError:
        host_root = (0, 0)
    ranked = []
    for pid in sorted(pids):
        try:
            argv0 = (proc / str(pid) / "cmdline").read_bytes().split(b"\0", 1)[0].decode()
            st = os.stat(proc / str(pid) / "root")
        except (OSError, UnicodeDecodeError):
            continue
        if os.path.basename(argv0) in PAUSE:
            continue
        ranked.append(((st.st_dev, st.st_ino) == host_root, pid))
    if not ranked:
        return None, False
    on_host, pid = min(ranked)
    return pid, not on_host


def discover(
    pods: Iterable[tuple[str, Workload]],
    *,
    node_netns: str | None = None,
    proc: Path = Path("/proc"),
    named: Path = Path("/run/netns"),
) -> dict[str, PodInterface]:
    """The host-side interface of every pod in ``pods`` (key, workload) found on this node."""
    by_address: dict[str, str] = {}
    for pod_key, w in pods:
        for a in w.addresses:
            by_address[str(ipaddress.ip_address(a))] = pod_key
    if not by_address:
        return {}
    host = {int(link["ifindex"]): link for link in node_links(node_netns) if "ifindex" in link}
    own = _own_key(node_netns)
    peers = _named_ids(node_netns, named)
    found: dict[str, PodInterface] = {}
    for key, ns in namespaces(proc, named).items():
        if key == own:
            continue
        for link in _pod_links(ns.path):
            hits = {by_address[a] for a in _addresses(link) if a in by_address}
            peer = link.get("link_index")
            if len(hits) != 1 or not isinstance(peer, int):
                continue
            end = host.get(peer)
            if end is None or end.get("link_index") not in (None, link.get("ifindex")):
                continue  # an ifindex of another namespace, not this pod's peer
            nsid = end.get("link_netnsid")
            if isinstance(nsid, int) and peers.get(nsid, key) != key:
                continue  # the host end's peer is another namespace that looks the same
            pod = hits.pop()
            pid, container_root = main_pid(ns.pids, proc)
            found[pod] = PodInterface(
                pod=pod,
                host_if=str(end["ifname"]),
                cni=cni_of(str(end["ifname"])),
                netns=ns.path,
                pid=pid,
                container_root=container_root,
            )
    return found
