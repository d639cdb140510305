"""runscan.c (the hand-written scan of the built-in prefilters and the HTTP decoding triggers)
against Hyperscan on the same streams: the same (expression, end offset) matches on random,
adversarial and real bytes cut at every boundary, and the engine's findings the same with and
without it (Hyperscan alone is the reference)."""

from __future__ import annotations

import dataclasses
import gc
import random
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockade.network import dlp
from stockade.network.dlp import DlpEngine, runscan
from stockade.network.dlp.decoding import DecodingStream
from stockade.network.dlp.engine import hyperscan
from stockade.network.dlp.sensors import BUILTIN_SENSORS, Sensor
from stockade.network.dlp.triggers import TRIGGERS
from stockade.network.interface import DlpMatch

FIXTURES = Path(__file__).parent / "fixtures"
N = len(runscan.EXPRESSIONS)


@pytest.fixture(autouse=True)
def _built() -> None:
    assert runscan.compiled() is not None, (
        "the compiled DLP prefilter scan is not built: python3 setup.py build_ext --inplace"
    )


def _reference_db() -> Any:
    db = hyperscan.Database(mode=hyperscan.HS_MODE_STREAM)
    flags = [runscan.flags(k, hyperscan) for k in range(N)]
    db.compile(expressions=list(runscan.EXPRESSIONS), ids=list(range(N)), elements=N, flags=flags)
    return db


REFERENCE = _reference_db()


def hyperscan_hits(chunks: Iterable[bytes]) -> list[tuple[int, int]]:
    hits: list[tuple[int, int]] = []

    def on_match(ident: int, _f: int, to: int, _fl: int, _c: object) -> None:
        hits.append((ident, to))

    with REFERENCE.stream(match_event_handler=on_match) as stream:
        for chunk in chunks:
            if chunk:
                stream.scan(chunk)
    return sorted(hits)


def compiled_hits(chunks: Iterable[bytes], *, room: int = runscan.HITS) -> list[tuple[int, int]]:
    """runscan.c's hand-written scan's hits (EXPRESSIONS[:HAND]); ``room`` below HITS makes
    every call stop early and resume."""
    module = runscan.compiled()
    ffi, lib = module.ffi, module.lib
    state = ffi.new("struct rs_state *")
    lib.rs_init(state, ffi.new("uint32_t[]", list(range(N))))
    out = ffi.new("uint64_t[]", 2 * room)
    at = ffi.new("size_t *")
    hits: list[tuple[int, int]] = []
    for chunk in chunks:
        start = 0
        while True:
            answer = lib.rs_scan(state, chunk, len(chunk), start, out, room, at)
            n = answer & ~runscan.MORE
            pairs = ffi.unpack(out, 2 * n) if n else []
            hits.extend(zip(pairs[0::2], pairs[1::2], strict=True))
            if not answer & runscan.MORE:
                assert at[0] == len(chunk)
                break
            assert at[0] < len(chunk) and (at[0] > start or n), "no progress"
            start = at[0]
    ends = [end for _, end in hits]
    assert ends == sorted(ends), "hits must come in the order of their ends"
    assert len(set(hits)) == len(hits), "each (expression, end) once"
    return sorted(hits)


MODULE = runscan.compiled()  # (None: not built; the _built fixture says so)
BOTH = bool(MODULE and MODULE.lib.rs_has_hs())  # built with libhs: it scans the rest too


SCANNER = MODULE and runscan.Scanner(
    MODULE, tuple(k if BOTH or k < runscan.HAND else runscan.UNUSED for k in range(N)), hyperscan
)


def scanner_hits(chunks: Iterable[bytes]) -> list[tuple[int, int]]:
    """What the engine gets: both scans of runscan.c, merged, through one call a chunk."""
    scanner = SCANNER
    state = scanner.state()
    hits: list[tuple[int, int]] = []
    for chunk in chunks:
        hits.extend(scanner.hits(state, chunk))
    ends = [end for _, end in hits]
    assert ends == sorted(ends), "hits must come in the order of their ends"
    return sorted(hits)


