"""Engine properties: split invariance, backend equivalence, masking bounds, user sensors."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockade.model.errors import ConfigError
from stockade.network.dlp import DlpEngine, load_sensor_file, sensor_from_dict
from stockade.network.dlp.masking import mask_card, mask_email, mask_iban, mask_ssn
from stockade.network.dlp.validators import luhn_check_digit, luhn_ok
from stockade.network.interface import DlpMatch

ENGINES = {b: DlpEngine(backend=b) for b in ("hs-stream", "hs-window", "re")}
PREFIXES = ["4", "51", "55", "2221", "2720", "34", "37", "6011", "65", "3530", "36", "62"]
LENGTHS = {"34": 15, "37": 15, "36": 14}


@st.composite
def cards(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(PREFIXES))
    length = LENGTHS.get(prefix, 16)
    body = prefix + draw(
        st.text("0123456789", min_size=length - len(prefix) - 1, max_size=length - len(prefix) - 1)
    )
    number = body + luhn_check_digit(body)
    sep = draw(st.sampled_from(["", " ", "-"]))
    if not sep:
        return number
    if length == 16:
        return sep.join(number[i : i + 4] for i in range(0, 16, 4))
    return sep.join((number[:4], number[4:10], number[10:]))


clean = st.text(alphabet='abcdefghij klm{}":,\r\n', max_size=80)


def feed_in_pieces(engine: DlpEngine, data: bytes, cuts: list[int]) -> list[DlpMatch]:
    stream = engine.stream()
    out: list[DlpMatch] = []
    last = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}):
        out += stream.feed(data[last:cut])
        last = cut
    out += stream.feed(data[last:])
    return out + stream.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cards(), clean, clean, st.lists(st.integers(0, 400), max_size=6))
def test_valid_card_found_once_in_any_split(
    card: str, before: str, after: str, cuts: list[int]
) -> None:
    digits = card.replace(" ", "").replace("-", "")
    if len(set(digits)) == 1:
        return  # degenerate filler is rejected on purpose
    text = f"{before} card {card} {after}".encode()
    start = text.index(card.encode())
    for name, engine in ENGINES.items():
        got = [m for m in feed_in_pieces(engine, text, cuts) if m.sensor == "dlp.payment_card"]
        spans = [(m.start, m.end) for m in got]
        if not _sequential(digits):
            assert spans == [(start, start + len(card))], name


def _sequential(digits: str) -> bool:
    steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(digits)}
    return steps in ({1}, {9})


# Text dense in digits, separators and PII fragments: where the backends could disagree.
noisy = st.lists(
    st.one_of(
        st.text("0123456789 -.", max_size=25),
        cards(),
        st.sampled_from(
            [
                "ssn 536-90-4399",
                "DE89 3704 0044 0532 0130 00",
                "a@b.example.com",
                "phone +1 415 555 2671",
                "order_id ",
                "card ",
                "(415) 555-2671",
                "x",
            ]
        ),
    ),
    max_size=12,
).map(lambda parts: " ".join(parts).encode())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(noisy, st.lists(st.integers(0, 500), max_size=5))
def test_backends_agree_on_any_split(data: bytes, cuts: list[int]) -> None:
    reference = ENGINES["re"].scan(data)
    for name, engine in ENGINES.items():
        assert feed_in_pieces(engine, data, cuts) == reference, name


def feed_coalesced(
    engine: DlpEngine, data: bytes, cuts: list[int], coalesce: int, decide: set[int]
) -> list[DlpMatch]:
    """Like :func:`feed_in_pieces` through a coalescing stream; ``decide_now`` after the
    pieces whose index is in ``decide`` (an inline caller's question mid-stream)."""
    stream = engine.stream(coalesce=coalesce)
    out: list[DlpMatch] = []
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    for k, (a, b) in enumerate(itertools.pairwise(bounds)):
        out += stream.feed(data[a:b])
        if k in decide:
            out += stream.decide_now()
    return out + stream.close()


def _key(m: DlpMatch) -> tuple[int, str, int]:
    return (m.start, m.sensor, m.end)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    noisy,
    st.lists(st.integers(0, 500), max_size=6),
    st.integers(1, 700),
    st.sets(st.integers(0, 6), max_size=3),
)
def test_coalesced_streams_find_what_a_scan_per_segment_finds(
    data: bytes, cuts: list[int], coalesce: int, decide: set[int]
) -> None:
    # decide_now judges with the bytes so far (an inline caller's answer), so with it the
    # reference is the same questions asked of a stream that scans every segment.
    reference = sorted(ENGINES["re"].scan(data), key=_key)
    for name in ("hs-stream", "hs-window", "re"):
        engine = ENGINES[name]
        got = sorted(feed_coalesced(engine, data, cuts, coalesce, decide), key=_key)
        per_segment = sorted(feed_coalesced(engine, data, cuts, 0, decide), key=_key)
        assert got == per_segment, name
        if not decide:
            assert got == reference, name
        assert engine.unscanned == 0  # every held byte was scanned by close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cards(), clean, st.lists(st.integers(0, 120), max_size=6), st.integers(1, 300))
