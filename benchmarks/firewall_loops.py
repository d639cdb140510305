"""The enforcer's NFQUEUE loops side by side in one lab (issue 19): HTTP latency with the rules
removed ("off"), and with the inspected traffic sent to one of several loops running at once, each
on its own queue (the ruleset compiled for that queue is applied for its blocks):

- ``enf-c``, ``enf-py``: the enforcer (Protect, DLP on the first 64 KiB) with the compiled loop, and
  with the pure-Python one (``STOCKADE_ENFORCER_FASTPATH=0``); ``enf-loop``: the compiled loop
  without connections answered from their first segment (``STOCKADE_ENFORCER_FASTPATH=loop``: every
  segment to the Python handler, as in session 6);
- ``null-c``, ``null-py``: a loop that accepts every packet at once (the floor of a trip to user
  space: what no verdict handler, however fast, can take away).

Probes of fewer trips (session 11), a mode with a suffix: ``MODE/req`` queues only the client's
segments (the responder's pass in the kernel: what a kernel-side decision on the responses would
save), ``MODE/first`` only each connection's first packet to user space, ``MODE/q`` skips the
segments the enforcer's tc classifier (``src/stockade/firewall/enforce/clean.bpf.c``) marked
CLEAN, and ``off/bpf`` is "off" with that classifier attached (what the scan itself costs). They
measure, they do not protect: a skipped segment is not inspected. (The enforcer itself, ``enf-*``,
attaches the classifier and lets CLEAN segments of connections final but for DLP pass with a copy.)

Rounds alternate the order of the modes; each prints pooled medians, p99, and the per-round ratio
against "off" (median and range).

    python benchmarks/firewall_loops.py [--rounds 8] [--modes off,enf-c,enf-loop,enf-py,null-c,null-py]

Needs root; makes its own lab (prefix ``fwb-``) and removes it.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import firewall as fb  # noqa: E402  (the end-to-end benchmark's lab, policy and clients)

QUEUES = {"enf-c": 0, "enf-py": 1, "null-c": 2, "null-py": 3, "enf-loop": 4}


QUIET_PROBE = 0x100  # marks.CLEAN: the packet mark the classifier sets on a clean segment


def variant(mode: str) -> str:
    """A probe's suffix (``null-c/req`` -> ``req``), or ""."""
    return mode.partition("/")[2]


def queue_of(mode: str, modes: list[str]) -> int:
    """A mode's queue: a variant with settings of its own (``enf-c@50``, ``enf-c~0``) gets one
    of its own."""
    return QUEUES[mode] if mode in QUEUES else len(QUEUES) + modes.index(mode)


SETTINGS = {
    "@": "STOCKADE_ENFORCER_SPIN_US",
    "~": "STOCKADE_ENFORCER_COPIES_WAIT_US",
    "^": "STOCKADE_ENFORCER_BODY_SPIN_US",
}


def loop_env(mode: str) -> dict[str, str]:
    """A mode's settings: ``@N`` the compiled loop's spin (STOCKADE_ENFORCER_SPIN_US=N), ``~N``
    how long clean segments' copies may wait (STOCKADE_ENFORCER_COPIES_WAIT_US=N), ``^N`` the
    spin after a request head whose body follows (STOCKADE_ENFORCER_BODY_SPIN_US=N)."""
    head = mode.partition("/")[0]
    env = {}
    for sign, name in SETTINGS.items():
        value = head.partition(sign)[2]
        for other in SETTINGS:
            value = value.partition(other)[0]
        if value:
            env[name] = value
    return env


def kind_of(mode: str) -> str:
    """``enf-c@50~0^0/q`` -> ``enf-c``."""
    head = mode.partition("/")[0]
    for sign in SETTINGS:
        head = head.partition(sign)[0]
    return head


