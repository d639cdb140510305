"""Workload checks: throughput of ``check_objects`` over a large multi-document manifest, next to
the time it takes only to parse that YAML (the baseline, measured in the same run), and the
per-object latency of ``check_object`` (what the admission webhook pays per review).

    python benchmarks/workloads.py [--objects 10000] [--profile restricted]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "compliance" / "workloads" / "golden"
sys.path.insert(0, str(ROOT / "src"))

from stockade.compliance.workloads import check_object, check_objects  # noqa: E402
from stockade.compliance.workloads.loader import load_text  # noqa: E402


def corpus(n: int) -> str:
    """``n`` documents cycled from the golden manifests, each renamed so none repeats."""
    docs = []
    for f in sorted(GOLDEN.glob("*/manifest.yaml")):
        docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    out = []
    for i in range(n):
        d = dict(docs[i % len(docs)])
        d["metadata"] = dict(d.get("metadata") or {}, name=f"obj-{i}")
        out.append(yaml.safe_dump(d, sort_keys=False))
    return "---\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=10_000)
    ap.add_argument("--profile", default="restricted")
    args = ap.parse_args()
    text = corpus(args.objects)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    t0 = time.perf_counter()
    parsed = [d for d in yaml.load_all(text, Loader=loader) if d]
    parse_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    loaded = load_text(text, "bench.yaml")
    load_s = time.perf_counter() - t0
    assert len(loaded.manifests) == len(parsed) and not loaded.errors

    t0 = time.perf_counter()
    findings = check_objects(loaded.manifests, profile=args.profile)
    n_findings = len(findings)
    check_s = time.perf_counter() - t0

    del findings  # keep the garbage collector from walking 100k findings during timing
    gc.collect()
    lat = []
    for m in loaded.manifests[:2000]:
        t = time.perf_counter_ns()
        check_object(m.obj, profile=args.profile)
        lat.append((time.perf_counter_ns() - t) / 1e3)
    lat.sort()

    n = len(parsed)
    print(f"objects: {n}, findings: {n_findings}, profile: {args.profile}")
    print(f"baseline  yaml parse only       {parse_s:8.3f} s  {n / parse_s:10.0f} objects/s")
    print(
        f"loader    split + parse         {load_s:8.3f} s  ratio to baseline {load_s / parse_s:5.2f}"
    )
    print(
        f"checks    check_objects         {check_s:8.3f} s  {n / check_s:10.0f} objects/s  "
        f"ratio to baseline {check_s / parse_s:5.2f}"
    )
    print(
        f"check_object latency: p50 {statistics.median(lat):.0f} us, "
        f"p99 {lat[int(len(lat) * 0.99) - 1]:.0f} us, max {lat[-1]:.0f} us"
    )


if __name__ == "__main__":
    main()
