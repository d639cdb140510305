"""Start-up of the ``stockade`` command against a bare ``python3 -c pass`` measured in the same run.

    python benchmarks/startup.py [--rounds 20] [--script PATH]

Each round runs, one after the other: ``python3 -c pass``, the console script with ``--version``
(the real script in the interpreter's bin/, not a pyenv shim), ``python3 -m stockade --version``,
the console script with ``--help`` and with ``scan --help`` (one command loaded). All run this
checkout's code (PYTHONPATH=src). Prints per measure the median wall-clock and CPU seconds, the
spread (lowest and highest round) and the ratio of the medians to the bare interpreter's.
Target: ``stockade --version`` under 0.1 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.1


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(args, env=env, capture_output=True, timeout=120)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({out.returncode}): {out.stderr.decode().strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--script",
        default=str(Path(sys.prefix) / "bin" / "stockade"),
        help="the console script (default: the one in this interpreter's bin/)",
    )
    opts = parser.parse_args()
    if not os.access(opts.script, os.X_OK):
        sys.exit(f"no console script at {opts.script} (pip install -e . first, or --script PATH)")

    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    py = sys.executable
    measures = {
        "python3 -c pass": [py, "-c", "pass"],
        "stockade --version": [opts.script, "--version"],
        "python3 -m stockade --version": [py, "-m", "stockade", "--version"],
        "stockade --help": [opts.script, "--help"],
        "stockade scan --help": [opts.script, "scan", "--help"],
    }
    for args in measures.values():
        timed(args, env)  # warm the OS cache and the bytecode cache once
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in measures}
    for _ in range(opts.rounds):
        for name, args in measures.items():
            samples[name].append(timed(args, env))

    def med(name: str, i: int) -> float:
        return statistics.median(s[i] for s in samples[name])

    base_wall, base_cpu = med("python3 -c pass", 0), med("python3 -c pass", 1)
    load = os.getloadavg()[0]
    print(
        f"script: {opts.script}   ({opts.rounds} rounds, medians; load average {load:.1f} on "
        f"{os.cpu_count()} CPUs)"
    )
    print(f"{'':32}{'wall s':>8}{'spread':>15}{'cpu s':>8}{'x pass':>8}{'cpu x':>7}")
    for name in measures:
        walls = [s[0] for s in samples[name]]
        print(
            f"{name:32}{med(name, 0):8.3f}   {min(walls):.3f}-{max(walls):.3f}"
            f"{med(name, 1):8.3f}{med(name, 0) / base_wall:8.1f}{med(name, 1) / base_cpu:7.1f}"
        )
    wall, cpu = med("stockade --version", 0), med("stockade --version", 1)
    print(
        f"target: stockade --version < {TARGET:.3f} s: wall {wall:.3f} s "
        f"{'OK' if wall < TARGET else 'MISSED'}, cpu {cpu:.3f} s {'OK' if cpu < TARGET else 'MISSED'}"
        " (on a loaded machine wall clock suffers from other work, CPU time much less)"
    )


if __name__ == "__main__":
    main()
