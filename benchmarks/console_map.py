"""The console's network map in headless Chromium over the synthetic store of
``benchmarks/graph.py`` (2,000 workloads, 20,000 edges): first render of the map, and a live
event (SSE) applied to a drawn edge, against a baseline measured in the same run: the same browser
fetching and parsing the graph JSON alone (what any map must do before drawing).

    python benchmarks/console_map.py [--rounds 5] [--cache-dir DIR]

Each round opens a fresh browser context (no HTTP cache), logs in, and times from navigation to
the map having drawn (``body[data-map-edges]``); the live measure posts a ``dlp.sensitive_in_clear``
event for a drawn edge through the agents' API and times until the page applied it
(``body[data-live-applied]`` = the event's id). Medians and spread of the rounds. Targets (issue
15): first render under 2 s, an SSE update applied under 200 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import httpx  # noqa: E402
from graph import build_store  # noqa: E402  (the synthetic store, built once and cached)
from ingest import start_controller  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from stockade.api.auth import Principal, add_user, create_token  # noqa: E402
from stockade.model import Event, ResourceRef, Severity  # noqa: E402
from stockade.store import open_store  # noqa: E402

PASSWORD = "benchmark password 1"


def _spread(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):7.1f} ms (min {min(values):.1f}, max {max(values):.1f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--cache-dir",
        default=str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stockade"),
    )
    opts = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    cache = Path(opts.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    source = cache / "graph-v2-2000-20000-5-24.db"  # as benchmarks/graph.py names it
    if not source.exists() or source.stat().st_mtime < time.time() - 3600:
        source.unlink(missing_ok=True)
        gopts = argparse.Namespace(workloads=2000, edges=20_000, per_edge=5, hours=24.0)
        print(f"building the synthetic store ({build_store(source, gopts):.0f} s)")
    with tempfile.TemporaryDirectory(prefix="stockade-bench-map-") as tmp:
        work = Path(tmp)
        db = work / "stockade.db"
        shutil.copyfile(source, db)
        url = f"sqlite:///{db}"
        store = open_store(url)
        admin = Principal(name="bench", role="admin", via="cli")
        add_user(store, name="bench", role="admin", password=PASSWORD, actor=admin)
        _, agent = create_token(store, name="bench-agent", role="agent", actor=admin)
        store.close()
        with (work / "controller.log").open("wb") as log:
            proc, base = start_controller(url, work, log)
            try:
                run(base, work, agent, opts.rounds)
            finally:
                proc.terminate()
                try:
                    proc.wait(30)
                except Exception:
                    proc.kill()
                    proc.wait()


def run(base: str, work: Path, agent_token: str, rounds: int) -> None:
    render: list[float] = []
    fetch: list[float] = []
    live: list[float] = []
    agent = httpx.Client(
        base_url=base,
        verify=str(work / "tls" / "ca.crt"),
        headers={"Authorization": f"Bearer {agent_token}"},
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for r in range(rounds):
            context = browser.new_context(
                ignore_https_errors=True, viewport={"width": 1280, "height": 800}
            )
            page = context.new_page()
            page.on("pageerror", lambda e: print(f"  page error: {e}"))
            page.goto(f"{base}/ui/login")
            page.fill("#name", "bench")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/ui/overview")
            # baseline: the graph's JSON fetched and parsed by the same page
            took = page.evaluate(
                """async () => { const MAP_GRAPH = '/api/v1/graph?level=workload&since=24h&split=encryption&allow_stale=1';
                const t = performance.now();
                const g = await (await fetch(MAP_GRAPH)).json();
                return [performance.now() - t, g.nodes.length, g.edges.length]; }"""
            )
            fetch.append(took[0])
            t0 = time.perf_counter()
            page.goto(f"{base}/ui/map")
            page.wait_for_selector("body[data-map-edges]", state="attached", timeout=60000)
            render.append((time.perf_counter() - t0) * 1000)
            drawn = page.evaluate(
                "[document.body.dataset.mapNodes, document.body.dataset.mapEdges]"
            )
            parts = page.evaluate("document.body.dataset.mapTimings")
            page.wait_for_selector("body[data-live='live']", state="attached", timeout=30000)
            # a live event on an edge the map holds: the first workload-to-workload edge
            src, dst = page.evaluate(
                """async () => { const g = await (await fetch('/api/v1/graph?level=workload')).json();
                const e = g.edges.find((x) => x.source.startsWith('wl:') && x.target.startsWith('wl:'));
                return [e.source.slice(3), e.target.slice(3)]; }"""
            )
            (sns, sname), (dns, dname) = src.split("/", 1), dst.split("/", 1)
            event = Event(
                kind="dlp.sensitive_in_clear",
                severity=Severity.HIGH,
                source="bench",
                message="benchmark: a card in clear",
                resource=ResourceRef(kind="pod", name=sname, namespace=sns),
                peer=ResourceRef(kind="pod", name=dname, namespace=dns),
                id=uuid.uuid4().hex,
            )
            batch = {
                "agent": {"name": "bench", "node": "n1", "version": "0", "capabilities": ["dlp"]},
                "events": [event.to_dict()],
            }
            t0 = time.perf_counter()
            agent.post("/api/v1/agents/events", json=batch).raise_for_status()
            page.wait_for_selector(
                f"body[data-live-applied='{event.id}']", state="attached", timeout=30000
            )
            live.append((time.perf_counter() - t0) * 1000)
            print(
                f"  round {r + 1}: map drawn {drawn[0]} nodes / {drawn[1]} edges in {render[-1]:.0f} ms "
                f"(graph JSON {took[1]} nodes, {took[2]} edges fetched in {took[0]:.0f} ms); "
                f"live event applied in {live[-1]:.0f} ms; in the page (ms): {parts}"
            )
            context.close()
        browser.close()
    print(f"first render of the map      {_spread(render)}   (target < 2000 ms)")
    print(f"baseline: graph JSON fetched {_spread(fetch)}")
    print(
        f"render / baseline ratio      {statistics.median(render) / statistics.median(fetch):.2f}"
    )
    print(f"SSE event applied to an edge {_spread(live)}   (target < 200 ms; includes the POST)")


if __name__ == "__main__":
    main()
