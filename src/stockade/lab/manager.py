"""``lab up|down|status|traffic``: build the lab from a fixed layout, start its services, drive
bounded traffic, and remove everything it made (by name and pid), idempotently."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from stockade.lab import databases, inventory, pki, topology
from stockade.lab.databases import spawn_service
from stockade.lab.inventory import Inventory, Pod, Service
from stockade.model.errors import ConfigError, EnforcementError
from stockade.network import netns as ns_tools
from stockade.runtime import container
from stockade.workers import process_exists

WORLD_IPV4 = "198.51.100.10"  # TEST-NET-2: routed only inside the lab's namespaces
WORLD_IPV6 = "2001:db8::10"
UNROUTABLE = "203.0.113.99"
# look like cards or SSNs but are not: order ids, timestamps, a phone number, Luhn-invalid numbers,
# SSNs with never-issued areas; the sensor must report none of them as a card or an SSN
DECOYS = json.dumps(
    {
        "order_id": "20261127045959",
        "ts": 1764215999123,
        "phone": "+1 415-555-0132",
        "card": "4111 1111 1111 1112",
        "ref": "5555-5555-5555-4445",
        "ssn": "000-12-3456",
        "alt": "666-45-1234",
        "tracking": "1Z999AA10123456784",
        "amount": "1234567890123456.78",
    }
)  # TEST-NET-3: nothing answers; used for half-open floods


@dataclass(frozen=True, slots=True, kw_only=True)
class PodSpec:
    name: str
    namespace: str
    labels: dict[str, str]
    external: bool = False


LAYOUT = (
    PodSpec(
        name="payments",
        namespace="shop",
        labels={"app": "payments", "tier": "frontend", "pci": "cde"},
    ),
    PodSpec(name="orders", namespace="shop", labels={"app": "orders", "tier": "api", "pci": "cde"}),
    PodSpec(name="db", namespace="data", labels={"app": "postgres", "tier": "db"}),
    PodSpec(name="cache", namespace="data", labels={"app": "redis", "tier": "cache"}),
    PodSpec(name="crm", namespace="marketing", labels={"app": "crm"}),
    PodSpec(name="dns", namespace="kube-system", labels={"k8s-app": "kube-dns"}),
    PodSpec(name="world", namespace="", labels={"role": "internet"}, external=True),
)


def _check_prefix(prefix: str) -> None:
    if not (1 <= len(prefix) <= 10) or not all(c.isalnum() or c == "-" for c in prefix):
        raise ConfigError(f"lab prefix {prefix!r} must be 1-10 letters, digits or '-'")


def _lab_namespaces(prefix: str) -> list[str]:
    """The namespaces a lab with ``prefix`` makes that exist now: exact names, never a bare
    prefix match (a short prefix must not reach another lab's or anyone's namespaces)."""
    names = {f"{prefix}node"} | {f"{prefix}{spec.name}" for spec in LAYOUT}
    return sorted(names & ns_tools.netns_list())


def _pods(prefix: str) -> list[Pod]:
    pods = []
    for i, spec in enumerate(LAYOUT):
        ipv4, ipv6 = (
            (WORLD_IPV4, WORLD_IPV6)
            if spec.external
            else (f"10.77.0.{10 + i}", f"fd77::{10 + i:x}")
        )
        pods.append(
            Pod(
                name=spec.name,
                namespace=spec.namespace,
                labels=tuple(sorted(spec.labels.items())),
                netns=f"{prefix}{spec.name}",
                host_if=f"vh-{spec.name}",
                ipv4=ipv4,
                ipv6=ipv6,
                external=spec.external,
            )
        )
    return pods


def _python_in(netns: str, module: str, *args: str) -> list[str]:
    return ns_tools.in_ns(netns, sys.executable, "-m", module, *args)


IMAGES = ("sample",)  # what ``--container POD=IMAGE`` can run
CONTAINER_PORT = 9443  # the container's own service: ``openssl s_server -www`` from the image


def up(
    prefix: str,
    state: Path,
    *,
    databases_on: bool = True,
    containers: dict[str, str] | None = None,
) -> Inventory:
    """Create the lab; on any failure, remove what was made and re-raise. ``containers`` maps a
    pod to the image whose root filesystem runs its container (``{"orders": "sample"}``)."""
    _check_prefix(prefix)
    for pod, image in (containers or {}).items():
        if pod not in {s.name for s in LAYOUT if not s.external}:
            raise ConfigError(f"--container: no lab pod {pod!r}")
        if image not in IMAGES:
            raise ConfigError(f"--container: unknown image {image!r} (known: {', '.join(IMAGES)})")
    if _lab_namespaces(prefix):
        raise ConfigError(f"a lab with prefix {prefix!r} is already up (run `stockade lab down`)")
    state_dir = databases.DATA_ROOT / f"{prefix}state"
    node = f"{prefix}node"
    pods = _pods(prefix)
    inv = Inventory(prefix=prefix, node_netns=node, pods=tuple(pods), state_dir=str(state_dir))
    inventory.save(inv, state)  # saved first, so `down` can clean a half-built lab
    try:
        topology.setup_node(node)
        for p in pods:
            ns_tools.add_netns(p.netns)
            topology.attach_pod(node, p.netns, p.host_if, p.ipv4, p.ipv6)
        inv = _start_services(inv, state_dir, databases_on)
        inventory.save(inv, state)
        for pod, image in (containers or {}).items():
            inv = _start_container(inv, state_dir, pod, image)
            inventory.save(inv, state)
    except BaseException:
        down(prefix, state)
        raise
    return inv


def _start_services(inv: Inventory, state_dir: Path, databases_on: bool) -> Inventory:
    state_dir.mkdir(parents=True, exist_ok=True)
    pkidir = state_dir / "pki"
    _, ca_key, ca_cert = pki.make_ca(pkidir)
    orders, db = inv.pod("orders"), inv.pod("db")
    web = pki.issue(
        pkidir, "orders", ["orders.shop.svc", "orders"], [orders.ipv4, orders.ipv6], ca_key, ca_cert
    )
    dbc = pki.issue(pkidir, "db", ["db.data.svc", "db"], [db.ipv4, db.ipv6], ca_key, ca_cert)
    log = state_dir / "services.log"
    mod = "stockade.lab.services"
    started: dict[str, list[Service]] = {}

    def add(pod: str, name: str, port: int, pid: int) -> None:
        started.setdefault(pod, []).append(Service(name=name, port=port, pid=pid))

    add(
        "orders",
        "http",
        8080,
        spawn_service(_python_in(orders.netns, mod, "http", "--port", "8080"), log),
    )
    tls = ["--cert", str(web.cert), "--key", str(web.key)]
    add(
        "orders",
        "https",
        8443,
        spawn_service(_python_in(orders.netns, mod, "https", "--port", "8443", *tls), log),
    )
    add(
        "orders",
        "https-legacy",
        8444,
        spawn_service(
            _python_in(orders.netns, mod, "https", "--port", "8444", "--tls-max", "1.1", *tls), log
        ),
    )
    world = inv.pod("world")
    add(
        "world",
        "http",
        80,
        spawn_service(_python_in(world.netns, mod, "http", "--port", "80"), log),
    )
    dns = inv.pod("dns")
    names = [
        f"--record={p.name}.{p.namespace}.svc.cluster.local={a}"
        for p in inv.pods
        if not p.external
        for a in (p.ipv4, p.ipv6)
    ]
    add(
        "dns",
        "dns",
        53,
        spawn_service(_python_in(dns.netns, "stockade.lab.dns", "--port", "53", *names), log),
    )
    for pod, port in (("orders", 8080), ("orders", 8443), ("orders", 8444), ("world", 80)):
        databases._wait_port(inv.pod(pod).netns, "", port, 15)
    databases._wait_port(dns.netns, "", 53, 15, udp=True)
    if databases_on and databases.postgres_available():
        add(
            "db",
            "postgres",
            5432,
            databases.start_postgres(db.netns, inv.prefix, db.ipv4, db.ipv6, dbc.cert, dbc.key),
        )
    if databases_on and databases.redis_bin():
        cache = inv.pod("cache")
        add(
            "cache",
            "redis",
            6379,
            databases.start_redis(cache.netns, inv.prefix, cache.ipv4, cache.ipv6),
        )
    pods = tuple(replace(p, services=tuple(started.get(p.name, ()))) for p in inv.pods)
    return replace(inv, pods=pods)


def _container(prefix: str, state_dir: Path, pod: str, image_root: Path) -> container.Container:
    return container.Container(
        name=f"{prefix}{pod}", image_root=image_root, state=state_dir / "containers" / pod
    )


def _start_container(inv: Inventory, state_dir: Path, pod_name: str, image: str) -> Inventory:
    """Run the pod's container: the image's ``openssl s_server`` on CONTAINER_PORT (a
    self-signed certificate), in the pod's network namespace."""
    from stockade.lab.samples import sample_rootfs

    image_root = sample_rootfs()
    pod = inv.pod(pod_name)
    c = _container(inv.prefix, state_dir, pod_name, image_root)
    container.prepare(c)
    tls = c.root / "run" / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    issued, _, _ = pki.make_ca(state_dir / "containers" / f"{pod_name}-pki")  # self-signed
    shutil.copyfile(issued.cert, tls / "tls.crt")
    shutil.copyfile(issued.key, tls / "tls.key")
    argv = [
        "/usr/bin/openssl", "s_server", "-quiet", "-www", "-accept", str(CONTAINER_PORT),
        "-cert", "/run/tls/tls.crt", "-key", "/run/tls/tls.key",
    ]  # fmt: skip
    pid = spawn_service(
        container.start_args(c, pod.netns, pod.name, argv), state_dir / "services.log"
    )
    databases._wait_port(pod.netns, "", CONTAINER_PORT, 15)
    svc = Service(name="app", port=CONTAINER_PORT, pid=pid)
    new = replace(
        pod,
        services=(*pod.services, svc),
        cgroup=c.cgroup,
        root=str(c.root),
        image_root=str(image_root),
    )
    return replace(inv, pods=tuple(new if p.name == pod_name else p for p in inv.pods))


