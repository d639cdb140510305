"""OSV range evaluation as the schema defines it (ossf/osv-schema, docs/schema.md, "Evaluation"):
``limit`` events bound where a range applies (``*`` is infinity, no limit means ``*``), and the
other events are applied in version order, the last applied deciding; at one version the
events keep the document's order (a timeline: ``fixed 1.5, introduced 1.5`` leaves 1.5
affected). Every evaluator of the matcher (the walk on parsed ranges, the walk on stored ranges,
the stored spans, and an import through the store to findings) is compared with a literal
transcription of the schema's pseudo-code on a table of cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stockade.scanning.advisories.model import EventKind, VersionRange
from stockade.scanning.advisories.spans import row_spans
from stockade.scanning.advisories.store import _sorted_events
from stockade.scanning.advisories.update import import_sources
from stockade.scanning.interface import Inventory, Package
from stockade.scanning.match_eval import parse_ranges, range_fix, stored_range_fix, stored_ranges
from stockade.scanning.matcher import Matcher
from stockade.scanning.versions import scheme_for
from stockade.scanning.versions.sortable import sortable_key
from stockade.store import Store

from .test_range_spans import span_answer

PYPI = scheme_for("pypi")
assert PYPI is not None


def spec_is_affected(v: str, events: list[tuple[str, str]]) -> bool:
    """The schema's ``IncludedInRanges`` for one range, line by line; ``sorted(range.events)``
    is a stable sort by version ("0" before every version): events at one version stay in the
    document's order (the schema does not reorder a timeline)."""
    key = PYPI.key

    def before_limits() -> bool:
        limits = [ver for kind, ver in events if kind == "limit"]
        if not limits:
            return True  # implicit "*"
        return any("*" in ver or key(v) < key(ver) for ver in limits)

    if not before_limits():
        return False
    ordered = sorted(
        (e for e in events if e[0] != "limit"),
        key=lambda e: (0,) if e == ("introduced", "0") else (1, key(e[1])),
    )
    vulnerable = False
    for kind, ver in ordered:
        if kind == "introduced" and (ver == "0" or key(v) >= key(ver)):
            vulnerable = True
        elif (kind == "fixed" and key(v) >= key(ver)) or (
            kind == "last_affected" and key(v) > key(ver)
        ):
            vulnerable = False
    return vulnerable


INTRO, F, L, LIM = "introduced", "fixed", "last_affected", "limit"
# (events in document order, {version: affected}); the affected column is what the schema's
# pseudo-code says (checked against spec_is_affected below, then every evaluator against it).
CASES: list[tuple[list[tuple[str, str]], dict[str, bool]]] = [
    # A fix and a new introduction at one version: applied in turn, 1.5 is affected.
    (
        [(INTRO, "0"), (F, "1.5"), (INTRO, "1.5"), (F, "2.0")],
        {"1.4": 1, "1.5": 1, "1.9": 1, "2.0": 0},
    ),
    # Introduced and fixed at one version (in that order): not affected there.
    (
        [(INTRO, "0"), (INTRO, "1.5"), (F, "1.5"), (F, "2.0")],
        {"1.4": 1, "1.5": 0, "1.9": 0, "2.0": 0},
    ),
    ([(INTRO, "1.0"), (LIM, "2.0")], {"0.5": 0, "1.0": 1, "1.5": 1, "2.0": 0, "3.0": 0}),
    # limit "*": no bound (it was rejected as a bad version and the record skipped).
    ([(INTRO, "1.0"), (LIM, "*")], {"0.5": 0, "1.0": 1, "99": 1}),
    ([(INTRO, "0"), (F, "1.0"), (LIM, "*")], {"0.5": 1, "1.0": 0}),
    # Several limits: below any of them. A limit is no fix: the walk goes on past it.
    (
        [(INTRO, "0"), (LIM, "1.0"), (INTRO, "2.0"), (LIM, "3.0")],
        {"0.5": 1, "1.5": 1, "2.5": 1, "3.0": 0},
    ),
    ([(INTRO, "1.0"), (LIM, "1.2"), (LIM, "*")], {"1.1": 1, "1.5": 1, "0.9": 0}),
    # A limit below a fix cuts the range short.
    ([(INTRO, "0"), (F, "2.0"), (LIM, "1.0")], {"0.5": 1, "1.0": 0, "1.5": 0, "2.0": 0}),
    ([(INTRO, "1.0"), (L, "1.5")], {"0.9": 0, "1.0": 1, "1.5": 1, "1.6": 0}),
    ([(INTRO, "1.0"), (L, "1.5"), (LIM, "1.2")], {"1.1": 1, "1.2": 0, "1.5": 0}),
    ([(INTRO, "0"), (L, "1.5"), (INTRO, "1.5")], {"1.0": 1, "1.5": 1, "2.0": 1}),
]


