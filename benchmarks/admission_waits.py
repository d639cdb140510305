"""What the slowest reviews of the admission webhook wait for: per-request timing inside its workers.

Starts ``admission serve --workers N`` (of this tree, or of ``--tree DIR``: an older checkout, for a
comparison in the same time window) with a tracing module on its path, warms it up, drives it with
wrk paced at a fixed rate (the schedule of ``admission_workers.py``) and prints, per worker:

- the server-side time of each review, from the first bytes of its request handed to the HTTP
  parser to its response written, p50/p99 (next to wrk's end-to-end p50/p99);
- for the slowest 1%: their mean time on a core (the thread's CPU time), waiting for a core (the
  run-queue delay from ``/proc/thread-self/schedstat``) and the rest (the interpreter lock, other
  requests of the same loop), and how many overlapped an event writer batch or a collection;
- the event writer's batches in the worker (wall and CPU each) and the collector's passes after the
  first request (count and most CPU per generation).

Diagnostic only: the tracing wraps uvicorn's httptools protocol and the app (the httptools parser,
the default) and costs a little CPU of its own.

    python benchmarks/admission_waits.py [--workers 2] [--rate 1000] [--seconds 6] [--tree DIR]
        [--realtime-priority N] [--client-priority N]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import admission_workers
from admission_workers import write_client, wrk

from admission import EXAMPLES, free_port

ROOT = Path(__file__).resolve().parents[1]

# Imported by every process of the traced webhook (sitecustomize); each worker writes its records
# to $STOCKADE_TRACE.<pid>.json when uvicorn shuts the app down.
TRACING = r"""
import gc, json, os, time

OUT = os.environ.get("STOCKADE_TRACE")
if OUT:
    pc = time.perf_counter
    REQ, GCS, BATCHES, _gc_at, OVERFLOWED = [], [], [], [], []

    def _queued() -> float:  # seconds this thread has waited for a core so far
        try:
            with open("/proc/thread-self/schedstat") as f:
                return int(f.read().split()[1]) / 1e9
        except OSError:
            return 0.0

    def _collected(phase, info):
        if phase == "start":
            _gc_at.append((pc(), time.thread_time()))
        elif _gc_at:
            t0, c0 = _gc_at.pop()
            GCS.append((t0, pc(), info["generation"], time.thread_time() - c0))

    gc.callbacks.append(_collected)

    def _install():
        import stockade.admission.server as server
        import stockade.store.writer as writer
        from uvicorn.protocols.http import httptools_impl as h

        store = writer.EventWriter._store

        def timed_store(self, batch):
            t0, c0 = pc(), time.thread_time()
            store(self, batch)
            BATCHES.append((t0, pc(), len(batch), time.thread_time() - c0))

        writer.EventWriter._store = timed_store
        import stockade.store.writer_process as wp

        handed = wp.EventStoreProcess.__call__

        def counted(self, batch):  # batches the worker stored itself (the child was behind)
            before = self.overflowed
            n = handed(self, batch)
            if self.overflowed > before:
                OVERFLOWED.append(pc())
            return n

        wp.EventStoreProcess.__call__ = counted
        received = h.HttpToolsProtocol.data_received

        def data_received(self, data):
            if getattr(self, "_trace_first", None) is None:
                self._trace_first = (pc(), time.thread_time(), _queued())
            return received(self, data)

        h.HttpToolsProtocol.data_received = data_received
        on_url = h.HttpToolsProtocol.on_url

        def traced_url(self, url):
            on_url(self, url)
            self.scope["trace.first"] = getattr(self, "_trace_first", None)
            self._trace_first = None

        h.HttpToolsProtocol.on_url = traced_url
        call = server.AdmissionApp.__call__

        async def traced_call(self, scope, receive, send):
            first = scope.get("trace.first")
            if scope["type"] != "http" or first is None:
                return await call(self, scope, receive, send)
            await call(self, scope, receive, send)
            REQ.append((first[0], pc(), time.thread_time() - first[1], _queued() - first[2]))

        server.AdmissionApp.__call__ = traced_call
        lifespan = server.AdmissionApp._lifespan

        async def traced_lifespan(self, receive, send):
            async def sending(message):
                if message["type"] == "lifespan.shutdown.complete":
                    with open(f"{OUT}.{os.getpid()}.json", "w") as f:
                        json.dump({"req": REQ, "gc": GCS, "batches": BATCHES, "over": OVERFLOWED}, f)
                await send(message)

            await lifespan(self, receive, sending)

        server.AdmissionApp._lifespan = traced_lifespan

    _install()
