"""Admission webhook with one worker process against several (``admission serve --workers N``),
measured in the same run, rounds interleaved: end-to-end p50/p99 at a fixed rate (default 1,000
reviews/s from 100 keep-alive TLS connections) and saturation throughput (as fast as 100
connections go). The client is wrk (C, LuaJIT): paced by a Lua schedule (the k-th request of a
wrk thread is due at start + k / rate, whichever connection is free sends it), so the latency of
one request does not slow the rate. Latencies count from the time each request was due, not from
when wrk wrote it (coordinated omission: a client that falls behind its schedule, because its
thread waits for a core or no connection is free, would otherwise leave its lag out); each request
carries its own uid, found again in the answer. Printed apart: the client's lag (send - due) and
the p99 from the send (wrk's own measure, the only one before session 8). The client's own CPU use is printed next to each figure, with
the load average, so a client-bound or crowded run shows as such, and so is the webhook's own CPU
time per review (all its processes, from /proc; and without the event store processes, which run at
nice +10 and take what serving leaves): on a crowded machine the latencies measure the queue for a
core, the CPU per review still measures the webhook.

    python benchmarks/admission_workers.py [--workers N] [--rate 1000] [--connections 100]
        [--seconds 10] [--rounds 3] [--realtime-priority N] [--client-priority N]

``--realtime-priority N`` serves with ``admission serve --realtime-priority N`` (SCHED_RR, root);
``--client-priority N`` runs wrk under SCHED_RR so that on a crowded machine the client keeps its
schedule (its lag is printed either way, and counted in the latency either way).

Targets (issue 19): p99 under 5 ms at 1,000 reviews/s; saturation at least 2x one process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from admission import EXAMPLES, reviews, start

ROOT = Path(__file__).resolve().parents[1]

# Each wrk thread has its own Lua state: RATE is this thread's share. The schedule: the k-th request
# a thread sends is due at start + k / RATE, start being 0.5 s (SETTLE) after its first connection is
# up: every run opens 100 new TLS connections, and slots due during their handshakes would
# otherwise put the handshakes in the tail of a keep-alive measure (the achieved rate counts from
# the start). delay() runs before every request and returns how long
# until the next slot (whole ms, as wrk's timers count: up to 1 ms early, never late by its own
# choice); request() gives the request a unique uid (the body's "@UID@") and notes when it was due;
# response() finds the uid in the answer and records the latency from the due time (from the send
# when it went out early), so a client that falls behind its schedule (its thread not on a core, or
# no connection free) counts its lag in the latency instead of leaving it out (coordinated omission),
# and the lag (send - due) apart. wrk's own latency starts when the request is written.
PACED_LUA = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } timespec_t;
int clock_gettime(int clk, timespec_t *tp);
]]
local ts = ffi.new("timespec_t")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local threads, counter = {}, 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end
local bodies = {}
for line in io.lines(os.getenv("REVIEWS")) do bodies[#bodies + 1] = line end
local rate = tonumber(os.getenv("RATE") or "0")
local SETTLE = rate > 0 and 500 or 0  -- ms from the first connection up to the schedule's start
local start, k, sent, i = nil, 0, 0, 0
local pending = {}  -- uid -> the time its latency counts from
lat, lag, unmatched = {}, {}, 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  sent = sent + 1
  local uid = string.format("%02d%030d", tid, sent)
  local now = now_ms()
  local from = now
  if rate > 0 then
    if start == nil then start = now + SETTLE end
    local due = start + sent * 1000.0 / rate
    if due < now then from = due end
    lag[#lag + 1] = now - due
  end
  pending[uid] = from
  return wrk.format(nil, "/validate", nil, (string.gsub(bodies[i], "@UID@", uid, 1)))
end
response = function(status, headers, body)
  local uid = string.match(body, '"uid":"(%d+)"')
  local from = uid and pending[uid]
  if from then
    lat[#lat + 1] = now_ms() - from
    pending[uid] = nil
  else
    unmatched = unmatched + 1
  end
end
if rate > 0 then
  delay = function()
    if start == nil then start = now_ms() + SETTLE end
    k = k + 1
    local wait = start + k * 1000.0 / rate - now_ms()
    if wait < 0 then return 0 end
    return math.floor(wait)
  end
end
local function pct(t, q)
  if #t == 0 then return 0 end
  return t[math.min(#t, math.floor(q * #t) + 1)]
end
done = function(summary, latency, requests)
  local all, lags, odd = {}, {}, 0
  for _, thread in ipairs(threads) do
    for _, v in ipairs(thread:get("lat")) do all[#all + 1] = v end
    for _, v in ipairs(thread:get("lag")) do lags[#lags + 1] = v end
    odd = odd + thread:get("unmatched")
  end
  table.sort(all)
  table.sort(lags)
  local secs = summary.duration / 1e6 - SETTLE / 1000
  local e = summary.errors
  io.write(string.format('RESULT {"p50": %f, "p99": %f, "p999": %f, "rps": %f, "bad": %d, ' ..
    '"errors": %d, "sent_p50": %f, "sent_p99": %f, "lag_p50": %f, "lag_p99": %f, "lag_max": %f, ' ..
    '"measured": %d, "unmatched": %d, "requests": %d}\\n',
    pct(all, 0.50), pct(all, 0.99), pct(all, 0.999), summary.requests / secs, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, pct(lags, 0.50), pct(lags, 0.99), pct(lags, 1.0), #all, odd,
    summary.requests))
end
"""


