"""Real traffic through lab namespaces, captured live and from tcpdump-made pcaps."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from stockade.lab import manager
from stockade.lab.client import CARDS, SSNS
from stockade.lab.inventory import Inventory
from stockade.network.connection import ConnectionRecord, events_for
from stockade.network.flows import FlowConfig
from stockade.network.sensor import run_pcap
from tests.conftest import require
from tests.network.conftest import live_capture

T = TypeVar("T")

pytestmark = pytest.mark.root
COUNT = 3


def _masked_card(card: str) -> tuple[str, str]:
    return card[:4], card[-4:]


def _hits(
    recs: list[ConnectionRecord], client: str, server: str, port: int, sensor: str
) -> list[str]:
    return [
        h.match.masked
        for r in recs
        if (r.client.name, r.server.name, r.server_port) == (client, server, port)
        for h in r.hits
        if h.match.sensor == sensor
    ]


def _check_lab_records(recs: list[ConnectionRecord], inv: Inventory) -> None:
    """Every card and SSN the traffic sent in clear is found between the right workloads; none
    from a TLS flow; the TLS 1.1 service raises a weak-version event."""
    cards_http = _hits(recs, "payments", "orders", 8080, "dlp.payment_card")
    for card in CARDS[:COUNT]:
        first, last = _masked_card(card)
        assert any(m.replace(" ", "").startswith(first) and m.endswith(last) for m in cards_http), (
            card
        )
    pg_ssn = _hits(recs, "orders", "db", 5432, "dlp.us_ssn")
    assert {m[-4:] for m in pg_ssn} >= {s[-4:] for s in SSNS[:COUNT]}
    pg_cards = _hits(recs, "orders", "db", 5432, "dlp.payment_card")
    assert {m[-4:] for m in pg_cards} >= {CARDS[(i + 1) % 3][-4:] for i in range(COUNT)}
    redis_ssn = _hits(recs, "orders", "cache", 6379, "dlp.us_ssn")
    assert {m[-4:] for m in redis_ssn} >= {SSNS[(i + 2) % 3][-4:] for i in range(COUNT)}
    world = [
        r for r in recs if r.server.kind == "external" and r.server_ip == inv.pod("world").ipv4
    ]
    assert world and all(
        r.client.name == "crm" and r.client.namespace == "marketing" for r in world
    )
    assert all(any(h.match.sensor == "dlp.us_ssn" for h in r.hits) for r in world), world
    v6 = [r for r in recs if r.ip_version == 6 and r.server_port == 8080]
    assert (
        v6
        and v6[0].client.name == "payments"
        and any(h.match.sensor == "dlp.payment_card" for h in v6[0].hits)
    )
    tls = [
        r for r in recs if r.server_port in (8443, 8444) or (r.server_port == 5432 and r.encrypted)
    ]
    assert len(tls) == COUNT + 1 + 1  # one per HTTPS request, the TLS 1.1 request, one pg session
    for r in tls:
        assert r.encrypted and r.hits == (), r
        assert r.tls is not None and r.tls.version in ("TLS1.3", "TLS1.1")
    decoys = [
        r for r in recs if (r.client.name, r.server.name, r.server_port) == ("crm", "orders", 8080)
    ]
    assert len(decoys) == COUNT
    assert not [
        h for r in decoys for h in r.hits if h.match.sensor in ("dlp.payment_card", "dlp.us_ssn")
    ]
    dns = [r for r in recs if r.transport == "udp" and r.server_port == 53]
    assert len(dns) == 2 * COUNT  # an A and an AAAA query per round, each from its own socket
    for r in dns:
        assert (r.client.name, r.server.name, r.server.namespace) == (
            "payments",
            "dns",
            "kube-system",
        )
        assert r.protocol == "proto.dns" and r.bytes_to_server and r.bytes_to_client
    weak = [e for r in recs for e in events_for(r) if e.kind == "tls.weak_version"]
    assert len(weak) == 1 and weak[0].data["version"] == "TLS1.1"
    for card in CARDS:
        assert card not in json.dumps([r.to_dict() for r in recs])


def test_live_capture_sees_all_lab_traffic(lab: tuple[Inventory, Path], inspectors) -> None:
    inv, _ = lab
    run, results = live_capture(inv, inspectors, lambda: manager.traffic(inv, COUNT))
    assert all(r.ok for r in results), results
    assert run.stats["source"]["kernel_drops"] == 0
    _check_lab_records(run.records, inv)


def _tcpdump(inv: Inventory, path: Path, iface: str = "any") -> subprocess.Popen[bytes]:
    """tcpdump in the node namespace, bounded by -c and timeout; a 32 MiB buffer because its
    default one drops packets on this busy 2-core machine (it says so, and _stop checks)."""
    require(shutil.which("tcpdump") is not None, "tcpdump is not installed")
    err = open(path.with_suffix(".err"), "wb")  # noqa: SIM115 - closed in _stop
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            inv.node_netns,
            "timeout",
            "60",
            "tcpdump",
            "-i",
            iface,
            "-U",
            "--immediate-mode",
            "-B",
            "32768",
            "-n",
            "-s",
            "0",
            "-c",
            "20000",
            "-w",
            str(path),
        ],
        stderr=err,
    )
    proc.err = err  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the file appears once tcpdump's socket is bound
        if path.exists():
            time.sleep(0.3)
            return proc
        time.sleep(0.05)
    _stop(proc)
    raise AssertionError("tcpdump did not start")


def _stop(proc: subprocess.Popen[bytes], *, check: bool = True) -> bool:
    """Stop tcpdump; whether it recorded every packet (with ``check``, fail when it did not)."""
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    proc.wait(10)
    proc.err.close()  # type: ignore[attr-defined]
    text = Path(proc.err.name).read_text()  # type: ignore[attr-defined]
    complete = "\n0 packets dropped by kernel" in text
    assert complete or not check, text
    return complete


def recorded(inv: Inventory, path: Path, drive: Callable[[], T], attempts: int = 3) -> T:
    """``drive()``'s result with the traffic it makes recorded in ``path``, whole: a recording
    the kernel dropped packets from (a core busy elsewhere) is made again, ``attempts`` at most."""
    for attempt in range(attempts):
        proc = _tcpdump(inv, path)
        try:
            result = drive()
        finally:
            complete = _stop(proc, check=attempt == attempts - 1)
        if complete:
            return result
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def lab_pcap(lab: tuple[Inventory, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    inv, _ = lab
    path = tmp_path_factory.mktemp("pcap") / "lab.pcap"
    results = recorded(inv, path, lambda: manager.traffic(inv, COUNT))
    assert all(r.ok for r in results), results
    return path


def test_tcpdump_pcap_gives_the_same_findings(
    lab: tuple[Inventory, Path], lab_pcap: Path, inspectors
) -> None:
    inv, _ = lab
    run = run_pcap(lab_pcap, inspectors=inspectors, identities=inv.directory())
    assert not run.stats["source"]["truncated"]
    _check_lab_records(run.records, inv)


def test_pcapng_conversion_reads_the_same(
    lab: tuple[Inventory, Path], lab_pcap: Path, inspectors, tmp_path: Path
) -> None:
    require(shutil.which("editcap") is not None, "editcap (wireshark-common) is not installed")
    inv, _ = lab
    ng = tmp_path / "lab.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(lab_pcap), str(ng)], check=True, timeout=60)
    a = run_pcap(lab_pcap, inspectors=inspectors, identities=inv.directory())
    b = run_pcap(ng, inspectors=inspectors, identities=inv.directory())
    assert b.stats["source"]["format"] == "pcapng"
    assert [r.to_dict() | {"id": ""} for r in a.records] == [
        r.to_dict() | {"id": ""} for r in b.records
    ]


def test_card_split_across_two_segments(
    lab: tuple[Inventory, Path], inspectors, tmp_path: Path
) -> None:
    inv, _ = lab
    path = tmp_path / "split.pcap"
    proc = _tcpdump(inv, path, "vh-payments")
    try:
        cmd = [
            "ip",
            "netns",
            "exec",
            inv.pod("payments").netns,
            os.sys.executable,
            "-m",
            "stockade.lab.client",
            "http",
            "--host",
            inv.pod("orders").ipv4,
            "--port",
            "8080",
            "--count",
            "1",
            "--split",
        ]
        subprocess.run(cmd, check=True, timeout=30, capture_output=True, env=os.environ.copy())
    finally:
        _stop(proc)
    # the pcap really holds the card in two client segments, neither with the whole number
    from stockade.network.capture.decode import Decoder
    from stockade.network.capture.pcapfile import PcapReader

    class Segments:
        def __init__(self) -> None:
            self.payloads: list[bytes] = []

        def tcp(self, ts, key, flags, seq, ack, buf, off, length) -> None:
            if key[3] == 8080 and length:
                self.payloads.append(bytes(buf[off : off + length]))

        def udp(self, *a) -> None:
            pass

    seg = Segments()
    dec = Decoder(seg)
    with PcapReader(path) as r:
        for ts, link, buf, off, n in r.frames():
            dec.frame(ts, link, buf, off, n)
    card = CARDS[0].encode()
    assert len(seg.payloads) >= 2 and not any(card in p for p in seg.payloads)
    assert card in b"".join(seg.payloads)
    run = run_pcap(path, inspectors=inspectors, identities=inv.directory())
    assert _hits(run.records, "payments", "orders", 8080, "dlp.payment_card")


def test_half_open_flood_keeps_memory_bounded(lab: tuple[Inventory, Path], inspectors) -> None:
    inv, _ = lab
    flood = [
        "ip",
        "netns",
        "exec",
        inv.pod("crm").netns,
        os.sys.executable,
        "-m",
        "stockade.lab.client",
        "syn",
        "--host",
        manager.UNROUTABLE,
        "--port",
        "443",
        "--count",
        "4000",
    ]

    def drive() -> list[object]:
        subprocess.run(flood, check=True, timeout=60, capture_output=True, env=os.environ.copy())
        return manager.traffic(inv, 1, {"card-http"})

    run, _results = live_capture(inv, inspectors, drive, config=FlowConfig(max_flows=1000))
    flows = run.stats["flows"]
    assert flows["flows"] >= 4000 and flows["peak_flows"] <= 1001
    assert flows["half_open_dropped"] >= 3000
    assert flows["peak_memory"] < 1 << 20
    assert _hits(
        run.records, "payments", "orders", 8080, "dlp.payment_card"
    )  # real traffic still seen


def test_sensor_cli_writes_masked_events_to_the_store(
    lab: tuple[Inventory, Path], lab_pcap: Path, tmp_path: Path
) -> None:
    _, state = lab
    db = tmp_path / "s.db"
    out = subprocess.run(
        [
            os.sys.executable,
            "-m",
            "stockade",
            "sensor",
            "--pcap",
            str(lab_pcap),
            "--state",
            str(state),
            "--db",
            f"sqlite:///{db}",
            "--format",
            "json",
            "--fail-on",
            "high",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert out.returncode == 1, out.stderr  # DLP events are HIGH
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert any(d["dlp"] for d in lines)
    from stockade.network.store import list_connections
    from stockade.store import open_store
    from stockade.store.records import list_events

    store = open_store(f"sqlite:///{db}")
    try:
        kinds = [e.kind for e in list_events(store)]
        assert kinds.count("tls.weak_version") == 1 and kinds.count("dlp.sensitive_in_clear") >= 5
        ev = [e for e in list_events(store, kind="dlp.*") if e.data["sensor"] == "dlp.payment_card"]
        assert ev and all(e.resource is not None and e.peer is not None for e in ev)
        assert len(list_connections(store)) == len(lines)
    finally:
        store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("s.db*"))
    for card in CARDS:
        assert card.encode() not in raw
    for ssn in SSNS:
        assert ssn.encode() not in raw


def test_lab_down_is_idempotent_and_complete(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "needs root")
    from stockade.network import netns as topology

    prefix = f"sd{os.getpid() % 100000}-"
    state = tmp_path / "lab.json"
    try:
        inv = manager.up(prefix, state, databases_on=False)
        pids = [s.pid for p in inv.pods for s in p.services]
        assert pids and all(Path(f"/proc/{p}").exists() for p in pids)
    finally:
        manager.down(prefix, state)
    assert manager.down(prefix, state) == []
    assert not [ns for ns in topology.netns_list() if ns.startswith(prefix)]
    assert not state.exists()
    assert not any(Path(f"/proc/{p}").exists() for p in pids)


def test_idle_connection_expires_during_live_capture(
    lab: tuple[Inventory, Path], inspectors
) -> None:
    """A connection left open and silent is reported (state timeout) while the capture runs."""
    inv, _ = lab
    seen: list[tuple[float, ConnectionRecord]] = []
    script = (
        "import socket, sys, time\n"
        "s = socket.create_connection((sys.argv[1], 8080))\n"
        "s.sendall(b'GET /slow HTTP/1.1\\r\\nHost: orders\\r\\n')\n"  # headers never finished
        "time.sleep(4)\n"
        "s.close()\n"
    )
    cmd = [
        "ip",
        "netns",
        "exec",
        inv.pod("payments").netns,
        os.sys.executable,
        "-c",
        script,
        inv.pod("orders").ipv4,
    ]

    def drive() -> float:
        subprocess.run(cmd, check=True, timeout=30)
        return time.time()

    _run, closed_at = live_capture(
        inv,
        inspectors,
        drive,
        config=FlowConfig(tcp_idle=1.0),
        on_record=lambda r: seen.append((time.time(), r)),
    )
    timed_out = [(t, r) for t, r in seen if r.server_port == 8080 and r.state == "timeout"]
    assert timed_out and timed_out[0][0] < closed_at  # reported before the client hung up
    assert timed_out[0][1].protocol == "proto.http"
