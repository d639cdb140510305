"""Runtime events reach the controller through the agent's reporter: an applied set of profiles
(``process.profiles_applied``) and an exec refused in a lab pod (``process.denied``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

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
