"""``ConnectionRecord.json_line`` (the line ``sensor --format json`` writes without the store) is
``json.dumps(to_dict())`` to the byte: masked the same way, escaped the same way."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.identity import Directory
from stockade.lab.http_capture import write_http_capture
from stockade.model.resource import ResourceRef
from stockade.network.analysis import Inspectors
from stockade.network.connection import (
    ConnectionRecord,
    Hit,
    _iso,
    _iso_reference,
    event_kinds,
    events_for,
    new_record,
    peer_json_parts,
)
from stockade.network.interface import DlpMatch, TlsInfo
from stockade.network.recorder import Recorder
from stockade.network.sensor import run_pcap
from stockade.network.tls_policy import TlsPolicy

CARD, SSN = "4111 1111 1111 1111", "536-22-8401"
_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from([CARD, SSN, f"/pay/{CARD}", 'q"\\\n\x00', "lone \udcff", "\U0001f600", ""]),
)
_REF = st.builds(
    ResourceRef,
    kind=st.sampled_from(["external", "pod", f"k{SSN}"]),
    name=_TEXT,
    namespace=st.none() | _TEXT,
    digest=st.none() | _TEXT,
    labels=st.lists(st.tuples(_TEXT, _TEXT), max_size=2).map(tuple),
)
_HIT = st.builds(
    Hit,
    direction=st.sampled_from(["client", "server"]),
    match=st.builds(
        DlpMatch,
        sensor=st.sampled_from(["dlp.payment_card", "dlp.us_ssn"]),
        masked=_TEXT,
        start=st.integers(0, 1 << 20),
        end=st.integers(0, 1 << 20),
        confidence=st.floats(0, 1),
    ),
)
_TLS = st.builds(
    TlsInfo,
    version=st.sampled_from(["TLS1.2", "TLS1.3", "SSL3.0"]),
    sni=st.none() | _TEXT,
    alpn=st.lists(_TEXT, max_size=2).map(tuple),
    cipher=st.none() | _TEXT,
)
_RECORD = st.builds(
    ConnectionRecord,
    id=st.sampled_from(["run-1", "02feaa70-5"]),  # its own ids: not masked (to_dict)
    start=st.floats(0, 4e9),
    end=st.floats(0, 4e9),
    transport=st.sampled_from(["tcp", "udp", f"tcp{CARD}"]),
    ip_version=st.sampled_from([4, 6]),
    client_ip=st.sampled_from(["10.0.0.1", "fd00::1", SSN]),
    client_port=st.integers(0, 65535),
    server_ip=_TEXT,
    server_port=st.integers(0, 65535),
    client=_REF,
    server=_REF,
    protocol=_TEXT,
    encrypted=st.booleans(),
    upgrade=st.none() | _TEXT,
    tls=st.none() | _TLS,
    bytes_to_server=st.integers(0, 1 << 40),
    bytes_to_client=st.integers(0, 1 << 40),
    packets_to_server=st.integers(0, 1 << 20),
    packets_to_client=st.integers(0, 1 << 20),
    flags_client=_TEXT,
    flags_server=st.sampled_from(["SAPF", ""]),
    state=st.sampled_from(["closed", "reset", f"x {CARD}"]),
    gaps=st.integers(0, 9),
    inspected=st.integers(0, 1 << 20),
    hits=st.lists(_HIT, max_size=2).map(tuple),
    details=st.lists(st.tuples(_TEXT, _TEXT), max_size=3).map(tuple),
)


@settings(max_examples=200, deadline=None)
@given(rec=_RECORD)
def test_the_line_is_json_dumps_of_to_dict(rec: ConnectionRecord) -> None:
    line = rec.json_line()
    assert line == json.dumps(rec.to_dict())
    assert CARD not in line and SSN not in line


@settings(max_examples=100, deadline=None)
@given(rec=_RECORD)
def test_a_record_built_by_its_slots_is_the_record_its_init_builds(rec: ConnectionRecord) -> None:
    values = [getattr(rec, f.name) for f in dataclasses.fields(ConnectionRecord)]
    built = new_record(*values)
    assert built == rec and hash(built) == hash(rec)
    assert built.json_line() == rec.json_line() and repr(built) == repr(rec)


def test_the_lines_of_a_capture_are_json_dumps_of_to_dict(tmp_path: Path) -> None:
    cap = write_http_capture(tmp_path / "http.pcap", flows=120)
    run = run_pcap(cap.path, inspectors=Inspectors.default(), identities=Directory())
    assert len(run.records) == 120 and any(r.hits for r in run.records)
    for rec in run.records:
        assert rec.json_line() == json.dumps(rec.to_dict())


_STAMP = st.one_of(
    st.floats(min_value=-1e9, max_value=253_402_300_798, allow_nan=False),
    st.builds(
        lambda s, f: s + f,
        st.integers(0, 4_000_000_000),
        st.sampled_from([0.0, 5e-7, 0.9999995, 0.9999994999, 1.5e-6, 2.5e-6, 0.5]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(stamps=st.lists(_STAMP, min_size=10, max_size=10))
def test_the_time_text_is_datetimes(stamps: list[float]) -> None:
    """Ten times a draw (3,000 in all): a draw costs more than the check of one."""
    for ts in stamps:
        assert _iso(ts) == _iso_reference(ts), ts


@settings(max_examples=200, deadline=None)
@given(rec=_RECORD, minimum=st.sampled_from(["TLS1.0", "TLS1.2", "TLS1.3"]))
def test_the_counted_event_kinds_are_those_of_the_events(
    rec: ConnectionRecord, minimum: str
) -> None:
    policy = TlsPolicy(min_version=minimum)
    assert event_kinds(rec, policy) == [(e.kind, e.severity) for e in events_for(rec, "s", policy)]


def test_a_recorder_without_takers_counts_what_one_with_a_taker_counts(tmp_path: Path) -> None:
    cap = write_http_capture(tmp_path / "http.pcap", flows=60)
    run = run_pcap(cap.path, inspectors=Inspectors.default(), identities=Directory())
    counting, taking = Recorder(None, capture="c"), Recorder(None, capture="c", on_events=list)
    for rec in run.records:
        assert counting.add(rec) == []
        taking.add(rec)
    assert counting.kinds == taking.kinds and counting.kinds["dlp.sensitive_in_clear"] > 0
    assert counting.worst == taking.worst and counting.connections == taking.connections == 60


def test_remembered_strings_are_only_those_the_gate_passed() -> None:
    from stockade.network import connection

    connection._PASSED.clear()
    for text in ["proto.http", f"/pay/{CARD}", SSN, "shop.internal:8080", "proto.http"]:
        assert connection._mask(text) == connection.redact_text(text)
    assert {"proto.http", "shop.internal:8080"} == set(connection._PASSED)
    for i in range(connection.PASSED_KEPT + 10):  # bounded
        connection._mask(f"host-{i}.example")
    assert len(connection._PASSED) <= connection.PASSED_KEPT


def test_details_and_hits_seen_again_give_the_same_masked_line() -> None:
    """The second sight of a details tuple comes from the kept JSON: only tuples whose every
    string passed the gate unchanged are kept, so one with a card in it is masked every time."""
    from stockade.network import connection

    connection._PASSED.clear()
    connection._DETAILS.clear()
    base = ConnectionRecord(
        id="r-1", start=1.5, end=2.0, transport="tcp", ip_version=4, client_ip="10.0.0.1",
        client_port=1, server_ip="10.0.0.2", server_port=80,
        client=ResourceRef(kind="external", name="10.0.0.1"),
        server=ResourceRef(kind="external", name="10.0.0.2"), protocol="proto.http",
        encrypted=False,
    )  # fmt: skip
    plain = (("http.method", "GET"), ("http.host", "shop.internal"))
    carded = (("http.method", "GET"), ("http.host", f"{CARD}.example"))
    hit = Hit(direction="client", match=DlpMatch(sensor="dlp.payment_card", masked=CARD,
                                                 start=3, end=9, confidence=0.9))  # fmt: skip
    odd = Hit(direction="server", match=DlpMatch(sensor="dlp.us_ssn", masked="x", start=1,
                                                 end=2, confidence=float("nan")))  # fmt: skip
    for _ in range(3):
        for details, hits in ((plain, ()), (carded, (hit,)), (plain, (hit, odd))):
            rec = dataclasses.replace(base, details=details, hits=hits)
            line = rec.json_line()
            assert line == json.dumps(rec.to_dict())
            assert CARD not in line
    assert plain in connection._DETAILS and carded not in connection._DETAILS
    for text in connection._PASSED:
        assert connection.redact_text(text) == text


@settings(max_examples=100, deadline=None)
@given(recs=st.lists(_RECORD, min_size=1, max_size=6))
def test_the_observation_spans_the_records(recs: list[ConnectionRecord]) -> None:
    from stockade.network.observation import Observation

    seen = Observation()
    for rec in recs:
        seen.add(rec)
    assert seen.first == min(r.start for r in recs) and seen.last == max(r.end for r in recs)
    assert seen.connections == len(recs) and seen.dlp_hits == sum(len(r.hits) for r in recs)


@given(st.sampled_from(["10.0.0.1", "fd00::1", "4111.1111.1111.1111", 'q"', CARD]), _REF,
       st.integers(0, 65535))  # fmt: skip
@settings(max_examples=500, deadline=None)
def test_a_peers_json_parts_are_its_json_around_the_port(address: str, ref: ResourceRef,
                                                          port: int) -> None:  # fmt: skip
    """What the compiled pcap path writes lines with (pcapfast.c sp_peer): the peer's JSON in
    the record's line, and the dict's JSON, cut at the port (a reference's members never
    include "ip" or "port", so json.dumps never has to write one whole)."""
    rec = new_record("run-1", 0.0, 0.0, "tcp", 4, address, port, address, 80, ref, ref,
                     "proto.http", False, None, None, 0, 0, 0, 0, "", "", "closed", 0, 0, (), ())  # fmt: skip
    parts = peer_json_parts(address, ref)
    whole = json.dumps(rec.to_dict()["client"])
    assert parts is not None
    assert parts[0] + repr(port) + parts[1] == whole
    assert f'"client": {whole}, ' in rec.json_line()
