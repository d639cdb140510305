"""Identities from a file: Stockade's own list of workloads, or the Pods of a cluster as
``kubectl get pods -A -o json`` prints them (to analyse a capture taken in a real cluster).

```yaml
workloads:
  - {namespace: shop, name: orders-7d9f, labels: {app: orders, pci: cde}, owner: Deployment/orders,
     node: worker-1, addresses: [10.42.1.7, "fd00::7"]}
  - {name: partner, external: true, addresses: [198.51.100.10]}
```
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from stockade.config import parse_json, parse_yaml
from stockade.identity.directory import Directory
from stockade.identity.kubeobjects import mapping, pod_addresses, pod_workload
from stockade.identity.model import Workload
from stockade.k8s.objects import expand_list
from stockade.model.errors import ConfigError

MAX_BYTES = 64 * 1024 * 1024


def load(path: Path) -> Directory:
    """A directory from a workload list or a Kubernetes Pod list (JSON or YAML)."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_BYTES // 2**20} MiB")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read identities file {path}: {exc.strerror or exc}") from None
    # the bounded readers every input goes through: a billion-laughs YAML (labels: {a: *l9})
    # never came back from yaml.safe_load's caller, which turns each label value into text
    name = str(path)
    if text.lstrip().startswith("{"):
        data = parse_json(text, name=name, max_bytes=MAX_BYTES)
    else:
        data = parse_yaml(text, name=name, max_bytes=MAX_BYTES)[0]
    return Directory(parse(data, name))


def parse(data: Any, where: str) -> list[Workload]:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping with 'workloads' or a Kubernetes List")
    if "workloads" in data:
        items = data["workloads"]
        if not isinstance(items, list):
            raise ConfigError(f"{where}: workloads must be a list")
        return [_workload(w, f"{where}: workloads[{i}]") for i, w in enumerate(items)]
    if str(data.get("kind") or "").endswith("List") and isinstance(data.get("items"), list):
        return list(_pods(expand_list(dict(data)), where))
    raise ConfigError(f"{where}: expected a 'workloads' list or a Kubernetes Pod list")


def _workload(raw: Any, where: str) -> Workload:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
        raise ConfigError(f"{where}: needs a name")
    labels = raw.get("labels") or {}
    addrs = raw.get("addresses") or []
    if not isinstance(labels, Mapping) or not isinstance(addrs, list):
        raise ConfigError(f"{where}: labels must be a mapping and addresses a list")
    return Workload(
        name=raw["name"],
        namespace=str(raw.get("namespace") or ""),
        kind=str(raw.get("kind") or "pod"),
        labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
        owner=str(raw.get("owner") or ""),
        node=str(raw.get("node") or ""),
        addresses=tuple(_address(a, where) for a in addrs),
        external=bool(raw.get("external", False)),
    )


def _address(text: Any, where: str) -> str:
    try:
        return str(ipaddress.ip_address(str(text)))
    except ValueError:
        raise ConfigError(f"{where}: not an IP address: {text!r}") from None


def _pods(items: list[Any], where: str) -> Iterator[Workload]:
    for i, pod in enumerate(items):
        if not isinstance(pod, Mapping) or pod.get("kind", "Pod") != "Pod":
            continue
        if mapping(pod.get("spec")).get("hostNetwork"):
            continue  # shares the node's address: it cannot be told apart by address
        addrs = [_address(ip, f"{where}: items[{i}]") for ip in pod_addresses(pod)]
        w = pod_workload(pod, addrs)
        yield w if w.name else replace(w, name=f"pod-{i}")
