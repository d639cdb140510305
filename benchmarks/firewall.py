"""Container firewall overhead: HTTP request latency and bulk TCP throughput between two lab pods,
with the enforcer off and in Protect mode (DLP on the first 64 KiB of every connection), measured
in the same run. Targets (issue 6): throughput at least 0.9 of unenforced, median latency +10% at most.

Latency is measured the way NeuVector's "2-10%" was (redis-benchmark: requests on established
connections): HTTP POSTs over one keep-alive connection. Two more figures show what inspection
costs where it happens: the first 100 requests of that connection (inside the inspected 64 KiB), and
a new connection for every request (the worst case: every request is a connection's first bytes).
One enforcer runs throughout; a block is "off" with its rules removed (the enforcer sits idle, out of
the path) and "Protect" with them applied. Blocks alternate (off, on), (on, off), ... so that drift in
the machine's load hits both sides; latencies are pooled over the blocks.

    python benchmarks/firewall.py [--rounds 30] [--keepalive 1500] [--new-rounds 15]
                                  [--requests 150] [--bulk-rounds 10] [--bytes 1000000000]

Needs root; makes its own lab (prefix ``fwb-``) and removes it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
PREFIX = "fwb-"

POLICY = """\
apiVersion: stockade.dev/v1
kind: FirewallPolicy
spec:
  groups:
    - name: cde
      selector: {namespace: shop, labels: {pci: cde}}
      mode: protect
      dlp: [{sensor: dlp.payment_card, action: block}]
  rules:
    - {name: api, from: [cde], to: [cde], ports: [tcp/8080], protocols: [proto.http]}
    - {name: bulk, from: [cde], to: [cde], ports: [tcp/9000]}
    - {name: api-keepalive, from: [cde], to: [cde], ports: [tcp/8088], protocols: [proto.http]}
"""

KEEPALIVE_SERVER = textwrap.dedent("""
    import http.server, sys, time
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            body = b'{"ok": true}'
            self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers()
            self.wfile.write(body); served.append(1)
        def log_message(self, *a): pass
    srv = http.server.HTTPServer(("10.77.0.11", 8088), H); srv.timeout = 5; served = []
    deadline = time.monotonic() + 120
    while not served and time.monotonic() < deadline:  # readiness probes, then the client
        srv.handle_request()
""")

KEEPALIVE = textwrap.dedent("""
    import http.client, socket, sys, time, json
    for _ in range(600):  # the server may still be starting (30 s: a loaded machine)
        try:
            socket.create_connection(("10.77.0.11", 8088), 10).close(); break
        except ConnectionRefusedError:
            time.sleep(0.05)
    c = http.client.HTTPConnection("10.77.0.11", 8088, timeout=10); out = []
    for i in range(int(sys.argv[1])):
        t0 = time.perf_counter()
        c.request("POST", "/orders", body='{"order": %d, "qty": 2}' % i, headers={"content-type": "application/json"})
        r = c.getresponse(); r.read(); assert r.status == 200, r.status
        out.append(time.perf_counter() - t0)
    c.close(); print(json.dumps(out))
""")

SINK = textwrap.dedent("""
    import socket, sys
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("10.77.0.11", 9000)); s.listen(8); s.settimeout(120)
    for _ in range(int(sys.argv[1])):
        c, _ = s.accept()
        buf = bytearray(1 << 20); n = 0
        while True:
            k = c.recv_into(buf)
            if not k: break
            n += k
        c.sendall(str(n).encode()); c.close()
""")

BULK = textwrap.dedent("""
    import socket, sys, time, json
    total = int(sys.argv[1]); chunk = b"x" * (1 << 20)
    for _ in range(100):  # the sink may still be starting
        try:
            c = socket.create_connection(("10.77.0.11", 9000), 10); break
        except ConnectionRefusedError:
            time.sleep(0.05)
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        c.sendall(chunk); sent += len(chunk)
    c.shutdown(socket.SHUT_WR); got = int(c.recv(64)); dt = time.perf_counter() - t0
    print(json.dumps({"bytes": got, "seconds": dt}))
