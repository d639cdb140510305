"""Container firewall overhead: HTTP request latency and bulk TCP throughput between two lab pods,
with the enforcer off and in Protect mode (DLP on the first 64 KiB of every connection), measured
in the same run. Targets (issue 6): throughput at least 0.9 of unenforced, median latency +10% at most.

    python benchmarks/firewall.py [--requests 300] [--bytes 400000000] [--rounds 3]

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
    import http.server, sys
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            body = b'{"ok": true}'
            self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a): pass
    srv = http.server.HTTPServer(("10.77.0.11", 8088), H); srv.timeout = 60
    srv.handle_request(); srv.handle_request()  # the readiness probe, then the client
""")

KEEPALIVE = textwrap.dedent("""
    import http.client, socket, sys, time, json
    for _ in range(100):  # the server may still be starting
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


def measure(requests: int, nbytes: int, rounds: int) -> dict[str, float]:
    sink = subprocess.Popen(
        ["ip", "netns", "exec", PREFIX + "orders", sys.executable, "-c", SINK, str(rounds)]
    )
    time.sleep(0.5)
    try:
        rates = []
        for _ in range(rounds):
            r = json.loads(in_pod("payments", BULK, str(nbytes)))
            rates.append(r["bytes"] * 8 / r["seconds"] / 1e6)
        lat = json.loads(in_pod("payments", HTTP, str(requests)))
        server = subprocess.Popen(
            ["ip", "netns", "exec", PREFIX + "orders", sys.executable, "-c", KEEPALIVE_SERVER]
        )
        time.sleep(0.5)
        try:
            keep = json.loads(in_pod("payments", KEEPALIVE, str(requests * 10)))
        finally:
            server.wait(timeout=60)
    finally:
        sink.wait(timeout=60)
    return {
        "mbit": statistics.median(rates),
        "p50_ms": statistics.median(lat) * 1e3,
        "p99_ms": sorted(lat)[int(0.99 * (len(lat) - 1))] * 1e3,
        "keep_p50_ms": statistics.median(keep) * 1e3,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--bytes", type=int, default=400_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        state, db = tmp / "lab.json", f"sqlite:///{tmp}/db.sqlite"
        (tmp / "policy.yaml").write_text(POLICY)
        up = cli("lab", "up", "--prefix", PREFIX, "--state", str(state), "--no-databases")
        if up.returncode != 0:
            raise SystemExit(up.stderr)
        offs: list[dict[str, float]] = []
        ons: list[dict[str, float]] = []
        try:
            cli("policy", "apply", str(tmp / "policy.yaml"), "--db", db)
            # Alternate off and on so that drift in the machine's load hits both sides alike.
            for _ in range(args.rounds):
                offs.append(measure(args.requests, args.bytes, 1))
                log = (tmp / "enforcer.log").open("w")
                enf = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "stockade",
                        "enforcer",
                        "--db",
                        db,
                        "--lab-state",
                        str(state),
                        "--duration",
                        "600",
                    ],
                    env=ENV,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                for _ in range(100):
                    if "enforcing" in (tmp / "enforcer.log").read_text():
                        break
                    time.sleep(0.1)
                try:
                    ons.append(measure(args.requests, args.bytes, 1))
                finally:
                    enf.send_signal(signal.SIGTERM)
                    enf.wait(timeout=30)
                    log.close()
        finally:
            cli("lab", "down", "--prefix", PREFIX, "--state", str(state))
    off = {k: statistics.median(m[k] for m in offs) for k in offs[0]}
    on = {k: statistics.median(m[k] for m in ons) for k in ons[0]}
    print(f"medians of {args.rounds} alternating rounds (enforcer off, then Protect with DLP)")
    print(
        f"bulk TCP, {args.bytes / 1e6:.0f} MB: off {off['mbit']:.0f} Mbit/s, "
        f"protect {on['mbit']:.0f} Mbit/s, ratio {on['mbit'] / off['mbit']:.2f} (target >= 0.90)"
    )
    print(
        f"HTTP POST, new connection each, {args.requests} requests: median off {off['p50_ms']:.2f} ms, "
        f"protect {on['p50_ms']:.2f} ms ({(on['p50_ms'] / off['p50_ms'] - 1) * 100:+.0f}%, target <= +10%); "
        f"p99 off {off['p99_ms']:.2f} ms, protect {on['p99_ms']:.2f} ms"
    )
    print(
        f"HTTP POST over one keep-alive connection, {args.requests * 10} requests: median off "
        f"{off['keep_p50_ms']:.3f} ms, protect {on['keep_p50_ms']:.3f} ms "
        f"({(on['keep_p50_ms'] / off['keep_p50_ms'] - 1) * 100:+.0f}%; the first 64 KiB are inspected, then the kernel)"
    )


if __name__ == "__main__":
    main()
