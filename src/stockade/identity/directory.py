"""Address -> workload lookups, built once from a provider's workloads."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from stockade.identity.model import Workload
from stockade.model.errors import UsageError
from stockade.model.resource import ResourceRef


class Directory:
    """Every workload by address (packed bytes on the hot path, text elsewhere) and by name."""

    def __init__(self, workloads: Iterable[Workload] = ()) -> None:
        self.workloads = tuple(workloads)
        self._by_packed: dict[bytes, tuple[Workload, ResourceRef]] = {}
        for w in self.workloads:
            for addr in w.addresses:
                packed = ipaddress.ip_address(addr).packed
                self._by_packed[packed] = (w, w.ref(str(ipaddress.ip_address(addr))))

    def lookup(self, packed: bytes) -> ResourceRef:
        """The resource that owns a packed IPv4/IPv6 address; unknown ones are ``external``."""
        hit = self._by_packed.get(packed)
        if hit is not None:
            return hit[1]
        return ResourceRef(kind="external", name=str(ipaddress.ip_address(packed)))

    def workload_at(self, ip: str) -> Workload | None:
        hit = self._by_packed.get(ipaddress.ip_address(ip).packed)
        return hit[0] if hit else None

    def find(self, text: str, *, family: int = 4) -> tuple[Workload | None, str]:
        """A workload and one of its addresses from ``ns/name``, ``name`` or an IP address (IPv4
        preferred for names); an unknown address gives ``(None, address)``."""
        try:
            addr = str(ipaddress.ip_address(text))
        except ValueError:
            pass
        else:
            return self.workload_at(addr), addr
        ns, _, name = text.rpartition("/")
        hits = [w for w in self.workloads if w.name == name and (not ns or w.namespace == ns)]
        if not hits or not hits[0].addresses:
            raise UsageError(f"no workload or address {text!r} in the inventory")
        w = hits[0]
        addrs = sorted(w.addresses, key=lambda a: ipaddress.ip_address(a).version != family)
        return w, addrs[0]

    def __len__(self) -> int:
        return len(self.workloads)
