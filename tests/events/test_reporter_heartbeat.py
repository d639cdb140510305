"""A long-running agent with nothing to report still says it is up: with ``heartbeat`` the
reporter posts an empty batch when it has been quiet that long, and the controller records the
agent (its node and capabilities) from it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockade.events.ingest import parse_agent
from stockade.events.reporter import ControllerLink, Reporter
from stockade.events.spool import Spool
from tests.api.controller import Controller, running_controller


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    yield from running_controller("sqlite", tmp_path_factory, "stockade_heartbeat_test")


def _seen(controller: Controller, name: str) -> dict | None:  # type: ignore[type-arg]
    with controller.client("reader") as c:
        return next((a for a in c.get("/api/v1/agents").json() if a["name"] == name), None)


def _reporter(controller: Controller, tmp: Path, name: str, heartbeat: float | None) -> Reporter:
    link = ControllerLink(url=controller.base, token=controller.tokens["agent"], ca=controller.ca)
    agent = parse_agent(
        {"name": name, "node": "node-7", "version": "0", "capabilities": ["cis", "scan"]}
    )
    return Reporter(link, agent, Spool(tmp / name), heartbeat=heartbeat)


def test_a_quiet_agent_heartbeats(controller: Controller, tmp_path: Path) -> None:
    with _reporter(controller, tmp_path, "quiet-agent", 0.3):
        deadline = time.monotonic() + 5
        while _seen(controller, "quiet-agent") is None and time.monotonic() < deadline:
            time.sleep(0.1)
        first = _seen(controller, "quiet-agent")
        assert first is not None and first["node"] == "node-7"
        assert first["capabilities"] == ["cis", "scan"] and first["accepted"] == 0
        time.sleep(1.0)
        later = _seen(controller, "quiet-agent")
        assert later is not None and later["last_seen"] > first["last_seen"]


def test_without_heartbeat_a_quiet_reporter_posts_nothing(
    controller: Controller, tmp_path: Path
) -> None:
    with _reporter(controller, tmp_path, "silent-agent", None):
        time.sleep(1.0)
    assert _seen(controller, "silent-agent") is None
