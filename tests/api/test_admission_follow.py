"""``admission serve --controller``: the admission policy applied through the controller's API
reaches every webhook process within seconds, by version, and each says so with an event."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stockade.admission.follow import AdmissionPolicyFollower
from stockade.model.agent_config import ConfigAnswer, PolicyDocument
from tests.admission.test_webhook import post
from tests.admission.webhook import EXAMPLES, manifests, review_for, start_webhook, stop_webhook
from tests.api.controller import Controller, own_controller

OBJECTS = manifests()
PROTECT = (EXAMPLES / "policy.yaml").read_text()
MONITOR = PROTECT.replace("  mode: protect ", "  mode: monitor ", 1)


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    yield from own_controller("sqlite", tmp_path_factory, "admfollow")


def apply(controller: Controller, text: str) -> None:
    with controller.client("operator") as c:
        answer = c.put(
            "/api/v1/admission/policy",
            content=text.encode(),
            headers={"content-type": "application/yaml"},
        )
    assert answer.status_code == 200, answer.text


def decisions(hook: Any, key: str, n: int = 12) -> set[bool]:
    """What ``n`` reviews on fresh connections (spread over the workers) answered."""
    seen = set()
    for _ in range(n):
        with hook.client() as c:
            seen.add(post(c, review_for(OBJECTS[key]))["allowed"])
    return seen


def until(hook: Any, key: str, allowed: bool, seconds: float = 20.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if decisions(hook, key) == {allowed}:
            return time.monotonic() - start
        time.sleep(0.3)
    raise AssertionError(f"{key} still not {'allowed' if allowed else 'denied'} by every worker")


def test_every_worker_follows_the_controllers_admission_policy(
    controller: Controller, tmp_path: Path
) -> None:
    assert MONITOR != PROTECT
    hook = start_webhook(
        tmp_path,
        "--vulns", str(EXAMPLES / "vulns.yaml"), "--workers", "2",
        "--controller", controller.base, "--token", controller.tokens["agent"],
        "--controller-ca", str(controller.ca), "--agent-name", "webhook-a",
    )  # fmt: skip
    try:
        apply(controller, PROTECT)  # legacy: unpinned image from an unapproved registry
        until(hook, "Deployment/shop/legacy", allowed=False)
        apply(controller, MONITOR)  # the same rules, only warned about
        took = until(hook, "Deployment/shop/legacy", allowed=True)
        assert took < 15, took
        assert decisions(hook, "Deployment/prod/pay") == {True}
        applied = reported(controller, {"protect", "monitor"})  # while the webhook reports
    finally:
        err = stop_webhook(hook)
    assert "policy from the controller: mode monitor" in err, err
    modes = {(e["data"]["mode"], e["data"]["pid"]) for e in applied}
    assert len({pid for _, pid in modes}) == 2, modes  # each worker process applied it
    assert {m for m, _ in modes} == {"protect", "monitor"}, modes


def reported(controller: Controller, modes: set[str], seconds: float = 30.0) -> list[Any]:
    """The ``admission.policy_applied`` events at the controller once they cover ``modes`` for
    both worker processes (the agents' reporters post in batches)."""
    deadline = time.monotonic() + seconds
    applied: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        with controller.client("reader") as c:
            page = c.get("/api/v1/events", params={"kind": "admission.policy_applied"}).json()
        applied = page["events"]
        seen = {(e["data"]["mode"], e["data"]["pid"]) for e in applied}
        if all(len({p for m, p in seen if m == mode}) == 2 for mode in modes):
            break
        time.sleep(0.5)
    return applied


def test_a_policy_that_does_not_parse_leaves_the_one_in_force() -> None:
    installed: list[Any] = []
    events: list[Any] = []
    follower = AdmissionPolicyFollower(installed.append, events.append, node="n1")
    follower.apply(ConfigAnswer(3, admission=PolicyDocument(3, PROTECT)))
    follower.apply(ConfigAnswer(4, admission=PolicyDocument(4, "spec: {mode: sideways}\n")))
    follower.apply(ConfigAnswer(5))  # another kind changed: nothing to do
    assert len(installed) == 1 and follower.version == 3
    assert [e.kind for e in events] == ["admission.policy_applied", "admission.policy_rejected"]
    assert events[1].data["version"] == 4 and "sideways" not in events[0].message
