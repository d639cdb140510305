"""Where ``stockade sensor --pcap`` spends its CPU: start-up, then each stage of the per-frame path.

    python benchmarks/sensor_pcap_phases.py PCAP [--rounds 5] [--src DIR]

Runs itself once per stage in a child process (``--stage NAME``, this tree's src or ``--src``), so
every stage starts cold, and prints the median CPU time (user+sys) of each and the difference from
the stage before: what each stage adds.

* start-up:   the whole command on a capture of one connection (imports, DLP engine, options);
* read:       the pcap reader alone, every frame;
* decode:     + Ethernet/IP/TCP decoding into a sink that does nothing;
* flows:      + the flow table and reassembly (hello checks, records), no detection and no DLP;
* inspect:    + protocol detection, TLS inspection, DLP;
* output:     + every record's masked JSON line (``json_line``, or ``json.dumps(to_dict())`` in a tree
               without it), as ``--format json --no-store`` writes it;
* command:    the whole ``sensor --pcap FILE --format json --no-store`` command.

``read`` and ``decode`` time the Python reader and decoder; ``flows`` and the stages after it run
``run_pcap``, so they take the compiled path (reading to reassembly in C, capture/pcapfast.c) when
it is built, and the Python one with ``STOCKADE_SENSOR_FASTPATH=0`` in the environment.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("start-up", "read", "decode", "flows", "inspect", "output", "command")


def _stage(name: str, path: Path) -> None:
    """Run one stage in this process (the child)."""
    from stockade.identity import Directory
    from stockade.network.analysis import Inspectors
    from stockade.network.capture.decode import Decoder
    from stockade.network.capture.pcapfile import PcapReader
    from stockade.network.sensor import run_pcap

    gc.freeze()
    t0 = time.process_time()
    if name == "read":
        with PcapReader(path) as reader:
            for _frame in reader.frames():
                pass
    elif name == "decode":

        class Null:
            def tcp(self, *args: object) -> None: ...
            def udp(self, *args: object) -> None: ...

        decoder = Decoder(Null())
        with PcapReader(path) as reader:
            for ts, link, buf, off, caplen in reader.frames():
                decoder.frame(ts, link, buf, off, caplen)
    else:
        inspectors = Inspectors.default() if name in ("inspect", "output") else None
        t0 = time.process_time()  # the engine's start-up is start-up's
        out: list[str] = []

        def line(r: Any) -> None:  # json_line where the tree (--src) has it
            out.append(r.json_line() if hasattr(r, "json_line") else json.dumps(r.to_dict()))

        sink = line if name == "output" else out.append
        run_pcap(path, inspectors=inspectors, identities=Directory(), on_record=sink, keep=False)
    print(time.process_time() - t0)


def _child_cpu(cmd: list[str], env: dict[str, str], *, report: bool) -> float:
    t0 = os.times()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    t1 = os.times()
    if out.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} exited {out.returncode}: {out.stderr.strip()[-300:]}")
    if report:
        return float(out.stdout.strip().splitlines()[-1])
    return (t1.children_user - t0.children_user) + (t1.children_system - t0.children_system)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pcap", type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--src", type=Path, default=ROOT / "src")
    ap.add_argument("--stage", choices=STAGES[1:-1], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:
        _stage(args.stage, args.pcap)
        return
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = f"{args.src.resolve()}{os.pathsep}{ROOT}"
    with tempfile.TemporaryDirectory(prefix="stockade-phases-") as work:
        env["PYTHONPYCACHEPREFIX"] = str(Path(work) / "pycache")
        sys.path.insert(0, str(args.src.resolve()))
        from stockade.lab.http_capture import write_http_capture

        one = write_http_capture(Path(work) / "one.pcap", flows=1).path
        sensor = [sys.executable, "-m", "stockade", "sensor", "--format", "json", "--no-store"]
        cmds: dict[str, tuple[list[str], bool]] = {
            "start-up": ([*sensor, "--pcap", str(one)], False),
            "command": ([*sensor, "--pcap", str(args.pcap)], False),
        }
        for stage in STAGES[1:-1]:
            me = [sys.executable, __file__, str(args.pcap), "--stage", stage]
            cmds[stage] = (me, True)
        for cmd, report in cmds.values():  # bytecode cache and page cache
            _child_cpu(cmd, env, report=report)
        load0 = os.getloadavg()[0]
        cpu: dict[str, list[float]] = {s: [] for s in STAGES}
        for _ in range(args.rounds):
            for stage in STAGES:
                cmd, report = cmds[stage]
                cpu[stage].append(_child_cpu(cmd, env, report=report))
        load1 = os.getloadavg()[0]
    print(f"{args.pcap} ({args.rounds} rounds, load average {load0:.2f} -> {load1:.2f})")
    before = 0.0
    for stage in STAGES:
        med = statistics.median(cpu[stage])
        spread = f"{min(cpu[stage]):.3f}-{max(cpu[stage]):.3f}"
        adds = "" if stage in ("start-up", "read", "command") else f"  (+{med - before:.3f})"
        print(f"{stage:9s} cpu median {med:.3f} s  [{spread}]{adds}")
        before = med
    rest = statistics.median(cpu["command"]) - statistics.median(cpu["start-up"])
    print(f"command - start-up = {rest:.3f} s for the capture's frames")


if __name__ == "__main__":
    main()
