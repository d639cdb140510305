"""Sensor throughput and capture drop rate, measured on this machine in one run (root).

    python benchmarks/sensor.py [--bulk-mb 300] [--flows 1000] [--rates 20000,50000,100000]

1. Builds a lab (prefix ``skb-``), records two pcaps with tcpdump on the payments pod's veth:
   a bulk HTTP download (GSO super-frames, as veths deliver them) and many small clear and TLS
   connections with cards and PII. Each pcap goes through: reading only, reading + decoding,
   and the whole sensor (reassembly, detection, TLS, DLP) -- Mbit/s per core from CPU time --
   next to tshark building the same TCP conversation table (a peer, single process).
2. Sends 100-byte UDP datagrams at stated rates from one pod to another (bounded: rate x
   seconds) while the sensor captures live with its TPACKET_V3 ring; prints the kernel's drop
   counters. Sender, kernel and sensor share the machine's cores.
3. Fan-out: the many-small-connections recording replayed onto a private veth pair into
   ``run_fanout`` with 1 worker and with N (``--workers``, default: the cores this process may
   use), alternating rounds. The workers are held (SIGSTOP) while the frames are sent, so their
   rings hold the whole burst and no sender shares the cores with them; the clock runs from
   SIGCONT until every connection closed in the recording has reached the parent. Prints each
   round (with the workers' and the parent's CPU time), the medians, the spread, the load
   average, the ratio N/1, and whether every run's connections equal ``--pcap``'s on the file.
The lab is removed in ``finally``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from stockade.lab import manager
from stockade.lab.inventory import Inventory
from stockade.lab.replay import ReplayLink, wire_frames
from stockade.network.analysis import Inspectors
from stockade.network.capture.decode import Decoder
from stockade.network.capture.pcapfile import PcapReader
from stockade.network.fanout import run_fanout
from stockade.network.flows import FlowConfig
from stockade.network.sensor import run_live, run_pcap
from stockade.workers import default_workers

PREFIX = "skb-"


def _client(inv: Inventory, pod: str, *args: str) -> dict:
    cmd = [
        "ip",
        "netns",
        "exec",
        inv.pod(pod).netns,
        sys.executable,
        "-m",
        "stockade.lab.client",
        *args,
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, check=True, env=os.environ.copy()
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _record(inv: Inventory, path: Path, drive) -> None:
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            inv.node_netns,
            "timeout",
            "300",
            "tcpdump",
            "-i",
            "vh-payments",
            "-U",
            "-B",
            "65536",
            "-n",
            "-s",
            "0",
            "-c",
            "5000000",
            "-w",
            str(path),
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        while not path.exists():
            time.sleep(0.05)
        time.sleep(0.3)
        drive()
        time.sleep(1.5)  # let tcpdump's last ring block retire
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


class _Null:
    def tcp(self, *a: object) -> None:
        pass

    def udp(self, *a: object) -> None:
        pass


def _cpu(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def _read_only(path: Path) -> None:
    with PcapReader(path) as r:
        for _ in r.frames():
            pass


def _decode_only(path: Path) -> None:
    dec = Decoder(_Null())
    frame = dec.frame
    with PcapReader(path) as r:
        for ts, link, buf, off, n in r.frames():
            frame(ts, link, buf, off, n)


def bench_pcap(name: str, path: Path, inv: Inventory, inspectors: Inspectors) -> None:
    size = path.stat().st_size
    frames = sum(1 for _ in PcapReader(path).frames())
    mbit = size * 8 / 1e6
    read = _cpu(lambda: _read_only(path))
    decode = _cpu(lambda: _decode_only(path))
    box: dict = {}
    full = _cpu(
        lambda: box.setdefault(
            "run", run_pcap(path, inspectors=inspectors, identities=inv.directory())
        )
    )
    run = box["run"]
    deep = _cpu(
        lambda: run_pcap(
            path,
            inspectors=inspectors,
            identities=inv.directory(),
            config=FlowConfig(stream_depth=1 << 40),
        )
    )
    hits = sum(len(r.hits) for r in run.records)
    print(
        f"\n[{name}] {size / 1e6:.1f} MB, {frames} frames (avg {size / max(frames, 1):.0f} B), "
        f"{len(run.records)} connections, {hits} DLP hits"
    )
    print(f"  read only        {mbit / read:10.0f} Mbit/s/core  {frames / read:10.0f} frames/s")
    print(f"  read + decode    {mbit / decode:10.0f} Mbit/s/core  {frames / decode:10.0f} frames/s")
    print(
        f"  whole sensor     {mbit / full:10.0f} Mbit/s/core  {frames / full:10.0f} frames/s"
        f"   ({full / read:.1f}x the cost of reading)"
    )
    print(
        f"  sensor, no depth {mbit / deep:10.0f} Mbit/s/core  {frames / deep:10.0f} frames/s"
        "   (every byte reassembled and through DLP)"
    )
    if shutil.which("tshark"):
        try:
            peer = _tshark(path) - _tshark(
                path, frames=1
            )  # minus tshark's start-up (dissector tables)
        except subprocess.SubprocessError as exc:
            print(f"  peer: tshark failed ({exc})")
            return
        print(
            f"  peer: tshark conv,tcp {mbit / peer:10.0f} Mbit/s (wall, start-up excluded) -> "
            f"sensor is {peer / full:.1f}x tshark's speed"
        )


def _tshark(path: Path, frames: int | None = None) -> float:
    # no TCP desegmentation: a conversation table does not need it, and it keeps tshark's memory flat
    cmd = [
        "tshark",
        "-r",
        str(path),
        "-q",
        "-o",
        "tcp.desegment_tcp_streams:FALSE",
        "-z",
        "conv,tcp",
    ] + (["-c", str(frames)] if frames else [])
    t = time.perf_counter()
    subprocess.run(cmd, capture_output=True, timeout=600, check=True)
    return time.perf_counter() - t


def bench_drops(inv: Inventory, inspectors: Inspectors, rates: list[int], seconds: float) -> None:
    print(
        f"\n[live capture drops] 100-byte UDP to the orders pod, {seconds:.0f} s per rate, whole sensor on the ring"
    )
    for rate in rates:
        _drops_at(inv, inspectors, rate, seconds)


def _send(inv: Inventory, pod: str, rate: int, seconds: float, results: list[dict]) -> None:
    args = ("udp", "--host", inv.pod("orders").ipv4, "--rate", str(rate), "--seconds", str(seconds))
    results.append(_client(inv, pod, *args))


def _iperf3(inv: Inventory, rate: int, seconds: float) -> int:
    """``rate`` 100-byte UDP datagrams per second with iperf3 (one-shot server); returns the rate sent."""
    server = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            inv.pod("orders").netns,
            "timeout",
            str(int(seconds) + 30),
            "iperf3",
            "-s",
            "-1",
            "-p",
            "5201",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        cmd = [
            "ip",
            "netns",
            "exec",
            inv.pod("payments").netns,
            "iperf3",
            "-c",
            inv.pod("orders").ipv4,
            "-p",
            "5201",
            "-u",
            "-l",
            "100",
            "-b",
            str(rate * 100 * 8),
            "-t",
            str(seconds),
            "-J",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=True)
        end = json.loads(out.stdout)["end"]["sum"]
        return round(end["packets"] / end["seconds"])
    finally:
        server.wait(seconds + 40)


def _python_senders(inv: Inventory, rate: int, seconds: float) -> tuple[int, str]:
    """One Python sender tops out near 45-50k pkt/s: higher rates are split over several pods."""
    senders = ["payments", "crm", "cache", "db"][: max(1, -(-rate // 40000))]
    results: list[dict] = []
    threads = [
        threading.Thread(target=_send, args=(inv, p, rate // len(senders), seconds, results))
        for p in senders
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join(seconds + 60)
    return round(
        sum(r["sent"] for r in results) / max(r["seconds"] for r in results)
    ), f"{len(senders)} Python senders"


def _drops_at(inv: Inventory, inspectors: Inspectors, rate: int, seconds: float) -> None:
    done, ready = threading.Event(), threading.Event()
    box: dict = {}

    def capture() -> None:
        box["run"] = run_live(
            inv.host_interfaces(),
            namespace=inv.node_netns,
            inspectors=inspectors,
            identities=inv.directory(),
            ready=ready.set,
            stop=done.is_set,
            duration=seconds + 30,
        )

    t = threading.Thread(target=capture)
    t.start()
    ready.wait(10)
    try:
        if shutil.which("iperf3"):
            achieved, sender = _iperf3(inv, rate, seconds), "iperf3"
        else:
            achieved, sender = _python_senders(inv, rate, seconds)
    finally:
        time.sleep(0.5)
        done.set()
        t.join(60)
    src = box["run"].stats["source"]
    got, drops = src["kernel_packets"], src["kernel_drops"]
    print(
        f"  target {rate:7d} pkt/s  achieved {achieved:7d} pkt/s ({sender})  ring saw {got:8d}  "
        f"dropped {drops:7d} ({100 * drops / max(got, 1):5.2f} %)  sensor handled {src['frames']:8d} frames"
    )


def bench_capture_methods(inv: Inventory, rate: int, seconds: float) -> None:
    """Count-only consumers on the payments veth at one rate: our TPACKET_V3 ring next to
    pcapy-ng's ``next_batch`` (libpcap), CPU seconds of the consuming thread per frame."""
    print(f"\n[capture method, count only] vh-payments, UDP at {rate} pkt/s for {seconds:.0f} s")
    for name, consume in (
        ("TPACKET_V3 ring (ours)", _consume_ring),
        ("pcapy-ng next_batch", _consume_pcapy),
    ):
        done, ready = threading.Event(), threading.Event()
        box: dict = {}
        t = threading.Thread(target=consume, args=(inv, ready, done, box))
        t.start()
        ready.wait(10)
        try:
            achieved = (
                _iperf3(inv, rate, seconds)
                if shutil.which("iperf3")
                else _python_senders(inv, rate, seconds)[0]
            )
        finally:
            time.sleep(0.5)
            done.set()
            t.join(60)
        if "error" in box:
            print(f"  {name:24} unavailable: {box['error']}")
            continue
        frames, cpu, drops = box["frames"], box["cpu"], box["drops"]
        print(
            f"  {name:24} {frames:8d} frames at {achieved} pkt/s, {cpu:.2f} CPU s -> {frames / max(cpu, 1e-9):9.0f} "
            f"frames per CPU second, kernel drops {drops}"
        )