def cut(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({min(max(c, 0), len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def assert_same(chunks: list[bytes]) -> None:
    reference = hyperscan_hits(chunks)
    hand = [h for h in reference if h[0] < runscan.HAND]
    assert compiled_hits(chunks) == hand, b"".join(chunks)
    assert scanner_hits(chunks) == (reference if BOTH else hand), b"".join(chunks)


# Pieces that make every expression match, nearly match and overlap.
PIECES = [
    b"4111 1111 1111 1111", b"5555-5555-5555-4444", b"378282246310005", b"5019", b"6304", b"5893",
    b"675", b"503", b"4", b"8", b"DE89 ", b"GB29NWBK60161331926819", b"DE89 3704 0044 0532 0130 00",
    b"(415) ", b"(415)", b"415-", b"555.2671", b"555-2671", b"+1 ", b"+33 1 42 68 53 00",
    b"536-90-4399 ", b"123 45 6789", b"GET /x?", b"POST /a b?", b"?", b"%", b"+", b" ", b"-", b".",
    b"_", b"a", b"Q", b"Z ", b"0000000000", b"\n", b"\t", b"\x0b", b"\x00", b"\xff", b"@", b",",
    b"a@b.co", b"@x-y.z1.abc", b"..", b".com ", b"SSN", b"Social", b"securitY", b"taxpayer",
    b"Transfer-Encoding", b"content-encoding", b"X-WWW-Form-Urlencoded", b"multipart/",
    b"PRI * HTTP/2.0", b"H2C", b"\r\n\x00\x00\x06\x04\x00\x00\x00\x00\x00",
    b"\x00\x00\x00\x04\x01\x00\x00\x00\x00", b"\r",
    # the card separators beyond space and hyphen, and Maestro 56-59
    b"4111.1111.1111.1111", b"4111\xc2\xa01111\xc2\xa01111\xc2\xa01111", b"\xa0", b"\xc2",
    b"\xc2\xa0", b"3782\xa0822463\xa010005", b"56", b"5712", b"59", b"10.0.0.1", b"1.2.3.4567",
    # JSON escapes (the trigger scanned by hand): each kind, either case, cut short, near misses
    b"\\u0034", b"\\U002D", b"\\u002e", b"\\u0020", b"\\u00A0", b"\\u00a0", b"\\u002", b"\\u00",
    b"\\", b"\\\\", b"u00", b"U", b"3", b"2", b"A0", b"\\u003a", b"\\u00b0", b"\\u0041", b"\\x0030",
]  # fmt: skip
ALPHABET = (
    b"0123456789" * 3 + b"  --.()+ADEGBZ?%\n\t\r\x0b\x0c_ax\x00\x04\x01\xff/,@.ssnocialyerH2c"
    b"\xa0\xc2..\\\\uuU0032de"
)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(PIECES) | st.binary(min_size=1, max_size=3), max_size=60),
    st.lists(st.integers(0, 600), max_size=6),
)
def test_the_same_matches_as_hyperscan_on_adversarial_pieces(
    pieces: list[bytes], cuts: list[int]
) -> None:
    assert_same(cut(b"".join(pieces), cuts))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(list(ALPHABET)), max_size=300).map(bytes),
    st.lists(st.integers(0, 300), max_size=6),
)
def test_the_same_matches_as_hyperscan_on_random_bytes(data: bytes, cuts: list[int]) -> None:
    assert_same(cut(data, cuts))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=4))
def test_the_same_matches_as_hyperscan_on_any_bytes(data: bytes, cuts: list[int]) -> None:
    assert_same(cut(data, cuts))


SHAPES = [
    b"x 4111 1111 1111 1111 y 536-90-4399, (415) 555-2671 and +1 415 555 2671;",
    b"iban DE89 3704 0044 0532 0130 00 GB29NWBK60161331926819 end",
    b"GET /search?q=a%20b HTTP/1.1\r\n",
    b"6304000000000000000 5019717010103742 6759649826438453 5893000000000000",
    b"A 1-2-3-4-5-6-7-8-9-0-1-2-3-4-5-6-7-8-9 ",
    b"x 4111.1111.1111.1111 5712\xc2\xa03456\xc2\xa07890\xc2\xa01234 3782\xa0822463\xa010005. v1.22.3",
    b"+1 415.555 \xc2\xa0+33\xa01 42 68 53 00 10.0.0.1 192.168.100.200.1 3.14159265358979323846 ",
    b"mail a.b@example.org, x@y-z.co.uk. @bad..dots.com @1.2.3 ssn: social Security TAXPAYER",
    b"Transfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\nPRI * HTTP/2.0 h2c multipart/",
    b"\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00 x-www-form-urlencoded",
    b'{"a": "\\u003a \\U00b0 \\\\u0034\\u0031 \\U002D\\u00A0 x\\u002e"} \\u00a0 \\u0020',
]


