"""The runtime monitor following the controller's process profiles by version (no root): profiles
applied through the API are fetched as ``runtime watch --controller`` fetches them, put in force
in a monitor judging a real process of this test's own (learned in Discover before; killed in
Protect after), a version seen again changes nothing, a document that does not parse keeps the
previous profiles, and learned profiles are sent up."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from stockade.cli.runtime import learned_sender
from stockade.events.reporter import ControllerLink
from stockade.firewall.enforce.follow import ConfigFetcher
from stockade.identity import Directory, Workload
from stockade.model import Event
from stockade.model.agent_config import ConfigAnswer, PolicyDocument
from stockade.runtime import proc
from stockade.runtime.follow import ProfileFollower
from stockade.runtime.monitor import Monitor
from stockade.runtime.procevents import ProcEvent
from stockade.runtime.profile import Profiles, parse_texts
from tests.api.controller import Controller, running_controller

PROTECT = """\
apiVersion: stockade.dev/v1
kind: ProcessProfiles
spec:
  profiles:
    - name: shop.orders
      selector: {namespace: shop, pods: [orders]}
      mode: protect
"""


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    yield from running_controller("sqlite", tmp_path_factory, "unused")


@pytest.fixture
def fetcher(controller: Controller) -> Iterator[ConfigFetcher]:
    link = ControllerLink(url=controller.base, token=controller.tokens["agent"], ca=controller.ca)
    f = ConfigFetcher(link)
    try:
        yield f
    finally:
        f.stop()


def apply_at(controller: Controller, text: str) -> int:
    with controller.client("operator") as c:
        answer = c.put("/api/v1/runtime-profiles", content=text.encode())
    assert answer.status_code == 200, answer.text
    version: int = answer.json()["version"]
    return version


def fetched(fetcher: ConfigFetcher) -> ConfigAnswer:
    fetcher.fetch_once()
    answer = fetcher.take()
    assert answer is not None
    fetcher.since = answer.version
    return answer


class Watched:
    """A monitor whose one workload is this test's own cgroup: a child process of ours is in it."""

    def __init__(self) -> None:
        cgroup = proc.cgroup_of(os.getpid())
        assert cgroup is not None
        self.workload = Workload(name="orders", namespace="shop", cgroups=(cgroup,))
        self.events: list[Event] = []
        self.monitor = Monitor(
            directory=Directory([self.workload]),
            roots={},
            profiles=Profiles(),
            emit=self.events.extend,
        )
        self.installed: list[int] = []

    def install(self, profiles: Profiles, version: int) -> None:
        self.monitor.profiles = profiles
        self.installed.append(version)

    def run(self) -> subprocess.Popen[bytes]:
        """A real ``sleep`` judged by the monitor as the process connector would report it."""
        child = subprocess.Popen(["sleep", "30"])
        for _ in range(500):  # until it is sleep (after its exec), not the forked Python
            if (proc.exe_of(child.pid) or "").endswith("sleep"):
                break
            subprocess.run(["true"], check=False)
        self.monitor.handle([ProcEvent("exec", child.pid, child.pid)])
        return child

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def test_the_monitor_applies_the_profiles_received_by_version(
    controller: Controller, fetcher: ConfigFetcher
) -> None:
    w = Watched()
    follower = ProfileFollower(w.install, w.events.extend, "node-1")
    child = w.run()  # no profile yet: Discover learns it
    assert w.monitor.stats.learned == 1 and child.poll() is None
    child.kill()
    child.wait()

    version = apply_at(controller, PROTECT)
    follower.apply(fetched(fetcher))
    assert w.installed == [version] and follower.version == version
    applied = [e for e in w.events if e.kind == "process.profiles_applied"]
    assert applied[0].data["version"] == version and applied[0].data["from"] == "controller"
    assert applied[0].data["profiles"]["shop.orders"]["mode"] == "protect"

    child = w.run()  # now in Protect: not in the (empty) profile, killed
    assert child.wait(timeout=10) == -9
    killed = [e for e in w.events if e.kind == "process.killed"]
    assert killed[0].data["exe"].endswith("sleep") and killed[0].rule == "shop.orders"

    nothing = fetched(fetcher)  # the same version again: unchanged, nothing re-installed
    follower.apply(nothing)
    follower.apply(ConfigAnswer(nothing.version, runtime_profiles=PolicyDocument(version, PROTECT)))
    assert w.installed == [version]

    later = apply_at(controller, PROTECT.replace("mode: protect", "mode: monitor"))
    follower.apply(fetched(fetcher))
    assert w.installed == [version, later]
    assert w.monitor.profile_for(w.workload).mode == "monitor"


def test_a_document_that_does_not_parse_keeps_the_previous_profiles() -> None:
    w = Watched()
    follower = ProfileFollower(w.install, w.events.extend, "node-1")
    follower.apply(ConfigAnswer(5, runtime_profiles=PolicyDocument(3, PROTECT)))
    bad = PROTECT.replace("mode: protect", "mode: enforce")
    follower.apply(ConfigAnswer(6, runtime_profiles=PolicyDocument(4, bad)))
    assert w.installed == [3] and follower.version == 3
    assert w.monitor.profile_for(w.workload).mode == "protect"
    rejected = [e for e in w.events if e.kind == "process.profiles_rejected"]
    assert rejected[0].data["version"] == 4 and "spec.profiles[0].mode" in rejected[0].message


def test_learned_profiles_are_sent_up(controller: Controller) -> None:
    link = ControllerLink(url=controller.base, token=controller.tokens["agent"], ca=controller.ca)
    sender = learned_sender(link, "node-7-runtime", every=0.1)
    sender.start()
    learned = parse_texts([("learned", PROTECT.replace("mode: protect", "mode: discover"))])
    sender.offer(learned)
    sender.offer(learned)  # the same again is not sent twice
    sender.close()
    assert sender.sent == 1
    with controller.client("reader") as c:
        got: dict[str, Any] = c.get("/api/v1/runtime-profiles/learned").json()
    assert [a["agent"] for a in got["agents"]] == ["node-7-runtime"]
    assert got["agents"][0]["profiles"] == {"shop.orders": 0}