def _consume_ring(inv: Inventory, ready: threading.Event, done: threading.Event, box: dict) -> None:
    from stockade.network.capture.live import Ring

    n = [0]

    def count(*_a: object) -> None:
        n[0] += 1

    with Ring(["vh-payments"], namespace=inv.node_netns) as ring:
        ready.set()
        t = time.thread_time()
        ring.run(count, stop=done.is_set)
        box["cpu"] = time.thread_time() - t
        ring.close()
        box["frames"], box["drops"] = n[0], ring.stats_drops


def _consume_pcapy(
    inv: Inventory, ready: threading.Event, done: threading.Event, box: dict
) -> None:
    try:
        import pcapy
    except ImportError as exc:
        box["error"] = str(exc)
        ready.set()
        return
    from stockade.network.capture.live import netns

    with netns(inv.node_netns):
        reader = pcapy.open_live("vh-payments", 65535, 0, 50)
    reader.setnonblock(1)
    reader.setdirection(pcapy.PCAP_D_IN)  # like the ring: incoming copies only
    ready.set()
    frames = 0
    t = time.thread_time()
    while not done.is_set():
        _data, meta = reader.next_batch(512)
        if meta:
            frames += len(meta) // 16
        else:
            time.sleep(0.005)
    box["cpu"] = time.thread_time() - t
    box["frames"], box["drops"] = frames, reader.stats()[1]


