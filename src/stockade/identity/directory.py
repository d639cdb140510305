"""Address -> workload lookups: built once from a provider's workloads, or kept current by a live
provider (the Kubernetes API watch) through :meth:`Directory.put` and :meth:`Directory.remove`."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable

from stockade.identity.model import Workload
from stockade.model.errors import UsageError
from stockade.model.resource import ResourceRef
from stockade.model.slots import slot_constructor

EXTERNAL_KEPT = 4096  # external addresses whose reference a directory remembers
# ResourceRef built without its frozen __init__ (the sensor's every new address; tests hold the
# two equal)
_new_ref = slot_constructor(ResourceRef)


class Directory:
    """Every workload by address (packed bytes on the hot path, text elsewhere) and by name.

    Lookups take no lock (one dict read, atomic in CPython); writers hold the directory's lock, so a
    watch thread can update it while the sensor and the firewall read it."""

    def __init__(self, workloads: Iterable[Workload] = ()) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._entries: dict[str, Workload] = {}
        self._by_packed: dict[bytes, tuple[str, Workload, ResourceRef]] = {}
        self._by_cgroup: dict[str, tuple[str, Workload]] = {}
        # the ``external`` reference of addresses no workload owned when looked up: a pure
        # function of the address, consulted only after _by_packed, so no update invalidates it
        self._external: dict[bytes, ResourceRef] = {}
        self.version = 0  # bumped on every change
        for i, w in enumerate(workloads):
            self.put(f"#{i}", w)

    @property
    def workloads(self) -> tuple[Workload, ...]:
        with self._lock:
            return tuple(self._entries.values())

    def put(self, key: str, workload: Workload) -> None:
        """Add or replace the workload filed under ``key`` (``pod/ns/name``...). An address keeps
        pointing at whoever put it last: a new pod that reuses the address of a pod still being
        deleted owns it, and the old pod's removal leaves it alone."""
        packed = [
            (ipaddress.ip_address(a).packed, str(ipaddress.ip_address(a)))
            for a in workload.addresses
        ]
        with self._lock:
            old = self._entries.get(key)
            if old == workload:
                return
            if old is not None:
                self._drop_addresses(key, old)
            self._entries[key] = workload
            for raw, text in packed:
                self._by_packed[raw] = (key, workload, workload.ref(text))
            for cg in workload.cgroups:
                self._by_cgroup[cg] = (key, workload)
            self.version += 1
            self._changed.notify_all()

    def remove(self, key: str) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is None:
                return
            self._drop_addresses(key, old)
            self.version += 1
            self._changed.notify_all()

    def entry(self, key: str) -> Workload | None:
        return self._entries.get(key)

    def keys(self, prefix: str = "") -> list[str]:
        with self._lock:
            return [k for k in self._entries if k.startswith(prefix)]

    def _drop_addresses(self, key: str, old: Workload) -> None:
        for addr in old.addresses:
            raw = ipaddress.ip_address(addr).packed
            hit = self._by_packed.get(raw)
            if hit is not None and hit[0] == key:
                del self._by_packed[raw]
        for cg in old.cgroups:
            if self._by_cgroup.get(cg, ("",))[0] == key:
                del self._by_cgroup[cg]

    def wait_until(self, predicate: Callable[[Directory], bool], timeout: float) -> bool:
        """Block until ``predicate(self)`` holds (checked after every change), at most ``timeout``
        seconds; True if it held."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                seen = self.version
            if predicate(self):
                return True
            with self._lock:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if self.version == seen:
                    self._changed.wait(left)

    def lookup(self, packed: bytes) -> ResourceRef:
        """The resource that owns a packed IPv4/IPv6 address; unknown ones are ``external``."""
        hit = self._by_packed.get(packed)
        if hit is not None:
            return hit[2]
        ref = self._external.get(packed)
        if ref is not None:
            return ref
        # inet_ntoa spells an IPv4 address as ipaddress does, several times faster
        text = socket.inet_ntoa(packed) if len(packed) == 4 else str(ipaddress.ip_address(packed))
        ref = _new_ref(kind="external", name=text, namespace=None, digest=None, labels=())
        if len(self._external) >= EXTERNAL_KEPT:
            self._external.clear()
        self._external[packed] = ref
        return ref

    def owned(self) -> list[tuple[bytes, ResourceRef]]:
        """Every address a workload owns (packed) with the reference :meth:`lookup` gives it;
        any other address is ``external``, named by its text."""
        with self._lock:
            return [(raw, hit[2]) for raw, hit in self._by_packed.items()]

    def workload_of_cgroup(self, path: str) -> Workload | None:
        """The workload whose processes live in the cgroup v2 ``path`` or a cgroup below it."""
        while path:
            hit = self._by_cgroup.get(path)
            if hit is not None:
                return hit[1]
            if path == "/":
                return None
            path = path.rsplit("/", 1)[0] or "/"
        return None

    def workload_at(self, ip: str) -> Workload | None:
        hit = self._by_packed.get(ipaddress.ip_address(ip).packed)
        return hit[1] if hit else None

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
        return len(self._entries)
