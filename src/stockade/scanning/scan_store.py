"""Reading and writing scan results: images, inventories per manifest digest, runs and counts.

What a warm re-scan does here (read the kept inventory and match, record the run and its
findings) goes through the standard library's sqlite3 on an SQLite store opened without
SQLAlchemy (``Store.sqlite_connect``), writing the values SQLAlchemy's types would write; every
other path, and every other database, uses SQLAlchemy, imported when it is first needed.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stockade.model.errors import StoreError
from stockade.scanning.interface import Inventory, Unchecked
from stockade.scanning.inventory_codec import inventory_from_dict, inventory_to_dict
from stockade.scanning.results import NOTHING_IDENTIFIED, ScanReport
from stockade.store import Store
from stockade.store.rows import finding_rows

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from stockade.scanning.pipeline import MatchOutcome

SEVERITIES = ("critical", "high", "medium", "low", "negligible", "unknown")


@dataclass(frozen=True, slots=True, kw_only=True)
class Coverage:
    """What a stored run identified and could not check (``packages`` None: not recorded)."""

    packages: int | None = None
    unchecked: tuple[Unchecked, ...] = ()

    @property
    def incomplete(self) -> bool:
        return self.packages == 0 or bool(self.unchecked)

    def lines(self) -> list[str]:
        if self.packages == 0:
            return [NOTHING_IDENTIFIED]
        return [u.line() for u in self.unchecked]

    def to_dict(self) -> dict[str, Any]:
        return {
            "packages": self.packages,
            "complete": None if self.packages is None else not self.incomplete,
            "unchecked": [u.to_dict() for u in self.unchecked],
        }


def coverage_of(row: Any) -> Coverage:
    """The coverage of a stored ``scan_runs`` row (``packages``, ``unchecked``)."""
    packages = row["packages"]
    try:
        items = json.loads(row["unchecked"] or "[]")
        unchecked = tuple(
            Unchecked(
                ecosystem=str(u["ecosystem"]), packages=int(u["packages"]), reason=u["reason"]
            )
            for u in items
        )
    except (ValueError, TypeError, KeyError):
        unchecked = ()
    return Coverage(packages=None if packages is None else int(packages), unchecked=unchecked)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageSummary:
    reference: str
    registry: str | None
    repository: str | None
    tag: str | None
    manifest_digest: str | None
    last_scanned: datetime
    db_built: datetime | None
    counts: dict[str, int]
    suppressed: int
    failed: bool
    coverage: Coverage = Coverage()

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "registry": self.registry,
            "repository": self.repository,
            "tag": self.tag,
            "manifest_digest": self.manifest_digest,
            "last_scanned": self.last_scanned.isoformat(),
            "db_built": self.db_built.isoformat() if self.db_built else None,
            "by_severity": self.counts,
            "suppressed": self.suppressed,
            "failed": self.failed,
            "coverage": self.coverage.to_dict(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageState:
    digest: str | None
    db_built: datetime | None
    counts: dict[str, int]
    failed: bool
    coverage: Coverage = Coverage()


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredInventory:
    inventory: Inventory
    matched_db_built: datetime | None
    catalogers: str  # the cataloger names and versions that produced it


def utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: everything stored is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def load_inventory(store: Store, digest: str) -> StoredInventory | None:
    conn = store.sqlite_connect()
    if conn is not None:
        sql = (
            "SELECT data, matched_db_built, catalogers FROM scan_inventories"
            " WHERE manifest_digest = ?"
        )
        found = _sqlite_first(store, conn, sql, (digest,))
        if found is None:
            return None
        data, built, catalogers = found
        row: Any = (json.loads(data), _sqlite_time(built), catalogers)
    else:
        from sqlalchemy import select

        from stockade.scanning.scan_tables import scan_inventories

        with store.connect() as sa_conn:
            row = sa_conn.execute(
                select(
                    scan_inventories.c.data,
                    scan_inventories.c.matched_db_built,
                    scan_inventories.c.catalogers,
                ).where(scan_inventories.c.manifest_digest == digest)
            ).first()
        if row is None:
            return None
    return StoredInventory(
        inventory=inventory_from_dict(row[0]), matched_db_built=utc(row[1]), catalogers=row[2]
    )


def _sqlite_first(
    store: Store, conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]
) -> tuple[Any, ...] | None:
    """The first row of a query on a standard-library connection, which it closes."""
    try:
        found: tuple[Any, ...] | None = conn.execute(sql, params).fetchone()
        return found
    except sqlite3.Error as exc:
        raise StoreError(f"database error: {exc}", subject=store.safe_url) from exc
    finally:
        conn.close()


def _sqlite_time(text: str | None) -> datetime | None:
    """A DateTime column as SQLAlchemy writes it on SQLite (naive, UTC)."""
    return datetime.fromisoformat(text) if text else None


def _sqlite_text(value: datetime) -> str:
    """A datetime as SQLAlchemy's DateTime writes it on SQLite (so both paths read alike)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def save_inventory(
    store: Store, inv: Inventory, *, catalogers: str, digest: str | None = None
) -> str | None:
    """Keep an image's inventory under its manifest digest (or ``digest``, e.g. an index's).

    Filesystems have no digest and are not kept. An inventory made by other catalogers than the
    kept one replaces it (and forgets its last match, so it is matched again)."""
    from sqlalchemy import insert, select, update

    from stockade.scanning.scan_tables import scan_inventories

    key = digest or (inv.image.manifest_digest if inv.image else None)
    if not key:
        return None
    values = {
        "source": inv.source,
        "data": inventory_to_dict(inv),
        "packages": len(inv.packages),
        "catalogers": catalogers,
        "created_at": datetime.now(UTC),
    }
    with store.begin() as conn:
        row = conn.execute(
            select(scan_inventories.c.catalogers).where(scan_inventories.c.manifest_digest == key)
        ).first()
        if row is None:
            conn.execute(insert(scan_inventories).values(manifest_digest=key, **values))
        elif row[0] != catalogers:
            conn.execute(
                update(scan_inventories)
                .where(scan_inventories.c.manifest_digest == key)
                .values(
                    matched_at=None,
                    matched_db_built=None,
                    match_key=None,
                    match_result=None,
                    **values,
                )
            )
    return key