"""


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def start(tree: Path, tmp: Path, workers: int, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    site = tmp / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(TRACING)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=f"{site}:{tree / 'src'}", STOCKADE_TRACE=str(tmp / "trace"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stockade",
            "admission",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--cert-dir",
            str(tmp / "certs"),
            "--db",
            f"sqlite:///{tmp}/db.sqlite",
            "--policy",
            str(EXAMPLES / "policy.yaml"),
            "--vulns",
            str(EXAMPLES / "vulns.yaml"),
            "--workers",
            str(workers),
            *extra,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"https://127.0.0.1:{port}"
    ca = tmp / "certs" / "ca.crt"
    for _ in range(300):
        try:
            verify = ssl.create_default_context(cafile=str(ca)) if ca.exists() else None
            if verify and httpx.get(url + "/healthz", verify=verify).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def report(trace: Path, t0: float, t1: float) -> None:
    for path in sorted(trace.parent.glob(trace.name + ".*.json")):
        d = json.loads(path.read_text())
        req = [r for r in d["req"] if t0 <= r[0] <= t1]
        if not req:
            continue
        first = min(r[0] for r in d["req"])
        batches = [b for b in d["batches"] if t0 <= b[0] <= t1]
        wall = [(r[1] - r[0]) * 1000 for r in req]
        print(
            f"worker {path.name.split('.')[-2]}: {len(req)} reviews, server-side p50 "
            f"{pct(wall, 0.5):.2f} ms p99 {pct(wall, 0.99):.2f} ms max {max(wall):.1f} ms"
        )
        slow = sorted(req, key=lambda r: r[0] - r[1])[: len(req) // 100 + 1]
        n = len(slow)
        on_core = sum(r[2] for r in slow) * 1000 / n
        queued = sum(r[3] for r in slow) * 1000 / n
        mean = sum(r[1] - r[0] for r in slow) * 1000 / n
        with_batch = sum(any(b[0] < r[1] and b[1] > r[0] for b in batches) for r in slow)
        with_gc = sum(any(g[0] < r[1] and g[1] > r[0] for g in d["gc"]) for r in slow)
        print(
            f"  slowest 1% ({n}): mean {mean:.2f} ms = on a core {on_core:.2f} + waiting for a "
            f"core {queued:.2f} + other {mean - on_core - queued:.2f}; during an event writer "
            f"batch {with_batch}, during a collection {with_gc}"
        )
        if batches:
            print(
                f"  event writer: {len(batches)} batches (median {statistics.median(b[2] for b in batches):.0f} "
                f"events), wall p50 {pct([(b[1] - b[0]) * 1000 for b in batches], 0.5):.2f} ms max "
                f"{max((b[1] - b[0]) * 1000 for b in batches):.1f} ms, CPU p50 "
                f"{pct([b[3] * 1000 for b in batches], 0.5):.2f} ms; stored by the worker itself "
                f"(the store process behind): {sum(t0 <= t <= t1 for t in d['over'])} batches"
            )
        serving = [g for g in d["gc"] if g[0] >= first]
        per_gen = {gen: [g[3] * 1000 for g in serving if g[2] == gen] for gen in (0, 1, 2)}
        print(
            "  collections since the first request: "
            + ", ".join(
                f"gen{gen} {len(v)} (most CPU {max(v, default=0):.2f} ms)"
                for gen, v in per_gen.items()
            )
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--tree", type=Path, default=ROOT, help="the checkout to run (default: this)")
    ap.add_argument("--realtime-priority", type=int, default=0, help="the webhook's (root)")
    ap.add_argument("--client-priority", type=int, default=0, help="wrk under SCHED_RR (root)")
    args = ap.parse_args()
    admission_workers.CLIENT_PRIORITY = args.client_priority
    extra = ["--realtime-priority", str(args.realtime_priority)] if args.realtime_priority else []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        write_client(tmp)
        proc, url = start(args.tree.resolve(), tmp, args.workers, *extra)
        try:
            wrk(url, tmp, connections=args.connections, seconds=2, rate=0)  # warm-up
            t0 = time.perf_counter()
            got = wrk(
                url,
                tmp,
                connections=args.connections,
                seconds=args.seconds,
                rate=args.rate,
                server=proc.pid,
            )
            t1 = time.perf_counter()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        print(
            f"{args.tree}: wrk {got['rps']:.0f}/s p50 {got['p50']:.2f} ms p99 {got['p99']:.2f} ms "
            f"(from the send {got['sent_p99']:.2f}; client lag p99 {got['lag_p99']:.2f} ms), "
            f"server CPU {got['server_ms']:.3f} ms/review, load {got['load']:.2f}"
        )
        report(tmp / "trace", t0 + 0.3, t1 - 0.3)


if __name__ == "__main__":
    main()
