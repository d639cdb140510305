"""Retention on real SQLite and PostgreSQL: by age, by rows and bytes per category, dry runs, the
``store.pruned`` event, bounded transactions, and hostile policy files."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from stockade.model import Event
from stockade.model.errors import ConfigError, DocumentTooComplex
from stockade.store import Store, open_store
from stockade.store.records import list_events, record_events
from stockade.store.retention import (
    DEFAULT_POLICY,
    Limits,
    Pruned,
    RetentionJob,
    RetentionPolicy,
    load_retention,
    prune_once,
)
from stockade.store.tables import events
from tests.api.controller import pg_url

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """SQLite, then PostgreSQL in a schema of this process's own (other test processes reset
    ``public`` while these run)."""
    if request.param == "sqlite":
        store = open_store(f"sqlite:///{tmp_path / 'stockade.db'}")
    else:
        store = open_store(pg_url(f"retention_{os.getpid()}"))
    yield store
    store.close()


def aged(kind: str, days: float, message: str = "m") -> Event:
    return Event(kind=kind, message=message, at=NOW - timedelta(days=days))


def count(store: Store, category: str | None = None) -> int:
    q = select(func.count()).select_from(events)
    if category:
        q = q.where(events.c.category == category)
    with store.connect() as conn:
        return int(conn.execute(q).scalar_one())


def pruned_events(store: Store) -> list[Event]:
    return list(list_events(store, kind="store.pruned"))


def test_by_age_per_category_with_a_default(any_store: Store) -> None:
    record_events(any_store, [aged("dlp.hit", d) for d in (1, 10, 40, 100)])
    record_events(any_store, [aged("audit.login", d) for d in (1, 100, 500)])
    record_events(any_store, [aged("firewall.blocked", d) for d in (1, 100, 5000)])
    policy = RetentionPolicy(
        default=Limits(max_age=timedelta(days=90)),
        categories={"dlp": Limits(max_age=timedelta(days=30)), "firewall": Limits()},
    )
    counts = prune_once(any_store, policy, NOW)
    assert counts == {"dlp": Pruned(age=2), "audit": Pruned(age=2)}
    assert count(any_store, "dlp") == 2 and count(any_store, "audit") == 1
    assert count(any_store, "firewall") == 3  # no limits: kept
    kept = {e.at for e in list_events(any_store, kind="dlp.*")}
    assert kept == {NOW - timedelta(days=1), NOW - timedelta(days=10)}


def test_by_rows_per_category_keeps_the_newest(any_store: Store) -> None:
    record_events(any_store, [aged("dlp.hit", d, f"dlp {d}") for d in range(30)])
    record_events(any_store, [aged("scan.completed", d) for d in range(30)])
    policy = RetentionPolicy(
        batch=100,
        default=Limits(max_rows=25),
        categories={"dlp": Limits(max_rows=10, max_age=timedelta(days=20))},
    )
    counts = prune_once(any_store, policy, NOW)
    assert counts == {"dlp": Pruned(age=9, rows=11), "scan": Pruned(rows=5)}
    assert sorted(e.message for e in list_events(any_store, kind="dlp.*")) == sorted(
        f"dlp {d}" for d in range(10)
    )
    assert count(any_store, "scan") == 25


def test_by_bytes_keeps_what_fits(any_store: Store) -> None:
    record_events(any_store, [aged("sensor.flow", d, "x" * 1000) for d in range(20)])
    policy = RetentionPolicy(categories={"sensor": Limits(max_bytes=6 * 1024)})
    counts = prune_once(any_store, policy, NOW)
    # each event costs about 1,250 bytes (text and ROW_OVERHEAD): 4 fit in 6 KiB
    assert counts == {"sensor": Pruned(bytes=16)}
    assert {e.at for e in list_events(any_store, kind="sensor.*")} == {
        NOW - timedelta(days=d) for d in range(4)
    }


def test_dry_run_counts_and_deletes_nothing(any_store: Store) -> None:
    record_events(any_store, [aged("dlp.hit", d) for d in range(0, 200, 10)])
    policy = RetentionPolicy(default=Limits(max_age=timedelta(days=90), max_rows=5))
    planned = prune_once(any_store, policy, NOW, dry_run=True)
    assert planned == {"dlp": Pruned(age=10, rows=5)}
    assert count(any_store) == 20 and pruned_events(any_store) == []
    assert prune_once(any_store, policy, NOW) == planned
    assert count(any_store, "dlp") == 5


def test_one_pruned_event_per_run_with_the_counts_never_pruned_by_its_run(
    any_store: Store,
) -> None:
    old = [Event(kind="store.pruned", message="old", at=NOW - timedelta(hours=h)) for h in (1, 2)]
    record_events(any_store, [*old, *(aged("dlp.hit", d) for d in (1, 50))])
    policy = RetentionPolicy(
        default=Limits(max_age=timedelta(days=30)), categories={"store": Limits(max_rows=1)}
    )
    got: list[Event] = []
    counts = prune_once(any_store, policy, NOW, sink=got.append)
    assert counts == {"dlp": Pruned(age=1), "store": Pruned(rows=1)}
    stored = pruned_events(any_store)
    fresh = [e for e in stored if e.message != "old"]
    assert len(fresh) == 1 and [e.id for e in got] == [e.id for e in fresh]
    e = fresh[0]
    assert e.category == "store" and e.at == NOW and e.action == "prune"
    assert e.data["total"] == 2
    assert e.data["categories"] == {
        "dlp": {"age": 1, "rows": 0, "bytes": 0, "total": 1},
        "store": {"age": 0, "rows": 1, "bytes": 0, "total": 1},
    }
    assert len(stored) == 2  # the newest old one and this run's
    # a run with nothing to prune still says so
    assert prune_once(any_store, policy, NOW) == {"store": Pruned(rows=1)}
    assert len(pruned_events(any_store)) == 2


def test_large_prunes_are_cut_into_bounded_transactions(sqlite_store: Store) -> None:
    record_events(sqlite_store, [aged("dlp.hit", 100 + i / 1000) for i in range(1050)])
    deletes: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM EVENTS"):
            deletes.append(statement)

    sa_event.listen(sqlite_store.engine, "before_cursor_execute", seen)
    try:
        policy = RetentionPolicy(batch=100, default=Limits(max_age=timedelta(days=90)))
        assert prune_once(sqlite_store, policy, NOW) == {"dlp": Pruned(age=1050)}
    finally:
        sa_event.remove(sqlite_store.engine, "before_cursor_execute", seen)
    assert len(deletes) == 11  # 10 of 100 and one of 50, each its own transaction
    assert count(sqlite_store, "dlp") == 0


def test_the_job_is_a_callable_with_an_interval(sqlite_store: Store) -> None:
    record_events(sqlite_store, [Event(kind="dlp.hit", message="m", at=datetime(2000, 1, 1))])
    job = RetentionJob(sqlite_store, DEFAULT_POLICY)
    assert job.interval == 3600.0 and job.name == "retention"
    assert job() == {"dlp": Pruned(age=1)}


def test_default_policy_keeps_the_audit_trail_a_year() -> None:
    assert DEFAULT_POLICY.limits("audit").max_age == timedelta(days=400)
    assert DEFAULT_POLICY.limits("dlp") == Limits(max_age=timedelta(days=90), max_rows=1_000_000)


# ---------------------------------------------------------------- policy files

GOOD = """\
apiVersion: stockade.dev/v1
kind: Retention
metadata: {name: lab}
spec:
  every: 10m
  batch: 1000
  default: {maxAge: 30d}
  categories:
    audit: {maxAge: 400d}
    dlp: {maxAge: 7d, maxRows: 1000, maxBytes: 64MiB}
    firewall: {}
