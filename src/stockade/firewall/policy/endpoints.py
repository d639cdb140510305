"""Who is who: endpoints from the identity seam (``stockade.identity``: the lab, a static file,
later the Kubernetes API), and DNS names resolved the way the node resolves them."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import subprocess
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from stockade.firewall.policy.engine import Endpoint
from stockade.model.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from stockade.identity import Directory as Identities

_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\Z")


class Directory:
    """Endpoints by address and by name (``pod``, ``namespace/pod``)."""

    def __init__(self, endpoints: Iterable[Endpoint]) -> None:
        # Addresses in their one canonical text ("fd00:0001::5" is "fd00:1::5"): the engine
        # compares them as text with resolved DNS names, the kernel sets as addresses; a workload
        # written otherwise was in a DNS group for the kernel and in none for the engine.
        self.endpoints = tuple(_canonical(e) for e in endpoints)
        self._by_ip = {ipaddress.ip_address(e.ip): e for e in self.endpoints}

    @classmethod
    def from_identities(cls, identities: Identities) -> Directory:
        """One endpoint per address the identity seam knows."""
        return cls(
            Endpoint(
                ip=ip,
                name=w.name,
                namespace=w.namespace,
                labels=dict(w.labels),
                external=w.external,
            )
            for w in identities.workloads
            for ip in w.addresses
        )

    def by_ip(self, ip: str) -> Endpoint:
        addr = ipaddress.ip_address(ip)
        return self._by_ip.get(addr) or Endpoint(ip=str(addr), external=True)

    def find(self, text: str, *, family: int = 4) -> Endpoint:
        """An endpoint from ``ns/pod``, ``pod`` or an IP address (IPv4 preferred for names)."""
        try:
            return self.by_ip(text)
        except ValueError:
            pass
        ns, _, name = text.rpartition("/")
        hits = [e for e in self.endpoints if e.name == name and (not ns or e.namespace == ns)]
        if not hits:
            raise UsageError(f"no workload or address {text!r} in the inventory")
        hits.sort(key=lambda e: ipaddress.ip_address(e.ip).version != family)
        return hits[0]

    def addresses(self, pred: Callable[[Endpoint], bool]) -> list[str]:
        return [e.ip for e in self.endpoints if pred(e)]


def _canonical(e: Endpoint) -> Endpoint:
    ip = str(ipaddress.ip_address(e.ip))
    return e if ip == e.ip else dataclasses.replace(e, ip=ip)


def resolve(names: Iterable[str], *, netns: str | None = None) -> dict[str, frozenset[str]]:
    """Resolve DNS names with the node's resolver (``getent ahosts``, in ``netns`` if given, which
    reads ``/etc/netns/<netns>/hosts`` when present). Unresolvable names resolve to nothing."""
    out: dict[str, frozenset[str]] = {}
    for name in sorted(set(names)):
        if not _HOST.match(name):
            raise ConfigError(f"not a DNS name: {name!r}")
        cmd = ["getent", "ahosts", name]
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=False)
        except (OSError, subprocess.TimeoutExpired):
            out[name] = frozenset()
            continue
        addrs = set()
        for line in proc.stdout.splitlines():
            parts = line.split()
            if parts:
                try:
                    addrs.add(str(ipaddress.ip_address(parts[0])))
                except ValueError:
                    continue
        out[name] = frozenset(addrs)
    return out