def test_a_card_cut_across_coalesced_segments_is_found_once(
    card: str, before: str, cuts: list[int], coalesce: int
) -> None:
    digits = card.replace(" ", "").replace("-", "")
    if len(set(digits)) == 1 or _sequential(digits):
        return
    text = f"{before} card {card} ok".encode()
    start = text.index(card.encode())
    got = feed_coalesced(ENGINES["hs-stream"], text, cuts, coalesce, set())
    assert [(m.sensor, m.start, m.end) for m in got] == [
        ("dlp.payment_card", start, start + len(card))
    ]


def test_a_coalescing_stream_answers_inline_questions_at_once() -> None:
    engine = DlpEngine(backend="hs-stream")
    stream = engine.stream(coalesce=1 << 20)
    assert stream.feed(b'{"card": "4111 1111 1111 1111"}') == []  # held, not scanned yet
    assert engine.unscanned > 0
    assert [m.masked for m in stream.decide_now()] == ["4111 **** **** 1111"]  # scanned now
    assert engine.unscanned == 0
    stream.feed(b"ssn 536-90-4399 ")
    stream.discard()
    assert engine.unscanned == 0


def test_unscanned_bytes_of_all_streams_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from stockade.network.dlp import engine as engine_module

    monkeypatch.setattr(engine_module, "UNSCANNED_TOTAL", 100)
    engine = DlpEngine(backend="hs-stream")
    streams = [engine.stream(coalesce=1 << 20) for _ in range(3)]
    for s in streams:
        s.feed(b"x" * 40)
    assert engine.unscanned == 80  # the third feed went past the bound and scanned its own
    assert streams[2].close() == [] and engine.unscanned == 80


def test_split_card_found_once_at_every_cut() -> None:
    data = b'POST /pay HTTP/1.1\r\n\r\n{"card": "4111 1111 1111 1111", "n": 1}'
    for engine in ENGINES.values():
        for cut in range(len(data) + 1):
            got = feed_in_pieces(engine, data, [cut])
            assert [m.masked for m in got] == ["4111 **** **** 1111"]


def test_one_byte_segments_and_long_streams() -> None:
    filler = b'{"id": 17, "ts": 1700000000000, "status": "ok"}\n' * 2000
    data = filler + b"card 5555 5555 5555 4444 " + filler + b"ssn 536-90-4399\n"
    for engine in ENGINES.values():
        got = feed_in_pieces(engine, data, list(range(0, len(data), 1460)))
        assert [(m.sensor, m.masked) for m in got] == [
            ("dlp.payment_card", "5555 **** **** 4444"),
            ("dlp.us_ssn", "***-**-4399"),
        ]
        assert got[0].start == len(filler) + 5
    stream = ENGINES["hs-stream"].stream()
    got = [
        m for b in b"x card 4111111111111111 y" for m in stream.feed(bytes([b]))
    ] + stream.close()
    assert [m.masked for m in got] == ["4111********1111"]


@settings(max_examples=300, deadline=None)
@given(cards())
def test_card_mask_shows_at_most_first_and_last_four(card: str) -> None:
    masked = mask_card(card)
    visible = [c for c in masked if c.isdigit()]
    digits = [c for c in card if c.isdigit()]
    assert len(masked) == len(card) and len(visible) == 8
    assert visible == digits[:4] + digits[-4:]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ", min_size=1, max_size=40))
def test_iban_and_generic_masks_bound_what_they_show(value: str) -> None:
    assert sum(c.isalnum() for c in mask_iban(value)) <= 8
    assert sum(c.isdigit() for c in mask_ssn(value)) <= 4


