"""Version sort keys as bytes that order as the keys do, for schemes whose keys are plain data.

The advisory store keeps the bounds of every affected interval in this form (``adv_spans``), so
the database compares an installed version against them and only the matching rows reach Python.
A key is tuples of ints and strings (``packaging``'s ``Version`` through its comparison key,
whose infinities sort below and above everything at their position). Encoding, per item:

- a tuple: ``0x30``, its items, ``0x00`` (a prefix sorts first, as in Python);
- an int: ``0x20 ± n`` (n bytes of magnitude, at most 15), then the magnitude big-endian
  (complemented below 0);
- a string: ``0x40``, its UTF-8 with NUL written ``00 FF``, then ``0x00``;
- ``packaging``'s infinities: ``0x01`` (below) and ``0xFE`` (above).

Python never compares an int with a string at the same position of two keys of these schemes
(an earlier item tells them apart), so the type bytes only have to be distinct. Maven's order is
not tuple order (nor transitive everywhere), but among versions of numbers only ("2.15.2",
"5.6.15.Final": trimmed lists of ints) it is: those are encoded as their numbers, any other Maven
version is not. RubyGems keys are not encoded. A version that is not encoded is compared in
Python by the matcher. The property tests hold the bytes' order to the scheme's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from packaging.version import Version

from stockade.scanning.versions.interface import Scheme

# The schemes whose keys this module encodes (the others' keys are objects with their own order).
SORTABLE_SCHEMES = frozenset(
    {"dpkg", "apk", "rpm", "pep440", "semver", "go", "composer", "nuget", "maven"}
)

_MAX_INT_BYTES = 15  # an int of up to 120 bits: longer ones are refused (rows compared in Python)


class NotSortable(ValueError):
    """A key this module cannot encode (the caller compares in Python instead)."""


def _int(n: int, out: bytearray) -> None:
    if n == 0:
        out.append(0x20)
        return
    mag = abs(n)
    size = (mag.bit_length() + 7) // 8
    if size > _MAX_INT_BYTES:
        raise NotSortable(f"integer of {size} bytes")
    raw = mag.to_bytes(size, "big")
    if n > 0:
        out.append(0x20 + size)
        out += raw
    else:
        out.append(0x20 - size)
        out += bytes(0xFF - b for b in raw)


def _int_bytes(n: int) -> bytes:
    out = bytearray()
    _int(n, out)
    return bytes(out)


# Most items of a key are small numbers (digits, character ranks): their bytes are looked up.
_SMALL = {n: _int_bytes(n) for n in range(-2, 1024)}


def _tuple(value: tuple[Any, ...], out: bytearray) -> None:
    out.append(0x30)
    for v in value:
        t = v.__class__
        if t is int:
            b = _SMALL.get(v)
            if b is None:
                _int(v, out)
            else:
                out += b
        elif t is tuple:
            _tuple(v, out)
        else:
            _item(v, out)
    out.append(0x00)


def _item(value: Any, out: bytearray) -> None:
    t = type(value)
    if t is int:
        _int(value, out)
    elif t is str:
        out.append(0x40)
        out += value.encode("utf-8", "surrogatepass").replace(b"\x00", b"\x00\xff")
        out.append(0x00)
    elif t is tuple:
        _tuple(value, out)
    elif t is Version:
        _item(value._key, out)
    elif t.__name__ == "NegativeInfinityType":  # older packaging's comparison-key sentinels
        out.append(0x01)
    elif t.__name__ == "InfinityType":
        out.append(0xFE)
    else:
        raise NotSortable(f"cannot encode a {t.__name__}")


def sortable(key: Any) -> bytes:
    """The bytes of a scheme's sort key (raises :class:`NotSortable`)."""
    out = bytearray()
    _item(key, out)
    return bytes(out)


def _maven_numbers(key: Any) -> tuple[int, ...]:
    """A Maven key of numbers only (trimmed: no trailing zeros), as its numbers; Maven compares
    those as tuples (a missing number is a zero)."""
    items = key.items
    if all(kind == 0 for kind, _n in items):
        return tuple([n for _kind, n in items])
    raise NotSortable("a Maven version with qualifiers or nested lists")


_PLAIN: dict[str, Callable[[Any], Any]] = {"maven": _maven_numbers}


def stored_key(scheme: Scheme, key: Any) -> bytes | None:
    """The bytes of a parsed key of the scheme, or None when the scheme's keys are not encoded;
    raises :class:`NotSortable` for a key out of range (or a Maven version with qualifiers)."""
    if scheme.name not in SORTABLE_SCHEMES:
        return None
    plain = _PLAIN.get(scheme.name)
    return sortable(key if plain is None else plain(key))


def sortable_key(scheme: Scheme, text: str) -> bytes | None:
    """``stored_key`` of a version text (raises :class:`VersionError` for text the scheme
    rejects)."""
    return stored_key(scheme, scheme.key(text))
