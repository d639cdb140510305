from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from stockade.model import (
    ConfigError,
    Event,
    Finding,
    Pillar,
    ResourceRef,
    Severity,
    Status,
    StoreError,
)
from stockade.store import Store, open_store
from stockade.store.db import current_heads, normalize_url
from stockade.store.records import list_events, list_findings, record_events, record_findings


def test_events_round_trip(any_store: Store) -> None:
    pod = ResourceRef(kind="pod", name="pay", namespace="shop", labels=(("app", "pay"),))
    old = Event(
        kind="dlp.sensitive_in_clear",
        message="card in clear",
        severity=Severity.HIGH,
        resource=pod,
        peer=ResourceRef(kind="external", name="203.0.113.9"),
        data={"evidence": "4111 **** **** 1111"},
        at=datetime.now(UTC) - timedelta(hours=2),
    )
    new = Event(kind="tls.weak_version", message="TLS 1.0", severity=Severity.MEDIUM)
    assert record_events(any_store, [old, new]) == 2
    got = list_events(any_store)
    assert [e.id for e in got] == [new.id, old.id]
    assert got[1].resource == pod and got[1].data == {"evidence": "4111 **** **** 1111"}
    assert [e.id for e in list_events(any_store, kind="dlp.*")] == [old.id]
    assert [e.id for e in list_events(any_store, since=datetime.now(UTC) - timedelta(hours=1))] == [
        new.id
    ]


def test_findings_grouped_by_run(any_store: Store) -> None:
    node = ResourceRef(kind="node", name="cp-1")
    f = Finding(
        id="k8s.apiserver.anonymous_auth",
        pillar=Pillar.COMPLIANCE,
        title="anon",
        severity=Severity.HIGH,
        status=Status.PASS,
        resource=node,
    )
    run = record_findings(any_store, [f, f])
    rows = list_findings(any_store, run_id=run)
    assert len(rows) == 2 and rows[0]["status"] == "PASS" and rows[0]["resource_name"] == "cp-1"


def test_sqlite_uses_wal_and_migrates_once(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'db.sqlite'}"
    store = open_store(url)
    with store.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    heads = current_heads(store)
    assert "core_0001" in heads or heads  # at least the core branch is applied
    again = open_store(url)
    assert current_heads(again) == heads


def test_plain_path_and_postgres_urls_are_normalized(tmp_path) -> None:
    assert normalize_url(str(tmp_path / "x.db")).startswith("sqlite:////")
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"


def test_bad_urls_give_clear_errors(tmp_path) -> None:
    with pytest.raises(ConfigError):
        open_store("nosuchdialect://x")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError):
        open_store(f"sqlite:///{blocker / 'sub' / 'db.sqlite'}")
