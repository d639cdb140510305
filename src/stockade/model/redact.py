"""The one masking gate: card numbers and US SSNs are masked in every string that leaves the process.

The DLP engine decides with context and scores what to *report*; this gate decides nothing but what
may be *shown*, so it is deliberately wider: any run of 13 to 19 digits that passes Luhn, with or
without separators (spaces, dashes, dots, underscores, ``+`` and ``%20``, mixed or not), anywhere in
a string (a URL path, a host name, a DNS label, an SNI, a log line), and any run of 9 digits, bare
or grouped 3-2-4, that passes the SSN area/group/serial rules. Both are masked the way DLP evidence
is (``4111 **** **** 1111``, ``***-**-6789``). Digits that belong to a hex digest (32 or more hex
characters) are left alone, so image digests and ids keep working.

Pure functions only: the model imports nothing else, so the store, the CLI and every pillar use it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

_DOUBLED = str.maketrans("0123456789", "0246813579")  # 2d, minus 9 when above 9
_NOT_DIGITS = {c: None for c in range(256) if not 48 <= c <= 57}


def digits_of(text: str) -> str:
    return text.translate(_NOT_DIGITS)


def luhn_ok(number: str) -> bool:
    """Mod-10 check over a string of digits (the last one is the check digit)."""
    rev = number[::-1]
    return sum(map(int, rev[0::2] + rev[1::2].translate(_DOUBLED))) % 10 == 0


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


# A run of digits with at most three separator characters between two digits. Nine digits at
# least: nothing shorter can be a card or an SSN, and the regex engine skips everything else in C.
_SEPARATOR = r"(?:[ \t._\-+]|%2[0dDeE])"
_RUN = re.compile(rf"[0-9](?:{_SEPARATOR}{{0,3}}[0-9]){{8,}}")
_GROUP = re.compile(r"%2[0dDeE]|([0-9]+)")  # digits of a %20 are a separator, not a group
_HEX_BLOB = re.compile(r"[0-9A-Fa-f]{32,}")
CARD_DIGITS = range(13, 20)


def redact_text(text: str) -> str:
    """``text`` with every card number and SSN in it masked (the same object when none is)."""
    if len(text) < 9:
        return text
    runs = list(_RUN.finditer(text))
    if not runs:
        return text
    blobs = _hex_blobs(text)
    hidden: set[int] = set()
    ssns: list[tuple[int, int]] = []
    for run in runs:
        at = run.start()
        groups = [(at + g.start(1), at + g.end(1)) for g in _GROUP.finditer(run[0]) if g[1]]
        hidden |= _card_middles(text, groups, blobs)
        ssns.extend(_ssn_spans(text, groups, blobs))
    if not hidden and not ssns:
        return text
    out: list[str] = []
    pos = 0
    for start, end in ssns:
        out.append(_hide(text, pos, start, hidden))
        if hidden.isdisjoint(range(start, end)):
            out.append(mask_ssn(text[start:end]))
        else:  # inside a card as well: hide what either hides
            serial = [i for i in range(start, end) if text[i].isdigit()][:5]
            out.append(_hide(text, start, end, hidden.union(serial)))
        pos = end
    out.append(_hide(text, pos, len(text), hidden))
    return "".join(out)


def _hide(text: str, start: int, end: int, hidden: set[int]) -> str:
    if hidden.isdisjoint(range(start, end)):
        return text[start:end]
    return "".join("*" if i in hidden else text[i] for i in range(start, end))


def _hex_blobs(text: str) -> list[tuple[int, int]]:
    return [
        m.span()
        for m in _HEX_BLOB.finditer(text)
        if not m[0].isdigit()  # a digest has letters; a long digit run is not one
    ]


def _in_blob(start: int, end: int, blobs: list[tuple[int, int]]) -> bool:
    return any(lo <= start and end <= hi for lo, hi in blobs)


def _card_middles(
    text: str, groups: list[tuple[int, int]], blobs: list[tuple[int, int]]
) -> set[int]:
    """Positions to hide: the middle digits of every Luhn-valid window of whole digit groups."""
    hidden: set[int] = set()
    for i in range(len(groups)):
        digits = ""
        for j in range(i, len(groups)):
            digits += text[groups[j][0] : groups[j][1]]
            if len(digits) > CARD_DIGITS[-1]:
                break
            if len(digits) < CARD_DIGITS[0] or not luhn_ok(digits) or len(set(digits)) == 1:
                continue
            if i == j and _in_blob(*groups[i], blobs):
                continue
            positions = [p for g in groups[i : j + 1] for p in range(*g)]
            hidden.update(positions[4:-4])
    return hidden


def _ssn_spans(
    text: str, groups: list[tuple[int, int]], blobs: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Spans of SSNs: one group of 9 digits, or groups of 3, 2 and 4 with the same separator."""
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(groups):
        start, end = groups[i]
        if end - start == 9:
            if ssn_number_ok(text[start:end]) and not _in_blob(start, end, blobs):
                spans.append((start, end))
            i += 1
            continue
        if i + 2 < len(groups) and [b - a for a, b in groups[i : i + 3]] == [3, 2, 4]:
            (a, b), (c, d), (e, f) = groups[i : i + 3]
            if text[b:c] == text[d:e] and ssn_number_ok(text[a:b] + text[c:d] + text[e:f]):
                spans.append((a, f))
                i += 3
                continue
        i += 1
    return spans


def redact(value: Any, *, keep: frozenset[str] = frozenset()) -> Any:
    """``value`` with :func:`redact_text` applied to every string in it, through dicts, lists and
    tuples (keys too). Entries of a dict whose key is in ``keep`` (ids Stockade made itself) pass
    unchanged."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            redact_text(k) if isinstance(k, str) else k: v if k in keep else redact(v, keep=keep)
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
