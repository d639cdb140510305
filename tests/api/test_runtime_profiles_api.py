"""Process profiles through the controller (SQLite and PostgreSQL): applied, read back, diffed and
audited through the API and through ``stockade runtime profile ... --at-controller``, versioned
on the agents' configuration sequence, and the profiles the agents learned sent up and merged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stockade.runtime.profile import parse_texts
from stockade.store.records import list_events
from tests.api.controller import Controller, own_controller
from tests.events.agents import agent_env, stockade


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def controller(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Controller]:
    yield from own_controller(request.param, tmp_path_factory, "rtprof")


PROFILES = "/api/v1/runtime-profiles"
SHA = "ab" * 32
DOC = f"""\
apiVersion: stockade.dev/v1
kind: ProcessProfiles
spec:
  profiles:
    - name: shop.orders
      selector: {{namespace: shop, pods: [orders]}}
      mode: protect
      processes:
        - {{path: /usr/bin/openssl, sha256: {SHA}, parent: ""}}
"""
LEARNED_A = """\
apiVersion: stockade.dev/v1
kind: ProcessProfiles
spec:
  profiles:
    - name: shop.orders
      selector: {namespace: shop, pods: [orders]}
      processes: [{path: /bin/sleep, sha256: %s, parent: /bin/bash}]
""" % ("1a" * 32)
LEARNED_B = LEARNED_A.replace("/bin/sleep", "/bin/cat").replace("1a" * 32, "2b" * 32)


def put(controller: Controller, role: str, text: str) -> Any:
    with controller.client(role) as c:
        return c.put(PROFILES, content=text.encode(), headers={"content-type": "application/yaml"})


def config(controller: Controller, since: int | None = None) -> dict[str, Any]:
    with controller.client("agent") as c:
        answer = c.get("/api/v1/agents/config", params={} if since is None else {"since": since})
    assert answer.status_code == 200, answer.text
    out: dict[str, Any] = answer.json()
    return out


def cli(controller: Controller, tmp: Path, role: str, *args: str) -> Any:
    env = agent_env(tmp, STOCKADE_CONTROLLER_TOKEN=controller.tokens[role])
    return stockade(
        "runtime", "profile", *args, "--at-controller", "--controller", controller.base,
        "--controller-ca", str(controller.ca), env=env,
    )  # fmt: skip


def test_profiles_applied_through_the_api_reach_the_agents_by_version(
    controller: Controller,
) -> None:
    with controller.client("reader") as c:
        assert c.get(PROFILES).status_code == 404  # nothing applied yet
    before = config(controller)["version"]
    assert put(controller, "reader", DOC).status_code == 403
    answer = put(controller, "operator", DOC)
    assert answer.status_code == 200, answer.text
    done = answer.json()
    assert done["profiles"] == {
        "shop.orders": {"mode": "protect", "zeroDrift": False, "processes": 1}
    }
    version = done["version"]
    with controller.client("reader") as c:
        body = c.get(PROFILES).json()
        raw = c.get(PROFILES, headers={"accept": "application/yaml"})
    assert body["version"] == version and "/usr/bin/openssl" in body["yaml"]
    assert raw.headers["content-type"].startswith("application/yaml")
    assert parse_texts([("raw", raw.text)]).spec.profiles[0].mode == "protect"

    sent = config(controller, since=before)
    assert sent["runtime_profiles"] == {"version": version, "yaml": body["yaml"]}
    assert "policy" not in sent  # only the kinds changed after `since`
    assert config(controller, since=sent["version"]) == {
        "version": sent["version"],
        "unchanged": True,
    }
    audits = list_events(controller.store, kind="audit.runtime_profiles_applied")
    assert audits[-1].data["after"]["version"] == version and audits[-1].data["who"]


def test_a_wrong_document_is_400_with_its_line_and_changes_nothing(
    controller: Controller,
) -> None:
    put(controller, "operator", DOC)
    with controller.client("reader") as c:
        before = c.get(PROFILES).json()
    answer = put(controller, "operator", DOC.replace("mode: protect", "mode: enforce"))
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("profiles:7: spec.profiles[0].mode"), answer.text
    with controller.client("reader") as c:
        assert c.get(PROFILES).json() == before
        diff = c.post(f"{PROFILES}/diff", content=DOC.replace("protect", "monitor").encode())
        same = c.post(f"{PROFILES}/diff", content=DOC.encode())
    assert diff.json()["changed"] is True and "+    mode: monitor" in diff.json()["diff"]
    assert same.json()["changed"] is False


def test_the_cli_exports_applies_and_diffs_at_the_controller(
    controller: Controller, tmp_path: Path
) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text(DOC.replace("mode: protect", "mode: monitor"))
    diff = cli(controller, tmp_path, "reader", "diff", str(spec))
    assert diff.returncode == 1 and "+    mode: monitor" in diff.stdout, diff.stderr
    refused = cli(controller, tmp_path, "reader", "apply", str(spec))
    assert refused.returncode == 2 and "403" in refused.stderr
    assert "Traceback" not in refused.stderr
    local = tmp_path / "profiles.yaml"
    applied = cli(controller, tmp_path, "operator", "apply", str(spec), "--profiles", str(local))
    assert applied.returncode == 0, applied.stderr
    assert "as version" in applied.stdout
    exported = cli(controller, tmp_path, "reader", "export")
    assert exported.returncode == 0, exported.stderr
    assert parse_texts([("export", exported.stdout)]).spec.profiles[0].mode == "monitor"
    assert cli(controller, tmp_path, "reader", "diff", str(spec)).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(DOC.replace("shop.orders", "Shop Orders"))
    wrong = cli(controller, tmp_path, "operator", "apply", str(bad))
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1, wrong.stderr
    assert not local.exists()  # the node's file is not touched


def test_learned_profiles_are_sent_up_and_merged(controller: Controller, tmp_path: Path) -> None:
    with controller.client("agent") as c:
        a = c.post(f"{PROFILES}/learned", json={"agent": "node-a", "yaml": LEARNED_A})
        b = c.post(f"{PROFILES}/learned", json={"agent": "node-b", "yaml": LEARNED_B})
        bad = c.post(f"{PROFILES}/learned", json={"agent": "node-c", "yaml": "spec: [1]"})
    assert a.status_code == 200 and b.status_code == 200, a.text
    assert bad.status_code == 400
    with controller.client("reader") as c:
        assert (
            c.post(f"{PROFILES}/learned", json={"agent": "x", "yaml": LEARNED_A}).status_code == 403
        )
        learned = c.get(f"{PROFILES}/learned").json()
    assert [x["agent"] for x in learned["agents"]] == ["node-a", "node-b"]
    merged = parse_texts([("learned", learned["yaml"])]).spec.profiles
    assert [p.name for p in merged] == ["shop.orders"]
    assert {q.path for q in merged[0].processes} == {"/bin/sleep", "/bin/cat"}
    exported = cli(controller, tmp_path, "reader", "export", "--learned", "--mode", "protect")
    assert exported.returncode == 0, exported.stderr
    again = parse_texts([("export", exported.stdout)]).spec.profiles
    assert again[0].mode == "protect" and len(again[0].processes) == 2