def _children() -> set[int]:
    out: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        out |= {int(x) for x in (task / "children").read_text().split()}
    return out


def _fanout_round(
    link: ReplayLink,
    frames: list[bytes],
    workers: int,
    expect: int,
    inspectors: Inspectors,
    blocks: int,
) -> tuple[float, dict]:
    """Seconds from releasing the held workers to the last closed connection's record."""
    ready, done, finished = threading.Event(), threading.Event(), threading.Event()
    got = [0]
    box: dict = {}

    def on_record(_rec: object) -> None:
        got[0] += 1
        if got[0] >= expect:
            box["t1"] = time.perf_counter()
            box["parent_cpu"] = time.thread_time()  # less its CPU time at SIGCONT, below
            finished.set()

    def capture() -> None:
        box["run"] = run_fanout(
            [link.capture],
            workers=workers,
            namespace=link.netns,
            inspectors=inspectors,
            identities=inv_directory(),
            on_record=on_record,
            ready=ready.set,
            stop=done.is_set,
            keep=True,
            blocks=blocks,
            duration=600,
        )

    before = _children()
    t = threading.Thread(target=capture)
    t.start()
    try:
        ready.wait(30)
        pids = _children() - before
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        link.send(frames)
        time.sleep(0.3)  # the last ring block retires (50 ms)
        t0 = time.perf_counter()
        parent_cpu0 = time.clock_gettime(time.pthread_getcpuclockid(t.ident))
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        finished.wait(300)
        box["cpus"] = sorted(_cpu_seconds(pid) for pid in pids)
    finally:
        done.set()
        t.join(120)
    src = {
        **box["run"].stats["source"],
        "cpu": sum(box.get("cpus", [])),
        "cpus": box.get("cpus", []),
        "parent_cpu": box.get("parent_cpu", parent_cpu0) - parent_cpu0,
        "records": box["run"].records,
    }
    return box.get("t1", float("inf")) - t0, src


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its workers' share of the cores)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _by_flow(records: list) -> dict:
    """Each connection as the JSON output shows it, by 5-tuple, minus the run's ids and clock."""
    out = {}
    for r in records:
        d = r.to_dict()
        for k in ("id", "start", "end", "state"):
            d.pop(k)
        if d["tls"]:  # certificate ages count from the capture's clock
            d["tls"] = {k: v for k, v in d["tls"].items() if "days" not in k}
        out[(r.transport, r.client_ip, r.client_port, r.server_ip, r.server_port)] = d
    return out


