"""The one masking gate: card numbers and US SSNs are masked in every string that leaves the process.

The DLP engine decides with context and scores what to *report*; this gate decides nothing but what
may be *shown*, so it is deliberately wider: any run of 13 to 19 digits in a card issuer's range of
that length that passes Luhn, with or without one kind of separator (spaces, dashes, dots,
underscores, ``+`` or ``%20``), anywhere in a string (a URL path, a host name, a DNS label, an SNI,
a log line), and any run of 9 digits, bare
or grouped 3-2-4, that passes the SSN area/group/serial rules. Both are masked the way DLP evidence
is (``4111 **** **** 1111``, ``***-**-6789``). Digits that belong to a hex digest (32 or more hex
characters, or a UUID) are left alone, so image digests and ids keep working: a digit run inside one
is masked only when it reaches across the blob's edge or joins other groups into a card.

Pure functions only: the model imports nothing else, so the store, the CLI and every pillar use it.
"""

from __future__ import annotations

import logging
import re
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from itertools import accumulate
from typing import Any

_DOUBLED = str.maketrans("0123456789", "0246813579")  # 2d, minus 9 when above 9
_NOT_DIGITS = {c: None for c in range(256) if not 48 <= c <= 57}


def digits_of(text: str) -> str:
    return text.translate(_NOT_DIGITS)


def luhn_ok(number: str) -> bool:
    """Mod-10 check over a string of digits (the last one is the check digit)."""
    rev = number[::-1]
    return sum(map(int, rev[0::2] + rev[1::2].translate(_DOUBLED))) % 10 == 0


# (brand, lowest prefix, highest prefix, prefix width, allowed lengths). Ordered: the first row
# that matches names the brand, so narrow ranges come before the wide ones they overlap.
_CARD_RANGES: tuple[tuple[str, int, int, int, frozenset[int]], ...] = (
    ("discover", 622126, 622925, 6, frozenset(range(16, 20))),
    ("mir", 2200, 2204, 4, frozenset(range(16, 20))),
    ("mastercard", 2221, 2720, 4, frozenset({16})),
    ("mastercard", 51, 55, 2, frozenset({16})),
    # Maestro's 56-59 (Mastercard's debit brand; card-type tables such as Braintree's
    # credit-card-type give it 12-19 digits): 16-19 here. A two-digit prefix at 12-15 digits
    # would make one random 12-digit id in 250 a Maestro card (and send every 12-digit id
    # starting 56-59 to confirmation); the 12-15 digit Maestro cards are the narrow ranges below.
    ("maestro", 56, 59, 2, frozenset(range(16, 20))),
    ("maestro", 5018, 5018, 4, frozenset(range(12, 20))),
    ("maestro", 5020, 5020, 4, frozenset(range(12, 20))),
    ("maestro", 5038, 5038, 4, frozenset(range(12, 20))),
    ("maestro", 5893, 5893, 4, frozenset(range(12, 20))),
    ("maestro", 6304, 6304, 4, frozenset(range(12, 20))),
    ("maestro", 6759, 6759, 4, frozenset(range(12, 20))),
    ("maestro", 6761, 6763, 4, frozenset(range(12, 20))),
    ("visa", 4, 4, 1, frozenset({13, 16, 19})),
    ("amex", 34, 34, 2, frozenset({15})),
    ("amex", 37, 37, 2, frozenset({15})),
    ("discover", 6011, 6011, 4, frozenset(range(16, 20))),
    ("discover", 644, 649, 3, frozenset(range(16, 20))),
    ("discover", 65, 65, 2, frozenset(range(16, 20))),
    ("jcb", 3528, 3589, 4, frozenset(range(16, 20))),
    ("diners", 300, 305, 3, frozenset(range(14, 20))),
    ("diners", 3095, 3095, 4, frozenset(range(14, 20))),
    ("diners", 36, 36, 2, frozenset(range(14, 20))),
    ("diners", 38, 39, 2, frozenset(range(14, 20))),
    ("unionpay", 62, 62, 2, frozenset(range(16, 20))),
    ("unionpay", 81, 81, 2, frozenset(range(16, 20))),
)


def card_brand(number: str) -> str | None:
    """Brand whose IIN range and length admit ``number`` (digits only), or None."""
    length = len(number)
    for brand, low, high, width, lengths in _CARD_RANGES:
        if length in lengths and low <= int(number[:width]) <= high:
            return brand
    return None