def _ids(case: tuple) -> str:
    return " ".join(f"{k}:{v}" for k, v in case[0])


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_every_evaluator_follows_the_schemas_pseudo_code(case) -> None:
    events, table = case
    assert {v: spec_is_affected(v, events) for v in table} == {v: bool(a) for v, a in table.items()}
    stored = [
        ["ECOSYSTEM", _sorted_events("pypi", VersionRange(type="ECOSYSTEM", events=tuple(
            (EventKind(k), v) for k, v in events
        )))]
    ]  # fmt: skip
    text = json.dumps(stored)
    parsed = parse_ranges(text, PYPI.key)
    decoded = stored_ranges(text, PYPI.key)
    spans = row_spans("pypi", stored, [])
    for v, want in table.items():
        key = PYPI.key(v)
        assert (range_fix(key, parsed) is not None) == bool(want), (v, "range_fix")
        assert (stored_range_fix(key, decoded, PYPI.key) is not None) == bool(want), (v, "stored")
        matched, _fix = span_answer(spans, v, sortable_key(PYPI, v) or b"")
        assert matched == bool(want), (v, "spans", spans)


def test_the_fix_is_the_fix_of_the_interval() -> None:
    stored = [["ECOSYSTEM", [[INTRO, "0"], [F, "1.5"], [INTRO, "1.5"], [F, "2.0"], [LIM, "*"]]]]
    text = json.dumps(stored)
    assert range_fix(PYPI.key("1.5"), parse_ranges(text, PYPI.key)) == "2.0"
    assert range_fix(PYPI.key("1.4"), parse_ranges(text, PYPI.key)) == "1.5"
    spans = row_spans("pypi", stored, [])
    assert span_answer(spans, "1.5", sortable_key(PYPI, "1.5") or b"") == (True, "2.0")


def test_an_osv_record_with_limits_imports_and_matches(sqlite_store: Store, tmp_path: Path) -> None:
    """End to end: ``limit: "*"`` made the importer reject the entry as a bad version; a limit
    was read as a fix without a version (the walk stopped there)."""
    record = {
        "schema_version": "1.6.0",
        "id": "PYSEC-0000-LIMIT",
        "modified": "2024-01-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "limited"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"limit": "*"}]},
                    {
                        "type": "ECOSYSTEM",
                        "events": [
                            {"introduced": "0"},
                            {"limit": "0.5"},
                            {"introduced": "0.7"},
                            {"limit": "0.9"},
                        ],
                    },
                ],
            },
            {
                "package": {"ecosystem": "PyPI", "name": "retimed"},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [
                            {"introduced": "0"},
                            {"fixed": "1.5"},
                            {"introduced": "1.5"},
                            {"fixed": "2.0"},
                        ],
                    }
                ],
            },
        ],
    }
    (tmp_path / "PYSEC-0000-LIMIT.json").write_text(json.dumps(record))
    (batch,) = import_sources(sqlite_store, [str(tmp_path)])
    assert batch.problems == []
    pkgs = [("limited", v) for v in ("0.4", "0.6", "0.8", "0.95", "1.0", "7.0")]
    pkgs += [("retimed", v) for v in ("1.4", "1.5", "2.0")]
    inv = Inventory(
        source="t",
        packages=tuple(Package(type="python", name=n, version=v) for n, v in pkgs),
    )
    got = {
        (f.details.package, f.details.installed_version, f.details.fixed_version)
        for f in Matcher(sqlite_store).run(inv).findings
    }
    assert got == {
        ("limited", "0.4", None),
        ("limited", "0.6", None),
        ("limited", "0.8", None),
        ("limited", "1.0", None),
        ("limited", "7.0", None),
        ("retimed", "1.4", "1.5"),
        ("retimed", "1.5", "2.0"),
    }


