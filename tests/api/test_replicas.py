"""Two `stockade controller` replicas on one PostgreSQL behave as one controller: both take
events, the one holding the leader lock responds to the events of both exactly once, and when it is
killed (-9) the other takes over within seconds, responding to what the dead one left and to what
comes after, and to nothing twice."""

from __future__ import annotations

import copy
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select, text

from stockade.api.follower import ResponseFollower
from stockade.api.leader import SoleLeader
from stockade.api.quarantine import RecordedQuarantine
from stockade.api.responses import ResponseService
from stockade.api.tables import cursors
from stockade.events.rules import parse_rules
from stockade.model import Event, ResourceRef, Severity
from stockade.store import open_store
from stockade.store.records import events_committed_after, list_events, record_events
from stockade.store.tables import events
from tests.api.controller import (
    Controller,
    _free_port,
    batch,
    event,
    pg_url,
    running_controller,
)
from tests.api.responding import deliveries_of, targets_yaml, wait_for, write
from tests.events.receivers import HttpReceiver, make_certs, serve_http

INGEST = "/api/v1/agents/events"
RULES = """\
apiVersion: stockade.dev/v1
kind: ResponseRules
metadata: {name: replicas}
spec:
  rules:
    - name: tell-soc
      mode: active
      match: {namespaces: [replicas]}
      actions: [notify]
      notify: [soc]
"""


def replica_of(first: Controller, workdir: Path) -> Controller:
    """A second controller process on the same store (same tokens), its own port and TLS."""
    other = copy.copy(first)
    workdir.mkdir()
    other.workdir = workdir
    other.port = _free_port()
    other.base = f"https://127.0.0.1:{other.port}"
    other.ca = workdir / "tls" / "ca.crt"
    other.proc = None
    return other


def info(c: Controller) -> dict[str, Any]:
    with c.client("reader") as client:
        answer = client.get("/api/v1/controller")
    assert answer.status_code == 200, answer.text
    out: dict[str, Any] = answer.json()
    return out


def leader_gauge(c: Controller) -> str:
    with c.client("reader") as client:
        text = client.get("/metrics").text
    return next(line for line in text.splitlines() if line.startswith("stockade_controller_leader"))


def post(c: Controller, e: dict[str, Any]) -> None:
    with c.client("agent") as client:
        assert client.post(INGEST, json=batch([e])).json() == {"accepted": 1, "duplicates": 0}


def tell(i: int) -> dict[str, Any]:
    return event(i, resource=ResourceRef(kind="pod", name=f"p{i}", namespace="replicas"))


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[Controller, Controller, HttpReceiver]]:
    url = pg_url("stockade_replicas_test")
    certs = make_certs(tmp_path / "receiver-tls")
    with serve_http(HttpReceiver(), certs) as receiver:
        rules = write(tmp_path / "rules.yaml", RULES)
        targets = write(tmp_path / "targets.yaml", targets_yaml(receiver, certs))
        args = ("--rules", str(rules), "--targets", str(targets))
        (tmp_path / "a").mkdir()
        a = Controller(url, tmp_path / "a", *args)
        b = replica_of(a, tmp_path / "b")
        try:
            a.start()
            wait_for(lambda: info(a)["is_leader"], timeout=10, what="the first replica to lead")
            b.start()
            yield a, b, receiver
        finally:
            for c in (b, a):
                if c.proc is not None:
                    if c.proc.poll() is None:
                        c.proc.kill()
                        c.proc.wait()
                    c.log.close()
            a.store.close()


