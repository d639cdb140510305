"""Start-up of the ``stockade`` command against a bare ``python3 -c pass`` measured in the same run.

    python benchmarks/startup.py [--rounds 20] [--script PATH] [--controller] [--baseline-src DIR]

Each round runs, one after the other: ``python3 -c pass``, the console script with ``--version``
(the real script in the interpreter's bin/, not a pyenv shim), ``python3 -m stockade --version``,
the console script with ``--help`` and with ``scan --help`` (one command loaded). All run this
checkout's code (PYTHONPATH=src). Prints per measure the median wall-clock and CPU seconds, the
spread (lowest and highest round) and the ratio of the medians to the bare interpreter's.
Target: ``stockade --version`` under 0.1 s.

``--controller`` adds ``python3 -m stockade controller`` until it is ready: started on loopback
over HTTPS on an SQLite store and a certificate folder made by a first start (as a node or replica
restarts), the wall clock and the process's CPU time (``/proc/PID/stat``, all its threads) when
``/healthz`` first answers; then it is stopped. ``--baseline-src DIR`` (another checkout's top
folder, e.g. ``/tmp/base-s13``) runs every measure from that tree too, alternating with this one's
in each round, and prints the ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from functools import partial
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a running process, all its threads (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _answers(url: str, context: ssl.SSLContext) -> bool:
    """Whether ``url`` answers 2xx now (not yet listening, or refusing, is False)."""
    try:
        with urllib.request.urlopen(url, context=context, timeout=5):
            return True
    except (urllib.error.URLError, OSError):
        return False


def controller_ready(workdir: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of ``stockade controller`` from its start until ``/healthz``
    answers over HTTPS (the store and certificate folder in ``workdir``, made by the first call)."""
    port = _free_port()
    cert_dir = workdir / "tls"
    args = [sys.executable, "-m", "stockade", "controller", "--host", "127.0.0.1",
            "--port", str(port), "--db", f"sqlite:///{workdir / 'stockade.db'}",
            "--cert-dir", str(cert_dir)]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        context: ssl.SSLContext | None = None
        while time.perf_counter() - start < 120:
            if proc.poll() is not None:
                sys.exit(f"controller failed ({proc.returncode}): {proc.stderr.read().decode()}")
            if context is None and (cert_dir / "ca.crt").exists():
                context = ssl.create_default_context(cafile=str(cert_dir / "ca.crt"))
            if context is not None and _answers(f"https://127.0.0.1:{port}/healthz", context):
                return time.perf_counter() - start, _cpu_of(proc.pid)
            time.sleep(0.02)
        sys.exit("the controller did not answer /healthz within 120 s")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--script",
        default=str(Path(sys.prefix) / "bin" / "stockade"),
        help="the console script (default: the one in this interpreter's bin/)",
    )
    parser.add_argument(
        "--controller", action="store_true", help="also time `stockade controller` until ready"
    )
    parser.add_argument(
        "--baseline-src", type=Path, help="a checkout to run every measure from as well"
    )
    opts = parser.parse_args()
    if not os.access(opts.script, os.X_OK):
        sys.exit(f"no console script at {opts.script} (pip install -e . first, or --script PATH)")

    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    env.pop("STOCKADE_DB", None)
    trees = {"": env}
    if opts.baseline_src is not None:
        trees[" (baseline)"] = dict(env, PYTHONPATH=str(opts.baseline_src.resolve() / "src"))
    py = sys.executable
    commands = {
        "python3 -c pass": [py, "-c", "pass"],
        "stockade --version": [opts.script, "--version"],
        "python3 -m stockade --version": [py, "-m", "stockade", "--version"],
        "stockade --help": [opts.script, "--help"],
        "stockade scan --help": [opts.script, "scan", "--help"],
    }
    tmp = tempfile.TemporaryDirectory(prefix="stockade-startup-")
    measures: dict[str, Callable[[], tuple[float, float]]] = {}
    for name, args in commands.items():
        for suffix, tree_env in trees.items() if name != "python3 -c pass" else [("", env)]:
            measures[name + suffix] = partial(timed, args, tree_env)
    if opts.controller:
        for i, (suffix, tree_env) in enumerate(trees.items()):
            workdir = Path(tmp.name) / f"controller{i}"
            workdir.mkdir()
            measures["controller to ready" + suffix] = partial(controller_ready, workdir, tree_env)
    for measure in measures.values():
        measure()  # warm the OS cache and the bytecode cache once (and make the stores)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in measures}
    loads = []
    for _ in range(opts.rounds):
        for name, measure in measures.items():
            samples[name].append(measure())
        loads.append(os.getloadavg()[0])
    tmp.cleanup()

    def med(name: str, i: int) -> float:
        return statistics.median(s[i] for s in samples[name])

    base_wall, base_cpu = med("python3 -c pass", 0), med("python3 -c pass", 1)
    print(
        f"script: {opts.script}   ({opts.rounds} rounds, medians; load average "
        f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs)"
    )
    print(f"{'':44}{'wall s':>8}{'spread':>15}{'cpu s':>8}{'x pass':>8}{'cpu x':>7}")
    for name in measures:
        walls = [s[0] for s in samples[name]]
        print(
            f"{name:44}{med(name, 0):8.3f}   {min(walls):.3f}-{max(walls):.3f}"
            f"{med(name, 1):8.3f}{med(name, 0) / base_wall:8.1f}{med(name, 1) / base_cpu:7.1f}"
        )
    if opts.baseline_src is not None:
        print(f"ratio this/baseline ({opts.baseline_src}), medians:")
        for name in measures:
            if not name.endswith(" (baseline)") and name + " (baseline)" in measures:
                other = name + " (baseline)"
                print(
                    f"  {name:42}wall {med(name, 0) / med(other, 0):.2f}, "
                    f"cpu {med(name, 1) / med(other, 1):.2f}"
                )
    wall, cpu = med("stockade --version", 0), med("stockade --version", 1)
    print(
        f"target: stockade --version < {TARGET:.3f} s: wall {wall:.3f} s "
        f"{'OK' if wall < TARGET else 'MISSED'}, cpu {cpu:.3f} s {'OK' if cpu < TARGET else 'MISSED'}"
        " (on a loaded machine wall clock suffers from other work, CPU time much less)"
    )


if __name__ == "__main__":
    main()
