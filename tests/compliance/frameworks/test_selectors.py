"""Every selector in every framework mapping can match something Stockade produces: a selector that
names no check, sensor, protocol or event evidence would leave its requirement unassessed forever."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from stockade.compliance.cis.loader import BUILTIN, builtin
from stockade.compliance.frameworks import FRAMEWORKS, load, matches
from stockade.compliance.frameworks.evidence import EVIDENCE_TITLES
from stockade.compliance.workloads.registry import CHECKS
from stockade.model import Pillar
from stockade.network.dlp.sensors import builtin_sensor_ids
from stockade.network.protocols import SLUGS


@dataclass(frozen=True)
class Producible:
    finding_id: str
    pillar: str
    benchmark: str = ""
    benchmark_id: str = ""

    def row(self) -> dict[str, object]:
        return {
            "finding_id": self.finding_id,
            "pillar": self.pillar,
            "details": {"benchmark": self.benchmark, "benchmark_id": self.benchmark_id},
        }


def producible() -> list[Producible]:
    out = [
        Producible(c.id, "compliance", bench.id, c.benchmark_id)
        for platform, versions in BUILTIN.items()
        for version in versions
        for bench in [builtin(platform, version)]
        for c in bench.checks
    ]
    out += [Producible(c.id, "compliance", c.benchmark) for c in CHECKS]
    out += [Producible(s, "network") for s in builtin_sensor_ids()]
    out += [Producible(s, "network") for s in SLUGS]
    pillars = {"dlp": "network", "tls": "network", "firewall": "firewall", "admission": "admission"}
    out += [Producible(e, pillars[e.split(".")[0]]) for e in EVIDENCE_TITLES]
    out.append(Producible("CVE-2024-0001", str(Pillar.SCANNING)))  # vulnerabilities: CVE/GHSA ids
    return out


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_every_selector_can_match(name: str) -> None:
    rows = [p.row() for p in producible()]
    dead = sorted(
        f"{req.id}: {sel}"
        for req in load(name).requirements
        for sel in req.selectors
        if not any(matches(sel, row) for row in rows)
    )
    assert not dead, f"{name}: selectors that match nothing Stockade produces: {dead}"


def test_evidence_kinds_are_emitted_somewhere() -> None:
    """The event kinds the evidence reader maps are written by some pillar (a renamed event would
    otherwise silently stop counting). Admission writes ``admission.{verdict}``."""
    import stockade
    from stockade.compliance.frameworks.evidence import STATE_KINDS, WINDOW_KINDS

    root = Path(stockade.__file__).parent
    src = "\n".join(
        p.read_text(encoding="utf-8") for p in root.rglob("*.py") if "compliance" not in p.parts
    )
    review = (root / "admission" / "review.py").read_text(encoding="utf-8")
    assert 'kind=f"admission.{verdict}"' in review

    def emitted(kind: str) -> bool:
        family, _, verdict = kind.partition(".")
        return f'"{kind}"' in src or (family == "admission" and f'"{verdict}"' in review)

    assert [k for k in (*WINDOW_KINDS, *STATE_KINDS) if not emitted(k)] == []
