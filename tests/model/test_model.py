from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockade.model import (
    Details,
    Event,
    Finding,
    Pillar,
    ResourceRef,
    Severity,
    Status,
    StockadeError,
    UnsafeImage,
    UsageError,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("critical", Severity.CRITICAL),
        ("HIGH", Severity.HIGH),
        ("Moderate", Severity.MEDIUM),
        ("important", Severity.HIGH),
        ("unimportant", Severity.NEGLIGIBLE),
        ("not yet assigned", Severity.UNKNOWN),
        ("low", Severity.LOW),
    ],
)
def test_severity_parse(text: str, expected: Severity) -> None:
    assert Severity.parse(text) is expected


def test_severity_parse_rejects_unknown_words() -> None:
    with pytest.raises(UsageError, match="unknown severity 'severe'"):
        Severity.parse("severe")


@given(st.floats(min_value=0.0, max_value=10.0))
def test_cvss_mapping_is_monotonic(score: float) -> None:
    assert Severity.from_cvss(score) <= Severity.from_cvss(min(10.0, score + 0.1))


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (9.8, Severity.CRITICAL),
        (9.0, Severity.CRITICAL),
        (8.9, Severity.HIGH),
        (7.0, Severity.HIGH),
        (6.9, Severity.MEDIUM),
        (4.0, Severity.MEDIUM),
        (3.9, Severity.LOW),
        (0.1, Severity.LOW),
        (0.0, Severity.NEGLIGIBLE),
    ],
)
def test_cvss_boundaries(score: float, expected: Severity) -> None:
    assert Severity.from_cvss(score) is expected


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (10.0, Severity.HIGH),  # NVD's v2 rating has no critical band
        (9.3, Severity.HIGH),
        (7.0, Severity.HIGH),
        (6.9, Severity.MEDIUM),
        (4.0, Severity.MEDIUM),
        (3.9, Severity.LOW),
        (0.0, Severity.LOW),
    ],
)
def test_cvss_v2_boundaries(score: float, expected: Severity) -> None:
    assert Severity.from_cvss(score, v2=True) is expected


def test_error_tree_exit_codes() -> None:
    assert UsageError("x").exit_code == 2
    err = UnsafeImage("layer entry escapes the root", subject="docker-archive:bad.tar")
    assert isinstance(err, StockadeError) and err.exit_code == 3
    assert str(err) == "docker-archive:bad.tar: layer entry escapes the root"


def test_resource_round_trip() -> None:
    ref = ResourceRef(kind="pod", name="pay-7d9", namespace="shop", labels=(("app", "pay"),))
    assert ResourceRef.from_dict(json.loads(json.dumps(ref.to_dict()))) == ref
    assert ref.display() == "pod:shop/pay-7d9"


def test_finding_and_event_serialize_to_json() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Sample(Details):
        package: str
        fixed: tuple[str, ...]

    f = Finding(
        id="CVE-2024-0001",
        pillar=Pillar.SCANNING,
        title="t",
        severity=Severity.HIGH,
        resource=ResourceRef(kind="image", name="r/x:1"),
        details=Sample(package="openssl", fixed=("3.0.1",)),
        compliance=("pci-dss:6.3.3",),
    )
    data = json.loads(json.dumps(f.to_dict()))
    assert data["severity"] == "high" and data["status"] == str(Status.FAIL)
    assert data["details"] == {"package": "openssl", "fixed": ["3.0.1"]}
    e = Event(kind="scan.completed", message="m", data={"sev": Severity.LOW, "t": (1, 2)})
    assert json.loads(json.dumps(e.to_dict()))["data"] == {"sev": "low", "t": [1, 2]}


def test_event_ids_are_time_ordered_version_7_uuids() -> None:
    import time
    import uuid

    from stockade.model.finding import _new_id

    before = time.time_ns() // 1_000_000
    ids = [_new_id() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for i in ids[:200]:
        u = uuid.UUID(hex=i)
        assert len(i) == 32 and u.hex == i
        assert u.version == 7 and u.variant == uuid.RFC_4122
        assert before <= int(i[:12], 16) <= after  # the milliseconds it was made at
    # ordered by time: an id made a millisecond later sorts after every earlier one
    time.sleep(0.002)
    assert _new_id() > max(ids)
