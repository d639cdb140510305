"""Process events handled per second with attribution: shell loops spawn short ``/bin/true``
processes in a cgroup of their own (``stockade.slice/bench-PID``); the runtime monitor reads the
kernel's process connector, attributes every fork, exec and exit to the workload that cgroup
belongs to (through the identity directory), reads, hashes and judges every exec against a
Protect profile that allows them. Prints the live rate (events handled per second of the run,
and the kernel's drop count: 0 means it kept up) and the handler's capacity (events per second
of time spent handling). Needs root; removes its cgroup and processes on exit.

    sudo python benchmarks/process_events.py [--spawns 20000] [--loops 2]

Target: 5,000 events/s with attribution.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from stockade.identity import Directory, Workload  # noqa: E402
from stockade.runtime.container import SLICE, cgroup2_root  # noqa: E402
from stockade.runtime.image import sha256_of  # noqa: E402
from stockade.runtime.monitor import Monitor, Root  # noqa: E402
from stockade.runtime.procevents import ProcConnector  # noqa: E402
from stockade.runtime.profile import Process, Profile, Profiles, Selector, Spec  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spawns", type=int, default=20000, help="/bin/true runs in all")
    ap.add_argument("--loops", type=int, default=2, help="shell loops spawning in parallel")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (the process connector and a cgroup)")
    name = f"bench-{os.getpid()}"
    cg = cgroup2_root() / SLICE / name
    cg.mkdir(parents=True)
    true, bash = os.path.realpath("/bin/true"), os.path.realpath(shutil.which("bash") or "")
    w = Workload(name="generator", namespace="bench", cgroups=(f"/{SLICE}/{name}",))
    profile = Profile(
        name="bench.generator",
        selector=Selector(namespace="bench"),
        mode="protect",
        processes=[Process(path=p, sha256=sha256_of(p)) for p in {true, bash}],
    )
    emitted: list[int] = [0]
    mon = Monitor(
        directory=Directory([w]),
        roots={w.display(): Root(path="/")},
        profiles=Profiles(spec=Spec(profiles=[profile])),
        emit=lambda events: emitted.__setitem__(0, emitted[0] + len(events)),
    )
    per_loop = max(1, args.spawns // args.loops)
    script = f"echo $$ > {cg}/cgroup.procs; for ((i=0; i<{per_loop}; i++)); do {true}; done"
    loops: list[subprocess.Popen[bytes]] = []
    busy = 0.0
    try:
        with ProcConnector() as conn:
            start = time.perf_counter()
            loops = [subprocess.Popen([bash, "-c", script]) for _ in range(args.loops)]
            quiet_since = None
            while True:
                batch = conn.read(0.2)
                t0 = time.perf_counter()
                mon.handle(batch)
                busy += time.perf_counter() - t0
                if all(p.poll() is not None for p in loops):
                    if not batch:
                        break  # the generators ended and the queue is drained
                    quiet_since = quiet_since or time.perf_counter()
            wall = time.perf_counter() - start - 0.2  # the final empty read
            lost = conn.lost
    finally:
        for p in loops:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait()
        with contextlib.suppress(OSError):
            (cg / "cgroup.kill").write_text("1")
        for _ in range(100):
            with contextlib.suppress(OSError):
                cg.rmdir()
                break
            time.sleep(0.02)
        with contextlib.suppress(OSError):
            cg.parent.rmdir()  # the slice, unless a lab container still uses it
    s = mon.stats
    print(f"spawned {per_loop * args.loops} /bin/true in {args.loops} loops in {wall:.2f}s")
    print(
        f"events read {s.events}, attributed {s.attributed}, execs {s.execs} "
        f"(executable unreadable: {s.unreadable}), killed {s.killed}, events raised {emitted[0]}"
    )
    print(f"kernel drops (ENOBUFS): {lost}")
    print(
        f"live rate: {s.events / wall:,.0f} events/s handled, {s.attributed / wall:,.0f} of them "
        "attributed to the workload (the generators' pace)"
    )
    print(f"handler capacity: {s.events / busy:,.0f} events/s ({busy:.2f}s spent handling)")
    print(f"target 5,000/s: {'met' if s.events / busy >= 5000 and not lost else 'NOT met'}")


if __name__ == "__main__":
    main()