@settings(max_examples=200, deadline=None)
@given(st.emails())
def test_email_mask_keeps_one_local_character(address: str) -> None:
    local = address.rpartition("@")[0]
    masked = mask_email(address)
    assert masked.rpartition("@")[0] == local[:1] + "***"


def test_matches_never_carry_the_full_value() -> None:
    data = b"card 4111 1111 1111 1111 ssn 536-90-4399 iban DE89370400440532013000"
    for m in ENGINES["hs-stream"].scan(data):
        raw = data[m.start : m.end].decode()
        assert raw not in m.masked and raw.replace(" ", "") not in m.masked.replace(" ", "")
        assert raw not in repr(m)


def test_luhn_generator_agrees_with_checker() -> None:
    for partial in ("411111111111111", "3782822463100", "7992739871"):
        assert luhn_ok(partial + luhn_check_digit(partial))


# --- user-defined sensors ----------------------------------------------------------------

SENSOR_YAML = """
sensors:
  - id: dlp.acme_customer_id
    title: ACME customer number
    patterns: ['(?<![A-Z0-9])ACME-[0-9]{8}(?![0-9])']
    context: [customer]
    validator: none
    score: 0.6
  - id: dlp.acme_member_card
    pattern: '(?<![0-9])7[0-9]{9}(?![0-9])'
    validator: luhn
    mask: generic
    min_score: 0.5
"""


def test_user_sensors_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "sensors.yaml"
    path.write_text(SENSOR_YAML)
    sensors = load_sensor_file(path)
    assert [s.id for s in sensors] == ["dlp.acme_customer_id", "dlp.acme_member_card"]
    data = b"customer ACME-12345678 member 7992739875 other 7992739870 XACME-12345678"
    results = {
        b: DlpEngine(sensors, backend=b).scan(data) for b in ("hs-stream", "hs-window", "re")
    }
    assert results["hs-stream"] == results["hs-window"] == results["re"]
    got = [(m.sensor, m.masked, m.confidence) for m in results["re"]]
    assert got == [
        ("dlp.acme_customer_id", "*********5678", 0.95),
        ("dlp.acme_member_card", "**********", 0.6),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sensors: [", "invalid YAML"),
        ("sensors: {}", "'sensors' list"),
        ("sensors:\n  - id: Bad Id\n    pattern: x", "dotted slug"),
        ("sensors:\n  - id: dlp.x\n    pattern: '(unclosed'", "bad regex"),
        ("sensors:\n  - id: dlp.x\n    pattern: x\n    validator: nope", "unknown validator"),
        ("sensors:\n  - id: dlp.x\n    pattern: x\n    colour: red", "unknown keys"),
        ("sensors:\n  - id: dlp.payment_card\n    pattern: x", "differ from built-in"),
        ("sensors:\n  - id: dlp.x\n    pattern: x\n    score: high", "must be numbers"),
    ],
)
def test_bad_sensor_files_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_sensor_file(path)


def test_missing_sensor_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_sensor_file(tmp_path / "absent.yaml")


def test_unbounded_user_regex_is_capped() -> None:
    sensor = sensor_from_dict({"id": "dlp.secret_word", "pattern": "secret=[a-z]+"}, where="t")
    assert sensor.max_length == 512
    data = b"x secret=" + b"a" * 20 + b" y"
    assert [m.masked for m in DlpEngine([sensor]).scan(data)] == ["*" * 23 + "aaaa"]


def test_engine_rejects_bad_configuration() -> None:
    with pytest.raises(ConfigError):
        DlpEngine(backend="gpu")
    with pytest.raises(ConfigError):
        DlpEngine([])


def test_feed_after_close_is_an_error() -> None:
    stream = ENGINES["re"].stream()
    stream.close()
    assert stream.close() == []
    with pytest.raises(ValueError):
        stream.feed(b"x")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.lists(st.integers(0, 700), max_size=5))
def test_arbitrary_bytes_never_raise_and_backends_agree(data: bytes, cuts: list[int]) -> None:
    reference = ENGINES["re"].scan(data)
    for engine in ENGINES.values():
        assert feed_in_pieces(engine, data, cuts) == reference


