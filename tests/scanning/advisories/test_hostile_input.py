"""Hostile or malformed documents never crash an importer: every one ends as advisories and/or
per-record problems, and what is accepted can be stored. Documents are random JSON, and real
records with random parts replaced."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockade.scanning.advisories.model import ImportBatch
from stockade.scanning.advisories.reader import convert_document
from stockade.scanning.advisories.store import write_batches
from stockade.store import Store

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def _paths(doc: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _replace(doc: object, path: tuple, value: object) -> object:
    if not path:
        return value
    head, *rest = path
    copy = json.loads(json.dumps(doc))
    copy[head] = _replace(copy[head], tuple(rest), value)
    return copy


def _samples(advisories: Path) -> list[object]:
    files = [
        advisories / "osv-samples" / "PYSEC-2023-74.json",
        advisories / "osv-samples" / "GHSA-9v2f-6vcg-3hgv.json",
        advisories / "osv-samples" / "ghsa-maven_greater_than.osv.json",
        advisories / "debian-tracker" / "debian_security_tracker_excerpt.json",
        advisories / "alpine-secfixes" / "CVE-2016-2176.alpine.json",
    ]
    secdb = {
        "distroversion": "v3.4",
        "reponame": "main",
        "packages": [{"pkg": {"name": "openssl", "secfixes": {"1.0.2h-r0": ["CVE-2016-2176"]}}}],
    }
    return [json.loads(f.read_text()) for f in files] + [secdb]


def test_random_documents(advisories_dir: Path) -> None:
    @settings(max_examples=300, deadline=None)
    @given(json_values)
    def check(doc: object) -> None:
        _kind, advisories, problems = convert_document(doc, "x.json")
        assert advisories or problems or doc in ({}, [])

    check()


def test_real_records_with_a_part_replaced(advisories_dir: Path, sqlite_store: Store) -> None:
    samples = _samples(advisories_dir)

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.sampled_from(samples), st.data(), json_values)
    def check(doc: object, data: st.DataObject, value: object) -> None:
        path = data.draw(st.sampled_from(_paths(doc)))
        mutated = _replace(doc, path, value)
        _kind, advisories, _problems = convert_document(mutated, "CVE-2016-2176.alpine.json")
        if advisories:  # what was accepted can be stored
            write_batches(
                sqlite_store, [ImportBatch(source="fuzz", kind="osv", advisories=advisories)]
            )

    check()
