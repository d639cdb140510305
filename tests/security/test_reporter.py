"""The agent's link to the controller under stress: a full spool, a controller killed mid-stream,
re-sent batches, refused tokens, untrusted certificates, tampered spool files and hostile names.
Nothing is lost silently, nothing is stored twice, nothing sensitive reaches the disk or the wire."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from stockade.events.ingest import AgentInfo
from stockade.events.reporter import ControllerLink, Reporter
from stockade.events.spool import Spool
from stockade.model import Event, Severity
from stockade.store.tables import events as events_table
from tests.api.controller import Controller, running_controller
from tests.events.agents import (
    CARD,
    agent_env,
    capture,
    closed_port,
    controller_events,
    spooled,
    stockade,
)

AGENT = AgentInfo(name="stress-agent", node="node-1", version="0.1.0", capabilities=("dlp",))


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    """One controller for the module: each test's events carry a source of their own, and the
    agent.dropped reports the agent name of their own, that the test reads back."""
    yield from running_controller("sqlite", tmp_path_factory, "stockade_reporter_security")


def _event(i: int, source: str = "stress", message: str | None = None) -> Event:
    return Event(
        kind="dlp.sensitive_in_clear",
        severity=Severity.HIGH,
        source=source,
        message=message or f"event {i}",
        at=datetime.now(UTC),
        id=uuid.uuid4().hex,
    )


def _reporter(
    c: Controller,
    spool: Spool,
    *,
    url: str | None = None,
    ca: bool = True,
    agent: AgentInfo = AGENT,
    **kw: object,
) -> tuple[Reporter, list[str]]:
    notices: list[str] = []
    link = ControllerLink(url=url or c.base, token=c.tokens["agent"], ca=c.ca if ca else None)
    return Reporter(link, agent, spool, notice=notices.append, **kw), notices  # type: ignore[arg-type]


def _dropped_reports(c: Controller, agent: AgentInfo) -> list[int]:
    """The counts of the agent.dropped events ``agent`` reported to ``c``."""
    reports = controller_events(c, kind="agent.dropped")
    return [r["data"]["dropped"] for r in reports if r["data"]["agent"] == agent.name]


def _stored_ids(c: Controller, source: str) -> list[str]:
    with c.store.connect() as conn:
        rows = conn.execute(select(events_table.c.id).where(events_table.c.source == source))
        return [r[0] for r in rows]


def test_a_full_spool_counts_drops_and_reports_them(controller: Controller, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=8192)
    down = f"https://127.0.0.1:{closed_port()}"
    agent = AgentInfo(name="full-spool-agent", node="node-1", version="0.1.0")
    reporter, notices = _reporter(
        controller, spool, url=down, agent=agent, batch_events=20, interval=0.05
    )
    with reporter:
        for i in range(300):
            reporter.add(_event(i, source="fullspool"))
    assert reporter.stats.dropped > 0
    assert spool.dropped() == reporter.stats.dropped  # on disk, for whoever sends next
    assert spool.size() <= 8192
    assert any("is full" in n and "dropped" in n for n in notices)
    kept = spool.pending_events()
    assert kept + reporter.stats.dropped == 300  # every event is either kept or counted

    again, notices = _reporter(controller, spool, agent=agent)
    with again:
        pass
    assert spool.dropped() == 0 and spool.pending_events() == 0
    assert len(_stored_ids(controller, "fullspool")) == kept
    assert _dropped_reports(controller, agent) == [reporter.stats.dropped]
    assert any("reported" in n and "agent.dropped" in n for n in notices)


def test_the_cli_says_on_stderr_when_the_spool_drops(
    controller: Controller, tmp_path: Path
) -> None:
    env = agent_env(tmp_path, STOCKADE_SPOOL_MAX="4096")
    down = f"https://127.0.0.1:{closed_port()}"
    args = ["--controller", down, "--token", controller.tokens["agent"]]
    args += ["--controller-ca", str(controller.ca)]
    cap = capture(tmp_path / "card.pcap", f"card={CARD}".encode())
    for _ in range(10):  # each run spools about 1.5 KB
        out = stockade("sensor", "--pcap", str(cap), *args, env=env)
        assert out.returncode == 0, out.stderr
        assert "Traceback" not in out.stderr
        if "is full" in out.stderr:
            break
    assert "is full" in out.stderr and "dropped" in out.stderr
    assert "agent.dropped" in out.stderr
    assert int((tmp_path / "spool" / "node-1-sensor" / "dropped").read_text()) > 0


def test_kill_9_of_the_controller_mid_stream_loses_and_doubles_nothing(
    controller: Controller,
) -> None:
    spool = Spool(controller.workdir / "spool")
    reporter, notices = _reporter(controller, spool, batch_events=100, interval=0.1)
    sent: list[str] = []
    killed = restarted = False
    start = time.monotonic()
    with reporter:
        for i in range(3000):  # 1000 events/s for 3 s
            e = _event(i, source="killed")
            reporter.add(e)
            sent.append(e.id)
            elapsed = time.monotonic() - start
            if not killed and elapsed > 0.8:
                assert controller.proc is not None
                controller.proc.kill()  # SIGKILL: no shutdown, an answer may never come
                controller.proc.wait()
                controller.log.close()
                killed = True
            if killed and not restarted and elapsed > 1.8:
                controller.start()
                restarted = True
            time.sleep(max(0.0, start + (i + 1) / 1000 - time.monotonic()))
        reporter.close(timeout=60)
    assert killed and restarted
    assert any("unreachable" in n for n in notices)
    stored = _stored_ids(controller, "killed")
    assert len(stored) == len(set(stored))  # never twice
    assert set(stored) == set(sent)  # every one
    assert spool.pending_events() == 0 and reporter.stats.dropped == 0


def test_a_batch_sent_again_after_a_crash_is_counted_not_stored_twice(
    controller: Controller, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool")
    events = [_event(i, source="resent") for i in range(50)]
    reporter, _ = _reporter(controller, spool)
    with reporter:
        reporter.add_all(events)
    # the agent died after the post but before deleting the batch: the file is still there
    spool.put([json.dumps(e.to_dict()).encode() for e in events])
    again, _ = _reporter(controller, spool)
    with again:
        pass
    assert again.stats.duplicates == 50 and again.stats.accepted == 0
    assert sorted(_stored_ids(controller, "resent")) == sorted(e.id for e in events)


def test_a_refused_token_keeps_the_events_and_says_why(
    controller: Controller, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool")
    notices: list[str] = []
    link = ControllerLink(url=controller.base, token="stk_not-a-token", ca=controller.ca)
    with Reporter(link, AGENT, spool, notice=notices.append) as reporter:
        reporter.add(_event(0, source="badtoken"))
    assert spool.pending_events() == 1  # not lost: the next run with a good token sends it
    assert any("refused the token (401" in n for n in notices)
    assert _stored_ids(controller, "badtoken") == []


def test_an_untrusted_certificate_is_not_sent_to(controller: Controller, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    reporter, notices = _reporter(controller, spool, ca=False)  # the system CAs only
    with reporter:
        reporter.add(_event(0, source="untrusted"))
    assert spool.pending_events() == 1
    assert any("CERTIFICATE_VERIFY_FAILED" in n or "certificate" in n for n in notices)
    assert _stored_ids(controller, "untrusted") == []


def test_a_card_number_is_masked_in_the_spool_and_at_the_controller(
    controller: Controller, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool")
    down = f"https://127.0.0.1:{closed_port()}"
    reporter, _ = _reporter(controller, spool, url=down)
    with reporter:
        reporter.add(_event(0, source="cardleak", message=f"paid with {CARD}"))
    on_disk = b"".join(p.read_bytes() for p in spooled(spool.root))
    assert CARD.encode() not in on_disk and CARD.replace(" ", "").encode() not in on_disk
    assert b"4111 **** **** 1111" in on_disk
    with _reporter(controller, spool)[0]:
        pass
    (stored,) = [e for e in controller_events(controller) if e["source"] == "cardleak"]
    assert stored["message"] == "paid with 4111 **** **** 1111"


def test_a_tampered_spool_file_is_dropped_counted_and_does_not_block_the_rest(
    controller: Controller, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool")
    spool.put([b'{"id": "not-an-id", "kind": "x"}'])
    good = _event(0, source="aftertamper")
    spool.put([json.dumps(good.to_dict()).encode()])
    agent = AgentInfo(name="tampered-spool-agent", node="node-1", version="0.1.0")
    reporter, notices = _reporter(controller, spool, agent=agent)
    with reporter:
        pass
    assert _stored_ids(controller, "aftertamper") == [good.id]
    assert reporter.stats.dropped == 1 and spool.pending_events() == 0
    assert any("refused 1 of a batch of 1 events: 400" in n for n in notices)
    assert _dropped_reports(controller, agent) == [1]


def test_hostile_agent_names_stay_inside_the_spool_root(tmp_path: Path) -> None:
    cap = capture(tmp_path / "c.pcap", b"item=1")
    env = agent_env(tmp_path, STOCKADE_AGENT_NAME="a/../../../escaped")
    down = f"https://127.0.0.1:{closed_port()}"
    out = stockade("sensor", "--pcap", str(cap), "--controller", down, "--token", "t", env=env)
    assert out.returncode == 0, out.stderr
    inside = [p.relative_to(tmp_path / "spool") for p in spooled(tmp_path / "spool")]
    assert inside and all(len(p.parts) == 2 for p in inside)
    assert not (tmp_path.parent / "escaped").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--controller", "http://192.0.2.1:9443", "--token", "t"], "plain http is only allowed"),
        (["--controller", "ftp://x", "--token", "t"], "expected https://HOST"),
        (["--controller", "https://127.0.0.1:1"], "needs --token"),
        (["--token", "t"], "need --controller"),
        (["--controller", "https://127.0.0.1:1", "--token", "a b"], "--token: expected"),
    ],
)
def test_bad_controller_options_are_one_line_usage_errors(
    tmp_path: Path, args: list[str], message: str
) -> None:
    cap = capture(tmp_path / "c.pcap", b"item=1")
    out = stockade("sensor", "--pcap", str(cap), *args, env=agent_env(tmp_path))
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("stockade: error: ") and message in out.stderr
    assert "Traceback" not in out.stderr


def test_one_line_the_controller_refuses_costs_that_line_not_its_batch(
    controller: Controller, tmp_path: Path
) -> None:
    """A spooled batch with one line the controller refuses (written by another agent version, or
    damaged on disk): the controller answers 400 for the whole batch, and the agent dropped all
    100 events of it. It now halves what is refused until the line is alone: 99 stored."""
    spool = Spool(tmp_path / "spool")
    events = [_event(i, source="one-bad") for i in range(100)]
    lines = [json.dumps(e.to_dict()).encode() for e in events]
    lines[37] = b'{"id": "not-an-id", "kind": "x"}'
    spool.put(lines)
    agent = AgentInfo(name="one-bad-line-agent", node="node-1", version="0.1.0")
    reporter, notices = _reporter(controller, spool, agent=agent)
    reporter.start()  # nothing new to add: it sends the spool's backlog, then closes
    reporter.close()
    good = [e.id for i, e in enumerate(events) if i != 37]
    assert sorted(_stored_ids(controller, "one-bad")) == sorted(good)
    # accepted: the 99, and the agent.dropped report that counts the one
    assert reporter.stats.dropped == 1 and reporter.stats.accepted == 100
    assert spool.pending_events() == 0
    assert any("refused 1 of a batch of 100 events: 400 events[0]" in n for n in notices), notices
    assert _dropped_reports(controller, agent) == [1]


def test_what_the_controller_says_of_a_refused_batch_is_masked() -> None:
    """The controller's answer to a refused batch goes into the agent's notice and stats: a line
    it quotes (damaged on disk, never through the gate) must not carry a card out in clear."""
    import httpx

    from stockade.events.reporter import _detail

    request = httpx.Request("POST", "http://127.0.0.1:1/api/v1/events")
    answer = httpx.Response(
        400, json={"detail": "events[3].data.note: '4111 1111 1111 1111' is not valid"},
        request=request,
    )  # fmt: skip
    said = _detail(answer)
    assert "4111 1111 1111 1111" not in said and "4111" in said and "events[3]" in said
    plain = httpx.Response(400, text="bad line 4111111111111111 here", request=request)
    assert "4111111111111111" not in _detail(plain)
