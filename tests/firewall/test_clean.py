"""The kernel's first look (firewall/enforce/clean.py): the reference predicate, the C program's
generated tables, and the property the enforcer relies on: a segment at which a covered sensor
reports (the segment the enforcer would block) is never CLEAN, however the bytes are cut."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from stockade.firewall.enforce import clean
from stockade.firewall.enforce.clean import Direction
from stockade.network.dlp.decoding import DecodingStream
from stockade.network.dlp.engine import DlpEngine

ENFORCE = Path(clean.__file__).parent


def test_the_c_tables_are_generated_from_the_reference() -> None:
    assert (ENFORCE / "clean_tables.h").read_text() == clean.c_tables(), (
        "regenerate: python3 -m stockade.firewall.enforce.clean > "
        "src/stockade/firewall/enforce/clean_tables.h"
    )


def run(*segments: bytes, isn: int = 1000) -> list[tuple[bool, bool]]:
    d = Direction.opened(isn)
    seq = isn + 1
    out = []
    for seg in segments:
        out.append(d.segment(seq & 0xFFFFFFFF, seg))
        seq += len(seg)
    return out


CLEAN, SHORT_ONLY, LOUD = (True, True), (True, False), (False, False)


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        ([b"GET /orders HTTP/1.1\r\nHost: orders:8080\r\nAccept-Encoding: gzip\r\n\r\n"], [CLEAN]),
        ([b'{"order": 12345678, "qty": 2}'], [CLEAN]),  # 8 digits: neither run
        ([b'{"card": "4111 1111 1111 1111"}'], [LOUD]),
        ([b"ssn 123-45-6789"], [SHORT_ONLY]),  # 11 characters: an SSN, no card
        ([b"call (415) 555-2671"], [SHORT_ONLY]),  # NANP: 10 digits
        ([b"Host: 10.77.0.11:8080\r\nDate: Sun, 06 Dec 2026 13:44:55 GMT"], [CLEAN]),
        ([b"Host: 192.168.100.200"], [LOUD]),  # 12 digits in one run
        ([b'{"card": "4111 111', b'1 1111 1111"}'], [CLEAN, LOUD]),  # a run across segments
        ([b"x" * 20 + b"4111 1111 1", b"abc 1111"], [SHORT_ONLY, CLEAN]),  # a run that ended
        ([b"          ", b"------------", b"...."], [CLEAN, CLEAN, CLEAN]),  # no digit: no run
        ([b"4111\xc2\xa01111\xc2\xa01111\xc2\xa01111"], [LOUD]),  # no-break spaces
        ([b"4111.1111.1111.1111"], [LOUD]),
        ([b"a=1%20b", b"plain"], [LOUD, LOUD]),  # a trigger ends CLEAN for the direction
        ([b"mail me: a@b.example"], [LOUD]),
        ([b"+14155552671"], [LOUD]),
        ([b'{"card": "\\u0034111"}'], [LOUD]),  # JSON escapes
        ([b"Content-En", b"coding: gzip\r\n", b"x"], [CLEAN, LOUD, LOUD]),  # a word across
        ([b"TRANSFER-ENCODING: chunked"], [LOUD]),
        ([b"Upgrade: WebSocket"], [LOUD]),
        ([b"Upgrade: h2c"], [LOUD]),
        ([b"PRI * HTTP/2.0\r\n\r\nSM"], [LOUD]),
        ([b"\x00\x00\x06\x04"], [LOUD]),
        ([b""], [LOUD]),  # no payload: never CLEAN (the kernel's own rules take those)
    ],
)
def test_the_predicate(segments: list[bytes], expected: list[tuple[bool, bool]]) -> None:
    assert run(*segments) == expected


def test_order_retransmissions_gaps_and_overlaps() -> None:
    d = Direction.opened(0xFFFFFFF0)  # sequence numbers wrap
    seq = 0xFFFFFFF1
    assert d.segment(seq, b"hello ") == CLEAN
    # a plain retransmission: not CLEAN (the enforcer judges it), the direction goes on
    assert d.segment(seq, b"hello ") == LOUD
    assert d.segment((seq + 6) & 0xFFFFFFFF, b"world ") == CLEAN
    # a gap: never CLEAN again in this direction
    assert d.segment((seq + 20) & 0xFFFFFFFF, b"later") == LOUD
    assert d.segment((seq + 12) & 0xFFFFFFFF, b"filled") == LOUD
    d = Direction.opened(100)
    assert d.segment(101, b"abcdef") == CLEAN
    assert d.segment(104, b"defghi") == LOUD  # an overlap that reaches past what was seen
    assert d.segment(107, b"xyz") == LOUD


def test_which_sensors_the_predicate_covers() -> None:
    ids = [c.sensor.id for c in DlpEngine().sensors]
    assert clean.predicate_for(ids, ["dlp.payment_card"]) == clean.RUN_LONG
    assert clean.predicate_for(ids, ["dlp.payment_card", "dlp.us_ssn"]) == clean.RUN_SHORT
    assert clean.predicate_for(ids, ["dlp.email"]) == clean.RUN_LONG
    assert clean.predicate_for(ids, ["dlp.email", "dlp.phone"]) == clean.RUN_SHORT
    assert clean.predicate_for(ids, ["dlp.iban"]) is None  # letters and digits: not covered
    assert clean.predicate_for(ids, ["dlp.*"]) is None
    assert clean.predicate_for([*ids, "dlp.acme_id"], ["dlp.acme_*"]) is None  # a user sensor


# --- the property the enforcer relies on -------------------------------------------------

_ENGINE = DlpEngine()
# which flag a sensor's report needs off: 0 CLEAN, 1 CLEAN_SHORT
_RUN_OF = {s: int(run == clean.RUN_SHORT) for s, run in clean.COVERED.items()}


def _http(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return (
        f"POST /pay HTTP/1.1\r\nHost: orders\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def _chunked(body: bytes) -> bytes:
    mid = len(body) // 2
    chunks = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in (body[:mid], body[mid:]))
    return (
        b"POST /pay HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks
        + b"0\r\n\r\n"
    )


CORPUS = {
    "card spaced": _http(b'{"card": "4111 1111 1111 1111", "cvv": "123"}'),
    "card plain": _http(b'{"pan": 5500005555555559}'),
    "card dashed": _http(b"card=3782-822463-10005&x=1"),
    "amex spaced": b'HTTP/1.1 200 OK\r\n\r\n{"amex": "3782 822463 10005"}',
    "track 1": _http(b"%B4111111111111111^DOE/JOHN^2512101"),
    "ssn": _http(b'{"ssn": "536-22-1234", "name": "alice"}'),
    "ssn bare": _http(b'{"ssn": 536221234}'),
    "phone": _http(b'{"phone": "(415) 555-2671"}'),
    "phone e164": _http(b'{"tel": "+44 20 7946 0958"}'),
    "email": _http(b'{"contact": "alice.smith@example.com"}'),
    "percent query": b"GET /pay?card=4111%201111%201111%201111 HTTP/1.1\r\nHost: o\r\n\r\n",
    "form": _http(b"card=4111+1111+1111+1111", "Content-Type: application/x-www-form-urlencoded"),
    "chunked": _chunked(b'{"card": "4111 1111 1111 1111"}'),
    "gzip": _http(gzip.compress(b'{"card": "4111 1111 1111 1111"}'), "Content-Encoding: gzip"),
    "json escapes": _http(b'{"card": "\\u0034\\u0031\\u0031\\u0031 1111 1111 1111"}'),
    "json escaped separators": _http(b'{"card": "4111\\u00201111\\u00201111\\u00201111"}'),
    "card dotted": _http(b'{"card": "4111.1111.1111.1111"}'),
    "card no-break spaces": _http(b'{"card": "4111\xc2\xa01111\xc2\xa01111\xc2\xa01111"}'),
    "card latin-1 no-break spaces": _http(b"card=4111\xa01111\xa01111\xa01111&x=1"),
}


def _reports(segments: list[bytes]) -> list[set[str]]:
    """The covered sensors the enforcer's DLP stream reports at each segment."""
    stream = DecodingStream(_ENGINE)
    out = []
    for seg in segments:
        found = stream.feed(seg) + stream.decide_now()
        out.append({m.sensor for m in found if m.sensor in clean.COVERED})
    return out