def container_init(inv: Inventory, pod_name: str) -> int:
    """The host pid of the pod's container's first process."""
    pod = inv.pod(pod_name)
    svc = next((s for s in pod.services if s.name == "app"), None)
    if not pod.cgroup or svc is None:
        raise ConfigError(f"lab pod {pod_name!r} runs no container")
    return container.init_pid(svc.pid)


def container_exec_args(inv: Inventory, pod_name: str, argv: list[str]) -> list[str]:
    """The command that runs ``argv`` inside the pod's running container."""
    pod = inv.pod(pod_name)
    c = _container(inv.prefix, Path(inv.state_dir), pod_name, Path(pod.image_root))
    return container.exec_args(c, container_init(inv, pod_name), argv)


def _alive(pid: int) -> bool:
    try:  # our own child: reap it if it ended (a zombie still answers kill 0)
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    return process_exists(pid)


def _kill(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        live = [p for p in pids if _alive(p)]
        for p in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, sig)
        deadline = time.monotonic() + 3
        while live and time.monotonic() < deadline:
            time.sleep(0.05)
            live = [p for p in live if _alive(p)]
        if not live:
            return


def down(prefix: str, state: Path) -> list[str]:
    """Stop processes and delete namespaces of the lab ``prefix``; returns what was removed."""
    _check_prefix(prefix)
    removed: list[str] = []
    inv = None
    if state.exists():
        try:
            inv = inventory.load(state)
        except ConfigError:
            inv = None
    if inv is not None and inv.prefix == prefix:
        _kill([s.pid for p in inv.pods for s in p.services if s.pid])
    ours = _lab_namespaces(prefix)
    for ns in ours:
        _kill(ns_tools.ns_pids(ns))
    state_dir = databases.DATA_ROOT / f"{prefix}state"
    for spec in LAYOUT:  # by name, whether the state file survived or not
        c = _container(prefix, state_dir, spec.name, Path("/nonexistent"))
        if c.cgroup_dir().exists() or os.path.ismount(c.root):
            container.remove(c)
            removed.append(f"container {c.name}")
    for ns in ours:
        ns_tools.del_netns(ns)  # veths and routes go with their namespaces
        removed.append(ns)
    databases.remove_data(prefix)
    shutil.rmtree(state_dir, ignore_errors=True)
    if inv is not None and inv.prefix == prefix:
        state.unlink(missing_ok=True)
    return removed


