"""The connection graph counts a DLP finding once, whoever reports it first (the sensor and the
enforcer see the same flow). A batch of findings is decided with one SELECT per chunk of flows
(``_first_reports``); the one-statement-per-finding ``_first_report`` is its reference: both give
the same answers and leave the same rows, on a real SQLite store with reports already stored."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from stockade.network.graph import FLOW_WINDOW, _Finding, _first_report, _first_reports
from stockade.network.tables import graph_dlp_flows
from stockade.store import open_store
from tests.conftest import drop_pg_schema, pg_schema_url

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _findings(rng: random.Random, n: int) -> list[_Finding]:
    out = []
    for _ in range(n):
        out.append(
            _Finding(
                edge=("a", "b", 0, "clear"),
                flow=f"tcp:10.0.0.{rng.randint(1, 6)}:{rng.choice((4000, 4001))}>10.0.1.1:80",
                sensor=rng.choice(("dlp.payment_card", "dlp.us_ssn")),
                direction=rng.choice(("request", "response")),
                reporter=rng.choice(("sensor@n1", "enforcer@n1", "sensor@n2")),
                # around the window's edges too, and equal times
                at=T0
                + rng.choice((0, 1, 1, 2)) * FLOW_WINDOW
                + timedelta(seconds=rng.randint(-2, 2)),
                amount=1,
            )
        )
    return out


def _rows(store) -> list[tuple]:
    t = graph_dlp_flows.c
    with store.connect() as conn:
        rows = conn.execute(select(t.flow, t.sensor, t.direction, t.reporter, t.at).order_by(t.pk))
        # SQLite gives the stored UTC time back naive, PostgreSQL aware
        return [(*r[:4], r[4] if r[4].tzinfo else r[4].replace(tzinfo=UTC)) for r in rows]


def _emptied(store) -> None:
    with store.begin() as conn:
        conn.execute(graph_dlp_flows.delete())


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_batched_first_reports_match_one_by_one(tmp_path: Path, backend: str) -> None:
    """The reference runs on SQLite; the batch on SQLite and on PostgreSQL (timestamptz)."""
    rng = random.Random(7)
    pg = open_store(pg_schema_url("graphreports")) if backend == "postgres" else None
    for trial in range(6):
        stored, batch = _findings(rng, 25), _findings(rng, 60)
        one = open_store(f"sqlite:///{tmp_path / f'one-{trial}.db'}")
        if pg is not None:
            _emptied(pg)
        many = pg or open_store(f"sqlite:///{tmp_path / f'many-{trial}.db'}")
        try:
            for store in (one, many):  # the same earlier reports in both
                with store.begin() as conn:
                    for f in stored:
                        _first_report(conn, f)
            with one.begin() as conn:
                expected = [_first_report(conn, f) for f in batch]
            with many.begin() as conn:
                got = _first_reports(conn, batch)
            assert got == expected
            assert _rows(one) == _rows(many)
            assert True in got and False in got
        finally:
            one.close()
            if pg is None:
                many.close()
    if pg is not None:
        pg.close()
        drop_pg_schema("graphreports")
