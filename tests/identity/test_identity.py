"""The identity seam: address -> workload from a static file (Stockade's list or kubectl's)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from stockade.identity import Directory, Workload, directory
from stockade.identity.static import load
from stockade.model.errors import ConfigError, DocumentTooComplex, UsageError
from stockade.model.resource import ResourceRef

DATA = Path(__file__).parent / "data"


def packed(ip: str) -> bytes:
    return ipaddress.ip_address(ip).packed


def test_a_kubectl_pod_list_gives_names_labels_owners_and_nodes() -> None:
    d = load(DATA / "kubectl-get-pods.json")
    queue = d.lookup(packed("172.17.0.6"))
    assert (queue.kind, queue.namespace, queue.name) == ("pod", "default", "queue-l4dv8")
    assert dict(queue.labels)["app"] == "work-queue"
    orders = d.workload_at("fd00:42::7")
    assert orders is not None and orders.owner == "Deployment/orders"
    assert orders.node == "worker-1" and orders.addresses == ("10.42.1.7", "fd00:42::7")
    assert d.workload_at("172.17.0.6").owner == "ReplicaSet/queue"  # no template hash: as named
    # the hostNetwork pod shares the node's address: it is not that address's owner
    assert d.lookup(packed("192.168.49.2")).kind == "external"


def test_stockade_workload_lists_and_lookups(tmp_path: Path) -> None:
    f = tmp_path / "ids.yaml"
    f.write_text(
        "workloads:\n"
        "  - {namespace: shop, name: web, labels: {app: web}, addresses: [10.0.0.1, '::ffff:10.0.0.9']}\n"
        "  - {name: partner, external: true, addresses: [198.51.100.10]}\n"
    )
    d = load(f)
    assert d.lookup(packed("10.0.0.1")).display() == "pod:shop/web"
    assert d.lookup(packed("198.51.100.10")).kind == "external"
    assert d.lookup(packed("203.0.113.1")).name == "203.0.113.1"
    w, addr = d.find("shop/web")
    assert w is not None and w.name == "web" and addr == "10.0.0.1"
    assert d.find("198.51.100.10")[1] == "198.51.100.10"
    with pytest.raises(UsageError):
        d.find("shop/nothing")


@pytest.mark.parametrize(
    "text",
    [
        "[1, 2]",
        "workloads: {a: 1}",
        "workloads: [{name: x, addresses: [not-an-ip]}]",
        "kind: List\nitems: 3",
        "workloads: [{addresses: []}]",
    ],
)
def test_malformed_files_are_one_config_error(tmp_path: Path, text: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load(f)
    assert "\n" not in str(err.value)


def test_deeply_nested_files_are_over_the_input_limit(tmp_path: Path) -> None:
    # the bounded reader every input goes through: exit 3, as for any document over a limit
    f = tmp_path / "bad.yaml"
    f.write_text("{" * 50000)
    with pytest.raises(DocumentTooComplex, match="nested deeper than 100 levels"):
        load(f)


def test_directory_is_built_from_workloads() -> None:
    d = Directory([Workload(name="a", namespace="n", addresses=("10.1.1.1",))])
    assert len(d) == 1 and d.lookup(packed("10.1.1.1")).name == "a"


def test_an_address_looked_up_as_external_is_a_workload_once_put_and_external_once_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = Directory()
    ext = ResourceRef(kind="external", name="10.1.1.2")
    assert d.lookup(packed("10.1.1.2")) == ext
    assert d.lookup(packed("10.1.1.2")) is d.lookup(packed("10.1.1.2"))  # remembered
    d.put("pod/n/a", Workload(name="a", namespace="n", addresses=("10.1.1.2",)))
    assert d.lookup(packed("10.1.1.2")).name == "a"
    d.remove("pod/n/a")
    assert d.lookup(packed("10.1.1.2")) == ext
    monkeypatch.setattr(directory, "EXTERNAL_KEPT", 3)
    for i in range(10):
        assert d.lookup(packed(f"192.0.2.{i}")).name == f"192.0.2.{i}"
    assert len(d._external) <= 3  # bounded
    for text in ("2001:db8::1", "198.51.100.7"):
        got, want = d.lookup(packed(text)), ResourceRef(kind="external", name=text)
        assert got == want and hash(got) == hash(want) and repr(got) == repr(want)


def test_a_cgroup_and_the_cgroups_below_it_name_their_workload() -> None:
    orders = Workload(name="orders", namespace="shop", cgroups=("/stockade.slice/sk-orders",))
    d = Directory()
    d.put("pod/shop/orders", orders)
    assert d.workload_of_cgroup("/stockade.slice/sk-orders") == orders
    assert d.workload_of_cgroup("/stockade.slice/sk-orders/init.scope") == orders
    assert d.workload_of_cgroup("/stockade.slice/sk-orders2") is None
    assert d.workload_of_cgroup("/stockade.slice") is None
    assert d.workload_of_cgroup("/") is None
    d.remove("pod/shop/orders")
    assert d.workload_of_cgroup("/stockade.slice/sk-orders") is None
