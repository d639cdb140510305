"""Benchmark: match 10,000 packages against 200,000 advisory records on one core.

    python benchmarks/matching.py [--records 200000] [--packages 10000] [--db PATH]
        [--baseline-src DIR] [--rounds 5]

Builds a SQLite advisory store of synthetic records shaped like the real ones (Debian tracker
entries with fixed/open states, Alpine secfixes, OSV ECOSYSTEM/SEMVER ranges with several
introduced/fixed pairs and explicit version lists, aliases and CVSS vectors), then times:

- the matcher (span queries: the store picks the rows an installed version falls in), cold caches;
- a naive baseline in the same run: one query per package, every row and version re-parsed.

Prints both times, the ratio to the 2 s target and the speed-up over the baseline.

With --baseline-src (another checkout's top folder, e.g. ``git archive main | tar -x -C DIR``),
the matcher of that tree and of this one are also timed in fresh processes, alternately, --rounds
times each, on the same store and inventory (cold version caches each time); medians, spread
and the ratio this/baseline are printed with the load average.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# STOCKADE_BENCH_SRC: the tree whose matcher a --match-only child times (see --baseline-src).
sys.path.insert(
    0, os.environ.get("STOCKADE_BENCH_SRC") or str(Path(__file__).resolve().parents[1] / "src")
)

from sqlalchemy import select

from stockade.scanning.advisories.model import (
    Advisory,
    Affected,
    Cvss,
    EventKind,
    FixState,
    ImportBatch,
    VersionRange,
)
from stockade.scanning.advisories.store import _LOOKUP_COLUMNS, write_batches
from stockade.scanning.advisory_tables import adv_affected, adv_vulnerabilities
from stockade.scanning.interface import Distro, Inventory, Package
from stockade.scanning.match_eval import affected_by, parse_entry
from stockade.scanning.matcher import Matcher, target_for
from stockade.scanning.versions import SCHEMES, scheme_for
from stockade.store import open_store

TARGET_SECONDS = 2.0
# Share of records per ecosystem, roughly as in a Debian-based image's advisory set plus
# language ecosystems (the Debian tracker alone has ~50k CVE x package entries).
MIX = (
    ("debian:12", 0.40),
    ("pypi", 0.15),
    ("npm", 0.15),
    ("maven", 0.12),
    ("go", 0.10),
    ("alpine:3.19", 0.08),
)
PACKAGE_TYPE = {
    "debian:12": "deb",
    "alpine:3.19": "apk",
    "pypi": "python",
    "npm": "npm",
    "maven": "java-archive",
    "go": "go-module",
}
VECTORS = (
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N",
    "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N",
)


def version(eco: str, r: random.Random, major: int | None = None) -> str:
    a = major if major is not None else r.randint(0, 9)
    b, c = r.randint(0, 30), r.randint(0, 40)
    if eco == "debian:12":
        return f"{a}.{b}.{c}-{r.randint(1, 5)}" + (
            f"+deb12u{r.randint(1, 9)}" if r.random() < 0.5 else ""
        )
    if eco == "alpine:3.19":
        return f"{a}.{b}.{c}-r{r.randint(0, 9)}"
    if eco == "go":
        return f"v{a}.{b}.{c}"
    if eco == "maven":
        return f"{a}.{b}.{c}" + (".Final" if r.random() < 0.2 else "")
    return f"{a}.{b}.{c}"


def package_name(eco: str, i: int) -> str:
    if eco == "maven":
        return f"org.example{i % 97}:artifact-{i}"
    if eco == "go":
        return f"github.com/example{i % 89}/module-{i}"
    return f"pkg-{i}"


def build_records(
    n: int, n_packages: int, r: random.Random
) -> tuple[list[Advisory], list[tuple[str, str]]]:
    universe: list[tuple[str, str]] = []
    for eco, share in MIX:
        universe += [(eco, package_name(eco, i)) for i in range(int(n_packages * share))]
    out = []
    for i in range(n):
        eco, name = r.choice(universe)
        scheme = scheme_for(eco)
        assert scheme is not None
        cve = f"CVE-{2015 + i % 10}-{10000 + i}"
        if eco == "debian:12":
            if r.random() < 0.8:
                fixed = version(eco, r)
                aff = Affected(
                    ecosystem=eco,
                    package=name,
                    fix_state=FixState.FIXED,
                    fixed_version=fixed,
                    ranges=(
                        VersionRange(
                            type="ECOSYSTEM",
                            events=((EventKind.INTRODUCED, "0"), (EventKind.FIXED, fixed)),
                        ),
                    ),
                    severity=r.choice(("low", "medium", "high", "unimportant", None)),
                )
            else:
                aff = Affected(
                    ecosystem=eco,
                    package=name,
                    fix_state=r.choice((FixState.NOT_FIXED, FixState.WONT_FIX)),
                    ranges=(VersionRange(type="ECOSYSTEM", events=((EventKind.INTRODUCED, "0"),)),),
                    severity="low",
                )
            out.append(
                Advisory(id=cve, source="debian-tracker", summary="synthetic", affected=(aff,))
            )
            continue
        events: list[tuple[EventKind, str]] = []
        for _ in range(r.choice((1, 1, 2, 3))):
            lo = version(eco, r)
            hi = max(lo, version(eco, r), key=scheme.key)
            if scheme.key(lo) < scheme.key(hi):
                events += [(EventKind.INTRODUCED, lo), (EventKind.FIXED, hi)]
        if not events:
            events = [(EventKind.INTRODUCED, "0"), (EventKind.FIXED, version(eco, r))]
        versions = tuple(version(eco, r) for _ in range(r.randint(0, 8))) if eco == "pypi" else ()
        aff = Affected(
            ecosystem=eco,
            package=name,
            fix_state=FixState.FIXED,
            fixed_version=events[-1][1],
            ranges=(
                VersionRange(
                    type="SEMVER" if eco in ("npm", "go") else "ECOSYSTEM", events=tuple(events)
                ),
            ),
            versions=versions,
        )
        vec = r.choice(VECTORS)
        out.append(
            Advisory(
                id=f"GHSA-{i:04x}-synt-hetc",
                source="osv",
                aliases=(cve,),
                summary="synthetic",
                cvss=(Cvss(version="3.1", vector=vec, score=9.8),),
                affected=(aff,),
            )
        )
    return out, universe


def build_inventory(universe: list[tuple[str, str]], n: int, r: random.Random) -> Inventory:
    """A Debian 12 image: dpkg packages plus language packages; 80% have advisories."""
    universe = [u for u in universe if u[0] != "alpine:3.19"]
    ecos = [eco for eco, _ in MIX if eco != "alpine:3.19"]
    pkgs = []
    for i in range(n):
        if r.random() < 0.8:
            eco, name = r.choice(universe)
        else:
            eco, name = r.choice(ecos), f"unknown-{i}"
        ptype = PACKAGE_TYPE[eco]
        if ptype == "java-archive" and ":" not in name:
            name = f"org.unknown:{name}"
        pkgs.append(Package(type=ptype, name=name, version=version(eco, r)))
    return Inventory(
        source="benchmark", distro=Distro(id="debian", version_id="12"), packages=tuple(pkgs)
    )


def naive_match(store, inventory: Inventory) -> int:
    """One query per package, every row and version parsed again, no merging: the baseline."""
    join = adv_affected.join(
        adv_vulnerabilities, adv_affected.c.vuln_pk == adv_vulnerabilities.c.pk
    )
    hits = 0
    with store.connect() as conn:
        for pkg in inventory.packages:
            t = target_for(pkg, "debian:12")
            if isinstance(t, str):
                continue
            parse = scheme_for(t.ecosystem).parse  # no key cache
            q = (
                select(*_LOOKUP_COLUMNS)
                .select_from(join)
                .where(adv_affected.c.ecosystem == t.ecosystem, adv_affected.c.package == t.name)
            )
            for row in conn.execute(q):
                entry = parse_entry(tuple(row), parse)
                if affected_by(parse(t.version), t.version, entry):
                    hits += 1
    return hits


def match_only(db: Path) -> None:
    """The child of --baseline-src: time one cold Matcher.run on an existing store and the
    inventory pickled next to it."""
    import pickle

    inventory = pickle.loads(db.with_suffix(".inventory").read_bytes())
    store = open_store(f"sqlite:///{db}")
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    report = Matcher(store).run(inventory)
    t1, c1 = time.perf_counter(), time.process_time()
    print(f"MATCH {t1 - t0} {c1 - c0} {len(report.findings)}")


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd[1:3])} failed:\n{out.stderr[-2000:]}")
    return out


def compare(args: argparse.Namespace, db: Path) -> None:
    import statistics

    trees = {"this tree": Path(__file__).resolve().parents[1], "baseline": args.baseline_src}
    envs = {
        name: dict(os.environ, STOCKADE_BENCH_SRC=str(Path(tree).resolve() / "src"))
        for name, tree in trees.items()
    }
    # Each tree matches on a store written by its own code (a tree cannot open a store that has
    # a later tree's migrations); the same seed gives both the same records and inventory.
    dbs = {"this tree": db, "baseline": db.with_name("baseline.db")}
    sizes = ["--records", str(args.records), "--packages", str(args.packages)]
    build = [sys.executable, __file__, "--build-only", str(dbs["baseline"]), *sizes]
    _run([*build, "--seed", str(args.seed)], envs["baseline"])
    got: dict[str, list[tuple[float, float, int]]] = {name: [] for name in trees}
    loads = []
    for _ in range(args.rounds):
        for name in trees:
            cmd = [sys.executable, __file__, "--match-only", str(dbs[name])]
            out = _run(cmd, envs[name])
            line = next(x for x in out.stdout.splitlines() if x.startswith("MATCH "))
            wall, cpu, n = line.split()[1:]
            got[name].append((float(wall), float(cpu), int(n)))
            loads.append(os.getloadavg()[0])
    for name, runs in got.items():
        walls, cpus = [x[0] for x in runs], [x[1] for x in runs]
        print(
            f"{name:10s} ({trees[name]}): wall median {statistics.median(walls):.3f} s "
            f"(spread {min(walls):.3f}-{max(walls):.3f}), CPU median {statistics.median(cpus):.3f} s "
            f"(spread {min(cpus):.3f}-{max(cpus):.3f}), findings {runs[0][2]:,}"
        )
    this, base = got["this tree"], got["baseline"]
    if {x[2] for x in this} != {x[2] for x in base}:
        print("DIFFERENT finding counts between the trees")
    med = statistics.median
    print(
        f"ratio this/baseline: wall {med(x[0] for x in this) / med(x[0] for x in base):.2f}, "
        f"CPU {med(x[1] for x in this) / med(x[1] for x in base):.2f} "
        f"(load average {min(loads):.1f}-{max(loads):.1f}; target < 0.5 s, 0.99 s before)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-src", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--match-only", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--build-only", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--packages", type=int, default=10_000)
    ap.add_argument(
        "--db", type=Path, default=None, help="keep the store here (default: a temp dir)"
    )
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    if args.match_only is not None:
        match_only(args.match_only)
        return
    r = random.Random(args.seed)
    tmp = tempfile.TemporaryDirectory()
    db = args.build_only or args.db or Path(tmp.name) / "bench.db"
    store = open_store(f"sqlite:///{db}")
    t0 = time.perf_counter()
    records, universe = build_records(args.records, max(1000, args.records // 5), r)
    t1 = time.perf_counter()
    write_batches(store, [ImportBatch(source="synthetic", kind="osv", advisories=records)])
    t2 = time.perf_counter()
    del records  # a scan runs in its own process: the import's objects are not on its heap
    gc.collect()
    inventory = build_inventory(universe, args.packages, r)
    if args.build_only is not None:  # the store and inventory of a --baseline-src tree
        import pickle

        store.close()
        db.with_suffix(".inventory").write_bytes(pickle.dumps(inventory))
        return
    for s in SCHEMES.values():
        s._cached.cache_clear()  # cold: the matcher parses every version it needs
    t3, c3 = time.perf_counter(), time.process_time()
    report = Matcher(store).run(inventory)
    t4, c4 = time.perf_counter(), time.process_time()
    baseline_hits = naive_match(store, inventory)
    t5, c5 = time.perf_counter(), time.process_time()
    matched, matched_cpu = t4 - t3, c4 - c3
    naive, naive_cpu = t5 - t4, c5 - c4
    same = "same as" if baseline_hits == len(report.findings) else "DIFFERENT from"
    lines = [
        f"records: {args.records:,} (generated in {t1 - t0:.1f} s, "
        f"stored in one transaction in {t2 - t1:.1f} s)",
        f"packages: {args.packages:,} ({report.checked:,} looked up, "
        f"{len(report.skipped)} skipped)",
        f"findings: {len(report.findings):,} ({same} the naive baseline's {baseline_hits:,})",
        f"matcher: {matched:.3f} s wall, {matched_cpu:.3f} s CPU on one core; "
        f"target {TARGET_SECONDS:.1f} s -> ratio {matched / TARGET_SECONDS:.2f} wall, "
        f"{matched_cpu / TARGET_SECONDS:.2f} CPU (below 1 is within target)",
        f"naive baseline (query per package, no caches): {naive:.3f} s wall, {naive_cpu:.3f} s CPU"
        f" -> matcher is "
        f"{naive / matched:.1f}x faster (wall), {naive_cpu / matched_cpu:.1f}x (CPU)",
        f"load average while measuring: {os.getloadavg()[0]:.1f} (other processes share the core)",
    ]
    print("\n".join(lines))
    store.close()
    if args.baseline_src is not None:
        import pickle

        db.with_suffix(".inventory").write_bytes(pickle.dumps(inventory))
        compare(args, db)


if __name__ == "__main__":
    main()
