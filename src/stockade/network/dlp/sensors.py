"""DLP sensors as data: what to look for, how to confirm it, how to mask it.

A sensor has two expressions. ``pattern`` is the exact Python regex (lookarounds and
back-references allowed) whose match is the reported span. ``prefilter`` is a Hyperscan-compatible
expression that matches a *suffix* of every ``pattern`` match, so the end offsets Hyperscan reports
are where exact matches can end; it may match more. Built-in sensors give a hand-written prefilter;
user sensors get ``pattern`` compiled with Hyperscan's prefilter flag, which guarantees the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stockade.model.errors import ConfigError

from .masking import MASKERS
from .validators import VALIDATORS

MAX_MATCH_CAP = 512  # user regexes with unbounded repeats are cut to this span


@dataclass(frozen=True, slots=True, kw_only=True)
class Sensor:
    id: str  # stable slug: "dlp.payment_card"
    title: str
    patterns: tuple[str, ...]  # exact Python regexes; the whole match is the evidence
    prefilter: tuple[str, ...] = ()  # Hyperscan suffix-prefilters; empty: use the patterns
    # Prefilters for something that must come *before* a candidate (a context word): a hit
    # ending at E means a candidate may end anywhere up to E + lead_reach.
    lead_prefilter: tuple[str, ...] = ()
    lead_reach: int = 0
    context: tuple[str, ...] = ()  # words near a match that raise confidence
    exclude_context: tuple[str, ...] = ()  # key words right before a match that veto it
    validator: str = "none"
    mask: str = "generic"
    score: float = 0.6  # base confidence of a validated candidate
    context_boost: float = 0.35
    min_score: float = 0.5  # matches below this are dropped
    max_length: int = 64  # longest possible match, in bytes
    ignore_case: bool = False
    # A literal every match contains no more than anchor_reach characters after its start (the
    # "@" of an e-mail address): confirmation starts its regex pass that far before the first
    # one in a cluster instead of max_length before (a pass costs per character it starts at).
    anchor: str = ""
    anchor_reach: int = 0
    compiled: tuple[re.Pattern[str], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        flags = re.IGNORECASE if self.ignore_case else 0
        try:
            compiled = tuple(re.compile(p, flags) for p in self.patterns)
        except re.error as exc:
            raise ConfigError(f"sensor {self.id}: bad regex: {exc}") from exc
        object.__setattr__(self, "compiled", compiled)
        if self.validator not in VALIDATORS:
            raise ConfigError(f"sensor {self.id}: unknown validator {self.validator!r}")
        if self.mask not in MASKERS:
            raise ConfigError(f"sensor {self.id}: unknown mask {self.mask!r}")


# A number may not start inside a longer one or inside an identifier: no digit, letter,
# underscore or '#' (a hex literal, an anchor) right before it; no "4 digits + separator" (a later
# group of a longer grouped run); no "digit + point/comma" (a decimal fraction such as
# 22.378282246310005); no hyphen (the last group of a UUID such as
# 550e8400-e29b-41d4-a716-675912345674, a build number in 1.2.13-4111111111111111, SKU-..., a
# negative number); no "digit or colon + colon" (a field of an ARN, an IPv6 address or a time);
# no lone SVG path command letter + space or comma (coordinates: "M 4111 1111 1111 1111",
# "L 415 555 2671").
_NUM_START = (
    r"(?<![0-9A-Za-z_#\-])(?<![0-9]{4}[ -])(?<![0-9:][.,:])"
    r"(?<![^A-Za-z][MLHVCSQTZmlhvcsqtz][ ,])"
)
# The same rules written after the first digit, so Python's regex engine can skip ahead to digits
# instead of trying the lookbehinds at every position (several times faster).
_FIRST_DIGIT = (
    r"[0-9](?<![0-9A-Za-z_#\-][0-9])(?<![0-9]{4}[ \-\xa0][0-9])(?<![0-9]{4}\xc2\xa0[0-9])"
    r"(?<![0-9:][.,:][0-9])(?<![^A-Za-z][MLHVCSQTZmlhvcsqtz][ ,][0-9])"
)
# A number ends before a letter, digit or underscore, and is not the integer part of a decimal
# (4111111111111111.25, 4031078400000.0).
_NUM_END = r"(?![0-9A-Za-z_])(?!\.[0-9])"

# Prefilters end one byte *after* a candidate (the byte that ends the number) and start one byte
# before it: Hyperscan then reports each candidate once instead of at every digit of a run. The
# exact patterns' lookarounds forbid the same bytes, so every exact match still has a prefilter
# match around it; a candidate at the very end of a stream is checked on close().
_LEAD = r"(?:^|[^0-9A-Za-z_])"
_TRAIL = r"[^0-9A-Za-z_]"

# What may stand between the digit groups of a card number, one kind throughout a number: a
# space, a hyphen, a point (4111.1111.1111.1111, as some forms and receipts print it) or a
# no-break space (U+00A0: the bytes C2 A0 in UTF-8, A0 alone in Latin-1; word processors and
# HTML's &nbsp; put it between groups). The engine reads the stream as Latin-1 text, one
# character a byte, so the UTF-8 form is the two characters "\xc2\xa0".
CARD_SEPARATORS: tuple[bytes, ...] = (b" ", b"-", b".", b"\xc2\xa0", b"\xa0")
_CARD_SEP = r"(\xc2\xa0|[ .\-\xa0])"
# The bytes a card's run is made of (digits and every byte of a separator), as a character class
# for the prefilters: a card is a run of at least 12 of them (runscan.c's CRUN class is this).
CARD_RUN_CLASS = r"[0-9 .\-\xa0\xc2]"

# One alternation: plain 12-19 digits | 4-4-4-4(-1..3) | 4-6-5 (Amex) and 4-6-4 (Diners), with
# one separator throughout a grouped number and no further group after it.
_CARD_PATTERNS = (
    _FIRST_DIGIT
    + r"(?:[0-9]{11,18}"
    + r"|[0-9]{3}"
    + _CARD_SEP
    + r"[0-9]{4}\1[0-9]{4}\1[0-9]{4}(?:\1[0-9]{1,3})?(?!\1[0-9])"
    + r"|[0-9]{3}"
    + _CARD_SEP
    + r"[0-9]{6}\2[0-9]{4,5}(?!\2[0-9]))"
    + _NUM_END,
    # Magnetic-stripe track 1 (ISO/IEC 7813): "%B" (format code B), the PAN, "^", the name. The
    # "B" right before the number keeps the pattern above from taking it; track 2 (";PAN=...")
    # needs nothing of its own.
    r"(?<=%B)[0-9]{12,19}(?=\^)",
)
# Track 1's prefilter: Hyperscan's (runscan.c scans only the digit-run expressions).
_TRACK1_PREFILTER = r"%B[0-9]{12,19}\^"

_SSN_PATTERNS = (
    _FIRST_DIGIT + r"(?:[0-9]{2}([ -])[0-9]{2}\1[0-9]{4}(?![ -][0-9])|[0-9]{8})" + _NUM_END,
)

# "No letter or digit before the country code", written after its first letter (as _FIRST_DIGIT
# does): Python's regex engine then skips to capital letters instead of trying every position.
_IBAN_START = r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]"
_IBAN_PATTERNS = (
    _IBAN_START + r"[0-9]{2}[A-Z0-9]{11,30}(?![A-Za-z0-9])",
    _IBAN_START + r"[0-9]{2}(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?(?![A-Za-z0-9])",
)

_EMAIL_PATTERNS = (
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])",
)

_PHONE_PATTERNS = (
    # E.164, compact or with single spaces/dashes between groups; the first group after the
    # country code may be a single digit (+33 1 42 68 53 00)
    r"(?<![0-9A-Za-z_+])\+[1-9][0-9]{0,3}[ -]?[0-9]{1,4}(?:[ -]?[0-9]{2,4}){1,5}"
    + _NUM_END
    + r"(?![ -][0-9])",
    # NANP: (415) 555-2671, 415-555-2671, 415.555.2671, 1-415-555-2671
    # (the lookahead first: positions that cannot start a number fail before the lookbehinds)
    r"(?=[1-9(])"
    + _NUM_START
    + r"(?:1[ .-])?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}([ .-]))[2-9][0-9]{2}[ .-]"
    r"[0-9]{4}" + _NUM_END + r"(?![ .-][0-9])",
)

BUILTIN_SENSORS: tuple[Sensor, ...] = (
    Sensor(
        id="dlp.payment_card",
        title="Payment card number (PAN)",
        patterns=_CARD_PATTERNS,
        # Runs of digits and separators (a plain character-class repeat is several times cheaper
        # for Hyperscan than "(?:[ -]?[0-9]){11,18}", and one without an upper bound is cheaper
        # still: the bounded forms {12,35} and {11,14} took half of the whole database's scan
        # time; longer runs only add a candidate the exact regexes turn down, or an end the first
        # prefilter reports anyway). Runs of 14+ characters may be any brand; shorter ones can
        # only be a 13-digit Visa (13 characters at least: Visa has no 12-digit numbers) or a
        # 12-13 digit Maestro, which keeps the ubiquitous 12-13 digit ids and amounts out of
        # Python. The runs hold every byte of CARD_SEPARATORS.
        prefilter=(
            _LEAD + r"[2-68]" + CARD_RUN_CLASS + r"{12,}[0-9]" + _TRAIL,
            _LEAD
            + r"(?:4"
            + CARD_RUN_CLASS
            + r"{11,}|(?:50[123]|67[56])"
            + CARD_RUN_CLASS
            + r"{8,}"
            + r"|(?:5893|6304)"
            + CARD_RUN_CLASS
            + r"{7,})"
            + r"[0-9]"
            + _TRAIL,
            _TRACK1_PREFILTER,
        ),
        context=(
            "card",
            "credit",
            "cc",
            "pan",
            "visa",
            "mastercard",
            "amex",
            "discover",
            "jcb",
            "diners",
            "maestro",
            "unionpay",
            "cvv",
            "cvc",
            "expiry",
            "payment",
        ),
        exclude_context=(
            "order",
            "invoice",
            "tracking",
            "timestamp",
            "uuid",
            "sku",
            "account_id",
            "user_id",
            "txn_id",
            "trace",
            # A key named like an identifier ("id", "object_id", "objectId", "guid") holds an
            # identifier, even a 16-digit one that passes Luhn; "card_id" keeps its "card".
            "id",
            "guid",
        ),
        validator="payment_card",
        mask="card",
        score=0.9,
        context_boost=0.1,
        max_length=27,  # 19 digits in 5 groups, each gap a UTF-8 no-break space
    ),
    Sensor(
        id="dlp.us_ssn",
        title="US Social Security number",
        patterns=_SSN_PATTERNS,
        prefilter=(_LEAD + r"[0-9]{3}[ \-][0-9]{2}[ \-][0-9]{4}" + _TRAIL,),
        # Nine bare digits count only after a context word within 48 bytes (validators.us_ssn),
        # so the word itself is their prefilter: a literal, cheap for Hyperscan, and 9-digit ids
        # and amounts elsewhere never reach Python.
        lead_prefilter=(r"(?i:ssn|social|security|taxpayer)",),
        lead_reach=48 + 9 + 3,
        context=("ssn", "social", "security", "ssns", "taxpayer"),
        exclude_context=("order", "invoice", "tracking", "zip", "phone"),
        validator="us_ssn",
        mask="ssn",
        score=0.6,
        context_boost=0.35,
        max_length=11,
    ),
    Sensor(
        id="dlp.iban",
        title="International bank account number",
        patterns=_IBAN_PATTERNS,
        prefilter=(r"(?:^|[^A-Za-z0-9])[A-Z]{2}[0-9]{2}[A-Z0-9 ]{10,38}[A-Z0-9][^A-Za-z0-9]",),
        context=("iban", "bank", "account", "sepa", "transfer"),
        validator="iban",
        mask="iban",
        score=0.85,
        context_boost=0.15,
        max_length=42,
    ),
    Sensor(
        id="dlp.email",
        title="E-mail address",
        patterns=_EMAIL_PATTERNS,
        prefilter=(r"@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]+[^A-Za-z0-9\-]",),
        context=("email", "e-mail", "mail", "contact"),
        validator="email",
        mask="email",
        score=0.6,
        context_boost=0.3,
        max_length=64 + 1 + 253,
        anchor="@",  # after a local part of 1-64 characters
        anchor_reach=64,
    ),
    Sensor(
        id="dlp.phone",
        title="Telephone number",
        patterns=_PHONE_PATTERNS,
        prefilter=(
            # NANP: the area code (bracketed or followed by a separator) is part of it, so the
            # 3+4 digit groups inside longer grouped numbers (cards, IBANs) stay out of Python
            r"(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .\-])[2-9][0-9]{2}[ .\-][0-9]{4}" + _TRAIL,
            r"\+[0-9][0-9 \-]{6,23}[0-9]" + _TRAIL,
        ),
        context=("phone", "tel", "telephone", "mobile", "cell", "fax", "call", "contact"),
        exclude_context=("order", "invoice", "id"),
        validator="phone",
        mask="phone",
        score=0.3,
        context_boost=0.4,
        max_length=24,
    ),
)


def builtin_sensor_ids() -> tuple[str, ...]:
    return tuple(s.id for s in BUILTIN_SENSORS)


_SLUG = re.compile(r"^[a-z0-9_]+(?:\.[a-z0-9_]+)+\Z")
_KNOWN_KEYS = {
    "id", "title", "patterns", "pattern", "context", "exclude_context", "validator", "mask",
    "score", "context_boost", "min_score", "max_length", "ignore_case",
}  # fmt: skip


def sensor_from_dict(raw: Any, *, where: str) -> Sensor:
    """Build one user sensor from its YAML mapping; ConfigError names what is wrong."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a sensor must be a mapping")
    unknown = set(raw) - _KNOWN_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    sid = raw.get("id")
    if not isinstance(sid, str) or not _SLUG.match(sid):
        raise ConfigError(f"{where}: id must be a dotted slug such as dlp.acme_customer_id")
    patterns = raw.get("patterns", [raw["pattern"]] if "pattern" in raw else [])
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise ConfigError(f"{where}: {sid}: patterns must be a non-empty list of regexes")
    words = raw.get("context", [])
    veto = raw.get("exclude_context", [])
    if not all(isinstance(w, str) for w in [*words, *veto]):
        raise ConfigError(f"{where}: {sid}: context words must be strings")
    try:
        score = float(raw.get("score", 0.6))
        boost = float(raw.get("context_boost", 0.35))
        min_score = float(raw.get("min_score", 0.5))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {sid}: score values must be numbers") from exc
    ignore_case = bool(raw.get("ignore_case", False))
    max_length = raw.get("max_length") or _widest(patterns, ignore_case, sid, where)
    if not isinstance(max_length, int) or not 1 <= max_length <= MAX_MATCH_CAP:
        raise ConfigError(f"{where}: {sid}: max_length must be an integer 1..{MAX_MATCH_CAP}")
    return Sensor(
        id=sid,
        title=str(raw.get("title", sid)),
        patterns=tuple(patterns),
        context=tuple(words),
        exclude_context=tuple(veto),
        validator=str(raw.get("validator", "none")),
        mask=str(raw.get("mask", "generic")),
        max_length=max_length,
        ignore_case=ignore_case,
        score=score,
        context_boost=boost,
        min_score=min_score,
    )


