"""The enforcer's side of configuration flowing back: the controller's answer is checked before
anything is applied, its policy is applied once and reported with its version (or rejected, the
previous one staying), and an unreachable controller is said once per streak, not every poll."""

from __future__ import annotations

import logging
import socket

import pytest

from stockade.events.reporter import ControllerLink
from stockade.firewall.enforce.follow import ConfigFetcher, PolicyFollower
from stockade.firewall.policy.model import Policy
from stockade.model import Event
from stockade.model.agent_config import MAX_POLICY, ConfigAnswer, PolicyDocument, parse_config
from stockade.model.errors import EnforcementError

POLICY = """\
apiVersion: stockade.dev/v1
kind: FirewallPolicy
metadata: {name: flow}
spec:
  groups:
    - {name: cde, selector: {namespace: shop}, mode: protect}
"""


def test_an_answer_is_checked_before_it_is_applied() -> None:
    assert parse_config({"version": 3, "unchanged": True}) == ConfigAnswer(3)
    answer = {"version": 4, "quarantine": [{"workload": "shop/a", "reason": "r", "since": "x"}]}
    assert parse_config(answer) == ConfigAnswer(4, {"shop/a": "r"})
    # only the kinds that changed come: a policy without the quarantine set leaves it alone
    policy = {"version": 5, "policy": {"name": "default", "version": 2, "yaml": POLICY}}
    assert parse_config(policy) == ConfigAnswer(5, None, PolicyDocument(2, POLICY))
    for bad in (
        [],
        {"quarantine": []},
        {"version": "4", "quarantine": []},
        {"version": 4, "quarantine": [{"reason": "no workload"}]},
        {"version": 4, "quarantine": [{"workload": 7}]},
        {"version": 4, "policy": {"yaml": POLICY}},
        {"version": 4, "policy": {"version": 1, "yaml": 7}},
        {"version": 4, "policy": {"version": 1, "yaml": "x" * (MAX_POLICY + 1)}},
    ):
        with pytest.raises(ValueError):
            parse_config(bad)


class Recorder:
    """The enforcer's live reload at its seam (the real one needs nft; the lab test runs it)."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.applied: list[Policy] = []
        self.events: list[Event] = []

    def update(self, policy: Policy) -> None:
        if self.refuse:
            raise EnforcementError("nft refused the ruleset")
        self.applied.append(policy)


def test_the_controllers_policy_is_applied_once_and_reported_with_its_version() -> None:
    seam = Recorder()
    follower = PolicyFollower("node-1", seam.update, seam.events.append)
    follower.apply(PolicyDocument(2, POLICY), 9)
    follower.apply(PolicyDocument(2, POLICY), 10)  # sent again with a quarantine change
    [policy] = seam.applied
    assert {g.name: g.mode for g in policy.spec.groups} == {"cde": "protect"}
    [event] = seam.events
    assert event.kind == "firewall.policy_applied" and event.source == "enforcer"
    assert event.node == "node-1"
    assert event.data["version"] == 2 and event.data["config_version"] == 9
    assert event.data["groups"][0]["mode"] == "protect"
    assert follower.version == 2


@pytest.mark.parametrize(
    ("text", "refuse", "said"),
    [
        (POLICY.replace("protect", "block"), False, "controller policy version 3:"),
        (POLICY, True, "nft refused the ruleset"),
    ],
)
def test_a_policy_that_cannot_be_applied_is_reported_and_the_previous_stays(
    text: str, refuse: bool, said: str
) -> None:
    seam = Recorder(refuse=refuse)
    follower = PolicyFollower("node-1", seam.update, seam.events.append)
    follower.apply(PolicyDocument(3, text), 11)
    follower.apply(PolicyDocument(3, text), 12)  # not retried: the controller needs a new one
    assert seam.applied == [] and follower.version is None
    [event] = seam.events
    assert event.kind == "firewall.policy_rejected" and event.data["version"] == 3
    assert said in event.data["error"] and "\n" not in event.message


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
