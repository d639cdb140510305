"""Walks tests/compliance/golden/<group>-PASS|FAIL: each folder's node.yaml builds a fixture node,
the benchmark runs on it, and every check of the folder's sections must have the expected status.

``expect.default`` is ``good`` (PASS; WARN for checks a person must review) or ``bad`` (FAIL;
WARN where the benchmark does not score the check). Other keys of ``expect`` name checks whose
status differs from the default.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.compliance.cis.fixtures import GOLDEN, build, load_spec
from tests.support import require

from stockade.compliance.cis import loader
from stockade.compliance.cis.engine import run
from stockade.compliance.cis.model import CheckType
from stockade.compliance.cis.node import open_node

FOLDERS = sorted(p for p in GOLDEN.iterdir() if (p / "node.yaml").is_file())


def test_every_group_has_pass_and_fail() -> None:
    names = {p.name for p in FOLDERS}
    groups = {n.rsplit("-", 1)[0] for n in names}
    assert len(groups) >= 12
    for g in groups:
        assert {f"{g}-PASS", f"{g}-FAIL"} <= names, g


def _default(check, default: str) -> str:  # type: ignore[no-untyped-def]
    if check.type is CheckType.MANUAL:
        return "WARN"
    if default == "good":
        return "PASS"
    return "FAIL" if check.scored else "WARN"


CASES = [
    (folder, version)
    for folder in FOLDERS
    for version in loader.BUILTIN[load_spec(folder / "node.yaml")["benchmark"]]
]


@pytest.mark.root
@pytest.mark.parametrize(("folder", "version"), CASES, ids=[f"{f.name}:{v}" for f, v in CASES])
def test_golden(folder: Path, version: str, tmp_path: Path) -> None:
    """Every shipped version of the folder's benchmark gives the expected statuses."""
    require(os.geteuid() == 0, "fixture nodes set file owners with chown (needs root)")
    spec = load_spec(folder / "node.yaml")
    node_root = build(spec, tmp_path / "node")
    bench = loader.builtin(spec["benchmark"], version)
    sections = [str(s) for s in spec["sections"]]
    result = run(bench, open_node(node_root), only=sections, roles=spec.get("roles"))
    expect = dict(spec["expect"])
    default = expect.pop("default")
    assert set(expect) <= {c.id for c in bench.checks}, "expectations name unknown checks"
    got = {f.id: f for f in result.findings}
    assert got, f"no checks in sections {sections}"
    wrong = []
    for check in bench.checks:
        if check.id not in got:
            continue
        want = expect.get(check.id) or _default(check, default)
        f = got[check.id]
        if str(f.status) != want:
            d = f.details
            wrong.append(
                f"{check.id} ({check.benchmark_id}): want {want}, got {f.status} "
                f"[{getattr(d, 'evidence', '')}{getattr(d, 'reason', '')}]"
            )
    assert not wrong, "\n".join(wrong)
