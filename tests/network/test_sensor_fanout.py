"""``sensor --workers``: several capture processes in one PACKET_FANOUT group give the same
connections as one process, flow by flow, on the same recorded lab traffic replayed onto a wire;
live lab traffic through two workers passes the lab's checks; the CLI starts and stops them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stockade.lab import manager
from stockade.lab.inventory import Inventory
from stockade.lab.replay import ReplayLink, wire_frames
from stockade.network.connection import ConnectionRecord
from stockade.network.fanout import run_fanout
from stockade.network.sensor import run_live, run_pcap
from tests.conftest import require
from tests.network import frames as F
from tests.network.test_lab_sensor import COUNT, _check_lab_records, recorded

pytestmark = pytest.mark.root


def _unique() -> str:
    return f"f{os.getpid() % 100000}{threading.get_ident() % 97}-"


@pytest.fixture
def link() -> Iterator[ReplayLink]:
    require(os.geteuid() == 0, "replaying onto a veth needs root")
    with ReplayLink(_unique()) as lnk:
        yield lnk


def capture_while(run: Callable[..., Any], drive: Callable[[], object], **kw: Any) -> Any:
    """``run`` (``run_live`` or ``run_fanout``) in a thread while ``drive()`` runs in this one."""
    ready, done = threading.Event(), threading.Event()
    box: dict[str, Any] = {}

    def capture() -> None:
        try:
            box["run"] = run(ready=ready.set, stop=done.is_set, **kw)
        except BaseException as exc:
            box["error"] = exc
            ready.set()

    t = threading.Thread(target=capture)
    t.start()
    try:
        assert ready.wait(20)
        drive()
    finally:
        t.join(20 if "count" in kw else 0)  # a counted run ends by itself once it saw them all
        done.set()
        t.join(60)
    if "error" in box:
        raise box["error"]
    return box["run"]


def replayed(link: ReplayLink, frames: list[bytes], inspectors: Any, inv: Inventory, workers: int):
    kw = {
        "namespace": link.netns,
        "inspectors": inspectors,
        "identities": inv.directory(),
        "count": len(frames),  # every frame seen: the same flows end "active" in each run
        "duration": 60,
    }
    if workers == 1:
        return capture_while(
            lambda **k: run_live([link.capture], **k), lambda: link.send(frames), **kw
        )
    return capture_while(
        lambda **k: run_fanout([link.capture], workers=workers, **k),
        lambda: link.send(frames),
        **kw,
    )


def by_flow(records: list[ConnectionRecord]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Each connection by its 5-tuple, as the JSON output shows it minus the run's ids and clock;
    a 5-tuple twice is a duplicate."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in records:
        d = r.to_dict()
        key = (r.transport, r.client_ip, r.client_port, r.server_ip, r.server_port)
        assert key not in out, f"duplicate {key}"
        for k in ("id", "start", "end"):
            d.pop(k)
        if d["tls"]:  # certificate ages count from the capture's clock
            d["tls"] = {k: v for k, v in d["tls"].items() if "days" not in k}
        out[key] = d
    return out


@pytest.fixture(scope="module")
def lab_frames(lab: tuple[Inventory, Path], tmp_path_factory: pytest.TempPathFactory):
    """The lab's scenarios and 40 more small connections, recorded on every interface."""
    inv, _ = lab
    path = tmp_path_factory.mktemp("fanout") / "lab.pcap"

    def drive() -> list[Any]:
        results = manager.traffic(inv, COUNT)
        orders = inv.pod("orders").ipv4
        cmd = ["ip", "netns", "exec", inv.pod("payments").netns, sys.executable, "-m"]
        cmd += ["stockade.lab.client", "http", "--host", orders, "--port", "8080", "--count", "40"]
        subprocess.run(cmd, check=True, timeout=120, capture_output=True, env=os.environ.copy())
        return list(results)

    results = recorded(inv, path, drive)
    assert all(r.ok for r in results), results
    return path, wire_frames(path)


def test_two_workers_give_the_same_connections_as_one_flow_by_flow(
    lab: tuple[Inventory, Path], lab_frames, link: ReplayLink, inspectors
) -> None:
    inv, _ = lab
    path, frames = lab_frames
    one = replayed(link, frames, inspectors, inv, 1)
    two = replayed(link, frames, inspectors, inv, 2)
    for run in (one, two):
        src = run.stats["source"]
        assert src["kernel_drops"] == 0 and src["frames"] >= len(frames), (len(frames), src)
    assert two.stats["source"]["workers"] == 2
    assert all(n > 0 for n in two.stats["source"]["worker_frames"])  # both had a share
    a, b = by_flow(one.records), by_flow(two.records)
    assert len(a) > 60
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key], key  # both directions in one worker: bytes, DLP, TLS, protocol
    _check_lab_records(two.records, inv)
    # and the same as the single-process file reader on the recording (its clock aside)
    ref = by_flow(run_pcap(path, inspectors=inspectors, identities=inv.directory()).records)
    assert ref.keys() == b.keys()
    for key in ref:
        assert {**ref[key], "state": ""} == {**b[key], "state": ""}, key


