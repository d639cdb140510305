"""Warm re-scan of a cached image through the CLI, next to the cold scan of the same image.

    python benchmarks/rescan.py [--runs 7] [--ref REF]

Cold: a fresh database (empty layer cache), so every layer is read and cataloged. Warm: the same
command again on the same database (layers come from the layer cache). Both are whole
`stockade scan image ... --format json` processes, timed by wall clock, median of --runs.
Target: a warm re-scan under 0.5 s.
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


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if out.returncode not in (0, 1):
        sys.exit(f"scan failed ({out.returncode}): {out.stderr.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--ref", help="image reference (default: the sample image, OCI layout)")
    opts = parser.parse_args()

    from stockade.scanning.samples import build_sample
    from tests.scanning.scan_cli_support import make_db

    ref = opts.ref
    if ref is None:
        sample = build_sample()
        ref = f"oci:{sample.oci_dir}:{sample.tag}"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    env.pop("STOCKADE_DB", None)
    with tempfile.TemporaryDirectory(prefix="stockade-bench-") as tmp:
        cold, warm = [], []
        for i in range(opts.runs):
            db = make_db(Path(tmp) / f"cold{i}.db")
            cmd = [sys.executable, "-m", "stockade", "scan", "image", ref, "--db", db,
                   "--format", "json", "-o", os.devnull]  # fmt: skip
            cold.append(timed(cmd, env))
            if i == 0:
                timed(cmd, env)  # first warm run fills any OS cache the cold run did not
            warm.append(timed(cmd, env))
        version = [sys.executable, "-m", "stockade", "--version"]
        startup = statistics.median(timed(version, env) for _ in range(opts.runs))
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"image: {ref}")
    print(f"cold scan (empty layer cache): {c:.3f} s   median of {opts.runs}")
    print(f"warm re-scan (layer cache):    {w:.3f} s   median of {opts.runs}   target < 0.500 s "
          f"{'OK' if w < 0.5 else 'MISSED'}")
    print(f"ratio cold/warm: {c / w:.1f}x   (CLI start-up alone, `stockade --version`: {startup:.3f} s)")


if __name__ == "__main__":
    main()
