"""Agents report to the controller: the real ``stockade sensor`` against the real
``stockade controller`` (HTTPS with its generated CA), and the spool while it is away."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockade.store import open_store
from stockade.store.records import list_events
from tests.api.controller import Controller, running_controller
from tests.events.agents import (
    CARD,
    agent_env,
    capture,
    closed_port,
    controller_args,
    controller_events,
    spooled,
    stockade,
)


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    yield from running_controller("sqlite", tmp_path_factory, "stockade_reporter_test")


def _dlp(events: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    return [e for e in events if e["kind"] == "dlp.sensitive_in_clear"]


def test_the_sensor_reports_a_masked_dlp_event_to_the_controller(
    controller: Controller, tmp_path: Path
) -> None:
    cap = capture(tmp_path / "card.pcap", f"card={CARD}&amount=10".encode())
    env = agent_env(tmp_path)
    out = stockade("sensor", "--pcap", str(cap), *controller_args(controller), env=env)
    assert out.returncode == 0, out.stderr
    assert "controller: " in out.stderr and " events stored" in out.stderr

    local = [e for e in list_events(open_store(env["STOCKADE_DB"])) if e.kind.startswith("dlp.")]
    assert len(local) == 1  # the local store keeps working alongside
    sent = [e for e in _dlp(controller_events(controller)) if e["id"] == local[0].id]
    assert len(sent) == 1  # the same event, the same id, on the controller
    text = json.dumps(sent[0])
    assert CARD not in text and CARD.replace(" ", "") not in text
    assert "4111 **** **** 1111" in sent[0]["message"]
    assert sent[0]["source"] == "sensor" and sent[0]["severity"] == "high"
    assert spooled(tmp_path / "spool") == []  # delivered: nothing left behind

    with controller.as_role("reader") as http:
        agents = {a["name"]: a for a in http.get("/api/v1/agents").json()}
    assert set(agents["node-1-sensor"]["capabilities"]) >= {"dlp", "network.sensor"}


def test_no_store_sends_to_the_controller_only(controller: Controller, tmp_path: Path) -> None:
    cap = capture(tmp_path / "card.pcap", f"card={CARD}".encode())
    env = agent_env(tmp_path)
    before = len(_dlp(controller_events(controller)))
    out = stockade(
        "sensor", "--pcap", str(cap), "--no-store", *controller_args(controller), env=env
    )
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "local.db").exists()
    assert len(_dlp(controller_events(controller))) == before + 1


def test_controller_down_spools_then_a_flush_delivers_exactly_once(
    controller: Controller, tmp_path: Path
) -> None:
    cap = capture(tmp_path / "card.pcap", f"card={CARD}&amount=10".encode())
    env = agent_env(tmp_path)
    down = f"https://127.0.0.1:{closed_port()}"
    out = stockade(
        "sensor", "--pcap", str(cap), *controller_args(controller, url=down), env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr  # the sensor finishes
    assert "unreachable" in out.stderr and "spool" in out.stderr
    files = spooled(tmp_path / "spool")
    assert files, out.stderr
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert CARD not in json.dumps(lines)  # masked before it touched the disk
    held = [e for e in lines if "connection" not in e]
    records = [e["connection"] for e in lines if "connection" in e]  # the sensor's connections
    assert len(records) == 1 and records[0]["protocol"] == "proto.http"
    ids = {e["id"] for e in held}
    assert any(e["kind"] == "dlp.sensitive_in_clear" for e in held)

    flushed = stockade("agent", "flush", *controller_args(controller), env=env)
    assert flushed.returncode == 0, flushed.stderr
    assert spooled(tmp_path / "spool") == []
    stored = [e for e in controller_events(controller) if e["id"] in ids]
    assert sorted(e["id"] for e in stored) == sorted(ids)  # every one, once
    assert "connections stored" in flushed.stderr

    again = stockade("agent", "flush", *controller_args(controller), env=env)
    assert again.returncode == 0, again.stderr
    assert len([e for e in controller_events(controller) if e["id"] in ids]) == len(ids)


def test_a_later_command_drains_the_spool_in_order(controller: Controller, tmp_path: Path) -> None:
    env = agent_env(tmp_path)
    down = f"https://127.0.0.1:{closed_port()}"
    first = capture(tmp_path / "a.pcap", f"card={CARD}".encode())
    out = stockade("sensor", "--pcap", str(first), *controller_args(controller, url=down), env=env)
    assert out.returncode == 0, out.stderr
    waiting = {
        json.loads(line)["id"]
        for f in spooled(tmp_path / "spool")
        for line in f.read_text().splitlines()
        if not line.startswith('{"connection":')  # connection records travel in the same batches
    }
    assert waiting

    second = capture(tmp_path / "b.pcap", b"item=42")
    out = stockade("sensor", "--pcap", str(second), *controller_args(controller), env=env)
    assert out.returncode == 0, out.stderr
    assert spooled(tmp_path / "spool") == []
    assert waiting <= {e["id"] for e in controller_events(controller)}


def test_without_controller_nothing_changes(tmp_path: Path) -> None:
    cap = capture(tmp_path / "card.pcap", f"card={CARD}".encode())
    env = agent_env(tmp_path)
    out = stockade("sensor", "--pcap", str(cap), env=env)
    assert out.returncode == 0, out.stderr
    assert "controller" not in out.stderr
    assert not (tmp_path / "spool").exists()
    assert any(
        e.kind == "dlp.sensitive_in_clear" for e in list_events(open_store(env["STOCKADE_DB"]))
    )


def test_bench_workloads_reports_a_cis_run_with_counts(
    controller: Controller, tmp_path: Path
) -> None:
    manifests = Path(__file__).resolve().parents[1] / "compliance" / "workloads" / "golden"
    target = manifests / "pss.baseline.privileged-PASS"
    env = agent_env(tmp_path)
    out = stockade("bench", "workloads", str(target), *controller_args(controller), env=env)
    assert out.returncode == 0, out.stderr
    runs = controller_events(controller, kind="cis.run")
    mine = [r for r in runs if str(target) in r["message"]]
    assert len(mine) == 1 and mine[0]["data"]["benchmark"] == "workloads"
    assert sum(mine[0]["data"]["counts"].values()) > 0
    assert list_events(open_store(env["STOCKADE_DB"])) == []  # findings, not events, stay local
    # every check result lands as a run, next to the node benchmarks (the Compliance page's)
    checked = sum(mine[0]["data"]["counts"].values())
    assert f"controller: workload check results uploaded ({checked} findings)" in out.stderr
    with controller.as_role("reader") as http:
        runs = http.get("/api/v1/cis/runs").json()["items"]
        run = next(r for r in runs if r["node"] == str(target))
        detail = http.get(f"/api/v1/cis/runs/{run['id']}").json()
    assert run["benchmark"]["id"] == "workloads-restricted" and run["checks"] == checked
    assert sum(run["counts"].values()) == checked
    assert {r["id"] for r in detail["results"]} >= {"pss.baseline.privileged"}


def test_scan_rootfs_reports_scan_completed_with_counts(
    controller: Controller, tmp_path: Path
) -> None:
    from tests.scanning.scan_cli_support import make_db
    from tests.scanning.test_scan_cli_rootfs import rootfs as make_rootfs

    root = make_rootfs.__wrapped__(tmp_path)  # type: ignore[attr-defined]
    db = make_db(tmp_path / "r.db")
    env = {**agent_env(tmp_path), "STOCKADE_DB": db}
    out = stockade(
        "scan", "rootfs", str(root), "--format", "json", *controller_args(controller), env=env
    )
    assert out.returncode == 0, out.stderr
    done = [
        e for e in controller_events(controller, kind="scan.completed") if str(root) in e["message"]
    ]
    assert len(done) == 1
    counts = done[0]["data"]["counts"]
    assert counts["low"] + counts["negligible"] + counts["unknown"] + counts["medium"] > 0
    assert done[0]["resource"]["kind"] == "image"


def test_the_link_client_carries_the_token_and_caps_the_connect_time() -> None:
    """The one client every agent (reporter, uploads, configuration and capture followers) talks
    to the controller through."""
    from stockade.events.reporter import ControllerLink

    link = ControllerLink(url="http://127.0.0.1:9", token="stk_abc", timeout=12.0)
    with link.client({"Content-Type": "application/json"}) as client:
        assert client.headers["Authorization"] == "Bearer stk_abc"
        assert client.headers["Content-Type"] == "application/json"
        assert (client.timeout.read, client.timeout.connect) == (12.0, 5.0)
    with ControllerLink(url="http://127.0.0.1:9", token="stk_abc", timeout=1.0).client() as client:
        assert "Content-Type" not in client.headers
        assert (client.timeout.read, client.timeout.connect) == (1.0, 1.0)