def ssn_number_ok(number: str) -> bool:
    """Nine digits the SSA could have issued: area not 000, 666 or 9xx, group not 00, serial not
    0000."""
    if len(number) != 9 or not number.isdigit():
        return False
    area, group, serial = number[:3], number[3:5], number[5:]
    return area not in ("000", "666") and area < "900" and group != "00" and serial != "0000"


def keep_edges(text: str, first: int, last: int, significant: Callable[[str], bool]) -> str:
    """Hide every significant character but the first ``first`` and last ``last``; separators stay
    so the shape is recognisable."""
    positions = [i for i, ch in enumerate(text) if significant(ch)]
    if len(positions) <= first + last:
        # Too short to show any edge without revealing most of it.
        return "".join("*" if significant(ch) else ch for ch in text)
    lo = positions[first] if first else positions[0]  # first hidden character
    hi = positions[-last] if last else len(text)  # first shown character of the tail
    middle = "".join("*" if significant(ch) else ch for ch in text[lo:hi])
    return text[:lo] + middle + text[hi:]


def mask_card(text: str) -> str:
    """``4111 1111 1111 1111`` -> ``4111 **** **** 1111``."""
    return keep_edges(text, 4, 4, str.isdigit)


def mask_ssn(text: str) -> str:
    """Any SSN shape -> ``***-**-6789``."""
    digits = [ch for ch in text if ch.isdigit()]
    return "***-**-" + "".join(digits[-4:])


# Digit groups, and the URL-encoded separators whose digits must not count as a group.
_TOKEN = re.compile(r"%2[0dDeE]|[0-9]+")
# What may stand between two digit groups of one number: up to three separator characters.
# (U+00A0 is a no-break space; U+00C2 before it is one read as Latin-1 from UTF-8, "Â\xa0")
_GAP = re.compile(r"(?:[ \t._\-+\xa0\xc2]|%2[0dDeE]){1,3}")
_DIGIT = re.compile(r"[0-9]")
_HEX_BLOB = re.compile(r"[0-9A-Fa-f]{32,}")
# A UUID (8-4-4-4-12 hex digits): a CycloneDX serial number, a Kubernetes uid, a request id.
_UUID = re.compile(
    r"(?<![0-9A-Fa-f-])[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}(?![0-9A-Fa-f-])"
)
CARD_DIGITS = range(13, 20)
_CHUNK = 4096  # groups per pass of the window search: memory stays bounded on any input
_FAR = 1 << 62

Group = tuple[int, int]  # start and end of a run of digits in the text


# A necessary condition for a card number or an SSN: nine digits, each one at most three
# separators (``_GAP``'s units) after the one before. Every number the full search below masks
# lies in a run of digit groups joined by ``_GAP`` holding 9 digits or more, and such a run
# matches this; most strings (names, kinds, messages with a port or an address) do not, and pass
# (after _nine_close_digits, below, which this implies). tests/security/test_masking_gate.py
# holds the pre-checks and the full search to the same answers.
_MAYBE_SENSITIVE = re.compile(r"[0-9](?:(?:[ \t._\-+\xa0\xc2]|%2[0dDeE]){0,3}[0-9]){8}")
# Sharper, for the strings that pass the first test (an IPv4 address has nine digits a dot
# apart): a card needs thirteen such digits, an SSN nine in a row or groups of 3, 2 and 4. Each
# contains nine close digits from its first one on, so the search starts where the first test
# matched.
_SEP = r"(?:[ \t._\-+\xa0\xc2]|%2[0dDeE])"
_MAYBE_CARD_OR_SSN = re.compile(
    rf"[0-9](?:{_SEP}{{0,3}}[0-9]){{12}}|[0-9]{{9}}|[0-9]{{3}}{_SEP}{{1,3}}[0-9]{{2}}{_SEP}{{1,3}}[0-9]{{4}}"
)


# Cheaper than the first test, and implied by it: with the characters that may stand between
# the digits of one number deleted (_SEP's, and the "%" and letters of its URL-encoded forms),
# nine close digits become nine digits in a row. One bytes.translate and one find, where the
# regular expression costs a few microseconds for a string with a few digit groups in it.
_DIGITS_ONLY = bytes(48 if 48 <= c <= 57 else 120 for c in range(256))  # a digit "0", else "x"
_BETWEEN_DIGITS = b" \t._-+%dDeE\xc2\xa0\xc3\x82"  # U+00A0 is C2 A0 in UTF-8, U+00C2 C3 82
_NINE_DIGITS = b"0" * 9