@pytest.mark.parametrize("data", SHAPES)
def test_every_cut_and_every_pair_of_cuts(data: bytes) -> None:
    for a in range(len(data) + 1):
        assert_same(cut(data, [a]))
        for b in range(a, len(data) + 1, 7):
            assert_same(cut(data, [a, b]))
    assert_same([data[i : i + 1] for i in range(len(data))])  # one byte at a time


def _long_streams() -> list[bytes]:
    """Runs far longer than the 64 bytes a call keeps, where a run's past must be carried."""
    rng = random.Random(19)
    return [
        b" " + b"4" + b"1" * 300 + b" 22",
        b"-".join(b"%d" % rng.randrange(10) for _ in range(400)) + b" ",
        b"1 " * 600,
        b"(" + b"5" * 100 + b"1 " * 100 + b"4-" * 100 + b"5893 " + b"7" * 30 + b",",
        b"+" + b"1" * 10 + b" " * 10 + b"2" * 40 + b".+1 2 3 4 5 6 7 8 9",
        b"GB" + b"12" + b"AB" * 200 + b" DE89 " + b"X" * 100 + b" " + b"GB29NWBK60161331926819 ",
        b"POST /" + b"a" * 5000 + b"?" + b"b" * 3000 + b"%2F" + b"T ?+" * 10,
        b"GET /" + b"c" * 200 + b" x?" + b"%" * 3,
        b"@"
        + b"a" * 3000
        + b".b" * 500
        + b" @"
        + b"a.1" * 300
        + b".com;"
        + b"@x."
        + b"y" * 200
        + b"\n",
        b"\r\n" * 100 + b"\x00\x01\x02\x04\x01\x00\x00\x00\x00 " + b"ssnsocial" * 50,
        bytes(rng.choice(ALPHABET) for _ in range(20_000)),
        b"\\" * 300 + b"u00" * 50 + b"\\u003" + b"\\" * 100 + b"U00A0",
    ]


@pytest.mark.parametrize("size", [1, 7, 63, 64, 65, 100, 1460, 65536])
def test_long_runs_across_segments(size: int) -> None:
    for data in _long_streams():
        assert_same([data[i : i + size] for i in range(0, len(data), size)])


def test_a_call_that_runs_out_of_room_resumes_where_it_stopped() -> None:
    for data in [*_long_streams(), *SHAPES]:
        chunks = [data[i : i + 500] for i in range(0, len(data), 500)]
        expected = hyperscan_hits(chunks)
        expected = [h for h in expected if h[0] < runscan.HAND]
        for room in (runscan.HAND, runscan.HAND + 1, 17, 64):  # the least room: one pair each
            assert compiled_hits(chunks, room=room) == expected


def _real_streams() -> list[bytes]:
    files = sorted(p for p in FIXTURES.rglob("*") if p.is_file())
    return [p.read_bytes() for p in files]


@pytest.mark.parametrize("size", [97, 1460, 65536])
def test_the_same_matches_as_hyperscan_on_real_files(size: int) -> None:
    streams = _real_streams()
    assert len(streams) > 10
    for data in streams:
        assert_same([data[i : i + size] for i in range(0, len(data), size)])


# The engine: the same findings with runscan.c as with Hyperscan alone.

WITH = DlpEngine()
WITHOUT = DlpEngine(compiled_prefilters=False)


def test_its_expressions_are_the_built_in_ones() -> None:
    sensors = {s.id: s for s in BUILTIN_SENSORS}
    built_in = {p.encode() for s in sensors.values() for p in (*s.prefilter, *s.lead_prefilter)}
    assert built_in == set(runscan.EXPRESSIONS) - {
        runscan.EXPRESSIONS[k] for k in runscan.TRIGGER_AT
    }
    assert sorted(TRIGGERS) == sorted(
        (runscan.EXPRESSIONS[at], caseless) for at, (_, caseless) in runscan.TRIGGER_AT.items()
    )


