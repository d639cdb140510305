"""Small helpers of stockade.config that the pillars' document checks share."""

from __future__ import annotations

from stockade.config import repeated


def test_repeated_names_each_once_in_order() -> None:
    assert repeated(["web", "db", "web", "api", "db", "web"]) == ["db", "web"]
    assert repeated(iter(["a", "b"])) == []  # any iterable, read once
    assert repeated([]) == []