def _nine_close_digits(raw: bytes) -> bool:
    """Whether ``raw`` (UTF-8) may hold nine close digits (False: it holds none, so no card or
    SSN); the necessary condition :func:`redact_text` and :func:`json_passes` test first."""
    return _NINE_DIGITS in raw.translate(_DIGITS_ONLY, _BETWEEN_DIGITS)


def json_passes(text: bytes) -> bool:
    """Whether every string of the JSON document ``text`` (UTF-8, as orjson writes it) passes
    :func:`redact_text` unchanged, decided on the whole text at once: with no escape in it (no
    backslash) each key and string value appears in the text as it is, so a string with nine
    close digits (the first test of :func:`redact_text`) puts them in the text. False decides
    nothing (a number, or two strings side by side, may make nine close digits): the strings
    then pass the gate one by one (a backslash may start a JSON escape of a digit, which the
    gate undoes). True also means no NUL (JSON writes it escaped)."""
    return b"\\" not in text and not _nine_close_digits(text)


# JSON's escapes of the characters a card or an SSN is written with (digits, and the separators
# space, hyphen, point and no-break space): "\u0034\u0031..." is 41... to whoever reads the JSON.
_NUMBER_ESCAPE = re.compile(r"\\u00(?:3[0-9]|2[0dDeE]|[aA]0)")


def _unescaped(match: re.Match[str]) -> str:
    return chr(int(match[0][2:], 16))


def redact_text(text: str) -> str:
    """``text`` with every card number and SSN in it masked (the same object when none is).

    Linear in the length of ``text``; a string without nine digits close together costs one
    ``bytes.translate`` (:func:`_nine_close_digits`), one with them one or two regex scans. A
    string that writes digits or separators as JSON escapes (``\\u0034``) is read with them
    undone; when that hides something, the masked text has them undone too."""
    if "\\u00" in text:
        plain = _NUMBER_ESCAPE.sub(_unescaped, text)
        if plain != text:
            masked = _redact_plain(plain)
            return text if masked is plain else masked
    return _redact_plain(text)


def _redact_plain(text: str) -> str:
    if len(text) < 9 or not _nine_close_digits(text.encode("utf-8", "surrogatepass")):
        return text
    close = _MAYBE_SENSITIVE.search(text)
    if close is None or _MAYBE_CARD_OR_SSN.search(text, close.start()) is None:
        return text
    return redact_text_fully(text)


def redact_text_fully(text: str) -> str:
    """:func:`redact_text` without its pre-check (the reference the pre-check is tested against)."""
    cards, ssns = _sensitive(text)
    if not cards and not ssns:
        return text
    hidden = bytearray(len(text)) if cards else None  # 1 where a card's middle digit is
    for _start, _end, positions in cards:
        assert hidden is not None
        for i in positions:
            hidden[i] = 1
    chars = list(text)
    if hidden is not None:
        for i in _positions(hidden):
            chars[i] = "*"
    for start, end in ssns:
        if hidden is None or not any(hidden[start:end]):
            chars[start:end] = [mask_ssn(text[start:end]), *([""] * (end - start - 1))]
        else:  # inside a card as well: hide what either hides
            for i in _number_digits(text, start, end)[:5]:
                chars[i] = "*"
    return "".join(chars)


def hidden_in_place(text: str) -> list[tuple[str, int, int, list[int]]]:
    """What :func:`redact_text` hides, for masking bytes in place (same length): one
    ``(kind, start, end, positions)`` per card (``"card"``: its middle digits) and per SSN
    (``"ssn"``: every digit but the last 4). A digit written as a JSON escape is hidden whole
    (the six characters of ``\\u0034``)."""
    if "\\u00" in text and _NUMBER_ESCAPE.search(text) is not None:
        plain, at = _unescaped_with_places(text)
        return [
            (kind, at[start], at[end], [i for p in positions for i in range(at[p], at[p + 1])])
            for kind, start, end, positions in _hidden_in_place(plain)
        ]
    return _hidden_in_place(text)


def _unescaped_with_places(text: str) -> tuple[str, list[int]]:
    """``text`` with the number escapes undone, and where each of its characters begins in
    ``text`` (one more entry: ``len(text)``)."""
    parts: list[str] = []
    at: list[int] = []
    pos = 0
    for m in _NUMBER_ESCAPE.finditer(text):
        s, e = m.span()
        parts += [text[pos:s], _unescaped(m)]
        at += [*range(pos, s), s]
        pos = e
    parts.append(text[pos:])
    at += [*range(pos, len(text)), len(text)]
    return "".join(parts), at


