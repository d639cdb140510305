"""The event envelope: new fields with defaults, to_dict/from_dict round trip, validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from stockade.model import Event, InputError, ResourceRef, Severity


def _full() -> Event:
    return Event(
        kind="dlp.sensitive_in_clear",
        message="card in clear",
        severity=Severity.HIGH,
        source="sensor",
        resource=ResourceRef(
            kind="pod",
            name="pay",
            namespace="shop",
            digest="sha256:" + "a" * 64,
            labels=(("app", "pay"),),
        ),
        peer=ResourceRef(kind="external", name="203.0.113.9"),
        data={"ports": [443], "application": "http", "encrypted": False},
        action="quarantine",
        mode="protect",
        node="node-1",
        rule="cards-out",
        count=3,
    )


def test_existing_calls_keep_working_and_defaults() -> None:
    e = Event(kind="scan.completed", message="m")
    assert (e.action, e.mode, e.node, e.rule, e.count) == (None, None, None, None, 1)
    assert e.category == "scan" and e.level is Severity.UNKNOWN


def test_round_trip_through_json() -> None:
    e = _full()
    back = Event.from_dict(json.loads(json.dumps(e.to_dict())))
    assert back == e
    assert e.to_dict()["category"] == "dlp"


def test_times_are_kept_in_utc() -> None:
    d = _full().to_dict()
    d["at"] = "2024-05-01T12:00:00+02:00"
    assert Event.from_dict(d).at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert Event.from_dict(d).at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "X" * 32}, "event id: expected 32 lowercase hex"),
        ({"id": "a" * 33}, "event id"),
        ({"kind": "DLP hit"}, "event kind: expected a dotted slug"),
        ({"kind": "a." + "b" * 100}, "event kind: longer than 80"),
        ({"at": "2024-05-01T12:00:00"}, "event at: the time has no zone"),
        ({"at": 12}, "event at: expected an ISO 8601 time"),
        ({"severity": "apocalyptic"}, "event severity"),
        ({"message": ["x"]}, "event message: expected a string"),
        ({"message": "x" * 9000}, "event message: longer than 8192"),
        ({"count": 0}, "event count"),
        ({"count": True}, "event count"),
        ({"count": "2"}, "event count"),
        ({"mode": "yolo"}, "event mode"),
        ({"category": "firewall"}, "event category: does not match"),
        ({"extra": 1}, "unknown field"),
        ({"resource": "pod/pay"}, "event resource: expected an object"),
        ({"resource": {"kind": "pod", "name": 5}}, "event resource.name"),
        ({"resource": {"kind": "pod", "name": "p", "labels": {"a": 1}}}, "resource.labels"),
        ({"data": [1]}, "event data: expected an object"),
        ({"data": {"x": "y" * 70000}}, "event data: larger than"),
        ({"data": {"x": float("nan")}}, "event data: not plain JSON"),
    ],
)
def test_hostile_fields_are_one_line_input_errors(change: dict, message: str) -> None:
    d = _full().to_dict()
    d.update(change)
    with pytest.raises(InputError, match=message.replace("(", r"\(")) as info:
        Event.from_dict(d)
    assert "\n" not in str(info.value)


def test_deep_data_is_refused() -> None:
    deep: dict = {}
    node = deep
    for _ in range(40):
        node["a"] = {}
        node = node["a"]
    d = _full().to_dict()
    d["data"] = deep
    with pytest.raises(InputError, match="nested deeper"):
        Event.from_dict(d)


def test_not_an_object() -> None:
    with pytest.raises(InputError, match="expected an object"):
        Event.from_dict([1, 2])


@pytest.mark.parametrize(
    "variant",
    [
        {"kind": "pod", "name": "pay", "namespace": "shop", "extra": "x"},
        {"kind": "pod", "name": "pay", "namespace": "shop", "labels": ["app"]},
        {"kind": "pod", "name": "pay", "namespace": "shop", "labels": {"app": 1}},
        {"kind": "pod", "name": ["pay"], "namespace": "shop"},
        {"kind": "Pod", "name": "pay", "namespace": "shop"},
        {"kind": "pod", "name": "pay", "namespace": {"x": "shop"}},
    ],
)
def test_a_resource_seen_before_does_not_let_a_variant_of_it_pass(variant: dict) -> None:
    """Validated resources are kept by content for the next events of a batch: a near copy of
    one that passed is still checked and refused."""
    good = _full().to_dict()
    good["resource"] = {"kind": "pod", "name": "pay", "namespace": "shop"}
    assert Event.from_dict(good).resource == ResourceRef(kind="pod", name="pay", namespace="shop")
    bad = dict(good, resource=variant)
    with pytest.raises(InputError, match="event resource"):
        Event.from_dict(bad)
    again = Event.from_dict(dict(good, resource=dict(good["resource"], labels={"app": "pay"})))
    assert again.resource is not None and again.resource.labels == (("app", "pay"),)


def test_from_dict_builds_the_event_the_dataclass_builds() -> None:
    """Event.from_dict fills the slots directly (model.slots): every field, and the result,
    equal Event(**fields) for generated envelopes (a field added to Event fails here)."""
    from dataclasses import fields

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from stockade.model.envelope import event_fields

    # the language of [a-z][a-z0-9-]{0,20} from plain draws (from_regex: this test 10.9 s, not 6.7)
    lower = "abcdefghijklmnopqrstuvwxyz"
    names = st.builds(
        str.__add__, st.sampled_from(lower), st.text(lower + "0123456789-", max_size=20)
    )
    refs = st.none() | st.builds(
        lambda kind, name, ns, labels: {"kind": kind, "name": name, "namespace": ns, "labels": labels},
        names, names, st.none() | names, st.dictionaries(names, st.text(max_size=8), max_size=3),
    )  # fmt: skip

    @settings(max_examples=300, deadline=None)
    @given(
        names, names, st.sampled_from(list(Severity)), st.text(max_size=40), refs, refs,
        st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=4),
        st.none() | st.sampled_from(["discover", "monitor", "protect"]), st.integers(1, 10**9),
        st.datetimes(timezones=st.just(UTC)),
    )  # fmt: skip
    def check(cat, kind, sev, message, resource, peer, data, mode, count, at) -> None:  # type: ignore[no-untyped-def]
        doc = Event(kind=f"{cat}.{kind}", message=message, severity=sev, at=at, count=count,
                    data=data, mode=mode).to_dict()  # fmt: skip
        doc.update(resource=resource, peer=peer, node="n1", rule="r", action="alert")
        built = Event.from_dict(doc)
        reference = Event(**event_fields(doc))
        assert type(built) is Event and built == reference
        for f in fields(Event):
            assert getattr(built, f.name) == getattr(reference, f.name)

    check()


def _reference_fields(value: dict) -> dict:  # type: ignore[type-arg]
    """event_fields as each field's own check reads it, in the order of the fields (what the
    envelope did before it took a plain string or count without the call)."""
    from stockade.model import envelope as E

    first = E.event_fields({**value, **{k: None for k in ("node", "rule")}, "count": 1,
                            "source": "s", "message": "m"})  # fmt: skip
    return {
        **first,
        "at": E._time(value.get("at")),
        "severity": E._severity(value.get("severity", "unknown")),
        "source": E._text(value.get("source", "stockade"), "source", E.MAX_SOURCE),
        "message": E._text(value.get("message"), "message", E.MAX_MESSAGE),
        "resource": E._resource(value.get("resource"), "resource"),
        "peer": E._resource(value.get("peer"), "peer"),
        "data": E._data(value.get("data")),
        "action": E._slug(value.get("action"), "action", 40, optional=True),
        "node": E._text(value.get("node"), "node", E.MAX_NAME, optional=True),
        "rule": E._text(value.get("rule"), "rule", E.MAX_NAME, optional=True),
        "count": E._count(value.get("count", 1)),
    }


class _Text(str):
    """A str subclass, as hostile input: the inline checks must treat it as the fields' own do."""