def null_loop(kind: str, node: str, queue: int) -> None:
    """Accept every packet of ``queue`` at once until SIGTERM."""
    from stockade.firewall.enforce import fastpath
    from stockade.network.capture.live import netns

    def judge(payload: bytes, mark: int) -> tuple[int, bool]:
        return 0, False

    with netns(node):
        if kind == "compiled":
            module = fastpath.compiled()
            assert module is not None, "not built: python3 setup.py build_ext --inplace"
            q: fastpath.Queue = fastpath.CompiledQueue.open(module, queue, judge, 0)
        else:
            q = fastpath.PythonQueue.open(queue, judge, 0)
    print("ready", flush=True)
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    while not stop:
        q.serve(-1, 0.2)
    q.close()


def _start(
    mode: str, queue: int, tmp: Path, state: Path, db: str, node: str
) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), **loop_env(mode))
    kind = kind_of(mode)
    if mode.startswith("enf"):
        env["STOCKADE_ENFORCER_FASTPATH"] = {"enf-c": "1", "enf-loop": "loop"}.get(kind, "0")
        log = tmp / f"{mode}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "stockade", "enforcer", "--db", db,
                 "--lab-state", str(state), "--queue", str(queue)],
                env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        for _ in range(300):
            if "enforcing" in log.read_text():
                return proc
            time.sleep(0.1)
        raise SystemExit(f"{mode} did not start:\n{log.read_text()}")
    proc = subprocess.Popen(
        [sys.executable, __file__, "--null", "compiled" if kind == "null-c" else "python", node, str(queue)],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _skip_rule(node: str, mode: str) -> None:
    """The probe's bypass, first in the IPv4 queue chain (the benchmark's traffic is IPv4)."""
    from stockade.firewall.enforce import marks, nft
    from stockade.network.netns import in_ns, run

    match = {
        "req": ["-m", "mark", "--mark", f"{marks.REPLY:#x}/{marks.REPLY:#x}"],
        "first": ["-m", "mark", "--mark", f"0/{marks.FIRST:#x}"],
        "q": ["-m", "mark", "--mark", f"{QUIET_PROBE:#x}/{QUIET_PROBE:#x}"],
    }[variant(mode)]
    run(in_ns(node, "iptables", "-w", "-I", nft.CHAIN, "1", *match, "-j", "RETURN"))


def _skipped(node: str) -> tuple[int, int]:
    """Packets the probe's bypass let pass and packets queued, since the rules were applied."""
    from stockade.firewall.enforce import nft
    from stockade.network.netns import in_ns, run

    out = run(in_ns(node, "iptables", "-w", "-L", nft.CHAIN, "-v", "-n", "-x")).stdout
    rows = [ln.split() for ln in out.splitlines()[2:] if ln.strip()]
    skipped = int(rows[0][0]) if rows and rows[0][2] == "RETURN" else 0
    queued = sum(int(r[0]) for r in rows if r[2] == "NFQUEUE")
    return skipped, queued


class Classifier:
    """The enforcer's classifier (clean.bpf.c) on the lab node's interfaces (ingress), attached
    only when wanted."""

    def __init__(self, tmp: Path, node: str, interfaces: list[str]) -> None:
        from stockade.firewall.enforce import tcfilter

        obj = tcfilter.program()
        if obj is None:
            raise SystemExit("the classifier did not build (clang -target bpf)")
        self.tc = tcfilter.Classifier(node, obj)
        self.on = False

    def want(self, on: bool) -> None:
        if on == self.on:
            return
        if on:
            self.tc.sync()
        else:
            self.tc.remove()
        self.on = on


def _wakeups(pid: int) -> int:
    """How often the loop's thread went to sleep and was woken (voluntary context switches)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--modes", default="off,enf-c,enf-py,null-c,null-py")
    ap.add_argument("--null", nargs=3, metavar=("KIND", "NODE", "QUEUE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.null:
        null_loop(args.null[0], args.null[1], int(args.null[2]))
        return
    from stockade.firewall.enforce import nft
    from stockade.firewall.policy.endpoints import Directory
    from stockade.firewall.policy.files import load_files
    from stockade.lab.inventory import load

    modes = args.modes.split(",")
    res: dict[str, dict[str, list[float]]] = {m: {} for m in modes}
    procs: dict[str, subprocess.Popen[str]] = {}
    cpu: dict[str, float] = {}
    wakes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        state, db = tmp / "lab.json", f"sqlite:///{tmp}/db.sqlite"
        (tmp / "policy.yaml").write_text(fb.POLICY)
        up = fb.cli("lab", "up", "--prefix", fb.PREFIX, "--state", str(state), "--no-databases")
        if up.returncode != 0:
            raise SystemExit(up.stderr)
        try:
            fb.cli("policy", "apply", str(tmp / "policy.yaml"), "--db", db)
            node = load(state).node_netns
            policy = load_files([tmp / "policy.yaml"])
            endpoints = Directory.from_identities(load(state).directory()).endpoints
            rulesets = {
                m: nft.compile_ruleset(policy, endpoints, {}, log_group=queue_of(m, modes))
                for m in modes
                if not m.startswith("off")
            }
            bpf = (
                Classifier(tmp, node, load(state).host_interfaces())
                if any(variant(m) in ("q", "bpf") for m in modes)
                else None
            )
            skips: dict[str, list[int]] = {}
            for m in rulesets:
                procs[m] = _start(m, queue_of(m, modes), tmp, state, db, node)
            for m in rulesets:  # warm each loop: lazy imports, first flows, the lab's servers
                nft.apply(node, rulesets[m], nft.Settings(queue=queue_of(m, modes)))
                fb.measure("keep", 0, 120, 0)
                for _ in range(50):
                    try:
                        fb.measure("new", 30, 0, 0)
                        break
                    except SystemExit:
                        time.sleep(0.5)
            for i in range(args.rounds):
                for m in modes if i % 2 == 0 else modes[::-1]:
                    if bpf is not None:
                        bpf.want(variant(m) in ("q", "bpf"))
                    if m.startswith("off"):
                        nft.remove(node)
                    else:
                        nft.apply(node, rulesets[m], nft.Settings(queue=queue_of(m, modes)))
                        if m.startswith("enf-c") and not variant(m):
                            fb.pairs_given(node, 5.0)  # the enforcer's pairs, as in a steady state
                        if variant(m):
                            _skip_rule(node, m)
                    for kind in ("keep", "new"):
                        for k, v in fb.measure(kind, 150, 300, 0).items():
                            res[m].setdefault(k, []).append(statistics.median(v))
                            res[m].setdefault(k + "_all", []).extend(v)
                    if variant(m) and not m.startswith("off"):
                        got = _skipped(node)
                        total = skips.setdefault(m, [0, 0])
                        total[0], total[1] = total[0] + got[0], total[1] + got[1]
                if bpf is not None:
                    bpf.want(False)
        finally:
            for m, p in procs.items():  # CPU the loops used (their spin shows here)
                cpu[m] = _cpu_seconds(p.pid)
                wakes[m] = _wakeups(p.pid)
            for p in procs.values():
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=30)
            fb.cli("lab", "down", "--prefix", fb.PREFIX, "--state", str(state))
        for m in procs:  # the enforcers' closing counts (packets judged in Python, in C, ...)
            if m.startswith("enf"):
                stats = (tmp / f"{m}.log").read_text().partition("rules removed.")[2]
                print(f"{m}: {' '.join(stats.split())}")
        for m, seconds in cpu.items():
            print(f"{m}: {seconds:.1f} s of CPU in all, woken {wakes[m]} times")
        for m, (skipped, queued) in skips.items():
            print(f"{m}: {queued} packets queued, {skipped} let pass by the probe's bypass")
    names = {"new": "new connection each", "head": "first 100 of keep-alive", "keep": "keep-alive"}
    for k, title in names.items():
        print(title)
        for m in modes:
            ratios = sorted(b / a for a, b in zip(res["off"][k], res[m][k], strict=True))
            pooled = sorted(res[m][k + "_all"])
            print(
                f"  {m:8s} median {statistics.median(pooled) * 1e3:.3f} ms"
                f"  p99 {pooled[int(0.99 * (len(pooled) - 1))] * 1e3:.3f} ms"
                f"  per round {(statistics.median(ratios) - 1) * 100:+.0f}%"
                f" (range {(ratios[0] - 1) * 100:+.0f}% to {(ratios[-1] - 1) * 100:+.0f}%)"
            )


if __name__ == "__main__":
    main()
