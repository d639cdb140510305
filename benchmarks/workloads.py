"""Workload checks: throughput of ``check_objects`` over a large multi-document manifest, next to
the time it takes only to parse that YAML (the baseline, measured in the same run), and the
per-object latency of ``check_object`` (what the admission webhook pays per review).

With ``--peer``, the whole command (``stockade bench workloads DIR -f json --no-store``) is timed
against Checkov (``checkov -d DIR --framework kubernetes``, a peer that checks the same manifests)
on a folder of files, wall clock and CPU time of the child processes.

    python benchmarks/workloads.py [--objects 10000] [--profile restricted]
                                   [--peer [--checkov PATH] [--peer-objects 2000]]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
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
    ap.add_argument("--peer", action="store_true", help="also time the CLI against Checkov")
    ap.add_argument("--checkov", default=shutil.which("checkov") or "/opt/checkov-venv/bin/checkov")
    ap.add_argument("--peer-objects", type=int, default=2000)
    args = ap.parse_args()
    if args.peer:
        peer(args.checkov, args.peer_objects)
        return
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


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and exit code of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    rc = subprocess.run(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    ).returncode
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, rc


def peer(checkov: str, n: int) -> None:
    """Both tools on the same folder: ``n`` objects, 20 to a file."""
    if not Path(checkov).exists():
        sys.exit(f"checkov not found at {checkov} (pip install checkov, or pass --checkov PATH)")
    docs = corpus(n).split("---\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), BC_SKIP_MAPPING="TRUE")
    with tempfile.TemporaryDirectory(prefix="sk-bench-") as tmp:
        folder = Path(tmp) / "manifests"
        folder.mkdir()
        for i in range(0, len(docs), 20):
            (folder / f"m{i:06d}.yaml").write_text("---\n".join(docs[i : i + 20]))
        ours = [
            sys.executable,
            "-m",
            "stockade",
            "bench",
            "workloads",
            str(folder),
            "-f",
            "json",
            "--no-store",
        ]
        theirs = [
            checkov,
            "-d",
            str(folder),
            "--framework",
            "kubernetes",
            "-o",
            "json",
            "--quiet",
            "--skip-download",
        ]
        s_wall, s_cpu, s_rc = _timed(ours, env)
        c_wall, c_cpu, c_rc = _timed(theirs, env)
    print(f"objects: {len(docs)} in {len(range(0, len(docs), 20))} files")
    print(f"stockade bench workloads  wall {s_wall:7.2f} s  cpu {s_cpu:7.2f} s  (exit {s_rc})")
    print(f"checkov (peer)            wall {c_wall:7.2f} s  cpu {c_cpu:7.2f} s  (exit {c_rc})")
    print(f"ratio checkov/stockade    wall {c_wall / s_wall:7.2f}    cpu {c_cpu / s_cpu:7.2f}")


if __name__ == "__main__":
    main()