def test_fields_taken_without_their_check_answer_as_the_checks() -> None:
    """source, message, node, rule and count, each alone or several wrong at once, hostile or at
    their limits: the same fields, or the same refusal (the first field in order), as the
    fields' own checks give."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from stockade.model import envelope as E

    def texts(limit: int) -> st.SearchStrategy[object]:
        return st.sampled_from(
            [None, 1, True, 2.5, ["x"], {"a": 1}, "", "x" * limit, "x" * (limit + 1),
             "é" * limit, _Text("sub"), _Text("y" * (limit + 1))]
        )  # fmt: skip

    counts = st.sampled_from([None, 0, 1, E.MAX_COUNT, E.MAX_COUNT + 1, -1, True, False, 2.0,
                              "2", [1], 1 << 70])  # fmt: skip
    absent = object()

    fields = st.tuples(texts(E.MAX_SOURCE) | st.just(absent), texts(E.MAX_MESSAGE),
                       texts(E.MAX_NAME), texts(E.MAX_NAME), counts | st.just(absent))  # fmt: skip

    # ten envelopes a draw (600 in all): a draw costs Hypothesis more than the checks of one
    @settings(max_examples=60, deadline=None)
    @given(st.lists(fields, min_size=10, max_size=10))
    def check(drawn: list[tuple[object, object, object, object, object]]) -> None:
        for source, message, node, rule, count in drawn:
            d = _full().to_dict()
            d.update(message=message, node=node, rule=rule)
            for key, value in (("source", source), ("count", count)):
                if value is absent:
                    d.pop(key)
                else:
                    d[key] = value

            def answer(read, d: dict = d) -> str:  # type: ignore[no-untyped-def, type-arg]
                try:
                    return repr(sorted(read(d).items()))
                except InputError as exc:
                    return f"refused: {exc}"

            assert answer(E.event_fields) == answer(_reference_fields), d

    check()


def test_the_common_shape_read_at_once_gives_the_fields_or_leaves_it_to_the_checks() -> None:
    """event_values (an envelope as Event.to_dict writes it, checked at once) gives exactly the
    fields event_fields gives, or None; it never takes what event_fields refuses, so every
    refusal (and its message) is event_fields' own. Hostile values in every field, one or
    several at once, and valid ones in the shapes the fast path leaves to the checks."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from stockade.model import envelope as E

    full = _full().to_dict()
    hostile: dict[str, list[object]] = {
        "id": ["a" * 32, "A" * 32, "a" * 31, "a" * 33, "g" * 32, " " + "a" * 31, _Text("b" * 32),
               "é" * 32, 5, None],
        "kind": ["dlp.x", "DLP.x", "dlp", "a." + "b" * 79, "a." + "b" * 80, "a..b", _Text("a.b"),
                 "", None, ["a"]],
        "category": [None, "dlp", "firewall", 1, _Text("dlp"), ["dlp"]],
        "at": ["2024-05-01T12:00:00+02:00", "2024-05-01T12:00:00Z", "2024-05-01T12:00:00",
               "2024-05-01", "x", "2024-05-01T12:00:00+00:00" + " " * 40, 12, None],
        "severity": ["high", "HIGH", "High", "critical", "nope", 3, None, _Text("high"), ["x"]],
        "source": ["s", "", "x" * 80, "x" * 81, None, 1, _Text("s")],
        "message": ["m", "", "x" * 8192, "x" * 8193, None, ["m"], _Text("m")],
        "resource": [None, {"kind": "pod", "name": "p"}, {"kind": "Pod", "name": "p"},
                     {"kind": "pod", "name": "p", "labels": {"a": "b"}},
                     {"kind": "pod", "name": "p", "labels": {"a": 1}},
                     {"kind": "pod", "name": "p", "extra": 1}, {"kind": "pod", "name": ["p"]},
                     "pod/p", [1]],
        "peer": [None, {"kind": "external", "name": "203.0.113.9"}, {"kind": "x"}, 5],
        "data": [{}, {"a": [1, {"b": None}]}, None, [1], {"x": float("nan")}, {"x": "y" * 70000},
                 {"k": 2**70}],
        "action": [None, "alert", "Alert", "a" * 40, "a" * 41, 1, _Text("alert")],
        "mode": [None, "monitor", "yolo", 1, ["monitor"]],
        "node": [None, "n", "x" * 253, "x" * 254, 1, _Text("n")],
        "rule": [None, "r", "x" * 254, {"r": 1}],
        "count": [1, 0, -1, E.MAX_COUNT, E.MAX_COUNT + 1, True, 2.0, "2", None],
    }  # fmt: skip
    absent = object()

    def answer(read, d: dict) -> str:  # type: ignore[no-untyped-def, type-arg]
        try:
            return repr(sorted(read(d).items()))
        except InputError as exc:
            return f"refused: {exc}"

    names = [f.name for f in __import__("dataclasses").fields(Event)]
    fast_taken = 0

    @st.composite
    def envelopes(draw: st.DrawFn) -> dict:  # type: ignore[type-arg]
        d = dict(full)
        for key in draw(st.lists(st.sampled_from(sorted(hostile)), max_size=4, unique=True)):
            value = draw(st.sampled_from([*hostile[key], absent]))
            if value is absent:
                d.pop(key)
            else:
                d[key] = value
        if draw(st.booleans()):
            d["extra"] = 1
        return d

    # ten envelopes a draw (1,500 in all): a draw costs Hypothesis more than the checks of one
    @settings(max_examples=150, deadline=None)
    @given(st.lists(envelopes(), min_size=10, max_size=10))
    def check(drawn: list[dict]) -> None:  # type: ignore[type-arg]
        nonlocal fast_taken
        for d in drawn:
            values = E.event_values(d)
            reference = answer(E.event_fields, d)
            if values is None:
                continue  # event_fields decides (Event.from_dict calls it)
            fast_taken += 1
            got = answer(lambda v: dict(zip(names, E.event_values(v), strict=True)), d)
            assert got == reference, d
            assert Event.from_dict(d) == Event(**E.event_fields(d)), d

    check()
    assert E.event_values(full) is not None and fast_taken > 50