def _hidden_in_place(text: str) -> list[tuple[str, int, int, list[int]]]:
    cards, ssns = _sensitive(text)
    out = [("card", start, end, list(positions)) for start, end, positions in cards]
    for start, end in ssns:
        out.append(("ssn", start, end, _number_digits(text, start, end)[:-4]))
    out.sort(key=lambda item: item[1])
    return out


def _sensitive(text: str) -> tuple[list[tuple[int, int, array[int]]], list[Group]]:
    """Cards as (start, end, middle digit positions) and SSN spans found in ``text``."""
    if len(text) < 9 or not _DIGIT.search(text):
        return [], []
    blobs: list[Group] | None = None
    cards: list[tuple[int, int, array[int]]] = []
    ssns: list[Group] = []
    for run in _runs(text):
        if sum(b - a for a, b in run) < 9:
            continue
        if blobs is None:
            blobs = _hex_blobs(text)
        for c in range(0, len(run), _CHUNK):
            window = run[c : c + _CHUNK + CARD_DIGITS[-1]]
            cards.extend(_card_middles(text, window, min(_CHUNK, len(window)), blobs))
        ssns.extend(_ssn_spans(text, run, blobs))
    return cards, ssns


def _number_digits(text: str, start: int, end: int) -> list[int]:
    """Positions of the number's digits in ``text[start:end]``: not those of a ``%20``-style
    separator between its groups."""
    return [
        p for m in _TOKEN.finditer(text, start, end) if m[0][0] != "%" for p in range(*m.span())
    ]


def _positions(mask: bytearray) -> list[int]:
    out: list[int] = []
    at = mask.find(1)
    while at >= 0:
        end = mask.find(0, at)
        end = len(mask) if end < 0 else end
        out.extend(range(at, end))
        at = mask.find(1, end)
    return out


def _runs(text: str) -> list[list[Group]]:
    """Digit groups joined by separators, as lists of groups. A group of more than 19 digits is no
    part of a card or an SSN, so it ends a run."""
    runs: list[list[Group]] = []
    current: list[Group] = []
    for m in _TOKEN.finditer(text):
        if m[0][0] == "%":
            continue
        start, end = m.span()
        if current and (
            end - start > CARD_DIGITS[-1] or not _GAP.fullmatch(text, current[-1][1], start)
        ):
            runs.append(current)
            current = []
        if end - start <= CARD_DIGITS[-1]:
            current.append((start, end))
    if current:
        runs.append(current)
    return runs


def _hex_blobs(text: str) -> list[Group]:
    """Spans of hex digests and UUIDs that have a letter (a long digit run is not an id), in
    order of their start."""
    blobs = [m.span() for m in _HEX_BLOB.finditer(text) if not m[0].isdigit()]
    if "-" in text:
        blobs.extend(m.span() for m in _UUID.finditer(text) if _has_hex_letter(m[0]))
        blobs.sort()
    return blobs


def _has_hex_letter(text: str) -> bool:
    return any(c not in "0123456789-" for c in text)


def _in_blob(start: int, end: int, blobs: list[Group]) -> bool:
    at = bisect_right(blobs, (start, _FAR)) - 1  # the last blob starting at or before start
    return at >= 0 and end <= blobs[at][1]