def load_match(store: Store, digest: str, key: str) -> MatchOutcome | None:
    """The kept match of the inventory under ``digest`` when it was made under ``key``."""
    from stockade.scanning import match_cache

    conn = store.sqlite_connect()
    if conn is not None:
        sql = "SELECT match_key, match_result FROM scan_inventories WHERE manifest_digest = ?"
        row = _sqlite_first(store, conn, sql, (digest,))
    else:
        from sqlalchemy import select

        from stockade.scanning.scan_tables import scan_inventories

        with store.connect() as sa_conn:
            row = sa_conn.execute(
                select(scan_inventories.c.match_key, scan_inventories.c.match_result).where(
                    scan_inventories.c.manifest_digest == digest
                )
            ).first()
    if row is None or row[0] != key or row[1] is None:
        return None
    try:
        return match_cache.decode(row[1])
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: matched again, and kept again


def save_match(store: Store, digest: str, key: str, outcome: MatchOutcome) -> None:
    """Keep ``outcome`` as the match of the inventory under ``digest`` (if one is kept)."""
    from sqlalchemy import update

    from stockade.scanning import match_cache
    from stockade.scanning.scan_tables import scan_inventories

    with store.begin() as conn:
        conn.execute(
            update(scan_inventories)
            .where(scan_inventories.c.manifest_digest == digest)
            .values(match_key=key, match_result=match_cache.encode(outcome))
        )


def stored_digests(store: Store) -> list[tuple[str, datetime | None]]:
    """Every stored inventory's digest with the advisory build time it was last matched against."""
    from sqlalchemy import select

    from stockade.scanning.scan_tables import scan_inventories

    with store.connect() as conn:
        rows = conn.execute(
            select(
                scan_inventories.c.manifest_digest, scan_inventories.c.matched_db_built
            ).order_by(scan_inventories.c.manifest_digest)
        ).all()
    return [(r[0], utc(r[1])) for r in rows]