"""


def test_a_policy_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "retention.yaml"
    path.write_text(GOOD)
    p = load_retention(path)
    assert p.every == timedelta(minutes=10) and p.batch == 1000
    assert p.limits("dlp") == Limits(max_age=timedelta(days=7), max_rows=1000, max_bytes=64 << 20)
    assert p.limits("firewall") == Limits()
    assert p.limits("sensor") == Limits(max_age=timedelta(days=30))


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (("maxAge: 7d,", "maxAge: 7,"), 10, "bad duration '7'"),
        (("maxAge: 7d,", "maxAge: 0s,"), 10, "must be between"),
        (("maxAge: 7d,", "maxAge: 99999d,"), 10, "must be between"),
        (("maxRows: 1000", "maxRows: 0"), 10, "greater than or equal to 1"),
        (("maxRows: 1000", "maxRows: true"), 10, "valid integer"),
        (("maxBytes: 64MiB", "maxBytes: 64MB"), 10, "bad size"),
        (("maxBytes: 64MiB", "maxBytes: 10"), 10, "between 1KiB"),
        (("firewall: {}", "Fire.Wall: {}"), 9, "category 'Fire.Wall'"),
        (("firewall: {}", "firewall: {keep: forever}"), 11, "Extra inputs"),
        (("every: 10m", "every: 0s"), 5, "must be between"),
        (("batch: 1000", "batch: 10"), 6, "greater than or equal to 100"),
        (("kind: Retention", "kind: Retentoin"), 2, "kind"),
    ],
)
def test_a_wrong_policy_file_is_one_line_naming_the_line(
    tmp_path: Path, change: tuple[str, str], line: int, message: str
) -> None:
    path = tmp_path / "retention.yaml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_retention(path)
    text = str(info.value)
    assert text.startswith(f"{path}:{line}: ") and message in text and "\n" not in text


def test_hostile_documents_are_refused(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("apiVersion: stockade.dev/v1\nkind: Retention\nspec: " + "[" * 5000)
    with pytest.raises(DocumentTooComplex):
        load_retention(deep)
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(DocumentTooComplex):
        load_retention(bomb)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockade", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )


def test_db_prune_cli_dry_run_then_prune(tmp_path: Path, sqlite_store: Store) -> None:
    db = str(sqlite_store.engine.url)
    record_events(sqlite_store, [Event(kind="dlp.hit", message="m", at=datetime(2000, 1, 1))])
    record_events(sqlite_store, [Event(kind="dlp.hit", message="new")])
    dry = cli("db", "prune", "--db", db, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dlp: would prune 1 (age 1, rows 0, bytes 0)" in dry.stdout
    assert count(sqlite_store) == 2
    real = cli("db", "prune", "--db", db)
    assert real.returncode == 0, real.stderr
    assert "pruned 1 events in 1 categories" in real.stdout
    assert count(sqlite_store, "dlp") == 1 and len(pruned_events(sqlite_store)) == 1


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (GOOD.replace("maxRows: 1000", "maxRows: -1"), 2),
        ("apiVersion: stockade.dev/v1\nkind: Retention\nspec: {\n", 2),
        ("spec: " + "[" * 500, 3),
    ],
)
def test_db_prune_cli_refuses_a_bad_policy(tmp_path: Path, text: str, code: int) -> None:
    path = tmp_path / "retention.yaml"
    path.write_text(text)
    out = cli("db", "prune", "--db", str(tmp_path / "s.db"), "--retention", str(path))
    assert out.returncode == code
    assert out.stderr.startswith(f"stockade: error: {path}") and out.stderr.count("\n") == 1
    assert "Traceback" not in out.stderr


def test_db_prune_cli_missing_policy_file(tmp_path: Path) -> None:
    out = cli("db", "prune", "--db", str(tmp_path / "s.db"), "--retention", str(tmp_path / "no"))
    assert out.returncode == 2 and out.stderr.startswith("stockade: error: cannot read")