def test_two_replicas_respond_once_and_fail_over_on_kill(
    replicas: tuple[Controller, Controller, HttpReceiver],
) -> None:
    a, b, receiver = replicas
    first, second = info(a), info(b)
    assert first["is_leader"] and not second["is_leader"]
    assert first["leader"] == second["leader"] == first["replica"] != second["replica"]
    assert leader_gauge(a).endswith(" 1") and leader_gauge(b).endswith(" 0")

    def once(e: dict[str, Any]) -> bool:
        return len(deliveries_of(receiver, e["id"])) == 1

    # events posted to either replica are responded to by the leader, event-driven (a NOTIFY from
    # the replica that stored them), well before its 10-second safety poll
    e1, e2 = tell(1), tell(2)
    t0 = time.monotonic()
    post(a, e1)
    post(b, e2)
    wait_for(lambda: once(e1) and once(e2), timeout=5, what="both events notified")
    assert time.monotonic() - t0 < 5
    # and the leader recorded what it did: a leader that dies between a delivery and its record
    # leaves the event to the next one, which delivers it again (at least once, by design)
    wait_for(
        lambda: (
            {e1["id"], e2["id"]}
            <= {r.data["trigger"]["id"] for r in list_events(b.store, kind="response.acted")}
        ),
        timeout=5,
        what="the deliveries recorded",
    )

    # freeze the leader, so what the other replica stores now is left unprocessed; then kill it
    assert a.proc is not None
    os.kill(a.proc.pid, signal.SIGSTOP)
    left = tell(3)
    post(b, left)
    time.sleep(0.5)
    assert deliveries_of(receiver, left["id"]) == []
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    killed = time.monotonic()
    after = tell(4)
    post(b, after)

    wait_for(lambda: info(b)["is_leader"], timeout=10, what="the other replica to take over")
    took = time.monotonic() - killed
    assert took < 5, took
    wait_for(lambda: once(left) and once(after), timeout=10, what="the events after the kill")
    assert info(b)["leader"] == second["replica"]
    assert leader_gauge(b).endswith(" 1")

    time.sleep(1.5)  # anything sent twice would have arrived by now
    for e in (e1, e2, left, after):
        assert len(deliveries_of(receiver, e["id"])) == 1, e["message"]
    ids = {e["id"] for e in (e1, e2, left, after)}
    assert {r.json()["event"]["id"] for r in receiver.requests} == ids

    # the lock's connection cut under the leader: the lock went with it; it steps down, takes the
    # lock again on a new connection, and goes on where its cursor stands
    with b.store.begin() as conn:
        cut = (
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": f"stockade:{second['replica']}"},
            )
            .scalars()
            .all()
        )
    assert cut == [True]
    wait_for(
        lambda: info(b)["leader"] == second["replica"], timeout=10, what="the lock taken again"
    )
    again = tell(5)
    post(b, again)
    wait_for(lambda: once(again), timeout=10, what="the event after the lock came back")
    time.sleep(1)
    assert all(len(deliveries_of(receiver, e["id"])) == 1 for e in (e1, e2, left, after, again))


def test_an_event_committed_late_is_not_skipped(tmp_path: Path) -> None:
    """The follower reads events in commit order: while an older transaction is still open, the
    events of younger ones that committed already are held back, so the cursor never passes an
    event that commits later."""
    store = open_store(pg_url("stockade_replicas_order_test"))
    try:
        start = (0, 0)
        with store.engine.connect() as slow:
            late = slow.begin()
            record = insert(events).values(
                id=uuid.uuid4().hex,
                kind="test.late",
                at=datetime.now(UTC),
                severity="low",
                source="test",
                message="late",
            )
            slow.execute(record)  # the older transaction: not committed yet
            quick = Event(kind="test.quick", message="quick", id=uuid.uuid4().hex)
            record_events(store, [quick])
            assert events_committed_after(store, start) == []  # held back behind the open one
            late.commit()

        # (another transaction of the cluster still open may hold them back a moment longer)
        # (the late one may show first while another transaction holds the quick one back: wait
        # for both)
        def kinds() -> list[str] | None:
            found = [e.kind for _, e in events_committed_after(store, start)]
            return found if len(found) >= 2 else None

        got = wait_for(kinds)
        assert got == ["test.late", "test.quick"]
        position = events_committed_after(store, start)[0][0]
        assert [e.kind for _, e in events_committed_after(store, position)] == ["test.quick"]
    finally:
        store.close()


