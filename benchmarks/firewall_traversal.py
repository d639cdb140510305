"""The price of one trip through NFQUEUE (issue 19), apart from any lab or verdict handler: UDP
ping-pong on the loopback of a network namespace of its own, both directions queued (two trips per
round trip) to the compiled loop with a judge that accepts at once, against the same ping-pong
unqueued. Each spin (``STOCKADE_ENFORCER_SPIN_US``) gets a loop and a queue of its own; rounds
alternate the order. Prints the round trip's median and p99, the added time per trip (median over
rounds) and the loop's CPU per wall second.

    python benchmarks/firewall_traversal.py [--spins 0,50,200] [--rounds 6] [--pings 1500]

Needs root and iptables; makes the namespace ``stfwtrav<pid>`` and removes it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PORT = 7777


def loop(ns: str, queue: int) -> None:
    """Accept every packet of ``queue`` at once until SIGTERM (the spin comes from the env)."""
    sys.path.insert(0, str(ROOT / "src"))
    from stockade.firewall.enforce import fastpath
    from stockade.network.capture.live import netns

    module = fastpath.compiled()
    assert module is not None, "not built: python3 setup.py build_ext --inplace"
    with netns(ns):
        q = fastpath.CompiledQueue.open(module, queue, lambda p, m: (0, False), 0)
    print("ready", flush=True)
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    while not stop:
        q.serve(-1, 0.2)
    q.close()


def echo() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", PORT))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(data, peer)


def ping(n: int) -> list[float]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        s.sendto(b"x" * 100, ("127.0.0.1", PORT))
        s.recv(2048)
        out.append(time.perf_counter() - t)
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spins", default="0,50,200")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--pings", type=int, default=1500)
    ap.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        if args.role[0] == "loop":
            loop(args.role[1], int(args.role[2]))
        elif args.role[0] == "echo":
            echo()
        else:
            print(json.dumps(ping(int(args.role[1]))))
        return
    ns = f"stfwtrav{os.getpid()}"
    here = [sys.executable, __file__, "--role"]

    def inside(*cmd: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", ns, *cmd], check=True, text=True, **kw)  # type: ignore[call-overload, no-any-return]

    spins = [int(s) for s in args.spins.split(",")]
    modes: list[int | None] = [None, *spins]  # None: unqueued
    subprocess.run(["ip", "netns", "add", ns], check=True)
    procs: list[subprocess.Popen[str]] = []
    try:
        inside("ip", "link", "set", "lo", "up")
        procs.append(subprocess.Popen(["ip", "netns", "exec", ns, *here, "echo"]))
        loops: dict[int, tuple[int, subprocess.Popen[str]]] = {}
        for k, spin in enumerate(spins):
            env = dict(os.environ, STOCKADE_ENFORCER_SPIN_US=str(spin))
            p = subprocess.Popen([*here, "loop", ns, str(90 + k)], env=env, stdout=subprocess.PIPE, text=True)  # fmt: skip
            procs.append(p)
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
            loops[spin] = (90 + k, p)
        pooled: dict[int | None, list[float]] = {m: [] for m in modes}
        medians: dict[int | None, list[float]] = {m: [] for m in modes}
        cpu: dict[int, list[float]] = {s: [] for s in spins}
        for r in range(args.rounds):
            for m in modes if r % 2 == 0 else modes[::-1]:
                inside("iptables", "-F", "OUTPUT")
                if m is not None:
                    for way in ("--dport", "--sport"):
                        inside("iptables", "-A", "OUTPUT", "-p", "udp", way, str(PORT), "-j", "NFQUEUE", "--queue-num", str(loops[m][0]))  # fmt: skip
                    c0 = cpu_seconds(loops[m][1].pid)
                w0 = time.perf_counter()
                got = json.loads(inside(*here, "ping", str(args.pings), capture_output=True).stdout)
                wall = time.perf_counter() - w0
                pooled[m] += got
                medians[m].append(statistics.median(got))
                if m is not None:
                    cpu[m].append((cpu_seconds(loops[m][1].pid) - c0) / wall)
        for m in modes:
            v = sorted(pooled[m])
            added = [b - a for a, b in zip(medians[None], medians[m], strict=True)]
            print(
                f"{'unqueued' if m is None else f'spin {m} us':>12}: round trip median"
                f" {statistics.median(v) * 1e6:6.1f} us, p99 {v[int(0.99 * (len(v) - 1))] * 1e6:7.1f} us;"
                f" per trip +{statistics.median(added) * 1e6 / 2:5.1f} us"
                + ("" if m is None else f"; loop CPU {statistics.median(cpu[m]) * 100:4.1f}%")
            )
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run(["ip", "netns", "delete", ns], check=False)


if __name__ == "__main__":
    main()
