"""The Go cataloger's version-in-the-binary guess: the windowed search against the plain regex."""

from __future__ import annotations

import random

from stockade.scanning.catalogers.golang import _CONTENT_VERSION, content_version


def _found(match):
    return match and (match.span(), match.group(1))


def _version_like(rng: random.Random) -> bytes:
    """A NUL-framed version string, often damaged (a byte dropped, doubled or replaced)."""
    token = bytearray(b"\x00")
    token += rng.choice([b"", b".L", b"xL", b"\x00L"]) + rng.choice([b"", b"v"])
    token += b".".join(str(rng.randint(0, 120)).encode() for _ in range(rng.choice([2, 3, 3, 4])))
    token += rng.choice([b"", b"-rc1", b"+incompatible", b"-0.2023_x", b"-"]) + b"\x00"
    if rng.random() < 0.5:
        i = rng.randrange(len(token))
        token[i : i + 1] = rng.choice([b"", token[i : i + 1] * 2, b".", b"7", b"\x00"])
    return bytes(token)


def test_windowed_search_finds_what_the_regex_search_finds() -> None:
    rng = random.Random(19)
    pieces = [b"\x00", b".L", b"v", b"1", b"23", b".", b"-", b"+", b"a"]
    matched = 0
    for _ in range(30_000):
        parts = [
            _version_like(rng) if rng.random() < 0.5 else rng.choice(pieces)
            for _ in range(rng.randint(0, 6))
        ]
        data = b"".join(parts)
        expected = _CONTENT_VERSION.search(data)
        matched += expected is not None
        assert _found(content_version(data)) == _found(expected), data
    assert matched > 5_000  # the inputs exercise matches, not only misses


def test_leftmost_version_in_a_large_binary() -> None:
    noise = bytes(range(256)) * 4000 + b"\x00go1.21.5 1.2\x00"
    data = noise + b"\x00.Lv1.2.3-rc1+meta\x00" + noise + b"\x002.0.0\x00"
    assert content_version(data).group(1) == b"v1.2.3-rc1+meta"
    assert _found(content_version(data)) == _found(_CONTENT_VERSION.search(data))
    assert content_version(noise) is None