def test_events_held_back_by_an_open_transaction_are_followed_soon_after_it_ends(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A transaction elsewhere in the cluster (not one that stores events: no NOTIFY follows its
    end) holds committed events back; the follower looks again soon on its own instead of
    waiting for the safety poll (10 s), and names the transaction once it has waited long."""
    from stockade.api import follower as following
    from stockade.api.follower import SAFETY_POLL
    from stockade.api.leader import SingletonWorker

    monkeypatch.setattr(following, "HELD_WARN", 0.2)

    store = open_store(pg_url("stockade_replicas_held_test"))
    lead = SoleLeader("held")
    seen: list[str] = []
    follower = ResponseFollower(store, lead, lambda e: seen.append(e.kind))
    worker = SingletonWorker(lead, [follower.job])
    try:
        worker.start()
        wait_for(lambda: follower._term == lead.term, what="the cursor claimed")
        with store.engine.connect() as other:
            open_tx = other.begin()
            other.execute(text("SELECT pg_current_xact_id()"))  # an id: it holds the horizon
            record_events(store, [Event(kind="test.held", message="held")])
            follower.wake()  # what the NOTIFY of that commit does
            time.sleep(0.5)
            assert seen == []  # held back behind the open transaction, as it must be
            # (named: this one, unless another test's transaction in the cluster is older)
            wait_for(lambda: "wait behind a transaction" in caplog.text, what="the warning")
            assert re.search(
                r"\(pid \d+, database \w+, application '.*', open \d+ s\)", caplog.text
            )
            open_tx.commit()  # a transaction that stored no event: nothing is NOTIFY'd
        started = time.monotonic()
        wait_for(lambda: seen == ["test.held"], timeout=SAFETY_POLL / 3, what="the held event")
        assert time.monotonic() - started < SAFETY_POLL / 3
    finally:
        worker.close()
        store.close()


def test_a_deposed_leader_cannot_move_the_cursor_or_take_it_back() -> None:
    """Two replicas that both believe they lead (the old one has not noticed its lock is gone):
    the newer term owns the cursor; the old one stops after its batch and does not claim again."""
    store = open_store(pg_url("stockade_replicas_fence_test"))
    try:
        old, new = SoleLeader("old"), SoleLeader("new")
        seen: dict[str, list[str]] = {"old": [], "new": []}
        followers = {
            name: ResponseFollower(store, lead, lambda e, n=name: seen[n].append(e.kind))
            for name, lead in (("old", old), ("new", new))
        }
        old.start()
        followers["old"].catch_up()  # claims the cursor: term 1
        new.start()
        followers["new"].catch_up()  # claims it from under the old one: term 2
        record_events(store, [Event(kind="test.first", message="1")])
        wait_for(lambda: events_committed_after(store, (0, 0)))
        followers["old"].catch_up()  # handles its batch, but cannot save the cursor
        record_events(store, [Event(kind="test.second", message="2")])
        # (an open transaction elsewhere in the cluster holds a committed event back a moment)
        wait_for(lambda: len(events_committed_after(store, (0, 0))) >= 2)
        followers["old"].catch_up()  # fenced: nothing more
        followers["new"].catch_up()
        assert seen["old"] == ["test.first"]
        assert seen["new"] == ["test.first", "test.second"]  # the cursor was not moved past it
        with store.connect() as conn:
            assert conn.execute(select(cursors.c.term, cursors.c.replica)).one() == (2, "new")
    finally:
        store.close()


def test_on_sqlite_the_one_controller_leads(tmp_path_factory: pytest.TempPathFactory) -> None:
    for c in running_controller("sqlite", tmp_path_factory, "unused"):
        me = info(c)
        assert me["is_leader"] and me["leader"] == me["replica"] and me["store"] == "sqlite"
        assert leader_gauge(c).endswith(" 1")


COOLING = """\
apiVersion: stockade.dev/v1
kind: ResponseRules
metadata: {name: cooling}
spec:
  rules:
    - name: once-in-ten-minutes
      match: {namespaces: [cool]}
      actions: [quarantine]
      cooldown: 10m
"""


def test_a_new_leader_keeps_the_cooldowns_of_the_last_one() -> None:
    """The last leader fired a rule for a workload; the next one, reading the store's response
    events when it takes over, holds the same rule back for that workload until the cooldown
    ends."""
    store = open_store(pg_url("stockade_replicas_cool_test"))
    try:
        services = [
            ResponseService(
                store, quarantine=RecordedQuarantine(store), rules=parse_rules(COOLING, name="r")
            )
            for _ in range(2)
        ]
        leads = [SoleLeader("first"), SoleLeader("second")]
        followers = [s.follow(lead) for s, lead in zip(services, leads, strict=True)]
        crm = ResourceRef(kind="pod", name="crm", namespace="cool")
        leads[0].start()
        record_events(store, [Event(kind="dlp.hit", message="1", resource=crm)])
        wait_for(lambda: events_committed_after(store, (0, 0)))
        followers[0].catch_up()
        assert len(list_events(store, kind="response.would_act")) == 1
        leads[0].close()  # the first replica died; the second takes over
        leads[1].start()
        record_events(store, [Event(kind="dlp.hit", message="2", resource=crm)])
        wait_for(lambda: len(events_committed_after(store, (0, 0))) == 3)
        followers[1].catch_up()
        assert followers[1].handled == 1
        assert len(list_events(store, kind="response.would_act")) == 1  # within the cooldown
    finally:
        store.close()


HIGH_DLP = """\
apiVersion: stockade.dev/v1
kind: ResponseRules
metadata: {name: high-dlp}
spec:
  rules:
    - name: dlp-high
      match: {events: ["dlp.*"], level: high}
      actions: [quarantine]
"""


def test_the_leader_reads_whole_only_the_events_a_rule_could_match() -> None:
    """The follower reads a batch by its stored columns first: an event no rule could match by
    its kind and severity is passed over unread, and the cursor still moves past it."""
    store = open_store(pg_url("stockade_replicas_heads_test"))
    try:
        service = ResponseService(
            store, quarantine=RecordedQuarantine(store), rules=parse_rules(HIGH_DLP, name="r")
        )
        lead = SoleLeader("only")
        follower = service.follow(lead)
        seen: list[str] = []
        handle = follower.handle
        follower.handle = lambda e: (seen.append(e.message), handle(e))  # type: ignore[method-assign]
        lead.start()
        web = ResourceRef(kind="pod", name="web", namespace="shop")
        record_events(
            store,
            [
                Event(kind="dlp.hit", message="high dlp", severity=Severity.HIGH, resource=web),
                Event(kind="dlp.hit", message="low dlp", severity=Severity.LOW, resource=web),
                Event(kind="firewall.denied", message="fw", severity=Severity.CRITICAL),
                Event(kind="scan.completed", message="scan", data={}),  # scans: always read
            ],
        )
        wait_for(lambda: len(events_committed_after(store, (0, 0))) == 4)
        last = events_committed_after(store, (0, 0))[-1][0]
        follower.catch_up()
        assert sorted(seen) == ["high dlp", "scan"]
        assert (follower.handled, follower.passed_over) == (2, 2)
        assert [e.message for e in list_events(store, kind="response.would_act")] != []
        with store.connect() as conn:  # past the four (the response events come after them)
            assert tuple(conn.execute(select(cursors.c.tx, cursors.c.seq)).one()) >= last
        follower.catch_up()  # nothing after the cursor: nothing read again
        assert follower.handled == 2
    finally:
        store.close()


def test_a_batch_read_by_heads_hands_over_at_most_its_size() -> None:
    """Read by heads, a batch still hands over at most ``batch`` events before the cursor moves
    (what a leader dying mid-batch may handle twice), and passes over the unwanted in between."""
    store = open_store(pg_url("stockade_replicas_headsbatch_test"))
    try:
        lead = SoleLeader("only")
        batches: list[list[str]] = [[]]
        follower = ResponseFollower(
            store,
            lead,
            lambda e: batches[-1].append(e.message),
            wants=lambda kind, severity: kind.startswith("dlp."),
            after_batch=lambda: batches.append([]),
            batch=2,
        )
        lead.start()
        kinds = ["dlp.a", "fw.b", "dlp.c", "fw.d", "fw.e", "dlp.f", "fw.g"]
        record_events(store, [Event(kind=k, message=k) for k in kinds])
        wait_for(lambda: len(events_committed_after(store, (0, 0))) == len(kinds))
        follower.catch_up()
        assert [b for b in batches if b] == [["dlp.a", "dlp.c"], ["dlp.f"]]
        assert (follower.handled, follower.passed_over) == (3, 4)
    finally:
        store.close()


CUT = RULES + (
    "    - name: cut-fresh\n      mode: active\n      match: {namespaces: [fresh]}\n"
    "      actions: [quarantine]\n"
)


def quarantined(c: Controller) -> set[str]:
    with c.client("reader") as client:
        answer = client.get("/api/v1/quarantine")
    assert answer.status_code == 200, answer.text
    return {w["workload"] for w in answer.json()["workloads"]}


def rules_of(c: Controller) -> dict[str, Any]:
    with c.client("reader") as client:
        answer = client.get("/api/v1/response-rules")
    assert answer.status_code == 200, answer.text
    out: dict[str, Any] = answer.json()
    return out


def in_namespace(i: int, namespace: str) -> dict[str, Any]:
    return event(i, resource=ResourceRef(kind="pod", name=f"p{i}", namespace=namespace))


def test_rules_applied_through_one_replica_act_on_the_other_without_a_restart(
    replicas: tuple[Controller, Controller, HttpReceiver],
) -> None:
    """The store holds the rules: seeded once from --rules, then applied through any replica
    and in force on the leader for the events of every replica within a second."""
    a, b, _ = replicas
    seeded = rules_of(b)  # B started on a store A had seeded: A's file, not imported again
    assert [r["name"] for r in seeded["rules"]] == ["tell-soc"] and seeded["version"] > 0
    assert rules_of(a) == seeded

    with a.client("operator") as client:
        applied = client.put("/api/v1/response-rules", content=CUT)
    assert applied.status_code == 200, applied.text
    version = applied.json()["version"]
    assert version > seeded["version"]
    assert [r["name"] for r in rules_of(b)["rules"]] == ["tell-soc", "cut-fresh"]
    assert rules_of(b)["version"] == version

    post(b, in_namespace(1, "fresh"))  # to the follower; the leader (A) evaluates it
    wait_for(lambda: "fresh/p1" in quarantined(b), timeout=10, what="the rule applied via A")

    # changed through the follower, B: the leader takes the new version, no restart
    moved = CUT.replace("[fresh]", "[moved]")
    with b.client("admin") as client:
        diff = client.post("/api/v1/response-rules/diff", content=moved)
        assert diff.status_code == 200 and diff.json()["changed"], diff.text
        assert "-      - fresh" in diff.json()["diff"] and "+      - moved" in diff.json()["diff"]
        assert client.put("/api/v1/response-rules", content=moved).status_code == 200
    post(a, in_namespace(2, "fresh"))
    post(a, in_namespace(3, "moved"))
    wait_for(lambda: "moved/p3" in quarantined(a), timeout=10, what="the changed rule")
    assert "fresh/p2" not in quarantined(a)

    audits = list_events(a.store, kind="audit.response_rules_replaced", limit=100)
    by = sorted((e.data["who"], e.data["after"]["version"]) for e in audits)
    assert ("token:t-operator", version) in by and any(w == "token:t-admin" for w, _ in by)
    [change] = [e for e in audits if e.data["who"] == "token:t-admin"]
    assert change.data["before"]["version"] == version
    assert change.data["after"]["version"] > version


def test_a_new_leader_takes_the_stored_rules_and_their_cooldowns() -> None:
    """A replica that becomes the leader evaluates with the rules the store holds now (not those
    it started with), and the cooldowns the last leader started run on."""
    from stockade.api import response_store

    store = open_store(pg_url("stockade_replicas_current_test"))
    try:
        response_store.save(
            store, response_store.RULES, response_store.rules_document(COOLING)[1], by="test"
        )
        first = ResponseService(store, quarantine=RecordedQuarantine(store))
        second = ResponseService(
            store, quarantine=RecordedQuarantine(store), rules=parse_rules(RULES, name="old")
        )
        leads = [SoleLeader("first"), SoleLeader("second")]
        followers = [s.follow(lead) for s, lead in zip((first, second), leads, strict=True)]
        crm = ResourceRef(kind="pod", name="crm", namespace="cool")
        leads[0].start()
        record_events(store, [Event(kind="dlp.hit", message="1", resource=crm)])
        wait_for(lambda: events_committed_after(store, (0, 0)))
        followers[0].catch_up()
        assert len(list_events(store, kind="response.would_act")) == 1
        leads[0].close()
        leads[1].start()
        record_events(store, [Event(kind="dlp.hit", message="2", resource=crm)])
        wait_for(lambda: len(events_committed_after(store, (0, 0))) == 3)
        followers[1].catch_up()
        assert second.rules.name == "cooling"  # the stored rules, not those it was given
        assert followers[1].handled == 1
        assert len(list_events(store, kind="response.would_act")) == 1  # within the cooldown
    finally:
        store.close()


WATCHING = """\
apiVersion: stockade.dev/v1
kind: ResponseRules
metadata: {name: watching}
spec:
  rules:
    - name: would-quarantine
      mode: monitor
      match: {namespaces: [burst]}
      actions: [quarantine]
"""


def test_what_monitor_rules_would_do_is_stored_per_batch_and_before_the_cursor_moves() -> None:
    """A burst's ``response.would_act`` events are stored in one transaction per batch the
    leader follows (not one per event), and before the cursor moves past the batch: a leader that
    dies between evaluating and storing leaves the batch to the next, which answers every event
    exactly once."""
    store = open_store(pg_url("stockade_replicas_records_test"))
    try:
        service = ResponseService(
            store, quarantine=RecordedQuarantine(store), rules=parse_rules(WATCHING, name="w")
        )
        lead = SoleLeader("only")
        follower = service.follow(lead)
        burst = [
            Event(
                kind="dlp.hit",
                message=f"{i}",
                resource=ResourceRef(kind="pod", name=f"p{i}", namespace="burst"),
            )
            for i in range(450)
        ]
        record_events(store, burst[:50])
        wait_for(lambda: len(events_committed_after(store, (0, 0))) == 50)
        lead.start()

        def died() -> None:  # evaluated, then gone before anything was stored
            service._pending.clear()
            raise RuntimeError("the leader died")

        follower.after_batch = died
        with pytest.raises(RuntimeError):
            follower.catch_up()
        assert list_events(store, kind="response.would_act") == []
        follower.after_batch = service.flush_records
        record_events(store, burst[50:])
        wait_for(lambda: len(events_committed_after(store, (0, 0), limit=1000)) == 450)
        follower.catch_up()
        answered = [
            e.data["trigger"]["id"]
            for e in list_events(store, kind="response.would_act", limit=1000)
        ]
        assert sorted(answered) == sorted(e.id for e in burst)  # each once
        with store.engine.connect() as conn:
            commits = conn.execute(
                text("SELECT count(DISTINCT tx) FROM events WHERE kind = 'response.would_act'")
            ).scalar_one()
        assert commits == 3  # 450 events in batches of 200
    finally:
        store.close()


def replicas_seen(c: Controller, tries: int = 40) -> set[str]:
    """The replicas that answered ``tries`` requests, each on a new connection (SO_REUSEPORT
    spreads new connections over the workers by their 4-tuple). A connection refused or reset
    (one that waited in a killed worker's queue) is left out: a client tries again."""
    seen = set()
    for _ in range(tries):
        try:
            seen.add(info(c)["replica"])
        except httpx.TransportError:
            continue
    return seen


def test_workers_on_one_port_are_replicas_that_respond_once_and_replace_a_killed_one(
    tmp_path: Path,
) -> None:
    url = pg_url("stockade_replicas_workers_test")
    certs = make_certs(tmp_path / "receiver-tls")
    with serve_http(HttpReceiver(), certs) as receiver:
        rules = write(tmp_path / "rules.yaml", RULES)
        targets = write(tmp_path / "targets.yaml", targets_yaml(receiver, certs))
        c = Controller(url, tmp_path, "--rules", str(rules), "--targets", str(targets))
        c.args += ["--workers", "2"]
        try:
            c.start()
            assert c.proc is not None
            wait_for(lambda: len(replicas_seen(c)) == 2, timeout=20, what="both workers serving")
            serving = time.monotonic()
            workers = replicas_seen(c)
            leaders = {info(c)["leader"] for _ in range(10)}
            assert len(leaders) == 1 and leaders <= workers  # one of them leads, for both

            # events posted on many connections (so to both workers) are responded to once
            sent = [tell(100 + i) for i in range(12)]
            for e in sent:
                post(c, e)
            wait_for(
                lambda: all(len(deliveries_of(receiver, e["id"])) == 1 for e in sent),
                timeout=10,
                what="every event notified",
            )

            # a worker killed after it served a while is replaced; the port keeps answering
            # (one that dies in its first 5 seconds is a failed start: the supervisor stops all)
            time.sleep(max(0.0, 6 - (time.monotonic() - serving)))
            victim = sorted(workers)[0]
            os.kill(int(victim.rsplit("-", 1)[1]), signal.SIGKILL)
            wait_for(
                lambda: len(replicas_seen(c)) == 2 and victim not in replicas_seen(c),
                timeout=20,
                what="a new worker in the killed one's place",
            )
            after = [tell(200 + i) for i in range(6)]
            for e in after:
                post(c, e)  # whichever worker takes the connection stores it
            wait_for(
                lambda: all(len(deliveries_of(receiver, e["id"])) == 1 for e in after),
                timeout=15,
                what="the events after the kill notified",
            )
            time.sleep(1)  # anything sent twice would have arrived by now
            for e in sent + after:
                assert len(deliveries_of(receiver, e["id"])) == 1, e["message"]

            # SIGTERM to the supervisor stops every worker
            pids = [int(r.rsplit("-", 1)[1]) for r in replicas_seen(c)]
            c.proc.terminate()
            assert c.proc.wait(30) == 0
            for pid in pids:
                wait_for(lambda pid=pid: not _alive(pid), timeout=5, what=f"worker {pid} gone")
        finally:
            c.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_workers_need_postgresql(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.api.controller import SRC

    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stockade",
            "controller",
            "--db",
            f"sqlite:///{tmp_path / 'one.db'}",
            "--cert-dir",
            str(tmp_path / "tls"),
            "--port",
            str(_free_port()),
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("stockade: error: --workers above 1 needs a PostgreSQL store")
    assert "Traceback" not in done.stderr