""")

HTTP = textwrap.dedent("""
    import http.client, sys, time, json
    out = []
    for i in range(int(sys.argv[1])):
        t0 = time.perf_counter()
        c = http.client.HTTPConnection("10.77.0.11", 8080, timeout=10)
        c.request("POST", "/orders", body='{"order": %d, "qty": 2}' % i, headers={"content-type": "application/json"})
        r = c.getresponse(); r.read(); c.close()
        assert r.status == 200, r.status
        out.append(time.perf_counter() - t0)
    print(json.dumps(out))
""")


def cli(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockade", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=kw.pop("timeout", 300),
        **kw,
    )


def in_pod(pod: str, code: str, *args: str) -> str:
    out = subprocess.run(
        ["ip", "netns", "exec", PREFIX + pod, sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return out.stdout


def measure(kind: str, requests: int, keepalive: int, nbytes: int) -> dict[str, list[float]]:
    """One block of one kind: bulk throughput, new-connection or keep-alive latencies."""
    if kind == "bulk":
        sink = subprocess.Popen(
            ["ip", "netns", "exec", PREFIX + "orders", sys.executable, "-c", SINK, "1"]
        )
        time.sleep(0.5)
        try:
            r = json.loads(in_pod("payments", BULK, str(nbytes)))
        finally:
            sink.wait(timeout=60)
        return {"mbit": [r["bytes"] * 8 / r["seconds"] / 1e6]}
    if kind == "new":
        return {"new": json.loads(in_pod("payments", HTTP, str(requests)))}
    server = subprocess.Popen(
        ["ip", "netns", "exec", PREFIX + "orders", sys.executable, "-c", KEEPALIVE_SERVER]
    )
    try:
        keep = json.loads(in_pod("payments", KEEPALIVE, str(keepalive)))
    except BaseException:
        server.kill()
        raise
    finally:
        server.wait(timeout=60)
    return {"keep": keep[HEAD:], "head": keep[:HEAD]}


HEAD = 100  # keep-alive requests inside the first 64 KiB (about 600 bytes on the wire each)


def pairs_given(node: str, timeout: float = 0.0) -> bool:
    """Whether the enforcer's pairs are in the kernel's sets (nft.OWN_SETS: heads between them
    pass in the kernel), waiting up to ``timeout``: rules applied again by the benchmark are a new
    table, which the enforcer gives its pairs again within 2 s (a steady state to measure)."""
    from stockade.firewall.enforce import nft
    from stockade.network.netns import in_ns, run

    deadline = time.monotonic() + timeout
    while True:
        out = run(in_ns(node, "nft", "list", "table", "inet", nft.TABLE), check=False).stdout
        if any("elements" in part.partition("}")[0] for part in out.split("set own_")[1:]):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _enforcer(tmp: Path, state: Path, db: str) -> subprocess.Popen:
    log = (tmp / "enforcer.log").open("w")
    enf = subprocess.Popen(
        [sys.executable, "-m", "stockade", "enforcer", "--db", db, "--lab-state", str(state)],
        env=ENV,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    for _ in range(100):
        if "enforcing" in (tmp / "enforcer.log").read_text():
            return enf
        time.sleep(0.1)
    enf.kill()
    raise SystemExit("the enforcer did not start:\n" + (tmp / "enforcer.log").read_text())


def _ms(values: list[float], q: float = 0.5) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))] * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30, help="keep-alive rounds (off and Protect)")
    ap.add_argument("--keepalive", type=int, default=1500, help="requests per keep-alive block")
    ap.add_argument("--new-rounds", type=int, default=15, help="new-connection rounds")
    ap.add_argument("--requests", type=int, default=150, help="new connections per block")
    ap.add_argument("--bulk-rounds", type=int, default=10, help="bulk rounds (0: none)")
    ap.add_argument("--bytes", type=int, default=1_000_000_000, help="bulk bytes per block")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from stockade.firewall.enforce import nft
    from stockade.firewall.policy.endpoints import Directory
    from stockade.firewall.policy.files import load_files
    from stockade.lab.inventory import load

    # per key: one list of samples per block, for off and for Protect
    off: dict[str, list[list[float]]] = {"mbit": [], "new": [], "keep": [], "head": []}
    on: dict[str, list[list[float]]] = {k: [] for k in off}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        state, db = tmp / "lab.json", f"sqlite:///{tmp}/db.sqlite"
        (tmp / "policy.yaml").write_text(POLICY)
        up = cli("lab", "up", "--prefix", PREFIX, "--state", str(state), "--no-databases")
        if up.returncode != 0:
            raise SystemExit(up.stderr)
        enf = None
        try:
            cli("policy", "apply", str(tmp / "policy.yaml"), "--db", db)
            node = load(state).node_netns
            # The same rules the enforcer applies: removing them takes it out of the path (it
            # then sits idle), applying them puts it back, without restarting it each time.
            ruleset = nft.compile_ruleset(
                load_files([tmp / "policy.yaml"]),
                Directory.from_identities(load(state).directory()).endpoints,
                {},
            )
            enf = _enforcer(tmp, state, db)
            nft.apply(node, ruleset, nft.Settings())  # a first connection: the enforcer's pairs
            measure("new", 20, 0, 0)
            given = pairs_given(node, 5.0)
            # Each kind in its own blocks, so that one kind's after-effects do not land on
            # another; rounds alternate (off, on), (on, off), ... so that drift hits both sides.
            plan = (("keep", args.rounds), ("new", args.new_rounds), ("bulk", args.bulk_rounds))
            for kind, rounds in plan:
                for i in range(rounds):
                    for protect in (False, True) if i % 2 == 0 else (True, False):
                        if protect:
                            nft.apply(node, ruleset, nft.Settings())
                            if given:  # the pairs in the new table, as in a steady state
                                pairs_given(node, 5.0)
                        else:
                            nft.remove(node)
                        got = measure(kind, args.requests, args.keepalive, args.bytes)
                        for k, v in got.items():
                            (on if protect else off)[k].append(v)
        finally:
            if enf is not None:
                enf.send_signal(signal.SIGTERM)
                enf.wait(timeout=30)
            cli("lab", "down", "--prefix", PREFIX, "--state", str(state))
        stats = (tmp / "enforcer.log").read_text().partition("rules removed.")[2].split()

    def pooled(side: dict[str, list[list[float]]], key: str) -> list[float]:
        return [x for block in side[key] for x in block]

    def per_round(key: str) -> str:
        """The median and middle half over rounds of each round's Protect/off ratio."""
        ratios = sorted(
            statistics.median(y) / statistics.median(x)
            for x, y in zip(off[key], on[key], strict=True)
        )
        q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        if key == "mbit":
            return (
                f"per round: median {statistics.median(ratios):.2f} (middle half {q[0]:.2f} to "
                f"{q[2]:.2f}, {len(ratios)} rounds)"
            )
        return (
            f"per round: median {(statistics.median(ratios) - 1) * 100:+.0f}% (middle half "
            f"{(q[0] - 1) * 100:+.0f}% to {(q[2] - 1) * 100:+.0f}%, {len(ratios)} rounds)"
        )

    def change(key: str) -> str:
        """Pooled medians, and the per-round ratios."""
        a, b = _ms(pooled(off, key)), _ms(pooled(on, key))
        return (
            f"median off {a:.3f} ms, protect {b:.3f} ms ({(b / a - 1) * 100:+.0f}%); "
            + per_round(key)
        )

    print("enforcer off (rules removed) and in Protect mode with DLP on the first 64 KiB")
    if off["mbit"]:
        a, b = statistics.median(pooled(off, "mbit")), statistics.median(pooled(on, "mbit"))
        print(
            f"bulk TCP, {args.bytes / 1e6:.0f} MB per block: median off {a:.0f} Mbit/s, "
            f"protect {b:.0f} Mbit/s, ratio {b / a:.2f} (target >= 0.90); {per_round('mbit')}"
        )
    if off["keep"]:
        print(f"HTTP POST on an established connection (target: median <= +10%): {change('keep')}")
        print(f"  its first {HEAD} requests (inspected): {change('head')}")
        print(f"  p99: {_ms(pooled(off, 'keep'), 0.99):.3f} -> {_ms(pooled(on, 'keep'), 0.99):.3f} ms"
              f" ({len(pooled(off, 'keep'))} requests a side)")  # fmt: skip
    if off["new"]:
        print(f"HTTP POST, a new connection each (the worst case): {change('new')}")
        print(f"  p99: {_ms(pooled(off, 'new'), 0.99):.3f} -> {_ms(pooled(on, 'new'), 0.99):.3f} ms"
              f" ({len(pooled(off, 'new'))} requests a side)")  # fmt: skip
    print(f"enforcer: {' '.join(stats) or '?'}")


if __name__ == "__main__":
    main()
