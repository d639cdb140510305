"""Admission webhook latency: p50/p99 of reviews with cached scan results under 100 concurrent
requests over HTTPS keep-alive connections, next to the same server with an empty policy (the
baseline: TLS, HTTP and JSON only), measured in the same run. Also the decision compute time alone.

    python benchmarks/admission.py [--requests 5000] [--concurrency 100]

Target: p99 under 10 ms (compute) for the full example policy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "admission"
sys.path.insert(0, str(ROOT / "src"))


def reviews() -> list[dict]:
    docs = list(yaml.safe_load_all((EXAMPLES / "manifests" / "workloads.yaml").read_text()))
    out = []
    for d in docs:
        out.append(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": "",
                    "operation": "CREATE",
                    "namespace": d["metadata"]["namespace"],
                    "name": d["metadata"]["name"],
                    "userInfo": {"username": "bench"},
                    "object": d,
                },
            }
        )
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(tmp: Path, policy: Path, *extra: str) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
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
            str(policy),
            "--vulns",
            str(EXAMPLES / "vulns.yaml"),
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
            if (
                ca.exists()
                and httpx.get(
                    url + "/healthz", verify=ssl.create_default_context(cafile=str(ca))
                ).status_code
                == 200
            ):
                return proc, url, ca
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


async def load(url: str, ca: Path, total: int, concurrency: int) -> list[float]:
    bodies = reviews()
    ctx = ssl.create_default_context(cafile=str(ca))
    latencies: list[float] = []
    server_ms: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, verify=ctx, limits=limits, timeout=30) as client:
        counter = iter(range(total))

        async def worker() -> None:
            for i in counter:
                review = bodies[i % len(bodies)]
                review = {**review, "request": {**review["request"], "uid": uuid.uuid4().hex}}
                payload = json.dumps(review).encode()
                t0 = time.perf_counter()
                r = await client.post(
                    "/validate", content=payload, headers={"content-type": "application/json"}
                )
                latencies.append(time.perf_counter() - t0)
                assert r.status_code == 200
                server_ms.append(float(r.headers["server-timing"].split("dur=")[1]) / 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))  # warm connections included
    return latencies[concurrency:], server_ms[concurrency:]  # warm-up (TLS handshakes) excluded


WRK_SCRIPT = """
local bodies = {}
for line in io.lines(os.getenv("REVIEWS")) do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, "/validate", nil, bodies[i])
end
"""


def wrk_load(url: str, tmp: Path, concurrency: int, seconds: int) -> dict[str, float] | None:
    """p50/p99 from wrk (a C load generator: the client costs little next to the server)."""
    import shutil

    if shutil.which("wrk") is None:
        return None
    lines = [
        json.dumps({**r, "request": {**r["request"], "uid": uuid.uuid4().hex}})
        for r in reviews() * 50
    ]
    (tmp / "reviews.jsonl").write_text("\n".join(lines) + "\n")
    (tmp / "post.lua").write_text(WRK_SCRIPT)
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{concurrency}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(tmp / "post.lua"),
            url + "/validate",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        env=dict(os.environ, REVIEWS=str(tmp / "reviews.jsonl")),
    )
    got: dict[str, float] = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "99%"):
            value = parts[1]
            scale = 1e-3 if value.endswith("us") else 1.0 if value.endswith("ms") else 1e3
            got[parts[0]] = float(value.rstrip("usm")) * scale
        elif line.startswith("Requests/sec:"):
            got["rps"] = float(line.split()[1])
    return got


def compute_only(policy_path: Path, n: int) -> list[float]:
    from stockade.admission.policy import load_policy
    from stockade.admission.review import answer
    from stockade.admission.vulns import CachedVulnSource, FileVulnSource

    policy = load_policy(policy_path)
    source = CachedVulnSource(FileVulnSource(EXAMPLES / "vulns.yaml"))
    bodies = reviews()
    out = []
    for i in range(n):
        review = bodies[i % len(bodies)]
        review = {**review, "request": {**review["request"], "uid": str(i)}}
        t0 = time.perf_counter()
        answer(review, policy, source)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        empty = tmp / "empty.yaml"
        empty.write_text("spec:\n  mode: protect\n  rules: []\n")
        results = {}
        for name, policy in (
            ("baseline (empty policy)", empty),
            ("example policy (14 rules)", EXAMPLES / "policy.yaml"),
        ):
            sub = tmp / name.split()[0]
            sub.mkdir()
            proc, url, ca = start(sub, policy)
            try:
                t0 = time.perf_counter()
                lat, srv = asyncio.run(load(url, ca, args.requests, args.concurrency))
                wall = time.perf_counter() - t0
                w = wrk_load(url, sub, args.concurrency, 10)
            finally:
                proc.terminate()
                proc.wait(timeout=15)
            results[name] = lat
            print(
                f"{name:28s} end-to-end over HTTPS, {args.concurrency} concurrent: "
                f"p50 {pct(lat, 0.5) * 1e3:6.2f} ms  p99 {pct(lat, 0.99) * 1e3:6.2f} ms  "
                f"{args.requests / wall:7.0f} reviews/s"
            )
            print(
                f"{'':28s} server-side decision time under that load: p50 {pct(srv, 0.5) * 1e3:.3f} ms  "
                f"p99 {pct(srv, 0.99) * 1e3:.3f} ms"
            )
            if w:
                print(
                    f"{'':28s} wrk (C client), {args.concurrency} connections, 10 s: p50 {w['50%']:.2f} ms  "
                    f"p99 {w['99%']:.2f} ms  {w['rps']:.0f} reviews/s"
                )
        comp = compute_only(EXAMPLES / "policy.yaml", 20000)
        base, full = results.values()
        print(
            f"decision compute only (example policy): p50 {pct(comp, 0.5) * 1e3:.3f} ms  "
            f"p99 {pct(comp, 0.99) * 1e3:.3f} ms  mean {statistics.mean(comp) * 1e3:.3f} ms (target p99 < 10 ms)"
        )
        print(
            f"ratio example/baseline: p50 {pct(full, 0.5) / pct(base, 0.5):.2f}x  p99 {pct(full, 0.99) / pct(base, 0.99):.2f}x"
        )


if __name__ == "__main__":
    main()