def inv_directory():
    from stockade.identity import Directory

    return Directory()


def bench_fanout(path: Path, inspectors: Inspectors, workers: int, rounds: int) -> None:
    frames = wire_frames(path)
    size = sum(len(f) for f in frames)
    cpu = time.process_time()
    reference = run_pcap(path, inspectors=inspectors, identities=inv_directory())
    cpu = time.process_time() - cpu
    expect = sum(1 for r in reference.records if r.state != "active")
    blocks = max(32, int((size + 128 * len(frames)) * 1.5) // (1 << 20) + 1)
    print(
        f"\n[fan-out, many small connections] {len(frames)} frames, {size / 1e6:.1f} MB, "
        f"{expect} closed connections; 1 worker against {workers}, {rounds} rounds each, "
        f"alternating; rings of {blocks} MiB per worker\n  the same file through --pcap (one "
        f"process, CPU time): {size * 8 / 1e6 / cpu:.0f} Mbit/s per core"
    )
    times: dict[int, list[float]] = {1: [], workers: []}
    busiest: dict[int, list[float]] = {1: [], workers: []}  # CPU seconds of the busiest worker
    parent: dict[int, list[float]] = {1: [], workers: []}
    want = _by_flow(reference.records)
    same: dict[int, bool] = {}
    loads = [os.getloadavg()[0]]
    with ReplayLink(f"skb{os.getpid() % 10000}-") as link:
        for i in range(rounds):
            order = (1, workers) if i % 2 == 0 else (workers, 1)
            for w in order:
                secs, src = _fanout_round(link, frames, w, expect, inspectors, blocks)
                times[w].append(secs)
                busiest[w].append(max(src["cpus"], default=0.0))
                parent[w].append(src["parent_cpu"])
                same[w] = same.get(w, True) and _by_flow(src["records"]) == want
                print(
                    f"  round {i + 1} workers {w}: {size * 8 / 1e6 / secs:7.0f} Mbit/s "
                    f"({secs:.3f} s, workers' CPU {src['cpu']:.2f} s = "
                    f"{src['cpu'] / secs:.2f} cores, each {', '.join(f'{c:.2f}' for c in src['cpus'])}"
                    f", parent's {src['parent_cpu']:.2f} s; "
                    f"kernel drops {src['kernel_drops']}, "
                    f"frames per worker {src.get('worker_frames')})"
                )
            loads.append(os.getloadavg()[0])
    for w, ts in times.items():
        rates = sorted(size * 8 / 1e6 / t for t in ts)
        print(
            f"  workers {w}: median {statistics.median(rates):7.0f} Mbit/s, "
            f"spread {rates[0]:.0f}-{rates[-1]:.0f}"
        )
    print(
        "  connections (without the run's ids, clock and end state) the same as --pcap's on the "
        "recording: "
        + ", ".join(f"{w} worker(s) {'yes' if ok else 'NO'}" for w, ok in same.items())
    )
    med = statistics.median
    print(
        f"  CPU seconds (medians): 1 worker {med(busiest[1]):.2f}, the busiest of {workers} "
        f"{med(busiest[workers]):.2f} (the split allows at most "
        f"{med(busiest[1]) / med(busiest[workers]):.2f}x); the parent "
        f"{med(parent[1]):.2f} with 1, {med(parent[workers]):.2f} with {workers}"
    )
    ratio = statistics.median(times[1]) / statistics.median(times[workers])
    print(
        f"  ratio {workers} workers / 1 worker (medians): {ratio:.2f}x; 1-minute load average "
        f"during the rounds {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores"
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bulk-mb", type=int, default=300)
    ap.add_argument("--flows", type=int, default=1000)
    ap.add_argument("--rates", default="20000,50000,100000")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--workers", type=int, default=None, help="fan-out: N workers against 1")
    ap.add_argument("--rounds", type=int, default=5, help="fan-out rounds of each")
    ap.add_argument("--only-fanout", action="store_true", help="skip the other measures")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    inspectors = Inspectors.default()
    print(f"DLP backend: {inspectors.dlp.backend}; cores: {os.cpu_count()}")
    tmp = Path(tempfile.mkdtemp(prefix="sk-bench-"))
    state = tmp / "lab.json"
    try:
        inv = manager.up(PREFIX, state)
        bulk, flows = tmp / "bulk.pcap", tmp / "flows.pcap"
        if not args.only_fanout:
            _record(
                inv,
                bulk,
                lambda: _client(
                    inv,
                    "payments",
                    "bulk",
                    "--host",
                    inv.pod("orders").ipv4,
                    "--size",
                    str(args.bulk_mb * 1_000_000),
                ),
            )
        n = str(args.flows)
        orders = inv.pod("orders").ipv4
        ca = str(Path(inv.state_dir) / "pki" / "ca.crt")

        def many() -> None:
            _client(inv, "payments", "http", "--host", orders, "--port", "8080", "--count", n)
            _client(
                inv,
                "payments",
                "http",
                "--host",
                orders,
                "--port",
                "8443",
                "--tls",
                "--ca",
                ca,
                "--sni",
                "orders.shop.svc",
                "--count",
                n,
            )

        _record(inv, flows, many)
        workers = args.workers or max(2, default_workers())
        if args.only_fanout:
            bench_fanout(flows, inspectors, workers, args.rounds)
            return 0
        bench_pcap("bulk download", bulk, inv, inspectors)
        bench_pcap("many small connections", flows, inv, inspectors)
        bench_drops(inv, inspectors, [int(r) for r in args.rates.split(",")], args.seconds)
        bench_capture_methods(inv, 40000, args.seconds)
        bench_fanout(flows, inspectors, workers, args.rounds)
    finally:
        manager.down(PREFIX, state)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
