"""Writing advisory batches to the project store (one transaction) and reading them back.

An import replaces the records of every source it names and leaves the others alone; the whole
import commits or nothing does, so a failure leaves the previous data intact. The build time
(``adv_meta.built_at``) is the time of the last successful import or update.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias, cast

from sqlalchemy import Connection, bindparam, delete, func, insert, or_, select, text, update

from stockade.model.redact import redact_text
from stockade.scanning.advisories.cvss import CvssError, is_v2, parse_vector
from stockade.scanning.advisories.model import Advisory, Cvss, ImportBatch, VersionRange
from stockade.scanning.advisories.spans import Span, row_spans
from stockade.scanning.advisory_tables import (
    adv_affected,
    adv_meta,
    adv_sources,
    adv_spans,
    adv_vulnerabilities,
)
from stockade.scanning.versions import VersionError, scheme_for
from stockade.store.db import Store

_CHUNK = 5_000
_LOOKUP_CHUNK = 400  # package names per IN (...) query, well under SQLite's variable limit


def write_batches(
    store: Store, batches: Sequence[ImportBatch], *, now: datetime | None = None
) -> None:
    """Store the batches, replacing earlier imports of the same sources, in one transaction."""
    at = now or datetime.now(UTC)
    with store.begin() as conn:
        if store.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7355609)"))  # one importer at a time
        for batch in batches:
            _write_batch(conn, batch, at)
        if any(a.source == "nvd" for b in batches for a in b.advisories):
            # The matcher looks scores up in NVD records only when the store holds some.
            conn.execute(delete(adv_meta).where(adv_meta.c.key == "nvd"))
            conn.execute(insert(adv_meta), [{"key": "nvd", "value": "1"}])
        conn.execute(delete(adv_meta).where(adv_meta.c.key.in_(("built_at", "generation"))))
        # The generation changes with every write, even one given the same build time: kept
        # matches of images (stockade.scanning.match_cache) are valid for one generation.
        conn.execute(
            insert(adv_meta),
            [
                {"key": "built_at", "value": at.isoformat()},
                {"key": "generation", "value": uuid.uuid4().hex},
            ],
        )


def _write_batch(conn: Connection, batch: ImportBatch, at: datetime) -> None:
    old = conn.execute(select(adv_sources.c.id).where(adv_sources.c.name == batch.source)).scalar()
    if old is not None:
        conn.execute(delete(adv_spans).where(adv_spans.c.source_id == old))
        conn.execute(delete(adv_affected).where(adv_affected.c.source_id == old))
        conn.execute(delete(adv_vulnerabilities).where(adv_vulnerabilities.c.source_id == old))
        conn.execute(delete(adv_sources).where(adv_sources.c.id == old))
    source_id = (conn.execute(select(func.max(adv_sources.c.id))).scalar() or 0) + 1
    conn.execute(
        insert(adv_sources),
        [
            {
                "id": source_id,
                "name": batch.source,
                "kind": batch.kind,
                "imported_at": at,
                "records": len(batch.advisories),
                "problems": len(batch.problems),
            }
        ],
    )
    vuln_pk = conn.execute(select(func.max(adv_vulnerabilities.c.pk))).scalar() or 0
    aff_pk = conn.execute(select(func.max(adv_affected.c.pk))).scalar() or 0
    vrows: list[dict[str, Any]] = []
    arows: list[dict[str, Any]] = []
    srows: list[tuple[Any, ...]] = []
    # Rows are written in (ecosystem, package) order so that the rows of one package share disk
    # pages: a bulk lookup then reads a few pages per package instead of one page per row.
    for adv in sorted(batch.advisories, key=_first_key):
        vuln_pk += 1
        vrows.append(_vuln_row(adv, vuln_pk, source_id))
        for a in adv.affected:
            aff_pk += 1
            ranges = [[r.type, _sorted_events(a.ecosystem, r)] for r in a.ranges]
            srows += _span_rows(aff_pk, source_id, a.ecosystem, a.package, ranges, a.versions)
            arows.append(
                {
                    "pk": aff_pk,
                    "vuln_pk": vuln_pk,
                    "source_id": source_id,
                    "ecosystem": a.ecosystem,
                    "package": a.package,
                    "ranges": json.dumps(ranges),
                    "versions": json.dumps(list(a.versions)),
                    "fix_state": str(a.fix_state),
                    "fixed_version": a.fixed_version,
                    "severity": a.severity,
                }
            )
        if len(vrows) >= _CHUNK:
            _flush(conn, vrows, arows, srows)
    _flush(conn, vrows, arows, srows)


def _first_key(adv: Advisory) -> tuple[str, str]:
    return (adv.affected[0].ecosystem, adv.affected[0].package) if adv.affected else ("", "")


def _sorted_events(ecosystem: str, r: VersionRange) -> list[list[str]]:
    """Events in version order, as OSV evaluation requires; sorted once here so the matcher
    only walks them."""
    return _sort_events(ecosystem, [[str(k), v] for k, v in r.events])


def _sort_events(ecosystem: str, events: list[list[str]]) -> list[list[str]]:
    """``introduced "0"`` first, then by version; events at one version keep the document's
    order (the timeline OSV's events are: ``fixed 1.5, introduced 1.5`` leaves 1.5 affected,
    as the schema's evaluation applies them in turn); ``limit`` events, which bound the range
    rather than take part in the walk (a ``*`` one has no version), last."""
    scheme = scheme_for(ecosystem)
    if scheme is None:
        return events

    def order(e: list[str]) -> tuple[Any, ...]:
        if e[0] == "introduced" and e[1] == "0":
            return (0,)
        if e[0] == "limit":
            return (2,)
        return (1, scheme.key(e[1]))

    return sorted(events, key=order)


def _flush(
    conn: Connection,
    vrows: list[dict[str, Any]],
    arows: list[dict[str, Any]],
    srows: list[tuple[Any, ...]],
) -> None:
    if vrows:
        conn.execute(insert(adv_vulnerabilities), vrows)
    if arows:
        conn.execute(insert(adv_affected), arows)
    if srows:
        _insert_spans(conn, srows)
    vrows.clear()
    arows.clear()
    srows.clear()


_SPAN_COLUMNS = ("affected_pk", "source_id", "ecosystem", "package", *Span._fields)


def _span_rows(
    pk: int, source_id: int, ecosystem: str, package: str, ranges: Any, versions: Sequence[str]
) -> list[tuple[Any, ...]]:
    return [
        (pk, source_id, ecosystem, package, *span)
        for span in row_spans(ecosystem, ranges, versions)
    ]


def _insert_spans(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Plain tuples through the driver's executemany: SQLAlchemy's per-parameter processing
    of the dict rows was most of the spans' share of an import."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    columns = ", ".join(_SPAN_COLUMNS)
    marks = ", ".join([mark] * len(_SPAN_COLUMNS))
    conn.exec_driver_sql(f"INSERT INTO adv_spans ({columns}) VALUES ({marks})", rows)


# The ecosystems whose versions apk compares: their stored order and span keys changed when a
# component with a leading zero became a decimal fraction (session 14).
APK_ECOSYSTEMS = "alpine:%", "wolfi", "chainguard"


# What ensure_spans does, left by the migrations.
_MARKERS = ("spans", "limits", "cvss", "reimport")


def ensure_spans(store: Store) -> None:
    """Bring derived data of records an older tree stored up to date, once, before the first
    match after the migration that asked for it (markers in ``adv_meta``):

    - ``spans``: ``pending`` (imported before ``adv_spans`` existed) or ``apk`` (apk rows stored
      before the leading-zero order): the rows' events are sorted again and their spans
      computed again;
    - ``limits = pending``: rows with OSV ``limit`` events, stored when a limit was read as a
      fix without a version (session 16): their spans are computed again (limits are sorted
      last);
    - ``cvss = pending``: records whose only scored-to-be vector was CVSS v4.0 (stored unscored)
      get their headline score;
    - ``reimport = pending``: the sources whose rows cannot be brought up to date from what is
      stored get the reason in ``adv_sources.reimport`` (see :func:`flag_reimports`).

    The generation changes, so kept matches of images are not reused."""
    markers = select(adv_meta.c.key).where(adv_meta.c.key.in_(_MARKERS))
    with store.connect() as conn:
        if conn.execute(markers).first() is None:
            return
    with store.begin() as conn:
        if store.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7355609)"))  # as an import does
        found = dict(
            conn.execute(
                select(adv_meta.c.key, adv_meta.c.value).where(adv_meta.c.key.in_(_MARKERS))
            ).all()
        )
        if not found:  # another process refreshed them meanwhile
            return
        if "spans" in found:
            fill_spans(conn, only="apk" if found["spans"] == "apk" else None)
        if "limits" in found and found.get("spans") != "pending":
            fill_spans(conn, only="limits")
        if "cvss" in found:
            _refresh_cvss(conn)
        if "reimport" in found:
            flag_reimports(conn)
        conn.execute(delete(adv_meta).where(adv_meta.c.key.in_((*_MARKERS, "generation"))))
        conn.execute(insert(adv_meta), [{"key": "generation", "value": uuid.uuid4().hex}])


def fill_spans(conn: Connection, *, only: str | None = None) -> None:
    """(Re)compute the spans of every stored affected row (``only="apk"``: of the apk
    ecosystems; ``only="limits"``: with a ``limit`` event) from its stored ranges, their events
    sorted again by today's order: for stores imported before ``adv_spans`` existed or before
    that order or the evaluation changed (see :func:`ensure_spans`)."""
    rows = select(adv_affected.c.pk)
    if only == "apk":
        eco = adv_affected.c.ecosystem
        rows = rows.where(or_(eco.like(APK_ECOSYSTEMS[0]), eco.in_(APK_ECOSYSTEMS[1:])))
    elif only == "limits":
        rows = rows.where(adv_affected.c.ranges.like('%"limit"%'))
    conn.execute(delete(adv_spans).where(adv_spans.c.affected_pk.in_(rows.scalar_subquery())))
    q = (
        select(
            adv_affected.c.pk,
            adv_affected.c.source_id,
            adv_affected.c.ecosystem,
            adv_affected.c.package,
            adv_affected.c.ranges,
            adv_affected.c.versions,
        )
        .where(adv_affected.c.pk.in_(rows.scalar_subquery()))
        .order_by(adv_affected.c.pk)
    )
    srows: list[tuple[Any, ...]] = []
    resorted: list[dict[str, Any]] = []
    for pk, source_id, eco, package, text_ranges, versions in conn.execute(q).all():
        ranges = json.loads(text_ranges)
        ordered = [[t, _resort(eco, events)] for t, events in ranges]
        if ordered != ranges:
            resorted.append({"row_pk": pk, "ranges": json.dumps(ordered)})
        srows += _span_rows(pk, source_id, eco, package, ordered, json.loads(versions))
        if len(srows) >= _CHUNK:
            _insert_spans(conn, srows)
            srows.clear()
    if srows:
        _insert_spans(conn, srows)
    if resorted:
        conn.execute(
            update(adv_affected)
            .where(adv_affected.c.pk == bindparam("row_pk"))
            .values(ranges=bindparam("ranges")),
            resorted,
        )


def flag_reimports(conn: Connection) -> None:
    """Write why each source an earlier release imported must be imported again, where its rows
    cannot be brought up to date from what is stored (``adv_sources.reimport``):

    - a range with an ``introduced`` stored before a ``fixed`` or ``last_affected`` at the same
      version: releases before session 16 stored ``introduced`` first at a tie whatever the
      document's order, and ``introduced 1.5, fixed 1.5`` (1.5 not affected, nor anything up to
      the next event) and ``fixed 1.5, introduced 1.5`` (affected from 1.5 on) were stored
      alike, so the walk may miss a whole interval. (A tie stored fixed-first was imported in
      the document's order.)
    - Ubuntu FIPS entries under the bare package name (session 16 kept the three streams as
      one; the certified and preview streams' entries are stored alike)."""
    ties: dict[int, int] = {}
    fips: dict[int, int] = {}
    q = select(
        adv_affected.c.source_id,
        adv_affected.c.ecosystem,
        adv_affected.c.package,
        adv_affected.c.ranges,
    )
    for source_id, eco, package, text_ranges in conn.execute(q):
        if eco.startswith("ubuntu-fips:") and "/" not in package:
            fips[source_id] = fips.get(source_id, 0) + 1
        if '"introduced"' in text_ranges and _tie_stored_introduced_first(eco, text_ranges):
            ties[source_id] = ties.get(source_id, 0) + 1
    reasons: dict[int, list[str]] = {}
    for source_id, n in ties.items():
        reasons.setdefault(source_id, []).append(
            f"{n} of its affected entries {'has' if n == 1 else 'have'} an introduced and a"
            " fixed (or last_affected) event at one version, whose order in the document an"
            " earlier release did not keep"
        )
    for source_id, n in fips.items():
        reasons.setdefault(source_id, []).append(
            f"{n} of its Ubuntu FIPS entries {'was' if n == 1 else 'were'} stored without"
            f" {'its' if n == 1 else 'their'} stream (fips, fips-updates, fips-preview) by an"
            " earlier release"
        )
    if reasons:
        conn.execute(
            update(adv_sources)
            .where(adv_sources.c.id == bindparam("source"))
            .values(reimport=bindparam("why")),
            [{"source": k, "why": "; ".join(v)} for k, v in sorted(reasons.items())],
        )


def _tie_stored_introduced_first(ecosystem: str, text_ranges: str) -> bool:
    scheme = scheme_for(ecosystem)
    for _type, events in json.loads(text_ranges):
        for i, (kind, v) in enumerate(events):
            if kind != "introduced" or v == "0":
                continue
            for later, w in events[i + 1 :]:
                if later not in ("fixed", "last_affected"):
                    continue
                if v == w:
                    return True
                if scheme is not None:
                    try:
                        if scheme.key(v) == scheme.key(w):
                            return True
                    except VersionError:
                        continue
    return False


def _resort(ecosystem: str, events: list[list[str]]) -> list[list[str]]:
    """Stored events sorted again; a version the scheme rejects leaves them as stored (the
    matcher reports that row as it did)."""
    try:
        return _sort_events(ecosystem, events)
    except VersionError:
        return events


def _refresh_cvss(conn: Connection) -> None:
    """Score the v4.0 vectors kept unscored in ``cvss_extra`` of records without a headline."""
    q = select(adv_vulnerabilities.c.pk, adv_vulnerabilities.c.cvss_extra).where(
        adv_vulnerabilities.c.cvss_score.is_(None),
        adv_vulnerabilities.c.cvss_extra.like("%CVSS:4.0/%"),
    )
    changed = []
    for pk, extra in conn.execute(q).all():
        kept: list[Cvss] = []
        for c in json.loads(extra):
            vector = c.get("vector") if isinstance(c, dict) else None
            if not isinstance(vector, str):
                continue
            try:
                kept.append(parse_vector(vector))
            except CvssError:
                kept.append(
                    Cvss(version=str(c.get("version")), vector=vector, score=c.get("score"))
                )
        columns = _cvss_columns(kept)
        if columns["cvss_score"] is not None:
            changed.append({"row_pk": pk, **columns})
    if changed:
        conn.execute(
            update(adv_vulnerabilities)
            .where(adv_vulnerabilities.c.pk == bindparam("row_pk"))
            .values(
                cvss_vector=bindparam("cvss_vector"),
                cvss_score=bindparam("cvss_score"),
                cvss_extra=bindparam("cvss_extra"),
            ),
            changed,
        )


def scores_of_ids(conn: Connection, ids: Iterable[str]) -> dict[str, tuple[str, float]]:
    """The headline CVSS (vector, score) of the NVD record of each of ``ids`` that has one
    (nothing when no NVD record was ever stored)."""
    out: dict[str, tuple[str, float]] = {}
    if conn.execute(select(adv_meta.c.value).where(adv_meta.c.key == "nvd")).first() is None:
        return out
    wanted = sorted(set(ids))
    dbapi = _sqlite_dbapi(conn)
    v = adv_vulnerabilities.c
    for i in range(0, len(wanted), _RECORD_CHUNK):
        chunk = wanted[i : i + _RECORD_CHUNK]
        if dbapi is not None:  # the sqlite3 cursor, as record_rows reads
            cur = dbapi.cursor()
            try:
                cur.execute(_SQLITE_SCORES + _marks(len(chunk)), chunk)
                rows = cur.fetchall()
            finally:
                cur.close()
        else:
            q = select(v.vuln_id, v.cvss_vector, v.cvss_score).where(
                v.vuln_id.in_(chunk), v.data_source == "nvd", v.cvss_score.is_not(None)
            )
            rows = conn.execute(q).all()
        for vid, vector, score in rows:
            old = out.get(vid)
            if old is None or (not is_v2(vector), score) > (not is_v2(old[0]), old[1]):
                out[vid] = (vector, score)  # NVD records of one CVE in two sources
    return out


def _cvss_columns(cvss: Sequence[Cvss]) -> dict[str, Any]:
    """The headline CVSS is the newest scored version (v4.0, v3.x, v2); the rest are kept for
    reports."""
    scored = sorted((c for c in cvss if c.score is not None), key=lambda c: c.version, reverse=True)
    head = scored[0] if scored else None
    return {
        "cvss_vector": head.vector if head else None,
        "cvss_score": head.score if head else None,
        "cvss_extra": json.dumps(
            [
                {"version": c.version, "vector": c.vector, "score": c.score}
                for c in cvss
                if c is not head
            ]
        ),
    }


def _vuln_row(adv: Advisory, pk: int, source_id: int) -> dict[str, Any]:
    return {
        "pk": pk,
        "source_id": source_id,
        "vuln_id": adv.id,
        "data_source": adv.source,
        "aliases": json.dumps(list(adv.aliases)),
        "upstream": json.dumps(list(adv.upstream)),
        # free text and links from a third party's document pass the masking gate like every
        # string stored (an advisory quoting a card number or an SSN in its example)
        "summary": redact_text(adv.summary) if adv.summary else adv.summary,
        "severity": adv.severity,
        **_cvss_columns(adv.cvss),
        "published": adv.published,
        "modified": adv.modified,
        "refs": redact_text(json.dumps(list(adv.references))),
    }


_LOOKUP_COLUMNS = (
    adv_affected.c.ecosystem,
    adv_affected.c.package,
    adv_affected.c.ranges,
    adv_affected.c.versions,
    adv_affected.c.fix_state,
    adv_affected.c.fixed_version,
    adv_affected.c.severity,
    adv_vulnerabilities.c.vuln_id,
    adv_vulnerabilities.c.data_source,
    adv_vulnerabilities.c.aliases,
    adv_vulnerabilities.c.summary,
    adv_vulnerabilities.c.severity,
    adv_vulnerabilities.c.cvss_vector,
    adv_vulnerabilities.c.cvss_score,
    adv_vulnerabilities.c.refs,
    adv_vulnerabilities.c.upstream,
)


# One affected row joined with its record: the _LOOKUP_COLUMNS in order, typed as the tables
# declare them (the row the reference matcher and the benchmark's naive baseline read).
LookupRow: TypeAlias = tuple[
    str,  # 0 ecosystem
    str,  # 1 package
    str,  # 2 ranges (JSON)
    str,  # 3 versions (JSON)
    str,  # 4 fix_state
    str | None,  # 5 fixed_version
    str | None,  # 6 affected severity
    str,  # 7 vuln_id
    str,  # 8 data_source
    str,  # 9 aliases (JSON)
    str,  # 10 summary
    str | None,  # 11 record severity
    str | None,  # 12 cvss_vector
    float | None,  # 13 cvss_score
    str,  # 14 refs (JSON)
    str,  # 15 upstream (JSON)
]


# The matcher reads in two steps: the affected rows of the inventory's packages, with only what
# a comparison needs; then the records of the rows that matched (most rows of a package do not).
AffectedRow: TypeAlias = tuple[
    str,  # 0 package
    str,  # 1 ranges (JSON)
    str,  # 2 versions (JSON)
    str,  # 3 fix_state
    str | None,  # 4 affected (distribution) severity
    int,  # 5 vuln_pk
    int,  # 6 pk
]
RecordRow: TypeAlias = tuple[
    int,  # 0 pk
    str,  # 1 vuln_id
    str,  # 2 data_source
    str,  # 3 aliases (JSON)
    str,  # 4 summary
    str | None,  # 5 record severity
    str | None,  # 6 cvss_vector
    float | None,  # 7 cvss_score
    str,  # 8 refs (JSON)
    str,  # 9 upstream (JSON)
]
_AFFECTED_COLUMNS = (
    adv_affected.c.package,
    adv_affected.c.ranges,
    adv_affected.c.versions,
    adv_affected.c.fix_state,
    adv_affected.c.severity,
    adv_affected.c.vuln_pk,
    adv_affected.c.pk,
)
_RECORD_COLUMNS = (
    adv_vulnerabilities.c.pk,
    adv_vulnerabilities.c.vuln_id,
    adv_vulnerabilities.c.data_source,
    adv_vulnerabilities.c.aliases,
    adv_vulnerabilities.c.summary,
    adv_vulnerabilities.c.severity,
    adv_vulnerabilities.c.cvss_vector,
    adv_vulnerabilities.c.cvss_score,
    adv_vulnerabilities.c.refs,
    adv_vulnerabilities.c.upstream,
)
_RECORD_CHUNK = 900  # record keys per IN (...) query


def affected_rows(
    conn: Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], list[AffectedRow]]:
    """The affected rows of each (ecosystem, package) key that has any, in bulk: one query per
    ecosystem and chunk of package names."""
    by_eco: dict[str, set[str]] = {}
    for eco, pkg in keys:
        by_eco.setdefault(eco, set()).add(pkg)
    out: dict[tuple[str, str], list[AffectedRow]] = {}
    for eco, rows in _chunked_reads(conn, by_eco):
        for row in rows:
            key = (eco, row[0])
            found = out.get(key)
            if found is None:
                out[key] = [row]
            else:
                found.append(row)
    return out


def _chunked_reads(
    conn: Connection, by_eco: dict[str, set[str]]
) -> Iterator[tuple[str, list[AffectedRow]]]:
    dbapi = _sqlite_dbapi(conn)
    for eco, names in by_eco.items():
        ordered = sorted(names)
        for i in range(0, len(ordered), _LOOKUP_CHUNK):
            chunk = ordered[i : i + _LOOKUP_CHUNK]
            if dbapi is not None:
                # The sqlite3 cursor's rows are already the tuples the matcher reads, without
                # SQLAlchemy's per-row processing (a fifth of the lookup on 36k rows).
                cur = dbapi.cursor()
                try:
                    cur.execute(_SQLITE_AFFECTED + _marks(len(chunk)), [eco, *chunk])
                    yield eco, cur.fetchall()
                finally:
                    cur.close()
                continue
            q = (
                select(*_AFFECTED_COLUMNS)
                .where(adv_affected.c.ecosystem == eco, adv_affected.c.package.in_(chunk))
                .order_by(adv_affected.c.pk)  # a package's rows in pk order, as SQLite's index
            )
            yield eco, [cast(AffectedRow, tuple(r)) for r in conn.execute(q)]


def record_rows(conn: Connection, pks: Iterable[int]) -> dict[int, RecordRow]:
    """The records (vulnerability rows) with these primary keys, by key."""
    ordered = sorted(set(pks))
    out: dict[int, RecordRow] = {}
    dbapi = _sqlite_dbapi(conn)
    for i in range(0, len(ordered), _RECORD_CHUNK):
        chunk = ordered[i : i + _RECORD_CHUNK]
        if dbapi is not None:
            cur = dbapi.cursor()
            try:
                cur.execute(_SQLITE_RECORDS + _marks(len(chunk)), chunk)
                rows: list[RecordRow] = cur.fetchall()
            finally:
                cur.close()
        else:
            q = select(*_RECORD_COLUMNS).where(adv_vulnerabilities.c.pk.in_(chunk))
            rows = [cast(RecordRow, tuple(r)) for r in conn.execute(q)]
        for row in rows:
            out[row[0]] = row
    return out


def affected_rows_by_pk(conn: Connection, pks: Iterable[int]) -> dict[int, AffectedRow]:
    """The affected rows with these primary keys, by key (the rows a span query left to Python:
    few, so read through SQLAlchemy)."""
    ordered = sorted(set(pks))
    out: dict[int, AffectedRow] = {}
    for i in range(0, len(ordered), _RECORD_CHUNK):
        q = select(*_AFFECTED_COLUMNS).where(adv_affected.c.pk.in_(ordered[i : i + _RECORD_CHUNK]))
        for r in conn.execute(q):
            row = cast(AffectedRow, tuple(r))
            out[row[6]] = row
    return out


_MMAP_BYTES = 1 << 30  # address space only: SQLite maps at most the file's size


def _sqlite_dbapi(conn: Connection) -> Any:
    """The sqlite3 connection under a SQLite store's connection (None for other databases)."""
    if conn.dialect.name != "sqlite":
        return None
    conn.exec_driver_sql("PRAGMA cache_size=-16384")  # 16 MiB: a big inventory reads many pages
    # Pages read through a memory map rather than one read() each (the matcher's queries touch
    # tens of thousands of scattered pages: a tenth of their time in system calls).
    conn.exec_driver_sql(f"PRAGMA mmap_size={_MMAP_BYTES}")
    return conn.connection.dbapi_connection


def _marks(n: int) -> str:
    return f"({', '.join('?' * n)})"


def _column_list(columns: Sequence[Any]) -> str:
    return ", ".join(f"{c.table.name}.{c.name}" for c in columns)


_SQLITE_AFFECTED = (
    f"SELECT {_column_list(_AFFECTED_COLUMNS)} FROM adv_affected "
    "WHERE adv_affected.ecosystem = ? AND adv_affected.package IN "
)
_SQLITE_SCORES = (
    "SELECT vuln_id, cvss_vector, cvss_score FROM adv_vulnerabilities "
    "WHERE data_source = 'nvd' AND cvss_score IS NOT NULL AND vuln_id IN "
)
_SQLITE_RECORDS = (
    f"SELECT {_column_list(_RECORD_COLUMNS)} FROM adv_vulnerabilities "
    "WHERE adv_vulnerabilities.pk IN "
)


# One row of an installed version's span query: the RecordRow's columns (so the row serves as
# its record), then the probe's index, the span's range position (-1: the row is evaluated in
# Python, its AffectedRow read by ``affected_rows_by_pk``) and fix, and the affected row's pk,
# fix state and (distribution) severity. Positions after the record's: see ``HIT_PROBE``...
SpanHit: TypeAlias = tuple[Any, ...]
HIT_PROBE, HIT_SEQ, HIT_FIX, HIT_PK, HIT_FIX_STATE, HIT_SEVERITY = range(10, 16)
_SPAN_SELECT = (
    "SELECT "
    + ", ".join(f"v.{c.name}" for c in _RECORD_COLUMNS)
    + ", t.i, s.seq, s.fix, a.pk, a.fix_state, a.severity"
    " FROM {probes} JOIN adv_affected a ON a.pk = s.affected_pk"
    " JOIN adv_vulnerabilities v ON v.pk = a.vuln_pk"
    " WHERE (s.exact IS NULL"
    " AND (s.lo IS NULL OR s.lo < t.k OR (s.lo_in AND s.lo = t.k))"
    " AND (s.hi IS NULL OR t.k < s.hi OR (s.hi_in AND t.k = s.hi)))"
    " OR s.exact = t.ver"
)
# SQLite: the probes drive the join (CROSS JOIN keeps that order), each through the key index.
_SQLITE_SPANS = _SPAN_SELECT.replace(
    "{probes}",
    "t CROSS JOIN adv_spans s ON s.ecosystem = ? AND s.package = t.name",
)
_PG_SPANS = _SPAN_SELECT.replace(
    "{probes}", "t JOIN adv_spans s ON s.ecosystem = %s AND s.package = t.name"
)
_SPAN_CHUNK = 400  # probes per query (four parameters each)


def span_hits(
    conn: Connection, ecosystem: str, probes: Sequence[tuple[int, str, bytes, str]]
) -> list[SpanHit]:
    """The rows whose spans contain each probe (index, package, version key bytes, version text)
    of one ecosystem, with their records; unkeyed rows (seq -1) come back for every probe of
    their package. A row may come once per matching range (the lowest seq is the answer)."""
    dbapi = _sqlite_dbapi(conn)
    out: list[SpanHit] = []
    for n in range(0, len(probes), _SPAN_CHUNK):
        chunk = probes[n : n + _SPAN_CHUNK]
        params: list[Any] = [x for probe in chunk for x in probe]
        if dbapi is not None:
            values = ", ".join(["(?, ?, ?, ?)"] * len(chunk))
            sql = f"WITH t(i, name, k, ver) AS (VALUES {values}) {_SQLITE_SPANS}"
            cur = dbapi.cursor()
            try:
                cur.execute(sql, [*params, ecosystem])
                out += cur.fetchall()
            finally:
                cur.close()
            continue
        values = ", ".join(["(%s::integer, %s::text, %s::bytea, %s::text)"] * len(chunk))
        sql = f"WITH t(i, name, k, ver) AS (VALUES {values}) {_PG_SPANS}"
        out += [tuple(r) for r in conn.exec_driver_sql(sql, (*params, ecosystem))]
    return out


def ecosystems_with_data(conn: Connection, ecosystems: Iterable[str]) -> set[str]:
    """Which of these ecosystems have at least one affected-package row (one indexed probe each):
    a package of an ecosystem without any row was not checked, whatever the matcher found."""
    found = set()
    for eco in sorted(set(ecosystems)):
        probe = select(adv_affected.c.ecosystem).where(adv_affected.c.ecosystem == eco).limit(1)
        if conn.execute(probe).first() is not None:
            found.add(eco)
    return found