def record_scan(
    store: Store,
    report: ScanReport,
    *,
    reference: str | None = None,
    mode: str = "scan",
    started_at: datetime | None = None,
) -> str:
    """Store one scan: its image row, its run with counts, its findings. Returns the run id."""
    run_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    inv = report.inventory
    digest = inv.image.manifest_digest if inv.image else None
    db_built = report.database.built if report.database else None
    target = reference or inv.source
    image = _image_values(inv, now, run_id) if inv.image else None
    run = {
        "id": run_id,
        "manifest_digest": digest,
        "target": target,
        "started_at": started_at or now,
        "finished_at": now,
        "mode": mode,
        "read_layers": inv.read_layers,
        "db_built": db_built,
        "suppressed": len(report.gate.suppressed),
        "fail_on": str(report.gate.fail_on) if report.gate.fail_on is not None else None,
        "failed": report.gate.failed,
        "packages": len(inv.packages),
        "unchecked": json.dumps([u.to_dict() for u in report.unchecked]),
        **report.gate.counts(active_only=True),
    }
    found = finding_rows(
        run_id, datetime.now(UTC), (g.finding.to_dict() for g in report.gate.active)
    )
    conn = store.sqlite_connect()
    if conn is not None:
        _record_sqlite(store, conn, image, target, run, found, now)
        return run_id
    from sqlalchemy import insert, update

    from stockade.scanning.scan_tables import scan_inventories, scan_runs
    from stockade.store.tables import findings

    with store.begin() as sa_conn:
        image_id = _upsert_image(sa_conn, image, target, now) if image is not None else None
        sa_conn.execute(insert(scan_runs).values(image_id=image_id, **run))
        if digest:
            sa_conn.execute(
                update(scan_inventories)
                .where(scan_inventories.c.manifest_digest == digest)
                .values(matched_at=now, matched_db_built=db_built)
            )
    if found:
        with store.begin() as sa_conn:
            sa_conn.execute(insert(findings), found)
    return run_id


def _image_values(inv: Inventory, now: datetime, run_id: str) -> dict[str, Any]:
    img = inv.image
    assert img is not None
    registry, repository = split_repository(img.name)
    return {
        "registry": registry,
        "repository": repository,
        "tag": img.tag,
        "manifest_digest": img.manifest_digest,
        "last_scanned": now,
        "last_run_id": run_id,
    }


def _upsert_image(conn: Connection, values: dict[str, Any], reference: str, now: datetime) -> int:
    from sqlalchemy import insert, select, update

    from stockade.scanning.scan_tables import scan_images

    row = conn.execute(select(scan_images.c.id).where(scan_images.c.reference == reference)).first()
    if row is not None:
        conn.execute(update(scan_images).where(scan_images.c.id == row[0]).values(**values))
        return int(row[0])
    result = conn.execute(insert(scan_images).values(reference=reference, first_seen=now, **values))
    key = result.inserted_primary_key  # None only from a driver that does not report the new id
    if key is None:
        raise StoreError("the database did not return the id of the new image row")
    return int(key[0])


def _record_sqlite(
    store: Store,
    conn: sqlite3.Connection,
    image: dict[str, Any] | None,
    target: str,
    run: dict[str, Any],
    found: list[dict[str, Any]],
    now: datetime,
) -> None:
    """:func:`record_scan` through sqlite3, in one transaction, with SQLAlchemy's encodings:
    datetimes as naive UTC text, JSON as the engine's JSON writer writes it
    (:func:`stockade.store.jsontext.json_text`), booleans as 0/1."""
    from stockade.store.jsontext import json_text

    try:
        with conn:
            image_id = None
            if image is not None:
                values = {**image, "last_scanned": _sqlite_text(now)}
                row = conn.execute(
                    "SELECT id FROM scan_images WHERE reference = ?", (target,)
                ).fetchone()
                if row is not None:
                    image_id = int(row[0])
                    sets = ", ".join(f"{k} = :{k}" for k in values)
                    conn.execute(
                        f"UPDATE scan_images SET {sets} WHERE id = :id", {**values, "id": image_id}
                    )
                else:
                    values.update(reference=target, first_seen=_sqlite_text(now))
                    cursor = conn.execute(_insert_sql("scan_images", values), values)
                    image_id = cursor.lastrowid
            built = run["db_built"]
            values = {
                **run,
                "image_id": image_id,
                "started_at": _sqlite_text(run["started_at"]),
                "finished_at": _sqlite_text(run["finished_at"]),
                "db_built": _sqlite_text(built) if built else None,
                "failed": int(run["failed"]),
            }
            conn.execute(_insert_sql("scan_runs", values), values)
            if run["manifest_digest"]:
                conn.execute(
                    "UPDATE scan_inventories SET matched_at = ?, matched_db_built = ?"
                    " WHERE manifest_digest = ?",
                    (_sqlite_text(now), values["db_built"], run["manifest_digest"]),
                )
            rows = [
                {
                    **f,
                    "at": _sqlite_text(f["at"]),
                    **{k: json_text(f[k]) for k in ("resource", "details", "compliance")},
                }
                for f in found
            ]
            if rows:
                conn.executemany(_insert_sql("findings", rows[0]), rows)
    except sqlite3.Error as exc:
        raise StoreError(f"database error: {exc}", subject=store.safe_url) from exc
    finally:
        conn.close()


