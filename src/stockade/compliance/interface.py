"""Values shared by the compliance pillar: CIS node benchmarks, workload checks, custom checks
and framework reports all produce
``Finding(pillar=Pillar.COMPLIANCE, details=CheckDetails(...))``."""

from __future__ import annotations

from dataclasses import dataclass

from stockade.model import Details


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckDetails(Details):
    benchmark: str  # "cis-kubernetes-1.10", "cis-docker-1.6", "pss-restricted", "custom"
    benchmark_id: str  # the benchmark's own numbering: "1.2.1"; the stable slug is Finding.id
    section: str = ""
    level: int | None = None
    scored: bool = True
    evidence: str = ""  # what was read (a flag value, a file mode, a field path and its value)
    expected: str = ""  # what would pass
    remediation: str = ""
    reason: str = ""  # why the result is ERROR, INFO or NOT_APPLICABLE
    location: str = ""  # where the audited object came from: "deploy/web.yaml#2", "cluster"
