"""``stockade db``: the project store: migrations, advisory import, update, status and pruning."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from stockade.cli.common import DbOption, RichObserver, console, emit, err_console, open_db

db_app = typer.Typer(
    help="The project database: migrations, advisory data, event retention.", no_args_is_help=True
)

MAX_PROBLEMS_SHOWN = 20


@db_app.command("migrate")
def migrate(db: DbOption = None) -> None:
    """Create the database or bring its schema up to date."""
    store = open_db(db)
    console.print(f"database ready: {store.safe_url} ({store.dialect})")


def _report(batches: list, verbose: bool) -> None:
    shown = 0
    for b in batches:
        console.print(
            f"imported {len(b.advisories)} records from {b.source} ({b.kind}), "
            f"{len(b.problems)} skipped or partly skipped",
            markup=False,
            soft_wrap=True,
            highlight=False,
        )
        for p in b.problems:
            if verbose or shown < MAX_PROBLEMS_SHOWN:
                err_console.print(
                    f"stockade: warning: {p}", markup=False, highlight=False, soft_wrap=True
                )
            shown += 1
    if not verbose and shown > MAX_PROBLEMS_SHOWN:
        err_console.print(
            f"stockade: warning: {shown - MAX_PROBLEMS_SHOWN} more problems "
            "(use --verbose to list all)",
            markup=False,
            highlight=False,
        )


@db_app.command("import")
def import_cmd(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="Files, folders, zips (OSV all.zip), tar archives (Red Hat's csaf_vex "
            ".tar.zst) or http(s)/file URLs."
        ),
    ],
    db: DbOption = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="List every skipped record.")
    ] = False,
) -> None:
    """Import advisories in one transaction: OSV (GHSA, Ubuntu...), Debian tracker JSON, Alpine
    secdb, Red Hat and SUSE CSAF VEX, Amazon Linux updateinfo.xml, NVD CVE records (API 2.0 or
    2.0 feeds: scores for findings that have none); each format is recognised by itself.

    Re-importing a source replaces its earlier records; other sources stay.
    """
    from stockade.scanning.advisories.update import import_sources

    store = open_db(db)
    with RichObserver() as observer:
        batches = import_sources(store, sources, observer=observer)
    _report(batches, verbose)


@db_app.command("update")
def update_cmd(
    db: DbOption = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Sources file. Default: ~/.config/stockade/sources.yaml"),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="List every skipped record.")
    ] = False,
) -> None:
    """Re-import every source in the sources file (offline bundles: paths or file:// URLs)."""
    from stockade.scanning.advisories.update import default_config_path, import_sources, load_config

    sources = load_config(config or default_config_path())
    store = open_db(db)
    with RichObserver() as observer:
        batches = import_sources(store, sources, observer=observer)
    _report(batches, verbose)


@db_app.command("status")
def status_cmd(
    db: DbOption = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table",
    max_db_age: Annotated[
        str, typer.Option("--max-db-age", help="Age after which the data is stale.")
    ] = "7d",
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Exit 3 when the data is missing or stale, or a source an earlier release"
            " imported must be imported again.",
        ),
    ] = False,
) -> None:
    """Sources, record counts by ecosystem, build time and age of the advisory data."""
    from stockade.model.duration import parse_duration
    from stockade.model.errors import StaleDataError, UsageError
    from stockade.scanning.advisories.freshness import check_freshness, db_info, reimport_lines
    from stockade.scanning.advisories.store import ensure_spans

    if fmt not in ("table", "json"):
        raise UsageError(f"unknown format {fmt!r} (expected table or json)")
    max_age = parse_duration(max_db_age)
    store = open_db(db)
    ensure_spans(store)  # an upgrade's work first: it finds the sources to import again
    info = db_info(store)
    reimport = reimport_lines(tuple((s.name, s.reimport) for s in info.sources if s.reimport))
    now = datetime.now(UTC)
    stale_reason = None
    try:
        check_freshness(store, max_age=max_age, now=now)
    except StaleDataError as exc:
        stale_reason = exc.message
    age = (now - info.built_at).total_seconds() if info.built_at else None
    if fmt == "json":
        emit(
            json.dumps(
                {
                    "built_at": info.built_at.isoformat() if info.built_at else None,
                    "age_seconds": age,
                    "fresh": stale_reason is None,
                    "stale_reason": stale_reason,
                    "reimport_needed": bool(reimport),
                    "records": info.records,
                    "by_ecosystem": dict(info.by_ecosystem),
                    "sources": [
                        {
                            "name": s.name,
                            "kind": s.kind,
                            "imported_at": s.imported_at.isoformat(),
                            "records": s.records,
                            "problems": s.problems,
                            "reimport": s.reimport,
                        }
                        for s in info.sources
                    ],
                },
                indent=2,
            ),
            None,
        )
    else:
        _print_status(info, age, stale_reason)
        for line in reimport:
            console.print(f"warning: {line}", markup=False, soft_wrap=True)
    if check and (stale_reason or reimport):
        raise StaleDataError(stale_reason or reimport[0])


def _print_status(info, age: float | None, stale_reason: str | None) -> None:
    from rich.table import Table

    if info.built_at is None:
        console.print(
            "advisory database: empty (run `stockade db import SRC` or `stockade db update`)",
            markup=False,
        )
    else:
        console.print(
            f"advisory database built {info.built_at:%Y-%m-%d %H:%M:%S} UTC, "
            f"{age / 3600:.1f} hours ago: {info.records} records, "
            f"{'fresh' if stale_reason is None else 'STALE: ' + stale_reason}",
            markup=False,
            soft_wrap=True,
        )
    if info.sources:
        t = Table("kind", "imported", "records", "problems", "source", title="sources")
        for s in info.sources:
            when = f"{s.imported_at:%Y-%m-%d %H:%M}"
            t.add_row(s.kind, when, str(s.records), str(s.problems), s.name)
        console.print(t)
    if info.by_ecosystem:
        t = Table("ecosystem", "affected packages", title="by ecosystem")
        for eco, n in info.by_ecosystem:
            t.add_row(eco, str(n))
        console.print(t)


@db_app.command("prune")
def prune_cmd(
    db: DbOption = None,
    retention: Annotated[
        Path | None,
        typer.Option(
            "--retention",
            help="Retention policy (Retention YAML, see docs/controller.md). Default: 90 days and "
            "1,000,000 events per category, audit 400 days.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be pruned; delete nothing.")
    ] = False,
) -> None:
    """Prune events by age, rows and bytes per category, oldest first (what the controller does
    on its timer); a real run stores one store.pruned event with the counts."""
    from stockade.store.retention import DEFAULT_POLICY, load_retention, prune_once

    policy = load_retention(retention) if retention is not None else DEFAULT_POLICY
    store = open_db(db)
    counts = prune_once(store, policy, datetime.now(UTC), dry_run=dry_run)
    verb = "would prune" if dry_run else "pruned"
    for category, p in sorted(counts.items()):
        console.print(
            f"{category}: {verb} {p.total} (age {p.age}, rows {p.rows}, bytes {p.bytes})",
            markup=False,
            highlight=False,
        )
    total = sum(p.total for p in counts.values())
    console.print(f"{verb} {total} events in {len(counts)} categories", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