def _card_middles(
    text: str, groups: list[Group], n_starts: int, blobs: list[Group]
) -> list[tuple[int, int, array[int]]]:
    """Every Luhn-valid window of whole groups that starts at one of the first ``n_starts`` groups:
    its span and the positions to hide (its middle digits)."""
    where = array("q", (p for a, b in groups for p in range(a, b)))  # text position of each digit
    digits = "".join(text[p] for p in where)
    # Luhn sums of every window in O(1): prefix sums of the digits counted plain at even indices
    # and doubled at odd ones (for a window ending on an even index), and the other way round.
    plain, doubled = digits, digits.translate(_DOUBLED)
    even_last = array("q", accumulate(map(int, _interleave(plain, doubled)), initial=0))
    odd_last = array("q", accumulate(map(int, _interleave(doubled, plain)), initial=0))
    starts = array("q", accumulate((b - a for a, b in groups), initial=0))
    # A card is written with one separator throughout ("4111 1111 1111 1111", "4111-1111-..."):
    # changes[k] counts the places before gap k where a gap differs from the one before it, so a
    # window of groups i..j-1 (gaps i..j-2) is consistent when no change falls inside it; version
    # strings such as 1.0.3-0.20200225121959 mix them.
    gaps = [text[groups[k][1] : groups[k + 1][0]] for k in range(len(groups) - 1)]
    changes = array(
        "q",
        accumulate((int(k > 0 and gaps[k] != gaps[k - 1]) for k in range(len(gaps))), initial=0),
    )
    middles: list[tuple[int, int, array[int]]] = []
    for i in range(n_starts):
        s = starts[i]
        first = bisect_left(starts, s + CARD_DIGITS[0], i + 1)
        for j in range(first, len(starts)):
            e = starts[j]
            if e - s > CARD_DIGITS[-1]:
                break
            sums = even_last if (e - 1) % 2 == 0 else odd_last
            if (sums[e] - sums[s]) % 10 or digits.count(digits[s], s, e) == e - s:
                continue
            if card_brand(digits[s:e]) is None:
                continue  # no issuer range of that length: a timestamp or an id, not a PAN
            if j - i > 2 and changes[j - 1] - changes[i + 1]:
                continue  # mixed separators: not one written number
            if _in_blob(groups[i][0], groups[j - 1][1], blobs):
                continue  # every digit of it belongs to one digest or UUID: an id's
            middles.append((where[s], where[e - 1] + 1, where[s + 4 : e - 4]))
    return middles


def _interleave(even: str, odd: str) -> str:
    """Characters of ``even`` at even indices and of ``odd`` at odd ones."""
    out = list(even)
    out[1::2] = odd[1::2]
    return "".join(out)


def _ssn_spans(text: str, groups: list[Group], blobs: list[Group]) -> list[Group]:
    """Spans of SSNs: one group of 9 digits, or groups of 3, 2 and 4 with the same separator."""
    spans: list[Group] = []
    i = 0
    while i < len(groups):
        a, b = groups[i]
        if b - a == 9:
            # nine digits with letters on both sides are part of an identifier (a hex id), not an SSN
            inside = a > 0 and text[a - 1].isalpha() and b < len(text) and text[b].isalpha()
            if not inside and ssn_number_ok(text[a:b]) and not _in_blob(a, b, blobs):
                spans.append((a, b))
        elif b - a == 3 and i + 2 < len(groups):
            (c, d), (e, f) = groups[i + 1], groups[i + 2]
            shaped = d - c == 2 and f - e == 4 and text[b:c] == text[d:e]
            if shaped and ssn_number_ok(text[a:b] + text[c:d] + text[e:f]):
                spans.append((a, f))
                i += 3
                continue
        i += 1
    return spans


# The shapes of the ids Stockade makes: 32 hex digits, or a UUID (an event's id, a connection's),
# with at least one hex letter. The gate itself leaves such a string as it is (a hex blob or a
# UUID with a letter is never read as a card or an SSN), so sparing it under a ``keep`` key only
# saves the scan; anything else there (free text, a card with a dash, digits only in a UUID's
# shape, a nested document) passes the gate.
_OWN_ID = re.compile(r"[0-9a-f]{32}|[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}")


def own_id(value: Any) -> bool:
    """Whether ``value`` is a string in the shape of an id Stockade makes."""
    return type(value) is str and _OWN_ID.fullmatch(value) is not None and _has_hex_letter(value)


def redact(value: Any, *, keep: frozenset[str] = frozenset()) -> Any:
    """``value`` with :func:`redact_text` applied to every string in it, through dicts, lists and
    tuples (keys too). Entries of a dict whose key is in ``keep`` pass unchanged when their value
    has the shape of an id Stockade makes (:func:`own_id`, which the gate would leave as it is
    anyway: this saves the scan); any other value there passes the gate."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            redact_text(k) if isinstance(k, str) else k: (
                v if k in keep and own_id(v) else redact(v, keep=keep)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v, keep=keep) for v in value]
    if isinstance(value, tuple):
        return tuple(redact(v, keep=keep) for v in value)
    return value


class RedactingFilter(logging.Filter):
    """Masks card numbers and SSNs in a log record's message, arguments and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the handler reports it as it always does
            return True
        masked = redact_text(message)
        if masked is not message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


def install_log_redaction() -> None:
    """Apply :class:`RedactingFilter` to every log record this process creates, whatever logger or
    handler (including ones configured later, such as uvicorn's) it goes through."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "stockade_redacting", False):
        return
    gate = RedactingFilter()

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        gate.filter(record)
        return record

    make_record.stockade_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_record)