def status(state: Path) -> dict[str, object]:
    inv = inventory.load(state)
    present = ns_tools.netns_list()
    pods = []
    for p in inv.pods:
        pods.append(
            {
                "pod": p.name,
                "namespace": p.namespace or "-",
                "netns": p.netns,
                "up": p.netns in present,
                "ipv4": p.ipv4,
                "ipv6": p.ipv6,
                "labels": dict(p.labels),
                "services": [
                    {"name": s.name, "port": s.port, "running": _alive(s.pid)} for s in p.services
                ],
            }
        )
    return {"prefix": inv.prefix, "node": inv.node_netns, "pods": pods}


@dataclass(frozen=True, slots=True, kw_only=True)
class TrafficResult:
    scenario: str
    client: str
    server: str
    ok: bool
    detail: str


def _client(inv: Inventory, pod: str, *args: str, timeout: float = 120) -> tuple[bool, str]:
    cmd = _python_in(inv.pod(pod).netns, "stockade.lab.client", *args)
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=os.environ.copy(), check=False
        )
    except subprocess.TimeoutExpired:
        return False, "timed out"
    out = proc.stdout.strip().splitlines()
    return proc.returncode == 0, out[-1] if out else proc.stderr.strip()[-200:]


def scenarios(inv: Inventory, count: int) -> list[tuple[str, str, str, list[str]]]:
    """(name, client pod, server pod, client arguments) for one round of lab traffic."""
    orders, world = inv.pod("orders"), inv.pod("world")
    ca = str(Path(inv.state_dir) / "pki" / "ca.crt")
    n = str(count)
    out = [
        (
            "card-http",
            "payments",
            "orders",
            ["http", "--host", orders.ipv4, "--port", "8080", "--count", n],
        ),
        (
            "card-https",
            "payments",
            "orders",
            [
                "http",
                "--host",
                orders.ipv4,
                "--port",
                "8443",
                "--tls",
                "--ca",
                ca,
                "--sni",
                "orders.shop.svc",
                "--count",
                n,
            ],
        ),
        (
            "card-https-tls1.1",
            "payments",
            "orders",
            [
                "http",
                "--host",
                orders.ipv4,
                "--port",
                "8444",
                "--tls",
                "--ca",
                ca,
                "--sni",
                "orders.shop.svc",
                "--tls-max",
                "1.1",
                "--count",
                "1",
            ],
        ),
        (
            "card-http-ipv6",
            "payments",
            "orders",
            ["http", "--host", orders.ipv6, "--port", "8080", "--count", "1"],
        ),
        (
            "decoys-http",
            "crm",
            "orders",
            [
                "http",
                "--host",
                orders.ipv4,
                "--port",
                "8080",
                "--path",
                "/orders",
                "--count",
                n,
                "--body",
                DECOYS,
            ],
        ),
        (
            "dns-lookup",
            "payments",
            "dns",
            [
                "dns",
                "--host",
                inv.pod("dns").ipv4,
                "--name",
                "orders.shop.svc.cluster.local",
                "--count",
                n,
            ],
        ),
        (
            "pii-to-world",
            "crm",
            "world",
            [
                "http",
                "--host",
                world.ipv4,
                "--port",
                "80",
                "--path",
                "/collect",
                "--count",
                n,
                "--body",
                json.dumps(
                    {
                        "contact": "Alice Martin",
                        "email": "alice.martin@example.com",
                        "ssn": "536-22-8401",
                    }
                ),
            ],
        ),
    ]
    services = {s.name for p in inv.pods for s in p.services}
    db, cache = inv.pod("db"), inv.pod("cache")
    if "postgres" in services:
        out.append(("pii-sql", "orders", "db", ["pg", "--host", db.ipv4, "--count", n]))
        out.append(
            (
                "pii-sql-tls",
                "orders",
                "db",
                ["pg", "--host", db.ipv4, "--count", n, "--sslmode", "require"],
            )
        )
    if "redis" in services:
        out.append(("pii-redis", "orders", "cache", ["redis", "--host", cache.ipv4, "--count", n]))
    return out


def traffic(inv: Inventory, count: int, only: set[str] | None = None) -> list[TrafficResult]:
    if not 1 <= count <= 1000:
        raise ConfigError("--count must be between 1 and 1000")
    present = ns_tools.netns_list()
    if inv.node_netns not in present:
        raise EnforcementError(f"the lab {inv.prefix!r} is not up")
    results = []
    for name, client, server, args in scenarios(inv, count):
        if only and name not in only:
            continue
        ok, detail = _client(inv, client, *args)
        results.append(
            TrafficResult(scenario=name, client=client, server=server, ok=ok, detail=detail)
        )
    return results
