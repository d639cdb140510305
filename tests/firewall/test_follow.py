"""The enforcer's side of configuration flowing back: the controller's answer is checked before
anything is applied, and an unreachable controller is said once per streak, not every poll."""

from __future__ import annotations

import logging
import socket

import pytest

from stockade.events.reporter import ControllerLink
from stockade.firewall.enforce.follow import ConfigFetcher, parse_config


def test_an_answer_is_checked_before_it_is_applied() -> None:
    assert parse_config({"version": 3, "unchanged": True}) == (3, None)
    answer = {"version": 4, "quarantine": [{"workload": "shop/a", "reason": "r", "since": "x"}]}
    assert parse_config(answer) == (4, {"shop/a": "r"})
    for bad in (
        [],
        {"quarantine": []},
        {"version": "4", "quarantine": []},
        {"version": 4},
        {"version": 4, "quarantine": [{"reason": "no workload"}]},
        {"version": 4, "quarantine": [{"workload": 7}]},
    ):
        with pytest.raises(ValueError):
            parse_config(bad)


def test_an_unreachable_controller_is_said_once_per_streak(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    link = ControllerLink(url=f"http://127.0.0.1:{port}", token="stk_test", timeout=1.0)
    fetcher = ConfigFetcher(link)
    with caplog.at_level(logging.ERROR, logger="stockade.firewall.enforce.follow"):
        for _ in range(3):
            fetcher.fetch_once()
    assert fetcher.take() is None
    said = [r for r in caplog.records if "cannot fetch the configuration" in r.getMessage()]
    assert len(said) == 1
