"""Comparison operators of the check language.

A fact is a string or a list of strings. On strings ``has``/``nothave`` test substrings (as CIS
audits of comma-separated flags do); on lists they test membership. Every other operator applied
to a list must hold for each element (an empty list passes).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from stockade.model import ConfigError

Fact = str | list[str]
Expected = str | tuple[str, ...]

_BOOLS = {"true", "false"}
# what Go's strconv.ParseBool (pflag's and the flag package's bool flags) reads as true or false
_GO_BOOLS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), "true"),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), "false"),
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _number(text: str) -> float | None:
    """An integer, a float, or a Go duration (``5m0s``) in seconds; None if it is neither."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if not text or _DURATION.sub("", text) != "":
        return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(text))


def _equal(actual: str, expected: str) -> bool:
    a, e = actual.strip(), expected.strip()
    if e.lower() in _BOOLS:  # a bool flag: the value as the component parses it
        return _GO_BOOLS.get(a, a.lower()) == e.lower()
    if a.lower() in _BOOLS:
        return a.lower() == e.lower()
    na, ne = _number(a), _number(e)
    if na is not None and ne is not None:
        return na == ne
    return a == e


def _ordered(check: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def compare(actual: str, expected: str) -> bool:
        na, ne = _number(actual), _number(expected)
        if na is None or ne is None:
            return False
        return check(na, ne)

    return compare


def _bitmask(actual: str, expected: str) -> bool:
    """Permissions at most ``expected``: no bit set that ``expected`` lacks."""
    try:
        a, e = int(actual, 8), int(expected, 8)
    except ValueError:
        return False
    return (a & ~e) == 0


def _valid_elements(actual: str, expected: str) -> bool:
    allowed = {x.strip() for x in expected.split(",") if x.strip()}
    got = [x.strip() for x in actual.split(",") if x.strip()]
    return bool(got) and all(x in allowed for x in got)


def _regex(actual: str, expected: str) -> bool:
    return re.search(expected, actual) is not None


_SCALAR: dict[str, Callable[[str, str], bool]] = {
    "eq": _equal,
    "noteq": lambda a, e: not _equal(a, e),
    "gt": _ordered(lambda a, e: a > e),
    "gte": _ordered(lambda a, e: a >= e),
    "lt": _ordered(lambda a, e: a < e),
    "lte": _ordered(lambda a, e: a <= e),
    "regex": _regex,
    "valid_elements": _valid_elements,
    "bitmask": _bitmask,
}
OPERATORS = frozenset({*_SCALAR, "has", "nothave"})


def validate(op: str, value: Expected) -> None:
    """Reject an unknown operator or a bad regular expression when the check is loaded."""
    if op not in OPERATORS:
        raise ConfigError(
            f"unknown operator {op!r} (expected one of: {', '.join(sorted(OPERATORS))})"
        )
    if op == "regex":
        for v in value if isinstance(value, tuple) else (value,):
            try:
                re.compile(v)
            except re.error as exc:
                raise ConfigError(f"bad regular expression {v!r}: {exc}") from None
    if op == "bitmask":
        for v in value if isinstance(value, tuple) else (value,):
            try:
                int(v, 8)
            except ValueError:
                raise ConfigError(f"bitmask needs an octal mode, got {v!r}") from None


def compare(op: str, actual: Fact, expected: Expected) -> bool:
    """True when ``actual`` satisfies ``op expected``."""
    wanted = list(expected) if isinstance(expected, tuple) else [expected]
    if op == "has":
        if isinstance(actual, list):
            return all(w in actual for w in wanted)
        return all(w in actual for w in wanted)
    if op == "nothave":
        if isinstance(actual, list):
            return not any(w in actual for w in wanted)
        return not any(w in actual for w in wanted)
    fn = _SCALAR[op]
    values = actual if isinstance(actual, list) else [actual]
    if op == "valid_elements" and isinstance(actual, list):
        values = [",".join(actual)]
    # with several expected values (eq: [a, b]) any one of them may match
    return all(any(fn(v, w) for w in wanted) for v in values)
