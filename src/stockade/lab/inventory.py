"""The lab inventory: which pod owns which address, saved as JSON for the sensor."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stockade.identity import Directory, Workload
from stockade.model.atomicfile import write_atomically
from stockade.model.errors import ConfigError
from stockade.model.resource import ResourceRef

DEFAULT_STATE = Path("/run/stockade/lab.json")


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    name: str  # "http", "https", "postgres", "redis"
    port: int
    pid: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Pod:
    name: str
    namespace: str  # the Kubernetes namespace it plays
    labels: tuple[tuple[str, str], ...] = ()
    netns: str  # Linux network namespace name
    host_if: str  # host-side veth (in the node namespace)
    ipv4: str
    ipv6: str
    external: bool = False  # plays "outside the cluster"
    services: tuple[Service, ...] = ()
    # set when the pod runs a container (``lab up --container POD=sample``)
    cgroup: str = ""  # cgroup v2 path of its processes: "/stockade.slice/sk-orders"
    root: str = ""  # its root filesystem on the host (the overlay's merged directory)
    image_root: str = ""  # the unpacked image under it (what zero-drift allows)

    def ref(self) -> ResourceRef:
        return self.workload().ref(self.ipv4)

    def workload(self) -> Workload:
        return Workload(
            name=self.name,
            namespace=self.namespace,
            labels=self.labels,
            node="lab",
            addresses=tuple(a for a in (self.ipv4, self.ipv6) if a),
            external=self.external,
            cgroups=(self.cgroup,) if self.cgroup else (),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Inventory:
    prefix: str
    node_netns: str
    pods: tuple[Pod, ...]
    state_dir: str
    extra_pids: tuple[int, ...] = field(default=())

    def pod(self, name: str) -> Pod:
        for p in self.pods:
            if p.name == name:
                return p
        raise ConfigError(f"no lab pod named {name!r}")

    def directory(self) -> Directory:
        """The lab as an identity provider: every pod's addresses."""
        return Directory(p.workload() for p in self.pods)

    def host_interfaces(self) -> list[str]:
        return [p.host_if for p in self.pods]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Inventory:
        try:
            pods = tuple(
                Pod(
                    name=p["name"],
                    namespace=p["namespace"],
                    labels=tuple((str(k), str(v)) for k, v in p.get("labels", ())),
                    netns=p["netns"],
                    host_if=p["host_if"],
                    ipv4=p["ipv4"],
                    ipv6=p["ipv6"],
                    external=bool(p.get("external", False)),
                    services=tuple(Service(**s) for s in p.get("services", ())),
                    cgroup=str(p.get("cgroup", "")),
                    root=str(p.get("root", "")),
                    image_root=str(p.get("image_root", "")),
                )
                for p in data["pods"]
            )
            return cls(
                prefix=data["prefix"],
                node_netns=data["node_netns"],
                pods=pods,
                state_dir=data["state_dir"],
                extra_pids=tuple(data.get("extra_pids", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"lab state file is malformed: {exc}") from exc


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_CGROUP = re.compile(r"/stockade\.slice/[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def _check_names(inv: Inventory) -> Inventory:
    """Names from the state file end up in ``ip`` argument lists: no options, no odd characters."""
    for p in inv.pods:
        for value in (p.netns, p.host_if, p.name):
            if not _NAME.fullmatch(value):
                raise ConfigError(f"lab state names a bad interface or namespace: {value!r}")
        if p.cgroup and not _CGROUP.fullmatch(p.cgroup):
            raise ConfigError(f"lab state names a bad cgroup: {p.cgroup!r}")
        for path in (p.root, p.image_root):
            if path and (not path.startswith("/") or ".." in path.split("/")):
                raise ConfigError(f"lab state names a bad root: {path!r}")
        for addr in (p.ipv4, p.ipv6):
            try:
                ipaddress.ip_address(addr)
            except ValueError as exc:
                raise ConfigError(f"lab state holds a bad address: {addr!r}") from exc
    if not _NAME.fullmatch(inv.node_netns):
        raise ConfigError(f"lab state names a bad namespace: {inv.node_netns!r}")
    return inv


def save(inv: Inventory, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, inv.to_json().encode("utf-8"))


def load(path: Path) -> Inventory:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"no lab state at {path} (run `stockade lab up`)") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read lab state {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"lab state file {path} is not a JSON object")
    return _check_names(Inventory.from_dict(data))
