"""Decoding steps that turn request text into what the application (or the vulnerable library)
reads, so an obfuscated exploit matches the same pattern as a clear one.

Text is latin-1 (one character per byte) throughout, so no byte sequence is an error. Each step is
a pure function ``str -> str``; a sensor lists the steps it wants, in order. Steps look for their
marker first (``%``, ``&``, ``${``, ``/*``) so text without one costs a C-speed ``in`` test.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from functools import cache

MAX_ROUNDS = 3  # URL decoding repeated this often: %252e -> %2e -> .
MAX_LOOKUPS = 64  # ${...} lookups resolved per text (nesting is bounded by this too)

_PCT = re.compile(r"%(?:([0-9A-Fa-f]{2})|[uU]([0-9A-Fa-f]{4}))")
# Overlong UTF-8 forms of '.', '/' and '\' that old servers and path checks decode
_OVERLONG = {"\xc0\xae": ".", "\xc0\xaf": "/", "\xc1\x9c": "\\", "\xe0\x80\xaf": "/"}
_OVERLONG_RE = re.compile("|".join(map(re.escape, _OVERLONG)))


# Wide characters that path checks on IIS-style %uXXXX decoding read as separators and dots
_WIDE = {0x2215: "/", 0x2216: "\\", 0xFF0F: "/", 0xFF3C: "\\", 0xFF0E: "."}


def _pct(m: re.Match[str]) -> str:
    if m.group(1) is not None:
        return chr(int(m.group(1), 16))
    code = int(m.group(2), 16)  # IIS %uXXXX
    return chr(code) if code < 256 else _WIDE.get(code, "?")


def url_decode(text: str) -> str:
    """``%XX`` (and IIS ``%uXXXX``), repeated while it changes (double encoding), ``+`` as space,
    then overlong UTF-8 separators."""
    text = text.replace("+", " ") if "+" in text else text
    for _ in range(MAX_ROUNDS):
        if "%" not in text:
            break
        decoded = _PCT.sub(_pct, text)
        if decoded == text:
            break
        text = decoded
    if "\xc0" in text or "\xc1" in text or "\xe0" in text:
        text = _OVERLONG_RE.sub(lambda m: _OVERLONG[m.group()], text)
    return text


def html_entities(text: str) -> str:
    """``&lt;``, ``&#36;``, ``&#x24;`` (twice: ``&amp;#36;``)."""
    for _ in range(2):
        if "&" not in text:
            break
        text = html.unescape(text)
    return text


def lower(text: str) -> str:
    return text.lower()


_SQL_COMMENT = re.compile(r"/\*!?[0-9]*|\*/")
_SPACE = re.compile(r"\s+")


def sql(text: str) -> str:
    """SQL as a database tokenises it: ``/**/`` and MySQL ``/*!50000 ... */`` become a space (the
    content of a ``/*!`` comment is executed, so it stays), whitespace runs one space."""
    if "/*" in text or "*/" in text:
        text = _SQL_COMMENT.sub(" ", text)
    return _SPACE.sub(" ", text)


_LOOKUP = re.compile(r"\$\{([^${}]*)\}")
# Log4j lookups whose value is their argument (case changed by lower/upper); jndi is not here,
# so ${jndi:...} stays for the sensor to see.
_KNOWN_PREFIXES = ("lower", "upper", "env", "sys", "date", "main", "ctx", "k8s", "docker",
                   "spring", "bundle", "java", "web", "log4j", "map", "sd", "marker", "event",
                   "base64", "")  # fmt: skip


def _resolve(m: re.Match[str]) -> str:
    body = m.group(1)
    name, sep, arg = body.partition(":")
    if not sep:
        return m.group()
    key = name.strip().lower()
    if key == "jndi":
        return m.group()
    if ":-" in body:  # ${env:NOPE:-j}, ${::-j}: the default value is what is left
        return body.split(":-", 1)[1]
    if key == "lower":
        return arg.lower()
    if key == "upper":
        return arg.upper()
    if key == "date":  # ${date:'j'}: quoted text comes out as it is
        return arg.strip("'")
    if key in _KNOWN_PREFIXES:
        return ""  # an unknown variable resolves to nothing visible to the attacker's payload
    return m.group()


def lookups(text: str) -> str:
    """Unwrap nested Log4j ``${...}`` lookups from the inside out: ``${${lower:j}ndi:`` and
    ``${${::-j}${::-n}${::-d}${::-i}:`` become ``${jndi:``."""
    if "${" not in text:
        return text
    for _ in range(MAX_LOOKUPS):
        resolved = _LOOKUP.sub(_resolve, text)
        if resolved == text:
            break
        text = resolved
    return text


STEPS: dict[str, Callable[[str], str]] = {
    "url": url_decode,
    "html": html_entities,
    "lower": lower,
    "sql": sql,
    "lookups": lookups,
}


def normalize(text: str, steps: tuple[str, ...]) -> str:
    for step in steps:
        text = STEPS[step](text)
    return text


# What makes each step change a text (beyond case and whitespace, which prefilters tolerate)
_MARKERS: dict[str, tuple[str, ...]] = {
    "url": ("%", "+", "\xc0", "\xc1", "\xe0"),
    "html": ("&",),
    "lookups": ("${",),
    "sql": ("/*", "*/"),
    "lower": (),
}


_ALL_MARKERS = tuple(dict.fromkeys(m for ms in _MARKERS.values() for m in ms))


def markers_in(text: str) -> frozenset[str]:
    """The decoding markers ``text`` holds (compare with :func:`markers_of`)."""
    return frozenset(m for m in _ALL_MARKERS if m in text)


@cache
def markers_of(steps: tuple[str, ...]) -> frozenset[str]:
    """Markers that make one of ``steps`` change a text beyond case and whitespace."""
    return frozenset(m for step in steps for m in _MARKERS[step])


def needs_decoding(text: str, steps: tuple[str, ...]) -> bool:
    """Whether any step but case folding and whitespace could change ``text``."""
    return not markers_in(text).isdisjoint(markers_of(steps))


_SPACE_RAW = r"(?:\s|\+|%20)"  # a space as a query or form may carry it before decoding


def space_tolerant(expr: str) -> tuple[str, bool]:
    """A Hyperscan expression that also matches where a space was written ``+`` or ``%20``:
    ``\\s`` and a literal space become ``(?:\\s|\\+|%20)``, ``\\W`` also accepts ``%20``.
    The flag says whether that was complete: inside a character class, a negated class or a
    byte escape it is not, and the engine then triggers URL decoding on ``%20`` too."""
    out: list[str] = []
    exact = True
    in_class = False
    opened = 0  # len(out) right after the class's "[" (and a "^")
    i = 0
    while i < len(expr):
        c = expr[i]
        if c == "\\" and i + 1 < len(expr):
            pair = expr[i : i + 2]
            i += 2
            if pair == "\\s":
                out.append("\\s+" if in_class else _SPACE_RAW)
                exact = exact and not in_class
            elif pair == "\\W":
                out.append(pair if in_class else "(?:\\W|%20)")
                exact = exact and not in_class
            else:
                exact = exact and pair[1] != "x"
                out.append(pair)
            continue
        i += 1
        if c == " " and not in_class:
            out.append(_SPACE_RAW)
            continue
        out.append(c)
        exact = exact and c.isascii()
        if c == "[" and not in_class:
            in_class = True
            if expr[i : i + 1] == "^":
                out.append("^")
                i += 1
                exact = False
            opened = len(out)
        elif c == "]" and in_class and len(out) > opened + 1:  # "[]" and "[^]" keep a literal ]
            in_class = False
    return "".join(out), exact
