"""Warm re-scan of a cached image through the CLI, next to the cold scan of the same image.

    python benchmarks/rescan.py [--runs 7] [--ref REF] [--baseline-src DIR]

With --baseline-src (another checkout's top folder, e.g. ``git archive main | tar -x -C DIR``), the
warm re-scan is also run from that tree, interleaved with this one's, and the ratio this/baseline
is printed (medians, with the spread over the runs). Each tree scans its own database, made by
that tree's code (``make_db`` of its tests) and warmed by its own cold scan: the two schemas may
differ (a tree cannot open a database migrated past its newest revision).

Cold: a fresh database (empty layer cache), so every layer is read and cataloged. Warm: the same
command again on the same database (layers come from the layer cache). Both are whole
`stockade scan image ... --format json` processes, timed by wall clock, median of --runs.
Target (issue 19): a warm re-scan under 0.15 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode not in (0, 1):
        sys.exit(f"scan failed ({out.returncode}): {out.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def make_db_with(src_root: Path, path: Path, env: dict[str, str]) -> str:
    """A database made by ``src_root``'s own code (its migrations, its advisory import)."""
    code = (
        "import sys; from pathlib import Path; "
        "from tests.scanning.scan_cli_support import make_db; print(make_db(Path(sys.argv[1])))"
    )
    env = dict(env, PYTHONPATH=f"{src_root / 'src'}{os.pathsep}{src_root}")
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        env=env, cwd=src_root, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if out.returncode != 0:
        sys.exit(f"cannot make the baseline database: {out.stderr.strip()}")
    return out.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--ref", help="image reference (default: the sample image, OCI layout)")
    parser.add_argument(
        "--baseline-src", type=Path, help="a checkout to compare the warm re-scan with"
    )
    opts = parser.parse_args()

    from stockade.lab.samples import build_sample
    from tests.scanning.scan_cli_support import make_db

    ref = opts.ref
    if ref is None:
        sample = build_sample()
        ref = f"oci:{sample.oci_dir}:{sample.tag}"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    env.pop("STOCKADE_DB", None)
    with tempfile.TemporaryDirectory(prefix="stockade-bench-") as tmp:
        cold, warm, base, loads = [], [], [], []
        base_env = None
        if opts.baseline_src is not None:
            base_env = dict(env, PYTHONPATH=str(opts.baseline_src.resolve() / "src"))
        for i in range(opts.runs):
            db = make_db(Path(tmp) / f"cold{i}.db")
            cmd = [sys.executable, "-m", "stockade", "scan", "image", ref, "--db", db,
                   "--format", "json", "-o", os.devnull]  # fmt: skip
            cold.append(timed(cmd, env))
            if i == 0:
                timed(cmd, env)  # first warm run fills any OS cache the cold run did not
            warm.append(timed(cmd, env))
            if base_env is not None and opts.baseline_src is not None:
                base_db = make_db_with(
                    opts.baseline_src.resolve(), Path(tmp) / f"base{i}.db", base_env
                )
                base_cmd = [*cmd[:7], base_db, *cmd[8:]]
                timed(base_cmd, base_env)  # its cold scan
                if i == 0:
                    timed(base_cmd, base_env)
                base.append(timed(base_cmd, base_env))
            loads.append(os.getloadavg()[0])
        version = [sys.executable, "-m", "stockade", "--version"]
        startup = [timed(version, env) for _ in range(opts.runs)]

    def med(samples: list[tuple[float, float]], i: int) -> float:
        return statistics.median(s[i] for s in samples)

    load = os.getloadavg()[0]
    print(
        f"image: {ref}   ({opts.runs} runs each, medians; load average {load:.1f} on "
        f"{os.cpu_count()} CPUs: wall clock suffers from other work, CPU time much less)"
    )
    print(f"{'':32}{'wall s':>8}{'cpu s':>8}")
    for name, samples in (
        ("cold scan (empty layer cache)", cold),
        ("warm re-scan (cached image)", warm),
        ("CLI start-up (--version)", startup),
    ):
        print(f"{name:32}{med(samples, 0):8.3f}{med(samples, 1):8.3f}")
    if base:
        print(
            f"{'baseline warm re-scan':32}{med(base, 0):8.3f}{med(base, 1):8.3f}   ({opts.baseline_src})"
        )
        for name, samples in (("this tree", warm), ("baseline", base)):
            walls, cpus = [s[0] for s in samples], [s[1] for s in samples]
            print(
                f"  {name}: wall {min(walls):.3f}-{max(walls):.3f} s, cpu {min(cpus):.3f}-{max(cpus):.3f} s"
            )
        print(
            f"ratio this/baseline (warm re-scan): {med(warm, 0) / med(base, 0):.2f} (wall), "
            f"{med(warm, 1) / med(base, 1):.2f} (cpu); load average {min(loads):.1f}-{max(loads):.1f}"
        )
    w_wall, w_cpu = med(warm, 0), med(warm, 1)
    print(f"warm/cold: {w_wall / med(cold, 0):.2f} (wall), {w_cpu / med(cold, 1):.2f} (cpu)")
    print(
        f"target: warm re-scan < 0.150 s: wall {'OK' if w_wall < 0.15 else 'MISSED'}, "
        f"cpu {'OK' if w_cpu < 0.15 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