def test_rows_stored_with_the_old_reading_of_limits_get_their_spans_again(tmp_path: Path) -> None:
    """s16vuln_0001 marks a store holding rows with limit events; the first match after the
    upgrade computes their spans again (what the older tree stored said 1.5 was not affected)."""
    from sqlalchemy import select, text

    from stockade.scanning.advisories.model import Advisory, Affected, ImportBatch
    from stockade.scanning.advisories.spans import Span
    from stockade.scanning.advisories.store import _insert_spans, write_batches
    from stockade.scanning.advisory_tables import adv_affected, adv_meta, adv_spans
    from stockade.store import open_store

    events = ((INTRO, "0"), (LIM, "1.0"), (INTRO, "2.0"), (LIM, "3.0"))
    adv = Advisory(
        id="PYSEC-0000-OLD",
        source="osv",
        affected=(
            Affected(
                ecosystem="pypi",
                package="limited",
                ranges=(
                    VersionRange(
                        type="ECOSYSTEM", events=tuple((EventKind(k), v) for k, v in events)
                    ),
                ),
            ),
        ),
    )
    inv = Inventory(source="t", packages=(Package(type="python", name="limited", version="1.5"),))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    write_batches(store, [ImportBatch(source="s", kind="osv", advisories=[adv])])
    assert len(Matcher(store).run(inv).findings) == 1
    with store.begin() as conn:  # the older tree's spans: affected below 1.0 and from 2.0 to 3.0
        (pk,) = conn.execute(select(adv_affected.c.pk)).one()
        conn.execute(adv_spans.delete())
        k = {v: sortable_key(PYPI, v) for v in ("1.0", "2.0", "3.0")}
        _insert_spans(
            conn,
            [
                (pk, 1, "pypi", "limited", *Span(0, None, False, k["1.0"], False, None, None)),
                (pk, 1, "pypi", "limited", *Span(0, k["2.0"], True, k["3.0"], False, None, None)),
            ],
        )
        conn.execute(text("ALTER TABLE adv_sources DROP COLUMN reimport"))  # s17vuln_0001's
        conn.execute(
            text(
                "UPDATE alembic_version SET version_num = 's15vuln_0001'"
                " WHERE version_num = 's17vuln_0001'"
            )
        )
    assert Matcher(store).run(inv).findings == ()
    store.close()
    store = open_store(url)
    try:
        with store.connect() as conn:
            markers = dict(conn.execute(select(adv_meta.c.key, adv_meta.c.value)).all())
        assert markers["limits"] == "pending"
        assert len(Matcher(store).run(inv).findings) == 1
        with store.connect() as conn:
            markers = dict(conn.execute(select(adv_meta.c.key, adv_meta.c.value)).all())
        assert "limits" not in markers
    finally:
        store.close()


def _old_store(tmp_path: Path, docs: list[dict]) -> str:
    """A store at s16vuln_0001 (before adv_sources.reimport) holding ``docs`` imported by
    today's importer; the caller rewrites rows as the older tree stored them."""
    from alembic import command
    from sqlalchemy import create_engine

    from stockade.store.db import _alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "s16vuln_0001")
    engine.dispose()
    folder = tmp_path / "docs"
    folder.mkdir()
    for i, doc in enumerate(docs):
        (folder / f"{i}.json").write_text(json.dumps(doc))
    return url