def test_without_hyperscan_the_engine_falls_back_to_re() -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    code = (
        "import sys; sys.modules['hyperscan'] = None\n"
        "from stockade.network.dlp import DlpEngine, hyperscan_available\n"
        "e = DlpEngine(); assert not hyperscan_available() and e.backend == 're'\n"
        "print([m.masked for m in e.scan(b'card 4111 1111 1111 1111')])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    assert out.stdout.strip() == "['4111 **** **** 1111']"


def test_user_regex_hyperscan_rejects_is_scanned_by_regex_alone() -> None:
    # \N{...} is Python-only syntax: Hyperscan refuses it, the sensor still works.
    sensor = sensor_from_dict(
        {"id": "dlp.odd", "pattern": r"\N{DIGIT ONE}[0-9]{3}(?![0-9])"}, where="t"
    )
    engine = DlpEngine([sensor])
    assert engine.always_scan == (0,)
    data = b"zz 1234X 1999 2999"
    assert engine.scan(data) == DlpEngine([sensor], backend="re").scan(data)
    assert [(m.start, m.end) for m in feed_in_pieces(engine, data, [5, 11])] == [(3, 7), (9, 13)]


def _prefilter_hits(data: bytes) -> list[str]:
    """Sensor ids whose Hyperscan prefilter reports a candidate end in ``data`` (block mode)."""
    engine = ENGINES["hs-window"]
    hits: list[str] = []

    def on_match(ident: int, _f: int, _t: int, _fl: int, _c: object) -> None:
        hits.append(engine.sensors[ident // 64].sensor.id)

    engine._hs_db.scan(data, match_event_handler=on_match)
    return hits


def test_prefilters_keep_numbers_that_cannot_match_out_of_python() -> None:
    # 12-digit ids starting with 4 (Visa has 13, 16 or 19 digits) and the 3+4 digit groups
    # inside grouped cards and IBANs (no area code before them) never reach the exact regexes.
    assert _prefilter_hits(b'{"order": 412345678901, "n": 1}') == []
    for grouped in (b"5555-5555-5555-4444", b"DE89 3704 0044 0532 0130 00", b"4111 1111 1111 1111"):
        assert "dlp.phone" not in _prefilter_hits(b'{"note": "%s"}' % grouped)


@pytest.mark.parametrize(
    "text",
    [
        b"4987654321094",  # 13-digit Visa
        b"501812345673",  # 12-digit Maestro
        b"5018123456789",
        b"(415) 555-2671",
        b"(415)555-2671",
        b"415-555-2671",
        b"415.555.2671",
        b"415 555 2671",
        b"1-415-555-2671",
        b"+1 415 555 2671",
    ],
)
def test_tight_prefilters_still_propose_every_shape(text: str) -> None:
    data = b'{"contact": "phone card ' + text + b'", "n": 1}'
    reference = ENGINES["re"].scan(data)
    assert reference, text
    for engine in ENGINES.values():
        for cut in range(0, len(data), 7):
            assert feed_in_pieces(engine, data, [cut, cut + 3]) == reference
        assert engine.scan(data + text) == ENGINES["re"].scan(data + text)  # at the very end


@settings(max_examples=400, deadline=None)
@given(st.text("0123456789", min_size=1, max_size=21), st.sampled_from(["", " ", "-", ".", "/"]))
def test_card_validator_fast_paths_agree_with_the_shared_functions(digits: str, sep: str) -> None:
    from stockade.model.redact import card_brand, digits_of
    from stockade.network.dlp import validators

    text = sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))
    assert validators._card_digits(text) == digits_of(text) == digits
    assert validators._luhn(digits) == luhn_ok(digits)
    verdict = validators._brand(digits[:6], len(digits))
    assert verdict.label == card_brand(digits) and verdict.ok == (card_brand(digits) is not None)
    fixed = digits[:-1] + luhn_check_digit(digits[:-1])
    assert validators._luhn(fixed) and validators._luhn("٣" + fixed) == luhn_ok("٣" + fixed)


def test_a_recurring_value_is_validated_and_masked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from stockade.network.dlp import engine as engine_module
    from stockade.network.dlp import validators

    calls: list[str] = []

    def counting(text: str) -> validators.Validation:
        calls.append(text)
        return validators.payment_card(text)

    monkeypatch.setitem(validators.VALIDATORS, "payment_card", counting)
    engine = DlpEngine(backend="hs-stream")
    once = b'{"card": "4111 1111 1111 1111", "id": 7}\n'
    got = engine.scan(once * 3) + engine.scan(once)
    assert [m.masked for m in got] == ["4111 **** **** 1111"] * 4
    assert calls == ["4111 1111 1111 1111"]
    # bounded: distinct values never keep more than VERDICTS_KEPT verdicts per sensor
    body = b"".join(b"card %d\n" % (4000_0000_0000_0000 + i) for i in range(700))
    engine.scan(body)
    assert 0 < len(engine.sensors[0].known) <= engine_module.VERDICTS_KEPT
    # what it remembers is filed under a keyed hash: no card number is kept past its flow
    kept = repr(list(engine.sensors[0].known))
    assert "4000" not in kept and all(isinstance(k, bytes) for k in engine.sensors[0].known)
    # an engine that ignores test cards keeps its own verdicts
    assert DlpEngine(backend="hs-stream", ignore_test_cards=True).scan(once) == []


def _own_key_reference(zone: str) -> str:
    # the key zone's tail after its last field separator, as first written (five rfind calls)
    cut = max(zone.rfind(","), zone.rfind(";"), zone.rfind("{"), zone.rfind("&"), zone.rfind("\n"))
    return zone[cut + 1 :]


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=',;{&\n\r "_:abcdXYZ019é', max_size=30))
def test_own_key_matches_its_reference(zone: str) -> None:
    from stockade.network.dlp.engine import _own_key

    assert _own_key(zone) == _own_key_reference(zone)


