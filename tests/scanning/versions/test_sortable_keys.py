"""The stored byte keys (``versions.sortable``) order exactly as the schemes' parsed keys do, on
the generated versions of the property tests and the golden lists."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockade.scanning.versions import SCHEMES, VersionError
from stockade.scanning.versions.sortable import (
    SORTABLE_SCHEMES,
    NotSortable,
    sortable,
    sortable_key,
    stored_key,
    text_key,
)
from tests.scanning.versions.test_version_golden import GOLDEN
from tests.scanning.versions.test_version_properties import STRATEGIES


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


@pytest.mark.parametrize("scheme", sorted(SORTABLE_SCHEMES))
def test_stored_keys_order_like_the_parser(scheme: str) -> None:
    s = SCHEMES[scheme]

    @settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(STRATEGIES[scheme], min_size=2, max_size=8))
    def check(versions: list[str]) -> None:
        keys = {}
        for v in versions:
            try:
                keys[v] = sortable_key(s, v)
            except NotSortable:
                # only Maven versions with qualifiers and apk versions with a fraction are left out
                assert scheme == "maven" or (scheme == "apk" and re.search(r"\.0[0-9]", v)), v
        for a, ka in keys.items():  # every pair of the example's versions
            for b, kb in keys.items():
                assert ka is not None and kb is not None
                assert _sign((ka > kb) - (ka < kb)) == s.compare(a, b), (a, b)

    check()


@given(
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=5),
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=5),
    st.sampled_from(["", ".Final", ".GA", ".RELEASE", ".0"]),
)
def test_maven_versions_of_numbers_are_stored_in_maven_order(
    a: list[int], b: list[int], suffix: str
) -> None:
    s = SCHEMES["maven"]
    va, vb = ".".join(map(str, a)), ".".join(map(str, b)) + suffix
    ka, kb = sortable_key(s, va), sortable_key(s, vb)
    assert ka is not None and kb is not None
    assert _sign((ka > kb) - (ka < kb)) == s.compare(va, vb)


@pytest.mark.parametrize("scheme", sorted(SORTABLE_SCHEMES & set(GOLDEN)))
def test_stored_keys_order_the_golden_lists(scheme: str) -> None:
    s = SCHEMES[scheme]
    texts = [t for group in GOLDEN[scheme] for t in group]
    for a in texts:
        for b in texts:
            try:
                ka, kb = sortable_key(s, a), sortable_key(s, b)
            except NotSortable:
                assert scheme == "maven"
                continue
            assert ka is not None and kb is not None
            assert _sign((ka > kb) - (ka < kb)) == s.compare(a, b), (a, b)


def test_versions_with_their_own_order_are_not_encoded() -> None:
    assert sortable_key(SCHEMES["rubygems"], "1.0") is None
    for text in ("1.0-alpha", "1.0.sp1", "1-1", "2.0.0.M1"):
        with pytest.raises(NotSortable):
            sortable_key(SCHEMES["maven"], text)
    assert sortable_key(SCHEMES["maven"], "1.0.Final") == sortable_key(SCHEMES["maven"], "1")


def test_keys_out_of_range_are_refused() -> None:
    with pytest.raises(NotSortable):
        sortable((1 << 200,))
    with pytest.raises(NotSortable):
        sortable((1.5,))
    # Prefixes first, NUL inside a string, negative numbers below zero below positive ones.
    ordered = [(-300,), (-1,), (0,), (0, "a"), (0, "a", 1), (0, "a\x00"), (0, "b"), (1,), (256,)]
    assert sorted(ordered, key=sortable) == ordered


_SHORTCUT_SCHEMES = ("dpkg", "go", "maven", "pep440", "semver")
_numbers = st.lists(
    st.one_of(
        st.integers(min_value=0, max_value=12),
        st.integers(min_value=0, max_value=10**40),
        st.sampled_from(["0", "00", "007", "255", "256", "65536"]),
    ).map(str),
    min_size=1,
    max_size=6,
).map(".".join)


def _general(scheme: str, text: str) -> bytes | type[Exception] | None:
    s = SCHEMES[scheme]
    try:
        return stored_key(s, s.parse(text))
    except (VersionError, NotSortable) as exc:
        return type(exc)


def _shortcut(scheme: str, text: str) -> bytes | type[Exception] | None:
    try:
        return text_key(scheme, text)
    except (VersionError, NotSortable) as exc:
        return type(exc)


@pytest.mark.parametrize("scheme", _SHORTCUT_SCHEMES)
def test_keys_encoded_from_the_text_equal_the_parsed_keys_bytes(scheme: str) -> None:
    """The matcher encodes most installed versions straight from their text (``text_key``):
    the bytes are those of the parsed key, or the text is left to the general path (None)."""
    texts = st.one_of(
        STRATEGIES[scheme],
        _numbers,
        _numbers.map(lambda v: f"v{v}"),
        _numbers.map(lambda v: f"{v}-1"),
        st.tuples(_numbers, _numbers).map(lambda p: f"1:{p[0]}-{p[1]}+deb12u1"),
        st.text(alphabet="0123456789.-:~+v ", max_size=12),
    )

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(texts)
    def check(text: str) -> None:
        fast = _shortcut(scheme, text)
        if fast is not None:
            assert fast == _general(scheme, text), text

    check()
    assert text_key("semver", "1.2.3") == stored_key(
        SCHEMES["semver"], SCHEMES["semver"].key("1.2.3")
    )
    assert text_key("semver", "1.2.3-rc.1") is None and text_key("rpm", "1.2") is None