def _cuts(data: bytes, rng: random.Random) -> list[list[bytes]]:
    ways = [[data[:i], data[i:]] for i in range(1, len(data))]  # every cut in two
    for _ in range(60):  # and some into three to eight
        points = sorted(rng.sample(range(1, len(data)), rng.randint(2, 7)))
        ways.append([data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)])
    return ways


@pytest.mark.parametrize("name", list(CORPUS))
def test_a_segment_a_covered_sensor_reports_at_is_never_clean(name: str) -> None:
    data = CORPUS[name]
    whole = _reports([data])[0]
    assert whole, f"the corpus case {name!r} must hold something a covered sensor reports"
    rng = random.Random(name)
    for segments in [[data], *_cuts(data, rng)]:
        flags = run(*segments)
        for k, sensors in enumerate(_reports(segments)):
            for sensor in sensors:
                assert not flags[k][_RUN_OF.get(sensor, 0)], (name, k, sensor, segments)


def test_the_classifier_builds_with_the_one_command_setup_py_uses(tmp_path: Path) -> None:
    """tcfilter builds clean.bpf.c (an install that never ran setup.py's build) with the same
    command as the install (clean_build.command): a BPF ELF object with the program's section."""
    from stockade.firewall.enforce import clean_build, tcfilter

    out = tmp_path / "clean.o"
    tcfilter.compile_to(out)
    data = out.read_bytes()
    assert data[:4] == b"\x7fELF" and data[18] == 247  # e_machine EM_BPF (little-endian)
    assert b"\0" + tcfilter.SECTION.encode() + b"\0" in data
    setup_py = (Path(clean_build.__file__).parents[4] / "setup.py").read_text()
    assert "build.command(" in setup_py and '"-target"' not in setup_py