def test_the_engine_uses_it_and_keeps_the_rest_in_hyperscan() -> None:
    # built with libhs, the built-in sensors need no Hyperscan stream of the binding at all
    assert BOTH, "built without libhs (libhyperscan-dev): half of runscan.c is not tested"
    assert runscan.UNUSED not in WITH.runscan_ids and WITH._hs_db is None
    assert WITHOUT.runscan_ids == () and WITHOUT._hs_db is not None
    assert DlpEngine(backend="hs-window").runscan_ids == ()
    # a user sensor (and an edited built-in prefilter) stays with Hyperscan
    user = Sensor(id="dlp.acme", title="acme", patterns=(r"ACME-[0-9]{6}",))
    card = BUILTIN_SENSORS[0]
    edited = dataclasses.replace(card, id="dlp.card2", prefilter=(card.prefilter[0] + "x",))
    engine = DlpEngine([user, edited])
    assert engine._hs_db is not None
    assert engine.runscan_ids[: runscan.QUERY_TRIGGER] == (runscan.UNUSED,) * runscan.QUERY_TRIGGER
    data = b"ACME-123456 and 4111 1111 1111 1111x; Transfer-Encoding"
    reference = DlpEngine([user, edited], compiled_prefilters=False)
    assert _findings(engine, [data]) == _findings(reference, [data])
    assert _findings(engine, [data])[0]


def test_switched_off_hyperscan_scans_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKADE_DLP_RUNSCAN", "0")
    assert runscan.compiled() is None
    assert DlpEngine().runscan_ids == ()


def _findings(
    engine: DlpEngine, chunks: list[bytes], *, coalesce: int = 0, decode: bool = False
) -> tuple[list[DlpMatch], bool]:
    stream: Any = (
        DecodingStream(engine, coalesce=coalesce) if decode else engine.stream(coalesce=coalesce)
    )
    found: list[DlpMatch] = []
    for chunk in chunks:
        found.extend(stream.feed(chunk))
    found.extend(stream.close())
    raw = stream._raw if decode else stream
    return found, raw.triggered


def _same_findings(chunks: list[bytes]) -> None:
    for coalesce in (0, 4096):
        for decode in (False, True):
            got = _findings(WITH, chunks, coalesce=coalesce, decode=decode)
            assert got == _findings(WITHOUT, chunks, coalesce=coalesce, decode=decode)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(
            [*PIECES, b"ssn ", b"card: ", b"a.b@example.org;", b"Content-Encoding: gzip\r\n"]
        )
        | st.binary(min_size=1, max_size=3),
        max_size=50,
    ),
    st.lists(st.integers(0, 600), max_size=6),
)
def test_the_engine_finds_the_same_with_and_without_it(
    pieces: list[bytes], cuts: list[int]
) -> None:
    _same_findings(cut(b"".join(pieces), cuts))


@pytest.mark.parametrize("size", [97, 1460])
def test_the_engine_finds_the_same_on_real_and_long_streams(size: int) -> None:
    for data in [*_real_streams(), *_long_streams(), *SHAPES]:
        _same_findings([data[i : i + size] for i in range(0, len(data), size)])


def test_without_the_extension_the_binding_scans_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A failed build: the module cannot be imported.
    monkeypatch.delattr(dlp, "_runscan", raising=False)
    monkeypatch.setitem(sys.modules, "stockade.network.dlp._runscan", None)
    assert runscan.compiled() is None
    engine = DlpEngine()
    assert engine.runscan_ids == () and engine._hs_db is not None
    data = [b"card 4111 1111 1111 1111; mail a.b@example.org; ssn 536-90-4399 "]
    assert _findings(engine, data) == _findings(WITH, data)
    assert len(_findings(engine, data)[0]) == 3


def test_streams_and_their_engine_collected_together() -> None:
    # A stream's state is freed without its engine's database (the cyclic collector frees the
    # two in either order).
    for _ in range(20):
        engine = DlpEngine()
        streams = [engine.stream() for _ in range(20)]
        for stream in streams:
            stream.feed(b"a@b.co ssn 4111 1111 1111 1111 ")
        cycle: list[Any] = [engine, streams]
        cycle.append(cycle)
        del engine, streams, cycle
        gc.collect()


