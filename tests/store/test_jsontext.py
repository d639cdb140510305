"""The JSON text of stored JSON columns: orjson's where it reads back as json.dumps's would, and
json.dumps itself (the same text, or the same refusal) for anything else."""

from __future__ import annotations

import enum
import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.model.jsonvalue import plain_json
from stockade.store import jsontext
from stockade.store.jsontext import json_text

pytestmark = pytest.mark.skipif(jsontext.orjson is None, reason="orjson is not installed")

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _reference(value: Any) -> tuple[str, Any]:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError) as exc:
        return "refused", type(exc)
    return "read back", json.loads(text)


def _ours(value: Any) -> tuple[str, Any]:
    try:
        text = json_text(value)
    except (TypeError, ValueError) as exc:
        return "refused", type(exc)
    return "read back", json.loads(text)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@settings(max_examples=200, deadline=None)
@given(_JSON)
def test_any_json_value_reads_back_as_json_dumps_writes_it(value: Any) -> None:
    ours, ref = _ours(value), _reference(value)
    assert ours[0] == ref[0] and _same(ours[1], ref[1])


class Colour(enum.Enum):
    CARD = "4111111111111111"


class Level(enum.IntEnum):
    HIGH = 3


class Name(str):
    pass


@pytest.mark.parametrize(
    "value",
    [
        {"e": Colour.CARD},  # orjson would write the value: json refuses it, and so do we
        {"u": uuid.UUID(int=1)},
        {"n": float("nan")},  # json writes NaN (orjson would write null)
        [float("inf")],
        {"big": 2**64},  # beyond orjson's integers
        {"s": "\ud800"},  # a lone surrogate
        {1: "int key"},  # json writes "1"
        {"level": Level.HIGH},
        {"name": Name("web-1")},
        {"deep": [[[[[[[[[[]]]]]]]]]]},
        {"t": (1, "a", None)},
        {"unicode": "café ✓ 𝄞", "ctl": "\x01\x7f\n"},
    ],
)
def test_values_orjson_would_write_otherwise_take_json_dumps(value: Any) -> None:
    ours, ref = _ours(value), _reference(value)
    assert ours[0] == ref[0] and _same(ours[1], ref[1])
    if not plain_json(value) and ref[0] == "read back":
        assert json_text(value) == json.dumps(value)


def test_plain_values_take_the_fast_writer() -> None:
    row = {"kind": "pod", "name": "web-1", "namespace": "team-1", "n": 1.5, "ok": [True, None]}
    assert (
        json_text(row)
        == '{"kind":"pod","name":"web-1","namespace":"team-1","n":1.5,"ok":[true,null]}'
    )


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _JSON, max_size=4))
def test_the_gate_takes_plain_data_as_plain_would_give_it(data: dict[str, Any]) -> None:
    """_event_row skips plain() for data that is plain JSON already: the stored form is the same."""
    from stockade.model.finding import plain
    from stockade.store.rows import storable

    if plain_json(data):
        assert _same(storable(data), storable(plain(data)))