def _insert_sql(table: str, values: dict[str, Any]) -> str:
    names = ", ".join(values)
    marks = ", ".join(f":{k}" for k in values)
    return f"INSERT INTO {table} ({names}) VALUES ({marks})"


def split_repository(name: str | None) -> tuple[str | None, str | None]:
    """``host:5000/team/app`` -> (``host:5000``, ``team/app``); a bare name has no registry."""
    if not name:
        return None, None
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, name


# list_images on the sqlite3 path: the columns the SQLAlchemy query's rows are read by (the
# image's own where both tables have one).
_IMAGES_SQL = (
    "SELECT i.reference, i.registry, i.repository, i.tag, i.manifest_digest, i.last_scanned,"
    " r.db_built, " + ", ".join(f"r.{s}" for s in SEVERITIES) + ", r.suppressed, r.failed,"
    " r.packages, r.unchecked FROM scan_images i JOIN scan_runs r ON r.id = i.last_run_id"
)


def list_images(store: Store, *, repository: str | None = None) -> list[ImageSummary]:
    """Scanned images with the counts of their latest run, newest first."""
    pattern = repository.replace("*", "%") if repository else None
    conn = store.sqlite_connect()
    if conn is not None:
        where = " WHERE i.repository LIKE ?" if pattern else ""
        sql = f"{_IMAGES_SQL}{where} ORDER BY i.last_scanned DESC, i.reference"
        try:
            cursor = conn.execute(sql, (pattern,) if pattern else ())
            names = [d[0] for d in cursor.description]
            found = cursor.fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}", subject=store.safe_url) from exc
        finally:
            conn.close()
        rows: Any = []
        for values in found:
            row = dict(zip(names, values, strict=True))
            row["last_scanned"] = _sqlite_time(row["last_scanned"])
            row["db_built"] = _sqlite_time(row["db_built"])
            rows.append(row)
    else:
        from sqlalchemy import select

        from stockade.scanning.scan_tables import scan_images, scan_runs

        q = (
            select(scan_images, scan_runs)
            .join(scan_runs, scan_runs.c.id == scan_images.c.last_run_id)
            .order_by(scan_images.c.last_scanned.desc(), scan_images.c.reference)
        )
        if pattern:
            q = q.where(scan_images.c.repository.like(pattern))
        with store.connect() as sa_conn:
            rows = sa_conn.execute(q).mappings().all()
    return [
        ImageSummary(
            reference=r["reference"],
            registry=r["registry"],
            repository=r["repository"],
            tag=r["tag"],
            manifest_digest=r["manifest_digest"],
            last_scanned=utc(r["last_scanned"]) or datetime.now(UTC),
            db_built=utc(r["db_built"]),
            counts={s: int(r[s]) for s in SEVERITIES},
            suppressed=int(r["suppressed"]),
            failed=bool(r["failed"]),
            coverage=coverage_of(r),
        )
        for r in rows
    ]


def run_count(store: Store, *, mode: str | None = None) -> int:
    from sqlalchemy import func, select

    from stockade.scanning.scan_tables import scan_runs

    q = select(func.count()).select_from(scan_runs)
    if mode:
        q = q.where(scan_runs.c.mode == mode)
    with store.connect() as conn:
        return int(conn.execute(q).scalar_one())


def image_digest(store: Store, reference: str) -> str | None:
    """The manifest digest a reference had when it was last scanned."""
    from sqlalchemy import select

    from stockade.scanning.scan_tables import scan_images

    with store.connect() as conn:
        row = conn.execute(
            select(scan_images.c.manifest_digest).where(scan_images.c.reference == reference)
        ).first()
    return row[0] if row else None


def image_state(store: Store, reference: str) -> ImageState | None:
    """The digest, advisory build time and counts of a reference's latest scan, if any."""
    from sqlalchemy import select

    from stockade.scanning.scan_tables import scan_images, scan_runs

    q = (
        select(scan_images.c.manifest_digest, scan_runs)
        .join(scan_runs, scan_runs.c.id == scan_images.c.last_run_id)
        .where(scan_images.c.reference == reference)
    )
    with store.connect() as conn:
        row = conn.execute(q).mappings().first()
    if row is None:
        return None
    return ImageState(
        digest=row["manifest_digest"],
        db_built=utc(row["db_built"]),
        counts={s: int(row[s]) for s in SEVERITIES},
        failed=bool(row["failed"]),
        coverage=coverage_of(row),
    )