CLIENT_PRIORITY = 0  # > 0: wrk runs under SCHED_RR at this priority (--client-priority)


def write_client(tmp: Path) -> None:
    """The client's script and request bodies in ``tmp`` (each body's uid is set per request)."""
    lines = [json.dumps({**r, "request": {**r["request"], "uid": "@UID@"}}) for r in reviews() * 50]
    (tmp / "reviews.jsonl").write_text("\n".join(lines) + "\n")
    (tmp / "paced.lua").write_text(PACED_LUA)


def server_cpu(pid: int, *, store: bool | None = None) -> float:
    """CPU seconds used so far by process ``pid`` and its children (the worker processes and
    their event store processes); ``store`` True: only the event store processes, False: all
    but them (the processes that serve)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            is_store = b"stockade.store.writer_process" in Path(f"/proc/{p}/cmdline").read_bytes()
            if store is None or store == is_store:
                total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total


def wrk(
    url: str, tmp: Path, *, connections: int, seconds: float, rate: float, server: int = 0
) -> dict[str, float]:
    """One wrk run; ``rate`` 0 means as fast as it goes. Adds the client's CPU (cores used) and
    the CPU milliseconds per review of the server process ``server`` and its workers."""
    threads = 2
    env = dict(os.environ, REVIEWS=str(tmp / "reviews.jsonl"), RATE=str(rate / threads))
    chrt = ["chrt", "-r", str(CLIENT_PRIORITY)] if CLIENT_PRIORITY else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = server_cpu(server) if server else 0.0
    store0 = server_cpu(server, store=True) if server else 0.0
    t0 = time.perf_counter()
    out = subprocess.run(
        [
            *chrt,
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{int(seconds)}s",
            "-s",
            str(tmp / "paced.lua"),
            url + "/validate",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        env=env,
        check=True,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    got = json.loads(line.removeprefix("RESULT "))
    got["client_cores"] = (
        after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    ) / wall
    got["load"] = os.getloadavg()[0]
    served = got["requests"]
    got["server_ms"] = (server_cpu(server) - cpu0) * 1000 / served if server and served else 0.0
    stored = (server_cpu(server, store=True) - store0) * 1000 / served if server and served else 0.0
    got["serving_ms"] = got["server_ms"] - stored  # without the event store processes (nice +10)
    return got


def describe(values: list[float], unit: str, fmt: str = ".2f") -> str:
    med = statistics.median(values)
    return f"{med:{fmt}} {unit} (spread {min(values):{fmt}}-{max(values):{fmt}})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--realtime-priority",
        type=int,
        default=0,
        help="pass --realtime-priority N to the webhook (SCHED_RR; needs root)",
    )
    ap.add_argument(
        "--client-priority",
        type=int,
        default=0,
        help="run wrk under SCHED_RR at this priority (a client that keeps its schedule on a "
        "crowded machine; its lag is printed either way)",
    )
    args = ap.parse_args()
    global CLIENT_PRIORITY
    CLIENT_PRIORITY = args.client_priority
    extra = ["--realtime-priority", str(args.realtime_priority)] if args.realtime_priority else []
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed")
    counts = (1, args.workers)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        write_client(tmp)
        servers = {}
        try:
            for n in counts:
                sub = tmp / f"w{n}"
                sub.mkdir()
                servers[n] = start(sub, EXAMPLES / "policy.yaml", "--workers", str(n), *extra)
            paced: dict[int, list[dict[str, float]]] = {n: [] for n in counts}
            sat: dict[int, list[dict[str, float]]] = {n: [] for n in counts}
            for n in counts:  # warm-up: handshakes, first decisions
                wrk(servers[n][1], tmp, connections=args.connections, seconds=2, rate=0)
            for r in range(args.rounds):
                for n in counts:
                    proc, url, _ = servers[n]
                    p = wrk(
                        url,
                        tmp,
                        connections=args.connections,
                        seconds=args.seconds,
                        rate=args.rate,
                        server=proc.pid,
                    )
                    s = wrk(
                        url,
                        tmp,
                        connections=args.connections,
                        seconds=args.seconds,
                        rate=0,
                        server=proc.pid,
                    )
                    if p["unmatched"] or s["unmatched"]:  # answers without their request's uid
                        raise SystemExit(f"workers={n}: answers not matched to a request: {p} {s}")
                    if p["bad"] or s["bad"]:  # a wrong answer is a failure, not a figure
                        raise SystemExit(f"workers={n}: non-2xx answers: {p} {s}")
                    paced[n].append(p)
                    sat[n].append(s)
                    print(
                        f"round {r + 1} workers={n}: paced {p['rps']:.0f}/s p50 {p['p50']:.2f} ms "
                        f"p99 {p['p99']:.2f} ms (from the send {p['sent_p99']:.2f}; client lag "
                        f"p99 {p['lag_p99']:.2f} max {p['lag_max']:.1f} ms), "
                        f"server {p['server_ms']:.2f} ms CPU/review "
                        f"(serving {p['serving_ms']:.2f}) "
                        f"(client {p['client_cores']:.2f} cores, load {p['load']:.2f}); "
                        f"saturation {s['rps']:.0f}/s p99 {s['p99']:.1f} ms "
                        f"(client {s['client_cores']:.2f} cores, load {s['load']:.2f}); "
                        f"socket errors/timeouts {p['errors'] + s['errors']:.0f}",
                        flush=True,
                    )
        finally:
            for proc, _, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=30)
    print(
        f"\n{args.rate:.0f} reviews/s from {args.connections} keep-alive TLS connections, {args.rounds} rounds of {args.seconds:.0f} s"
        f" (webhook realtime priority {args.realtime_priority or 'off'}, "
        f"client {args.client_priority or 'normal'}):"
    )
    for n in counts:
        ps = paced[n]
        print(
            f"  workers={n}: achieved {describe([p['rps'] for p in ps], '/s', '.0f')}  "
            f"p50 {describe([p['p50'] for p in ps], 'ms')}  p99 {describe([p['p99'] for p in ps], 'ms')}  "
            f"p99.9 {describe([p['p999'] for p in ps], 'ms')}  "
            f"p99 from the send {describe([p['sent_p99'] for p in ps], 'ms')}  "
            f"client lag p99 {describe([p['lag_p99'] for p in ps], 'ms')}  "
            f"server CPU {describe([p['server_ms'] for p in ps], 'ms/review', '.3f')}, "
            f"of which serving {describe([p['serving_ms'] for p in ps], 'ms', '.3f')}  "
            f"client {statistics.median(p['client_cores'] for p in ps):.2f} cores  "
            f"load {describe([p['load'] for p in ps], '')}"
        )
    print(f"saturation ({args.connections} connections):")
    for n in counts:
        ss = sat[n]
        print(
            f"  workers={n}: {describe([s['rps'] for s in ss], 'reviews/s', '.0f')}  "
            f"p99 {describe([s['p99'] for s in ss], 'ms', '.1f')}  "
            f"client {statistics.median(s['client_cores'] for s in ss):.2f} cores  "
            f"load {describe([s['load'] for s in ss], '')}"
        )
    one, many = (statistics.median(s["rps"] for s in sat[n]) for n in counts)
    per_round = [m["rps"] / o["rps"] for o, m in zip(sat[1], sat[args.workers], strict=True)]
    print(
        f"ratio workers={args.workers} / workers=1 at saturation: {many / one:.2f}x "
        f"(per round {', '.join(f'{x:.2f}' for x in per_round)}; target >= 2x)"
    )
    p99 = statistics.median(p["p99"] for p in paced[args.workers])
    print(f"p99 at {args.rate:.0f}/s with workers={args.workers}: {p99:.2f} ms (target < 5 ms)")


if __name__ == "__main__":
    main()