def test_a_bytearray_segment_is_scanned_as_hyperscan_alone_scans_it() -> None:
    # mypy lets a bytearray pass for bytes; Hyperscan's binding scans one, and so must the
    # compiled scan (cffi takes no bytearray for a uint8_t pointer): a card must not be lost to
    # a TypeError.
    data = b"GET /a?c=4111%201111 HTTP/1.1\r\n\r\ncard 4111 1111 1111 1111; ssn 536-90-4399 "
    pieces = [data[:40], data[40:47], data[47:]]
    for coalesce in (0, 4096):
        for decode in (False, True):
            got = _findings(WITH, [bytearray(p) for p in pieces], coalesce=coalesce, decode=decode)
            want = _findings(WITHOUT, pieces, coalesce=coalesce, decode=decode)
            assert got == want
            assert len(got[0]) == 2


# The bytes the expressions turn on, and runs near the lengths they count (12, 13 and 19 digits
# for cards, 10 to 38 for an IBAN's body), fed in tiny segments with empty feeds between.
SMALL = [bytes([c]) for c in b"0123456789 -.AZGBDaz_#:,()+@?%\x00\x80\xff\t"] + [b"\r\n"]


def _run(length: int, every: int, sep: bytes, lead: bytes) -> bytes:
    digits = b"".join(b"%d" % (k % 10) for k in range(length))
    if every:
        digits = sep.join(digits[k : k + every] for k in range(0, len(digits), every))
    return lead + digits


RUNS = st.builds(
    _run,
    st.sampled_from([3, 4, 8, 9, 11, 12, 13, 14, 15, 16, 18, 19, 20, 24, 25, 26, 38, 42, 43, 70]),
    st.sampled_from([0, 2, 3, 4, 6]),
    st.sampled_from([b" ", b"-", b".", b"  "]),
    st.sampled_from([b"", b"4", b"5", b"501", b"675", b"5893", b"6304", b"7", b"+", b"(", b"GB29"]),
)
IBAN_LIKE = st.builds(
    lambda head, body, length: head + (body * 50)[:length],
    st.sampled_from([b"GB29", b"DE89", b"ZZ00", b" AB12", b"aB12"]),
    st.sampled_from([b"A", b"1", b"A1 ", b"9Q", b" "]),
    st.integers(8, 45),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(SMALL) | RUNS | IBAN_LIKE, max_size=40),
    st.lists(st.integers(0, 3), min_size=1, max_size=5),
)
def test_the_same_matches_in_tiny_segments_with_empty_feeds(
    pieces: list[bytes], sizes: list[int]
) -> None:
    data, chunks, at = b"".join(pieces), [], 0
    while at < len(data):
        size = sizes[len(chunks) % len(sizes)]
        chunks.append(data[at : at + size])  # size 0: an empty feed
        at += size or (len(chunks) > 4 * len(data))  # (all sizes 0: still ends)
    assert_same(chunks)


def test_offsets_past_4_gib() -> None:
    # A stream far past 4 GiB: its state as a new stream's but for the offset (a space first,
    # so nothing reads back into the bytes before it).
    ffi, lib = MODULE.ffi, MODULE.lib
    rng = random.Random(4)
    streams = [*SHAPES, *(b"".join(rng.choices(PIECES, k=30)) for _ in range(40))]
    for base in (2**32 - 5, 2**32, 2**33 + 3, 2**62):
        for data in streams:
            data = b" " + data
            chunks = [data[i : i + 61] for i in range(0, len(data), 61)]
            state = ffi.new("struct rs_state *")
            lib.rs_init(state, ffi.new("uint32_t[]", list(range(N))))
            state.pos = base
            out, at = ffi.new("uint64_t[]", 2 * runscan.HITS), ffi.new("size_t *")
            got = []
            for chunk in chunks:
                n = lib.rs_scan(state, chunk, len(chunk), 0, out, runscan.HITS, at)
                pairs = ffi.unpack(out, 2 * n) if n else []
                got.extend(zip(pairs[0::2], pairs[1::2], strict=True))
            want = [(i, base + e) for i, e in hyperscan_hits(chunks) if i < runscan.HAND]
            assert sorted(got) == want


def _luhn(prefix: str, length: int) -> str:
    rng = random.Random(length)
    body = prefix + "".join(rng.choices("0123456789", k=length - len(prefix) - 1))
    for check in "0123456789":
        number = body + check
        total = sum(
            (2 * int(d) - 9 * (2 * int(d) > 9)) if k % 2 else int(d)
            for k, d in enumerate(reversed(number))
        )
        if total % 10 == 0:
            return number
    raise AssertionError(prefix)


