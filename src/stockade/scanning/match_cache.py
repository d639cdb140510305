"""The kept match of an image: a warm re-scan reuses it instead of matching again.

A match depends on three things only: the packages (the kept inventory, the same for one manifest
digest and one set of catalogers), the advisory data and the matcher. So the match is kept next to
the inventory (``scan_inventories.match_key`` and ``match_result``) under a key made of the
advisory data's generation (a random token every import or update writes, see
``stockade.scanning.advisories.store.write_batches``), the tool's version and :data:`FORMAT`; an
inventory replaced by other catalogers forgets it. The policy (--fail-on, ignore file, VEX,
--ignore-unfixed) is applied to the kept findings on every scan, so it is not part of the key.

Advisory data written before generations existed has none: such a store is matched every time
until its next import or update.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from stockade import __version__
from stockade.model import Finding, Pillar, ResourceRef, Severity, Status
from stockade.scanning.interface import Unchecked, VulnerabilityDetails

if TYPE_CHECKING:
    from stockade.scanning.pipeline import MatchOutcome
    from stockade.scanning.results import DatabaseInfo

# Raise when the matcher changes what it finds for the same packages and advisory data, or when
# the encoding below changes: every kept match is then made again.
FORMAT = "match-3"  # 2: OSV limits and ties, Ubuntu FIPS builds (session 16); 3: FIPS streams

_TUPLE_FIELDS = frozenset(
    f.name for f in dataclasses.fields(VulnerabilityDetails) if "tuple" in str(f.type)
)


def match_key(db: DatabaseInfo | None) -> str | None:
    """The key a kept match must carry to be reused with this advisory data; None: do not keep."""
    if db is None or not db.generation:
        return None
    return f"{FORMAT}/{__version__}/{db.generation}"


def encode(outcome: MatchOutcome) -> str:
    return json.dumps(
        {
            "findings": [f.to_dict() for f in outcome.findings],
            "skipped": list(outcome.skipped),
            "unchecked": [u.to_dict() for u in outcome.unchecked],
        },
        separators=(",", ":"),
    )


def decode(text: str) -> MatchOutcome:
    """The outcome :func:`encode` wrote; ValueError (or KeyError, TypeError) when it is not one."""
    from stockade.scanning.pipeline import MatchOutcome

    data = json.loads(text)
    return MatchOutcome(
        findings=tuple(_finding(f) for f in data["findings"]),
        skipped=tuple(str(s) for s in data["skipped"]),
        unchecked=tuple(
            Unchecked(
                ecosystem=str(u["ecosystem"]), packages=int(u["packages"]), reason=u["reason"]
            )
            for u in data["unchecked"]
        ),
    )


def _finding(data: dict[str, Any]) -> Finding:
    details = data.get("details")
    return Finding(
        id=str(data["id"]),
        pillar=Pillar(data["pillar"]),
        title=str(data["title"]),
        severity=Severity.parse(data["severity"]),
        resource=ResourceRef.from_dict(data["resource"]),
        status=Status(data["status"]),
        details=_details(details) if details is not None else None,
        compliance=tuple(data.get("compliance") or ()),
    )


def _details(data: dict[str, Any]) -> VulnerabilityDetails:
    values: dict[str, Any] = {k: tuple(v) if k in _TUPLE_FIELDS else v for k, v in data.items()}
    return VulnerabilityDetails(**values)
