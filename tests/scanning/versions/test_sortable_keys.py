"""The stored byte keys (``versions.sortable``) order exactly as the schemes' parsed keys do, on
the generated versions of the property tests and the golden lists."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from stockade.scanning.versions import SCHEMES
from stockade.scanning.versions.sortable import (
    SORTABLE_SCHEMES,
    NotSortable,
    sortable,
    sortable_key,
)
from tests.scanning.versions.test_version_golden import GOLDEN
from tests.scanning.versions.test_version_properties import STRATEGIES


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


@pytest.mark.parametrize("scheme", sorted(SORTABLE_SCHEMES))
def test_stored_keys_order_like_the_parser(scheme: str) -> None:
    s = SCHEMES[scheme]

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(STRATEGIES[scheme], STRATEGIES[scheme])
    def check(a: str, b: str) -> None:
        ka, kb = sortable_key(s, a), sortable_key(s, b)
        assert ka is not None and kb is not None
        assert _sign((ka > kb) - (ka < kb)) == s.compare(a, b)

    check()


@pytest.mark.parametrize("scheme", sorted(SORTABLE_SCHEMES & set(GOLDEN)))
def test_stored_keys_order_the_golden_lists(scheme: str) -> None:
    s = SCHEMES[scheme]
    texts = [t for group in GOLDEN[scheme] for t in group]
    for a in texts:
        for b in texts:
            ka, kb = sortable_key(s, a), sortable_key(s, b)
            assert ka is not None and kb is not None
            assert _sign((ka > kb) - (ka < kb)) == s.compare(a, b), (a, b)


def test_schemes_with_their_own_order_are_not_encoded() -> None:
    assert sortable_key(SCHEMES["maven"], "1.0") is None
    assert sortable_key(SCHEMES["rubygems"], "1.0") is None


def test_keys_out_of_range_are_refused() -> None:
    with pytest.raises(NotSortable):
        sortable((1 << 200,))
    with pytest.raises(NotSortable):
        sortable((1.5,))
    # Prefixes first, NUL inside a string, negative numbers below zero below positive ones.
    ordered = [(-300,), (-1,), (0,), (0, "a"), (0, "a", 1), (0, "a\x00"), (0, "b"), (1,), (256,)]
    assert sorted(ordered, key=sortable) == ordered