def test_sources_an_earlier_release_stored_ambiguously_must_be_imported_again(
    tmp_path: Path,
) -> None:
    """Releases before session 16 stored introduced first at a tie, and
    ``introduced 0, fixed 1.5, introduced 1.5, fixed 2.0`` (1.5 to 2.0 affected) was stored
    as ``introduced 1.5, fixed 1.5`` (nothing affected from 1.5 to 2.0): the order is not in
    the store, so no migration can restore it. Session 16 stored the Ubuntu FIPS streams as one
    (real record UBUNTU-CVE-2022-4450): which row was the certified stream's is not in the
    store either. s17vuln_0001 finds such sources; db status, --check and the scan say to
    import them again; an import clears it; the FIPS rows stored the old way still match."""
    from datetime import timedelta

    from sqlalchemy import create_engine, text

    from stockade.scanning.advisories.freshness import db_info
    from stockade.scanning.advisories.update import import_sources
    from stockade.scanning.backend_adapters import check_db
    from stockade.scanning.interface import Distro
    from stockade.store import open_store
    from tests.scanning.scan_cli_support import run

    doc = {
        "id": "PYSEC-0000-TIE",
        "modified": "2026-01-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "retimed"},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [
                            {"introduced": "0"},
                            {"fixed": "1.5"},
                            {"introduced": "1.5"},
                            {"fixed": "2.0"},
                        ],
                    }
                ],
            }
        ],
    }
    url = _old_store(tmp_path, [doc])
    fips_record = Path(__file__).parent / "data" / "advisories" / "ubuntu-fips"
    store = open_store(url)  # migrates to the head: nothing to flag in an empty store
    ties_src = str(tmp_path / "docs")
    import_sources(store, [ties_src, str(fips_record)])
    store.close()
    engine = create_engine(url)
    with engine.begin() as conn:  # as the older trees stored them
        conn.execute(
            text("UPDATE adv_affected SET ranges = :r WHERE package = 'retimed'"),
            {
                "r": json.dumps(
                    [
                        [
                            "ECOSYSTEM",
                            [
                                ["introduced", "0"],
                                ["introduced", "1.5"],
                                ["fixed", "1.5"],
                                ["fixed", "2.0"],
                            ],
                        ]
                    ]
                )
            },
        )
        conn.execute(
            text(
                "UPDATE adv_affected SET package = substr(package, instr(package, '/') + 1)"
                " WHERE ecosystem LIKE 'ubuntu-fips:%'"
            )
        )
        conn.execute(
            text(
                "UPDATE adv_spans SET package = substr(package, instr(package, '/') + 1)"
                " WHERE ecosystem LIKE 'ubuntu-fips:%'"
            )
        )
        conn.execute(text("DELETE FROM adv_meta WHERE key = 'reimport'"))
        conn.execute(text("ALTER TABLE adv_sources DROP COLUMN reimport"))
        conn.execute(
            text(
                "UPDATE alembic_version SET version_num = 's16vuln_0001'"
                " WHERE version_num = 's17vuln_0001'"
            )
        )
    engine.dispose()
    store = open_store(url)
    try:
        info = check_db(store, max_age=timedelta(days=3650), allow_stale=False)
        assert len(info.warnings) == 2
        tie_line, fips_line = info.warnings
        assert (
            ties_src in tie_line
            and "1 of its affected entries has an introduced and a fixed" in tie_line
        )
        assert (
            str(fips_record) in fips_line
            and "4 of its Ubuntu FIPS entries were stored without their stream" in fips_line
        )
        assert "must be imported again" in fips_line
        result = run("db", "status", "--db", url, "--check")
        assert result.returncode == 3
        assert "must be imported again" in result.stdout
        # the FIPS rows stored by session 16 still answer, as they did then
        focal = Inventory(
            source="x",
            distro=Distro(id="ubuntu", version_id="20.04", fips_streams=("fips",)),
            packages=(Package(type="deb", name="openssl", version="1.1.1f-1ubuntu2.fips.7.1"),),
        )
        (f,) = Matcher(store).run(focal).findings
        assert f.details.fixed_version == "1.1.1f-1ubuntu2.fips.17"
        import_sources(store, [ties_src, str(fips_record)])
        assert [s.reimport for s in db_info(store).sources] == [None, None]
        (f,) = Matcher(store).run(focal).findings
        assert f.details.fix_state == "not-fixed"  # the certified stream's own answer
        inv = Inventory(
            source="t", packages=(Package(type="python", name="retimed", version="1.7"),)
        )
        assert len(Matcher(store).run(inv).findings) == 1
        result = run("db", "status", "--db", url, "--check")
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        store.close()