def _grouped(number: str, sep: str) -> str:
    if len(number) in (14, 15):
        return sep.join((number[:4], number[4:10], number[10:]))
    return sep.join(number[k : k + 4] for k in range(0, len(number), 4))


_CARDS = [_luhn(p, n) for p, n in [("4", 16), ("4", 13), ("4", 19), ("2221", 16), ("37", 15),
          ("36", 14), ("6011", 16), ("5018", 16), ("6759", 16), ("5893", 16), ("6304", 19),
          # 12 and 13 digits: only the brand prefilter reaches them
          ("5893", 12), ("6304", 12), ("6759", 12), ("5020", 13), ("6763", 13),
          # Maestro 56-59 (16-19 digits: the general prefilter's run)
          ("56", 16), ("5712", 17), ("5899", 18), ("59", 19)]]  # fmt: skip
# every separator a card may have (sensors.CARD_SEPARATORS): space, hyphen, point, no-break space
# in UTF-8 and in Latin-1
_SEPARATORS = (" ", "-", ".", "\xc2\xa0", "\xa0")
PLANTED = [
    *_CARDS,
    *(_grouped(c, sep) for c in _CARDS if len(c) in (14, 15, 16, 19) for sep in _SEPARATORS),
    "536-90-4399", "536 90 4399", "DE89370400440532013000", "DE89 3704 0044 0532 0130 00",
    "GB29NWBK60161331926819", "MT84MALT011000012345MTLCAST001S", "NO9386011117947",
    "+1 415 555 2671", "+33 1 42 68 53 00", "(415) 555-2671", "415.555.2671",
    "%B4111111111111111^DOE/JOHN^2512101?", "%B" + _CARDS[3] + "^A/B^",
]  # fmt: skip
HOSTILE = [(b"", b""), (b"\x00", b"\xff"), (b"ssn: ", b"\r\n"), (b"(", b")"), (b"+", b"_"),
           (b"A ?", b"%"), (b"1 " * 30, b" 2" * 30), (b"iban ", b",x"), (b"tel ", b" \x00")]  # fmt: skip


def test_planted_numbers_found_as_hyperscan_alone_finds_them_at_every_cut() -> None:
    for text in PLANTED:
        found = False
        for before, after in HOSTILE:
            data = before + text.encode("latin-1") + after
            whole = _findings(WITHOUT, [data])
            found = found or bool(whole[0])
            for k in range(len(data) + 1):
                chunks = cut(data, [k])
                assert _findings(WITH, chunks) == _findings(WITHOUT, chunks), chunks
            chunks = [data[i : i + 1] for i in range(len(data))]
            assert _findings(WITH, chunks) == whole, data
            _same_findings(chunks)  # coalescing, decoding
        assert found, text  # the reference finds it in some context


def _json_message(value: str) -> bytes:
    body = ('{"card": "' + value + '", "n": 1}').encode()
    return b"POST /p HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body


# Cards only the decoding reads: JSON escapes of digits and separators in a plain body.
PLANTED_ESCAPED = [
    _json_message("".join(f"\\u{ord(c):04x}" for c in _CARDS[0])),
    _json_message("41\\u00311 1111 1111 1111"),
    _json_message(_grouped(_CARDS[4], "\\u00a0")),
    _json_message(_grouped(_CARDS[5], "\\u002e")),
]
REFERENCE_BACKENDS = [DlpEngine(backend="hs-window"), DlpEngine(backend="re")]


def test_planted_numbers_are_found_alike_by_every_backend() -> None:
    """The compiled scan, Hyperscan in stream and block mode, and the pure-Python reference:
    the same findings for every planted number (every separator), whole and a byte at a time,
    on the raw stream and through the HTTP decoding (JSON escapes)."""
    for data in [b"card " + t.encode("latin-1") + b" ok" for t in PLANTED] + PLANTED_ESCAPED:
        for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
            for decode in (False, True):
                want = _findings(WITH, chunks, decode=decode)[0]
                assert want == _findings(WITHOUT, chunks, decode=decode)[0], data
                for engine in REFERENCE_BACKENDS:
                    assert _findings(engine, chunks, decode=decode)[0] == want, (
                        engine.backend,
                        data,
                    )
    for data in PLANTED_ESCAPED:  # (the others: found in some context, the test above)
        assert [m.sensor for m in _findings(WITH, [data], decode=True)[0]] == ["dlp.payment_card"]