def test_live_lab_traffic_through_two_workers(lab: tuple[Inventory, Path], inspectors) -> None:
    inv, _ = lab
    box: dict[str, Any] = {}
    run = capture_while(
        lambda **k: run_fanout(inv.host_interfaces(), workers=2, **k),
        lambda: box.setdefault("results", manager.traffic(inv, COUNT)),
        namespace=inv.node_netns,
        inspectors=inspectors,
        identities=inv.directory(),
        duration=120,
    )
    assert all(r.ok for r in box["results"]), box["results"]
    assert run.stats["source"]["kernel_drops"] == 0
    assert "failed" not in run.stats
    by_flow(run.records)  # no connection twice
    _check_lab_records(run.records, inv)


def _flows(n: int, first: int = 0, marker: bytes = b"") -> list[bytes]:
    out = []
    for i in range(first, first + n):
        body = b"GET /%d HTTP/1.1\r\nHost: shop\r\n\r\n" % i + marker
        pk = F.conversation(
            f"10.9.{i // 250}.{i % 250 + 1}",
            "10.8.0.1",
            30000 + i,
            8080,
            body,
            b"HTTP/1.1 200 OK\r\n\r\n",
        )
        out += [F.ether(p) for p in pk]
    return out


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        out |= {int(x) for x in (task / "children").read_text().split()}
    return out


def _sensor(link: ReplayLink, *extra: str) -> subprocess.Popen[str]:
    args = ["sensor", "--iface", link.capture, "--netns", link.netns, "--workers", "2"]
    args += ["--format", "json", "--no-store", *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-m", "stockade", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_workers(proc: subprocess.Popen[str], n: int) -> set[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        kids = _children(proc.pid)
        if len(kids) == n:
            time.sleep(1.0)  # their rings are open before they start: frames wait there
            return kids
        time.sleep(0.1)
    raise AssertionError("the workers did not start")


def test_cli_sigterm_stops_every_worker_and_reports_their_flows(link: ReplayLink) -> None:
    proc = _sensor(link)
    kids = _wait_workers(proc, 2)
    link.send(_flows(50))
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert len(lines) == 50 and "(2 capture workers)" in err, err
    assert not [k for k in kids if Path(f"/proc/{k}").exists()]


def test_workers_die_with_a_killed_parent(link: ReplayLink) -> None:
    proc = _sensor(link)
    kids = _wait_workers(proc, 2)
    proc.kill()
    proc.communicate(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{k}/status").exists() for k in kids):
        time.sleep(0.1)
    gone = [k for k in kids if not Path(f"/proc/{k}/status").exists()]
    assert len(gone) == 2


def test_a_worker_failing_at_start_stops_the_sensor_with_its_code(
    link: ReplayLink, inspectors, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The workers build their pipeline after the fork; the first to get there cannot, and that
    stops the other one and the sensor, with the failed worker's exit code."""
    from stockade.identity import Directory
    from stockade.model.errors import ConfigError, StockadeError
    from stockade.network import fanout

    real = fanout._pipeline
    flag = tmp_path / "failed-one"

    def pipeline(*a: Any) -> Any:
        try:
            flag.open("x").close()
        except FileExistsError:
            return real(*a)
        raise ConfigError("the worker's configuration is broken")

    monkeypatch.setattr(fanout, "_pipeline", pipeline)
    before = _children(os.getpid())  # the lab's services, when the lab is up
    with pytest.raises(StockadeError) as info:
        run_fanout(
            [link.capture],
            workers=2,
            namespace=link.netns,
            inspectors=inspectors,
            identities=Directory(),
            duration=30,
        )
    assert info.value.exit_code == 2
    assert "failed at start: the worker's configuration is broken" in str(info.value)
    assert _children(os.getpid()) <= before  # both workers stopped and reaped


def test_a_worker_sends_its_records_before_it_waits_for_frames(
    link: ReplayLink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``idle()`` (where a worker flushes its finished records) runs as soon as the ring is
    empty, before the ring waits for frames: the last records of a burst reach the parent at once,
    not after the poll timeout (100 ms)."""
    import select

    from stockade.network.capture import live
    from stockade.network.capture.live import Ring

    order: list[str] = []
    real_poll = select.poll

    class Poll:  # the real poll object, with each wait written down
        def __init__(self) -> None:
            self._poll = real_poll()

        def register(self, *args: int) -> None:
            self._poll.register(*args)

        def poll(self, timeout: int) -> list:
            order.append("wait")
            return self._poll.poll(timeout)

    monkeypatch.setattr(live.select, "poll", Poll)
    ring = Ring([link.capture], namespace=link.netns)
    try:
        ring.run(lambda *_: None, idle=lambda: order.append("idle"), stop=lambda: "idle" in order)
    finally:
        ring.close()
    assert order and order[0] == "idle", order
