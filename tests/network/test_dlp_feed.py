"""The sensor's DLP feed per direction (``network.analysis.DlpFeed``): a stretch of bytes is
checked once when it ends and gets a stream only when something in it could matter; the findings,
their offsets and the decoding limits are those of a feed that streamed every byte."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stockade.network import analysis
from stockade.network.analysis import DlpFeed
from stockade.network.dlp import DlpEngine
from stockade.network.dlp.decoding import DecodingStream
from stockade.network.dlp.engine import PASSIVE_COALESCE
from stockade.network.interface import DlpMatch
from tests.network.test_http_decoding import _GZ, _H2, _MESSAGE, CARD

_ENGINE = DlpEngine()
_CLEAN = (
    b"POST /api/v1/orders HTTP/1.1\r\nHost: orders\r\nContent-Type: application/json\r\n"
    b'Content-Length: 24\r\n\r\n{"id": 17, "qty": "two"}'
)
_ZEROS = gzip.compress(b"0" * 400_000)
_BOMB = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (
    len(_ZEROS),
    _ZEROS,
)
_PIECES = st.one_of(
    _MESSAGE,
    st.sampled_from(
        [
            _CLEAN,
            _H2,
            _BOMB,
            b'{"card": "' + CARD.encode() + b'"}',
            b"ssn 536-90-4399 ",
            b"order 4111",  # ends in a digit: a candidate may end at the end
            b"x " + CARD.encode(),  # a card at the very end: no prefilter match
            b"1111 1111 1111",
            b"\r\n",
            json.dumps({"items": list(range(400))}).encode(),
        ]
    ),
)
# a direction: pieces, each either fed (cut at `cut`) or, as an int, a capture hole of that size
_DIRECTION = st.lists(st.one_of(_PIECES, st.integers(1, 5000)), min_size=0, max_size=6)


def _run(ops: list[bytes | int], cut: int, *, wait: bool) -> tuple[list[tuple], list[str]]:
    feed = DlpFeed(_ENGINE, wait=wait)
    for op in ops:
        if isinstance(op, int):
            feed.gap(op)
        else:
            for i in range(0, len(op), cut):
                feed.feed(op[i : i + cut])
    found = feed.close()
    return [(m.sensor, m.start, m.end, m.masked, m.confidence, m.context) for m in found], (
        feed.limits
    )


@settings(max_examples=300, deadline=None)
@example([_CLEAN, _CLEAN], 1460)
@example([_CLEAN, 100, b'{"card": "' + CARD.encode() + b'"}', 7, _CLEAN], 5)
@example([b"POST /p HTTP/1.1\r\nContent-Encoding: gzip\r\n\r\n" + _GZ], 3)
@example([_BOMB, 10, _CLEAN], 1460)
@example([b"order 4111", 3, b"1111 1111 1111"], 64)
@example([b"x " + CARD.encode(), 5, b"x " + CARD.encode()], 1460)
@given(ops=_DIRECTION, cut=st.sampled_from([1, 3, 17, 536, 1460, 1 << 16]))
def test_a_waiting_feed_finds_what_a_streaming_feed_finds(ops: list, cut: int) -> None:
    assert _run(ops, cut, wait=True) == _run(ops, cut, wait=False)
    assert _ENGINE.unchecked == 0 and _ENGINE.held == 0 and _ENGINE.unscanned == 0


@pytest.mark.parametrize(
    ("data", "quiet"),
    [
        (_CLEAN, True),
        (_CLEAN + b"\r\n", True),
        (_CLEAN.replace(b"17", CARD.encode()), False),  # a prefilter
        (_CLEAN.replace(b"Host", b"Transfer-Encoding: chunked\r\nHost"), False),  # a trigger
        (_CLEAN.replace(b"orders HTTP", b"orders?a=%41 HTTP"), False),  # a trigger
        (_CLEAN[:-2], False),  # ends in a digit: a built-in candidate may end there
        (_H2, False),
    ],
)
def test_quiet_answers_only_for_bytes_nothing_looks_at(data: bytes, quiet: bool) -> None:
    assert _ENGINE.quiet(data) is quiet


_HYPERSCAN_ONLY = DlpEngine(compiled_prefilters=False)  # quiet() through the block database
_RUNS = st.binary(max_size=300) | st.text("0123456789 -+()?%@.AZaz\r\n:", max_size=300).map(
    str.encode
)


@settings(max_examples=300, deadline=None)
@example([b"x 4111 1111 1111 1111\r\n"])
@example([b"GET /a?b=%41 HTTP/1.1\r\n\r\n"])
@example([b"ssn\r\n", _CLEAN])
@given(parts=st.lists(_PIECES | _RUNS, min_size=1, max_size=4))
def test_quiet_through_runscan_answers_as_the_block_database(parts: list[bytes]) -> None:
    data = b"".join(parts)
    assert _ENGINE.quiet(data) is _HYPERSCAN_ONLY.quiet(data)


def test_the_builtin_sensors_need_no_block_database() -> None:
    engine = DlpEngine()
    assert engine._runscan is not None, (
        "runscan.c is not built: python3 setup.py build_ext --inplace"
    )
    assert engine.quiet(_CLEAN) is True and engine.quiet(_CLEAN + b"ssn ") is False
    assert engine._check_db is None


def test_a_quiet_direction_gets_no_stream_and_a_busy_one_does() -> None:
    clean, busy = DlpFeed(_ENGINE), DlpFeed(_ENGINE)
    for piece in (_CLEAN, _CLEAN):
        clean.feed(piece)
        busy.feed(piece)
    busy.feed(b'{"card": "' + CARD.encode() + b'"}\r\n')
    assert clean.close() == [] and clean._stream is None
    assert [m.masked for m in busy.close()] == ["4111********1111"]
    assert _ENGINE.unchecked == 0


def test_held_bytes_are_bounded_per_stretch_and_per_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = DlpEngine()
    long = DlpFeed(engine)
    for _ in range(analysis.UNCHECKED_STRETCH // len(_CLEAN) + 1):
        long.feed(_CLEAN)
    assert long._parts is None and engine.unchecked == 0  # streamed from there on
    monkeypatch.setattr(analysis, "UNCHECKED_TOTAL", 3 * len(_CLEAN))
    feeds = [DlpFeed(engine) for _ in range(5)]
    for f in feeds:
        f.feed(_CLEAN)
    assert engine.unchecked <= 3 * len(_CLEAN)
    assert [f._parts is None for f in feeds] == [False, False, False, True, True]
    for f in [long, *feeds]:
        assert f.close() == []
    assert engine.unchecked == 0 and engine.held == 0 and engine.unscanned == 0


def _streamed(data: bytes, cut: int) -> list[DlpMatch]:
    stream = DecodingStream(_ENGINE, coalesce=PASSIVE_COALESCE)  # what DlpFeed opens
    found = []
    for i in range(0, len(data), cut):
        found += stream.feed(data[i : i + cut])
    return found + stream.close()


@settings(max_examples=400, deadline=None)
@example([b"x 4111 1111 1111 1111\r\n"], 7)
@example([b'{"card": "' + CARD.encode() + b'"}'], 1460)  # a candidate right at the end
@example([b"ssn 536-90-4399 ", b"GET /a?b=%41 HTTP/1.1\r\n\r\n"], 7)
@example([b"order 4111"], 7)
@given(parts=st.lists(_PIECES | _RUNS, min_size=1, max_size=5), cut=st.sampled_from([7, 1460]))
def test_a_stretch_from_one_scan_finds_what_its_stream_finds(parts: list[bytes], cut: int) -> None:
    data = b"".join(parts)
    found = _ENGINE.stretch(data)
    if found is None:  # a decoding trigger: the caller streams it
        assert _ENGINE.quiet(data) is False
        return
    assert found == _streamed(data, cut)
    assert found == [] or _ENGINE.quiet(data) is False
    assert _ENGINE.unchecked == 0 and _ENGINE.held == 0 and _ENGINE.unscanned == 0


def test_a_stretch_with_a_trigger_or_through_hyperscan_is_left_to_a_stream() -> None:
    card = b'{"card": "' + CARD.encode() + b'"}\r\n'
    assert [m.masked for m in _ENGINE.stretch(_CLEAN + card)] == ["4111********1111"]
    assert _ENGINE.stretch(b"GET /a?b=%41 HTTP/1.1\r\n\r\n" + card) is None
    assert _ENGINE.stretch(_CLEAN) == [] and _ENGINE.stretch(_H2) is None
    # without runscan.c the stretch is checked as quiet() checks it, and streamed if not quiet
    assert _HYPERSCAN_ONLY.stretch(_CLEAN) == [] and _HYPERSCAN_ONLY.stretch(card) is None