def _counted_runs() -> list[bytes]:
    """Each counted form one byte short of, at and one byte past its bounds."""
    digits = b"4929381726354091827364519"
    runs = []
    for n in range(10, 22):  # cards: 12 to 19 digits, general from 14 bytes, brand from 12
        for lead in (b"", b"4", b"2", b"501", b"676", b"5893", b"6304", b"7", b"56", b"59", b"55"):
            runs.append(b" " + (lead + digits)[:n] + b" ")
            for sep in (b"-", b".", b"\xc2\xa0", b"\xa0"):
                grouped = sep.join((lead + digits)[k : k + 4] for k in range(0, n, 4))
                runs.append(sep + grouped + b",")
            # E.164 beside a card run: a point or a no-break space after a '+' run
            runs.append(b"+" + (lead + digits)[: n // 2] + b"." + digits[: n // 2] + b" ")
    for n in range(5, 28):  # E.164: 8 to 25 bytes after the '+'
        runs.append(b"+" + digits[:n] + b";")
        runs.append(b"+1 " + b" ".join(digits[k : k + 3] for k in range(0, n, 3)) + b")")
    for n in range(8, 42):  # IBAN: 10 to 38 bytes between "CCdd" and the last
        body = (b"NWBK6016 1331926819" * 3)[:n]
        runs += [b"GB29" + body + b"9 ", b"_GB29" + body + b"Z.", b"aGB29" + body + b"1 "]
    for before in (b"", b" ", b"_", b"a", b"#", b"(", b"-", b"1", b"\x00", b"\xff"):
        for after in (b" ", b"_", b"a", b".", b"\r\n"):  # fixed-length forms, every boundary
            for form in (b"536-90-4399", b"536 90-4399", b"(415) 555-2671", b"(415)555.2671",
                         b"415-555-2671", b"415 555.2671", b"115-555-2671", b"415-155-2671"):  # fmt: skip
                runs.append(before + form + after)
    return runs


def test_runs_at_the_counted_lengths() -> None:
    for data in _counted_runs():
        for k in range(len(data) + 1):
            assert_same(cut(data, [k]))
        assert_same([data[i : i + 1] for i in range(len(data))])


def test_streams_of_one_engine_fed_from_two_threads_fail_loudly() -> None:
    # The engine's streams share its scratch and hit buffers ("feed them from one thread"), and
    # cffi lets go of the GIL in the call: two threads at once must get Hyperscan's error, as
    # the binding alone raises, never fewer findings.
    rng = random.Random(8)
    pieces = [b"card 4111 1111 1111 1111; ", b"a@b.co ", b"ssn 536-90-4399 ", b"x" * 50]
    data = b"".join(rng.choices(pieces, k=6000))
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    engine = DlpEngine()
    want = _findings(engine, chunks)
    outcomes: list[object] = []

    def run() -> None:
        for _ in range(3):
            try:
                outcomes.append(_findings(engine, chunks) == want)
            except hyperscan.ScratchInUseError:
                outcomes.append("busy")

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert False not in outcomes
    assert _findings(engine, chunks) == want  # and the engine is still whole


def test_a_whole_scan_while_another_thread_scans_is_refused_as_hyperscan_refuses_it() -> None:
    """``quiet`` and ``stretch`` scan into the scanner's one answer buffer too: a second thread
    in it gets Hyperscan's own error, and the scanner works again once the first is out."""
    engine = DlpEngine()
    scanner = engine._runscan
    if scanner is None:
        pytest.fail("the compiled DLP scan is not built")
    data = b'{"pan":"4111 1111 1111 1111"}'
    held = scanner.idle.pop()  # as a thread inside the scan holds it
    try:
        with pytest.raises(hyperscan.ScratchInUseError):
            engine.quiet(data)
        with pytest.raises(hyperscan.ScratchInUseError):
            engine.stretch(data)
    finally:
        scanner.idle.append(held)
    assert not engine.quiet(data)
    assert [m.sensor for m in engine.stretch(data) or []] == ["dlp.payment_card"]