def _widest(patterns: list[str], ignore_case: bool, sid: str, where: str) -> int:
    from re import _parser  # type: ignore[attr-defined]  # width of a regex, no public API

    widest = 0
    for p in patterns:
        try:
            widest = max(
                widest, _parser.parse(p, re.IGNORECASE if ignore_case else 0).getwidth()[1]
            )
        except re.error as exc:
            raise ConfigError(f"{where}: {sid}: bad regex {p!r}: {exc}") from exc
    return min(widest, MAX_MATCH_CAP)


def load_sensor_file(path: Path) -> tuple[Sensor, ...]:
    """Read ``sensors:`` from a YAML file of user-defined sensors."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read sensor file: {exc.strerror}", subject=str(path)) from exc
    from stockade.config import parse_yaml

    doc, _node = parse_yaml(text, name=str(path))
    if not isinstance(doc, dict) or not isinstance(doc.get("sensors"), list):
        raise ConfigError("expected a mapping with a 'sensors' list", subject=str(path))
    sensors = tuple(
        sensor_from_dict(raw, where=f"{path} sensors[{i}]") for i, raw in enumerate(doc["sensors"])
    )
    ids = [s.id for s in sensors]
    if len(set(ids)) != len(ids) or set(ids) & set(builtin_sensor_ids()):
        raise ConfigError(
            "sensor ids must be unique and differ from built-in ones", subject=str(path)
        )
    return sensors
