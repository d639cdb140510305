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

from stockade.scanning.versions.interface import Scheme, VersionError

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
    fast = text_key(scheme.name, text)
    return fast if fast is not None else stored_key(scheme, scheme.key(text))


# Most installed versions are encoded straight from their text, without building the parsed key
# first: for SemVer, Go, PEP 440 and Maven the versions made of numbers only ("1.2.3", "v1.2.3"),
# the bytes of their numbers between a head and a tail that do not depend on them; for dpkg every
# version, its upstream version and revision encoded apart (by text, cached: revisions repeat
# across a release). Heads and tails are cut from the parsers' own keys, and each shortcut is
# checked against the general path when first used (the property tests check it further): a
# scheme whose keys change shape (a ``packaging`` release) loses its shortcut, not its order.
_MAX_DIGITS = 30  # about 100 bits, within _MAX_INT_BYTES (longer numbers take the general path)
_DPKG_PARTS_MAX = 65_536  # cached bytes of dpkg upstream versions and revisions


def _numbers(text: str) -> list[str] | None:
    """The dotted numbers of a text made of ASCII digits and single dots only, else None."""
    if not text.isascii():
        return None
    parts = text.split(".")
    for p in parts:
        if not p.isdigit() or len(p) > _MAX_DIGITS:
            return None
    return parts


def _int_of(digits: str) -> bytes:
    n = int(digits)
    return _SMALL.get(n) or _int_bytes(n)


def _ints(parts: list[str]) -> bytes:
    small = _SMALL
    out = b""
    for p in parts:
        n = int(p)
        b = small.get(n)
        out += b if b is not None else _int_bytes(n)
    return out


def _trimmed(parts: list[str]) -> list[str]:
    """Without trailing zeros (PEP 440's and Maven's keys drop them)."""
    end = len(parts)
    while end and not parts[end - 1].strip("0"):
        end -= 1
    return parts[:end]


def _around(full: bytes, middle: bytes) -> tuple[bytes, bytes]:
    """What comes before and after ``middle``, found once in ``full``."""
    head, found, tail = full.partition(middle)
    if not found or middle in tail:
        raise NotSortable("the reference key does not hold its numbers once")
    return head, tail


def _reference(name: str, text: str) -> bytes:
    from stockade.scanning.versions import SCHEMES

    return stored_key(SCHEMES[name], SCHEMES[name].parse(text)) or b""


_TextEncoder = Callable[[str], "bytes | None"]


def _semver_encoder(prefix: str) -> _TextEncoder:
    """SemVer's key is (MAJOR, MINOR, PATCH, release marker), Go's the same after its "v"."""
    head, tail = _around(_reference("semver", "7.8.9"), _ints(["7", "8", "9"]))
    skip = len(prefix)

    def encode(text: str) -> bytes | None:
        if not text.startswith(prefix):
            return None
        parts = _numbers(text[skip:])
        return None if parts is None or len(parts) != 3 else head + _ints(parts) + tail

    return encode


def _release_encoder(name: str) -> _TextEncoder:
    """PEP 440's key holds the release without trailing zeros as a tuple between the epoch and
    the rest; Maven's is that tuple alone."""
    release = b"\x30" + _ints(["7", "8", "9"]) + b"\x00"
    head, tail = _around(_reference(name, "7.8.9"), release)

    def encode(text: str) -> bytes | None:
        parts = _numbers(text)
        if parts is None:
            return None
        return head + b"\x30" + _ints(_trimmed(parts)) + b"\x00" + tail

    return encode


def _dpkg_encoder() -> _TextEncoder:
    """dpkg's key is (epoch, upstream's key, revision's key); a part of numbers only ("8.19.2")
    is the numbers between a head and a tail, joined by the key of a dot."""
    from stockade.scanning.versions import dpkg

    numbers = [_ints([n]) for n in ("7777", "8888", "9999")]
    full = sortable(dpkg.part_key("7777.8888.9999"))
    n_head, rest = _around(full, numbers[0])
    dot = rest.partition(numbers[1])[0]
    body = n_head + dot.join(numbers)
    if not full.startswith(body):
        raise NotSortable("dpkg's key of dotted numbers has another shape")
    n_tail = full[len(body) :]
    zero = sortable(dpkg.part_key("0"))
    head, tail = _around(_reference("dpkg", "7777:0-0"), _ints(["7777"]))
    if not tail.startswith(zero + zero):
        raise NotSortable("dpkg's key has another shape")
    tail = tail[2 * len(zero) :]
    parts: dict[str, bytes] = {}

    def part(text: str) -> bytes:
        b = parts.get(text)
        if b is None:
            if len(parts) >= _DPKG_PARTS_MAX:
                parts.clear()
            found = _numbers(text)
            if found is None:
                b = sortable(dpkg.part_key(text))
            else:
                b = n_head + dot.join([_int_of(n) for n in found]) + n_tail
            parts[text] = b
        return b

    def encode(text: str) -> bytes:
        epoch, upstream, revision = dpkg.split(text)  # raises VersionError
        epoch_bytes = _SMALL.get(epoch) or _int_bytes(epoch)
        return head + epoch_bytes + part(upstream) + part(revision) + tail

    return encode


_SAMPLES = ("0", "1", "0.0", "1.0.0", "7.8.9", "10.0.3", "1.20.300.4000", "00.01.0", "2.0.0.0.1")
_SAMPLES_OF = {
    "go": tuple(f"v{text}" for text in _SAMPLES),
    "dpkg": (*_SAMPLES, "1:2.3-4", "2.36-9+deb12u4", "1.2~rc1-0.1", "0-0", "3.0.11-1~deb12u2"),
}


def _checked_encoder(name: str) -> _TextEncoder | None:
    """The scheme's shortcut, if it gives the general path's bytes on the samples."""
    makers: dict[str, Callable[[], _TextEncoder]] = {
        "semver": lambda: _semver_encoder(""),
        "go": lambda: _semver_encoder("v"),
        "pep440": lambda: _release_encoder("pep440"),
        "maven": lambda: _release_encoder("maven"),
        "dpkg": _dpkg_encoder,
    }
    make = makers.get(name)
    if make is None:
        return None
    try:
        encode = make()
        for text in _SAMPLES_OF.get(name, _SAMPLES):
            fast = encode(text)
            if fast is not None and fast != _reference(name, text):
                return None
    except (VersionError, NotSortable):
        return None
    return encode


_TEXT_ENCODERS: dict[str, _TextEncoder | None] = {}


def text_key(scheme_name: str, text: str) -> bytes | None:
    """The stored key of a version text without parsing it, or None when the scheme has no
    shortcut for this text (then ``stored_key`` of the parsed key). Raises
    :class:`VersionError` for a dpkg version the scheme rejects."""
    encoders = _TEXT_ENCODERS
    if scheme_name in encoders:
        encode = encoders[scheme_name]
    else:
        encode = encoders[scheme_name] = _checked_encoder(scheme_name)
    return None if encode is None else encode(text)
