"""Runtime events reach the controller through the agent's reporter: an applied set of profiles
(``process.profiles_applied``) and an exec refused in a lab pod (``process.denied``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.controller import Controller, running_controller
from tests.events.agents import agent_env, controller_args, controller_events, spooled, stockade
from tests.runtime.conftest import run_in_pod, start_watch

PROFILE = (
    "apiVersion: stockade.dev/v1\nkind: ProcessProfiles\nspec:\n  profiles:\n"
    "    - name: shop.orders\n      selector: {namespace: shop, pods: [orders]}\n"
    "      mode: protect\n      zeroDrift: true\n"
)


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    yield from running_controller("sqlite", tmp_path_factory, "stockade_runtime_test")


def test_applied_profiles_are_reported(controller: Controller, tmp_path: Path) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text(PROFILE)
    env = agent_env(tmp_path, STOCKADE_AGENT_NAME="node-1-runtime")
    out = stockade("runtime", "profile", "apply", str(spec), "--profiles",
                   str(tmp_path / "profiles.yaml"), *controller_args(controller), env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    sent = [e for e in controller_events(controller) if e["kind"] == "process.profiles_applied"]
    assert len(sent) == 1
    assert sent[0]["data"]["profiles"] == {
        "shop.orders": {"mode": "protect", "zeroDrift": True, "processes": 0}
    }
    assert spooled(tmp_path / "spool") == []


@pytest.mark.root
@pytest.mark.slow
def test_a_refused_exec_reaches_the_controller(
    controller: Controller, container_lab, tmp_path: Path
) -> None:
    inv, state = container_lab
    profiles, spec = tmp_path / "profiles.yaml", tmp_path / "p.yaml"
    spec.write_text(PROFILE)
    assert (
        stockade("runtime", "profile", "apply", str(spec), "--profiles", str(profiles)).returncode
        == 0
    )
    dropped = Path(inv.pod("orders").root) / "tmp" / "dropped-ctl"
    shutil.copyfile(shutil.which("sleep") or "/bin/sleep", dropped)
    dropped.chmod(0o755)
    env = agent_env(tmp_path, STOCKADE_AGENT_NAME="node-1-runtime")
    watch = start_watch(state, profiles, *controller_args(controller), env=env)
    try:
        assert run_in_pod(inv, ["/bin/bash", "-c", "/tmp/dropped-ctl 5; exit $?"]) == 126
    finally:
        watch.stop()
        dropped.unlink()
    assert watch.proc.returncode == 0, watch.stderr
    sent = [e for e in controller_events(controller) if e["kind"] == "process.denied"]
    assert [e["data"]["exe"] for e in sent] == ["/tmp/dropped-ctl"]
    assert sent[0]["resource"]["name"] == "orders" and sent[0]["action"] == "deny"
    assert spooled(tmp_path / "spool") == []


@pytest.mark.root
@pytest.mark.slow
def test_a_watch_sends_what_it_learns_and_enforces_the_controllers_profiles(
    controller: Controller, container_lab, tmp_path: Path
) -> None:
    from stockade.runtime.profile import Profiles, Spec, parse_texts
    from stockade.runtime.profile import dump as dump_profiles
    from tests.api.responding import wait_for

    inv, state = container_lab
    env = agent_env(tmp_path, STOCKADE_AGENT_NAME="node-2-runtime")
    # no local profiles: orders is in Discover until the controller says otherwise
    watch = start_watch(state, tmp_path / "profiles.yaml", *controller_args(controller), env=env)
    try:
        assert run_in_pod(inv, ["/bin/bash", "-c", "/bin/sleep 0.1"]) == 0

        def learned() -> Any:
            with controller.client("reader") as c:
                got = c.get("/api/v1/runtime-profiles/learned").json()
            mine = [a for a in got["agents"] if a["agent"] == "node-2-runtime"]
            return got["yaml"] if mine and mine[0]["profiles"].get("shop.orders") else None

        text = wait_for(learned, timeout=15, what="the learned profile at the controller")
        found = parse_texts([("learned", text)]).spec.profiles
        orders = next(p for p in found if p.name == "shop.orders")
        assert {"/bin/bash", "/bin/sleep"} <= {q.path for q in orders.processes}
        protect = Profiles(spec=Spec(profiles=[orders.model_copy(update={"mode": "protect"})]))
        with controller.client("operator") as c:
            answer = c.put("/api/v1/runtime-profiles", content=dump_profiles(protect).encode())
        assert answer.status_code == 200, answer.text
        version = answer.json()["version"]
        wait_for(
            lambda: any(f"profiles version {version} from" in line for line in watch.stderr),
            timeout=15,
            what="the watch applying the controller's profiles",
        )
        assert run_in_pod(inv, ["/bin/bash", "-c", "/bin/sleep 0.1"]) == 0  # learned: allowed
        assert run_in_pod(inv, ["/bin/bash", "-c", "/bin/cat /etc/hostname; exit $?"]) == 126
    finally:
        watch.stop()
    assert watch.proc.returncode == 0, watch.stderr
    sent = controller_events(controller)
    applied = [
        e
        for e in sent
        if e["kind"] == "process.profiles_applied" and e["data"].get("from") == "controller"
    ]
    assert [e["data"]["version"] for e in applied] == [version]
    denied = [e for e in sent if e["kind"] == "process.denied"]
    assert "/bin/cat" in [e["data"]["exe"] for e in denied]
