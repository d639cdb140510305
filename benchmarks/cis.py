"""CIS Kubernetes Benchmark (all 97 node checks of sections 1-4) on a fixture kubeadm node
(control plane + etcd + worker, files, static pods, kubelet config, process list), next to a
baseline measured in the same run: the same audits done the kube-bench way, one shell command per
check (``/bin/sh -c 'stat ...'``, ``ps``, ``cat``).

    python benchmarks/cis.py [--runs 20]

Target: the full benchmark under 1 s (cold, including loading the benchmark data).
Needs root (the fixture node's owners are set with chown).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("benchmarks/cis.py: run as root (fixture owners are set with chown)", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    from stockade.compliance.cis import loader
    from stockade.compliance.cis.engine import run
    from stockade.compliance.cis.node import open_node
    from tests.compliance.cis.fixtures import GOLDEN, build, load_spec

    with tempfile.TemporaryDirectory(prefix="sk-cis-bench-") as tmp:
        node_dir = build(load_spec(GOLDEN / "k8s-kubelet-FAIL" / "node.yaml"), Path(tmp) / "node")
        t1 = time.perf_counter()
        bench = loader.builtin("kubernetes")
        first = run(bench, open_node(node_dir))
        cold = time.perf_counter() - t1
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            result = run(bench, open_node(node_dir))
            times.append(time.perf_counter() - start)
        assert result.counts() == first.counts()
        baseline = _shell_baseline(bench, node_dir)

    warm = statistics.median(times)
    print(f"fixture node built in {t1 - t0:.3f} s; {len(first.findings)} checks: {first.counts()}")
    print(
        f"stockade cold (load data + run):  {cold * 1000:8.1f} ms   target < 1000 ms "
        f"{'OK' if cold < 1 else 'MISSED'}"
    )
    print(
        f"stockade warm run, median of {args.runs}: {warm * 1000:8.1f} ms "
        f"(p95 {sorted(times)[int(len(times) * 0.95) - 1] * 1000:.1f} ms)"
    )
    print(f"baseline, one shell command per check: {baseline * 1000:8.1f} ms")
    print(f"ratio baseline / stockade warm: {baseline / warm:6.1f}x")
    return 0


def _shell_baseline(bench, node_dir: Path) -> float:  # type: ignore[no-untyped-def]
    """What a shell-out audit costs: one /bin/sh per check, as kube-bench runs its audits."""
    start = time.perf_counter()
    for check in bench.checks:
        audit = check.audit
        if audit is None:
            continue
        if audit.process:
            cmd = "ps -ef | grep kube | grep -v grep"
        elif audit.files or audit.tree:
            cmd = f"stat -c permissions=%a {node_dir}/etc/kubernetes/manifests/kube-apiserver.yaml"
        else:
            cmd = f"cat {node_dir}/etc/kubernetes/encryption-config.yaml"
        subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, check=False)
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
