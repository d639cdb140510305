"""Reading only the results a report needs: the newest run of each family, found with one
grouping query, then those runs' rows (not the whole history of the findings table)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from stockade.model import Event
from stockade.store import Store
from stockade.store.records import list_events, list_findings
from stockade.store.tables import findings


def latest_runs(store: Store) -> list[str]:
    """The newest run id of each (pillar, benchmark) family."""
    bench = findings.c.details["benchmark"].as_string()
    q = select(
        findings.c.pillar, bench.label("bench"), findings.c.run_id, func.max(findings.c.pk)
    ).group_by(findings.c.pillar, bench, findings.c.run_id)
    newest: dict[tuple[str, str], tuple[int, str]] = {}
    with store.connect() as conn:
        for pillar, benchmark, run_id, last_pk in conn.execute(q):
            family = (str(pillar), str(benchmark or ""))
            if family not in newest or last_pk > newest[family][0]:
                newest[family] = (last_pk, run_id)
    return sorted({run for _, run in newest.values()})


def current_findings(store: Store) -> list[dict[str, Any]]:
    """The rows of the newest runs (``evaluate`` keeps, per family, only that family's rows)."""
    rows: list[dict[str, Any]] = []
    for run in latest_runs(store):
        rows += list_findings(store, run_id=run)
    return rows


def window_events(store: Store, since: datetime, *, per_kind: int = 500) -> list[Event]:
    """The events a report reads as evidence: the newest ``per_kind`` of each evidence kind since
    ``since``, and the newest firewall policy state whenever it was applied (it holds until
    replaced)."""
    from stockade.compliance.frameworks.evidence import STATE_KINDS, WINDOW_KINDS

    found: list[Event] = []
    for kind in WINDOW_KINDS:
        found += list_events(store, kind=kind, since=since, limit=per_kind)
    for kind in STATE_KINDS:
        found += list_events(store, kind=kind, limit=1)
    return found
