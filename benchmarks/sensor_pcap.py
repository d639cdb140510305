"""``stockade sensor --pcap`` next to nDPI's ``ndpiReader -i`` on the same capture, in one run.

    python benchmarks/sensor_pcap.py [--flows 4000] [--rounds 7] [--keep DIR]

Writes a capture of ``--flows`` HTTP/1.1 connections (``stockade.lab.http_capture``: handshakes,
MSS segments, ACKs, FINs, a few connections interleaved; JSON bodies, one request in seven posts
a card number, one response in eleven carries an SSN) into a temporary directory, then runs, in
alternating order each round:

* ndpi:        ``ndpiReader -i FILE`` (Debian libndpi-bin; output to /dev/null);
* sensor:      ``python3 -m stockade sensor --pcap FILE --format json --no-store`` (this tree's
               src; protocol detection, reassembly, DLP, one JSON line per connection);
* sensor(base): with ``--baseline SRC``, the sensor of another tree (before/after in one run);
* sensor+store ``... --db sqlite:///DIR/run-N.db`` (the same, writing connections and events into
               a new database each round), and store(base), the other tree's, with ``--baseline``.

Each is a whole command: start-up included, as a user runs it. The stockade runs get a private
bytecode cache (``PYTHONPYCACHEPREFIX``, warmed by one uncounted run) so they start as an
installed package does. Prints every round, the medians and spread (min-max) of wall and CPU
(user+sys of the child) time, the ratio of the medians against ndpi (target: at most 2x), and
the load average before and after. The sensor's output is checked: one line per connection.

Measured (docs/network.md has each session's figures): session 10, ``--rounds 5 --baseline`` the
starting tree, two runs at load 2.0-2.7 on 2 cores: nDPI 0.206 s CPU, the sensor 1.117 and 1.053
s (5.42x, 5.12x; the starting tree 1.194 and 1.161 s, 5.80x and 5.65x). Per connection about
230 us of Python remain; start-up 0.19 s. Session 11, ``--rounds 5 --baseline`` the starting
tree ``--no-store-variant``, load 5.7-6.2: nDPI 0.224 s CPU, the sensor 0.688 s (3.06x; the
starting tree 1.118 s, 4.98x): the common connection decided in pcapfast.c. Session 12, the
same command, load 3.3-3.7: nDPI 0.214 and 0.228 s, the sensor 0.388 and 0.400 s (1.82x and
1.76x; the starting tree 0.674 and 0.676 s): the common connection's JSON line written in C.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from stockade.lab.http_capture import write_http_capture  # noqa: E402


def _run(cmd: list[str], env: dict[str, str], stdout: int | None = None) -> tuple[float, float]:
    """(wall, cpu) seconds of one command, its output discarded unless ``stdout`` is given."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=stdout if stdout is not None else subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def _spread(xs: list[float]) -> str:
    return f"median {statistics.median(xs):7.3f} s  (min {min(xs):.3f}, max {max(xs):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flows", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it")
    ap.add_argument("--no-store-variant", action="store_true", help="skip sensor+store")
    ap.add_argument(
        "--baseline", type=Path, help="another tree's src (a git archive of main): its sensor too"
    )
    args = ap.parse_args()
    if shutil.which("ndpiReader") is None:
        raise SystemExit("ndpiReader is missing: ./dev setup (or apt-get install libndpi-bin)")
    work = args.keep or Path(tempfile.mkdtemp(prefix="stockade-pcap-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        cap = write_http_capture(work / "http.pcap", flows=args.flows)
        print(f"capture: {cap.flows} flows, {cap.frames} frames, {cap.bytes / 1e6:.1f} MB")
        envs: dict[str, dict[str, str]] = {}
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPATH"] = str(ROOT / "src")
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        pcap = str(cap.path)
        sensor = [sys.executable, "-m", "stockade", "sensor", "--pcap", pcap, "--format", "json"]
        tools: dict[str, list[str]] = {
            "ndpi": ["ndpiReader", "-i", pcap],
            "sensor": [*sensor, "--no-store"],
        }
        if args.baseline is not None:
            base_env = dict(env, PYTHONPATH=str(args.baseline.resolve()))
            base_env["PYTHONPYCACHEPREFIX"] = str(work / "pycache-base")
        if not args.no_store_variant:
            tools["sensor+store"] = [*sensor, "--db", f"sqlite:///{work}/run-{{n}}.db"]
        if args.baseline is not None:
            tools["sensor(base)"] = [*sensor, "--no-store"]
            envs["sensor(base)"] = base_env
            _run(tools["sensor(base)"], base_env)  # its bytecode cache
            if not args.no_store_variant:
                tools["store(base)"] = [*sensor, "--db", f"sqlite:///{work}/base-{{n}}.db"]
                envs["store(base)"] = base_env
        out = work / "sensor.jsonl"
        with out.open("wb") as fh:  # warm-up (bytecode cache, page cache) and the output check
            _run(tools["sensor"], env, stdout=fh.fileno())
        lines = out.read_bytes().count(b"\n")
        if lines != cap.flows:
            raise SystemExit(f"the sensor reported {lines} connections, expected {cap.flows}")
        _run(tools["ndpi"], env)
        load0 = os.getloadavg()
        wall: dict[str, list[float]] = {name: [] for name in tools}
        cpu: dict[str, list[float]] = {name: [] for name in tools}
        for n in range(args.rounds):
            order = list(tools) if n % 2 == 0 else list(reversed(tools))
            cells = []
            for name in order:
                cmd = [part.replace("{n}", str(n)) for part in tools[name]]
                w, c = _run(cmd, envs.get(name, env))
                wall[name].append(w)
                cpu[name].append(c)
                cells.append(f"{name} {w:.3f}s/{c:.3f}cpu")
            print(f"round {n + 1}: " + "  ".join(cells), flush=True)
        load1 = os.getloadavg()
        print(f"load average {load0[0]:.2f} before, {load1[0]:.2f} after ({os.cpu_count()} cores)")
        for name in tools:
            print(f"{name:13s} wall {_spread(wall[name])}   cpu {_spread(cpu[name])}")
        base_w, base_c = statistics.median(wall["ndpi"]), statistics.median(cpu["ndpi"])
        for name in tools:
            if name != "ndpi":
                print(
                    f"{name:13s} / ndpi: wall {statistics.median(wall[name]) / base_w:.2f}x, "
                    f"cpu {statistics.median(cpu[name]) / base_c:.2f}x (target: at most 2x)"
                )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