def test_fast_match_construction_equals_the_dataclass() -> None:
    from stockade.network.dlp.engine import _new_match

    for label in (None, "visa"):
        fast = _new_match("dlp.payment_card", "4111 **** **** 1111", 3, 22, 0.9, "card", label)
        slow = DlpMatch(sensor="dlp.payment_card", masked="4111 **** **** 1111", start=3, end=22,
                        confidence=0.9, context="card", label=label)  # fmt: skip
        assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    with pytest.raises(AttributeError):
        fast.start = 4  # type: ignore[misc]  # still frozen


EMAILISH = st.lists(
    st.sampled_from(["a.b@example.org", "x@y.co", "@", "@@", "me@", " ", "\n", '"', "-", ".",
                     "q" * 70, "user_name+tag", "@host.example.com", "DE89 3704 0044 0532 0130 00",
                     "GB82WEST12345698765432", "xGB82WEST12345698765432", "DE89", "ZZ", "1"]),
    max_size=40,
).map("".join)  # fmt: skip


def _anchor_engines() -> dict[str, tuple[DlpEngine, DlpEngine]]:
    """Per backend: the built-in e-mail and IBAN sensors, and the same sensors written plainly
    (the e-mail sensor without its anchor, the IBAN patterns with their lookbehind first)."""
    import dataclasses

    from stockade.network.dlp.sensors import BUILTIN_SENSORS

    email = next(s for s in BUILTIN_SENSORS if s.id == "dlp.email")
    iban = next(s for s in BUILTIN_SENSORS if s.id == "dlp.iban")
    plain = (
        dataclasses.replace(email, id="plain.email", anchor="", anchor_reach=0),
        dataclasses.replace(
            iban,
            id="plain.iban",
            patterns=(
                r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}(?![A-Za-z0-9])",
                r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?"
                r"(?![A-Za-z0-9])",
            ),
        ),
    )
    return {
        b: (DlpEngine((email, iban), backend=b), DlpEngine(plain, backend=b))
        for b in ("hs-stream", "re")
    }


ANCHOR_ENGINES = _anchor_engines()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EMAILISH, st.lists(st.integers(1, 400), max_size=4))
def test_anchor_and_first_letter_patterns_find_what_the_plain_forms_find(
    text: str, cuts: list[int]
) -> None:
    """The e-mail sensor's anchor ("@" within 64 characters of a match's start) and the IBAN
    patterns written after their first letter find exactly what the plain forms find."""
    data = text.encode("latin-1")

    def seen(engine: DlpEngine) -> list[tuple[object, ...]]:
        found = feed_in_pieces(engine, data, cuts)
        return [(m.sensor.split(".")[1], m.start, m.end, m.masked, m.confidence) for m in found]

    for built_in, plain in ANCHOR_ENGINES.values():
        assert seen(built_in) == seen(plain)
