"""The Responder: monitor vs active, cooldown per (rule, workload) on an injected clock,
suppression, failures, scan-driven quarantine, and the queue in front of it under a burst."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from stockade.events.respond import (
    ActionTaken,
    Executors,
    Responder,
    ResponseQueue,
    suppressed,
)
from stockade.events.rules import RuleSet, VulnSummary, parse_rules
from stockade.model import EnforcementError, Event, ResourceRef, Severity

HEAD = "apiVersion: stockade.dev/v1\nkind: ResponseRules\nspec:\n  rules:\n"


def rules(*lines: str) -> RuleSet:
    return parse_rules(HEAD + "".join(f"    - {line}\n" for line in lines), name="r.yaml")


@dataclass
class Controller:
    """The executors a controller would give: here they record what they were asked to do."""

    quarantined: list[tuple[str, str, str]] = field(default_factory=list)
    notified: list[tuple[tuple[str, ...], str]] = field(default_factory=list)
    flagged: list[tuple[str, str]] = field(default_factory=list)
    recorded: list[Event] = field(default_factory=list)
    fail_quarantine: bool = False

    def quarantine(self, workload: str, reason: str, rule: str) -> None:
        if self.fail_quarantine:
            raise EnforcementError(f"nft: cannot isolate {workload}")
        self.quarantined.append((workload, reason, rule))

    def notify(self, targets: Sequence[str], event: Event) -> None:
        self.notified.append((tuple(targets), event.id))

    def suppress(self, event: Event, rule: str) -> None:
        self.flagged.append((event.id, rule))

    def executors(self) -> Executors:
        return Executors(
            quarantine=self.quarantine,
            notify=self.notify,
            suppress=self.suppress,
            record=self.recorded.append,
        )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def dlp(name: str = "web", namespace: str = "shop", **data: object) -> Event:
    return Event(
        kind="dlp.sensitive_in_clear",
        message="card in clear",
        severity=Severity.HIGH,
        resource=ResourceRef(kind="pod", name=name, namespace=namespace),
        data={"sensor": "dlp.payment_card", **data},
    )


def statuses(taken: list[ActionTaken]) -> list[tuple[str, str, str]]:
    return [(t.rule, t.action, t.status) for t in taken]


@pytest.mark.parametrize(
    ("mode", "status", "kind", "quarantined"),
    [("monitor", "would_act", "response.would_act", 0), ("active", "acted", "response.acted", 1)],
)
def test_monitor_only_says_active_acts(mode: str, status: str, kind: str, quarantined: int) -> None:
    c = Controller()
    r = Responder(
        rules(f"{{name: q, mode: {mode}, match: {{categories: [dlp]}}, actions: [quarantine]}}"),
        c.executors(),
        Clock(),
    )
    ev = dlp()
    assert statuses(r.handle(ev)) == [("q", "quarantine", status)]
    assert len(c.quarantined) == quarantined
    (rec,) = c.recorded
    assert rec.kind == kind and rec.data["rule"] == "q" and rec.data["workload"] == "shop/web"
    assert rec.data["trigger"] == {"id": ev.id, "kind": ev.kind} and rec.resource == ev.resource
    if quarantined:
        assert c.quarantined[0][0] == "shop/web" and c.quarantined[0][2] == "q"
        assert ev.id in c.quarantined[0][1]


def test_cooldown_is_per_rule_and_workload_on_the_injected_clock() -> None:
    c, clock = Controller(), Clock()
    r = Responder(
        rules(
            "{name: q, mode: active, cooldown: 10m, match: {categories: [dlp]},"
            " actions: [quarantine, notify], notify: [soc]}",
            "{name: n, mode: active, match: {categories: [dlp]}, actions: [notify], notify: [x]}",
        ),
        c.executors(),
        clock,
    )
    fired = [("q", "quarantine", "acted"), ("q", "notify", "acted"), ("n", "notify", "acted")]
    held = [("q", "quarantine", "cooldown"), ("q", "notify", "cooldown"), ("n", "notify", "acted")]
    assert statuses(r.handle(dlp())) == fired
    clock.now += 599
    assert statuses(r.handle(dlp())) == held  # same workload, within 10 minutes
    assert statuses(r.handle(dlp(name="api"))) == fired  # another workload has its own cooldown
    clock.now += 1
    assert statuses(r.handle(dlp())) == fired  # 10 minutes after the first firing
    assert [q[0] for q in c.quarantined] == ["shop/web", "shop/api", "shop/web"]
    assert len(c.recorded) == 3 * 3 + 1  # nothing recorded for the held-back actions


def test_monitor_mode_keeps_cooldown_too() -> None:
    c, clock = Controller(), Clock()
    r = Responder(
        rules("{name: m, cooldown: 1h, match: {level: high}, actions: [quarantine]}"),
        c.executors(),
        clock,
    )
    assert [t.status for t in r.handle(dlp())] == ["would_act"]
    assert [t.status for t in r.handle(dlp())] == ["cooldown"]
    assert len(c.recorded) == 1


def test_active_suppress_stops_every_rules_notifications_but_not_quarantine() -> None:
    c = Controller()
    r = Responder(
        rules(
            "{name: tell, mode: active, match: {categories: [dlp]}, actions: [notify],"
            " notify: [soc]}",
            "{name: contain, mode: active, match: {categories: [dlp]}, actions: [quarantine]}",
            "{name: hush, mode: active, cooldown: 1h, match: {namespaces: [lab]},"
            " actions: [suppress]}",
        ),
        c.executors(),
        Clock(),
    )
    ev = dlp(namespace="lab")
    taken = r.handle(ev)
    assert statuses(taken) == [
        ("tell", "notify", "suppressed"),
        ("contain", "quarantine", "acted"),
        ("hush", "suppress", "acted"),
    ]
    assert suppressed(taken) and c.flagged == [(ev.id, "hush")] and c.notified == []
    assert c.quarantined[0][0] == "lab/web"
    again = dlp(namespace="lab")
    assert suppressed(r.handle(again))  # suppression has no cooldown
    assert c.flagged[-1] == (again.id, "hush")
    other = r.handle(dlp(namespace="shop"))
    assert not suppressed(other) and c.notified == [(("soc",), other[0].event_id)]


def test_monitor_suppress_suppresses_nothing() -> None:
    c = Controller()
    r = Responder(
        rules(
            "{name: tell, mode: active, match: {categories: [dlp]}, actions: [notify],"
            " notify: [soc]}",
            "{name: hush, match: {categories: [dlp]}, actions: [suppress]}",
        ),
        c.executors(),
        Clock(),
    )
    taken = r.handle(dlp())
    assert statuses(taken) == [("tell", "notify", "acted"), ("hush", "suppress", "would_act")]
    assert not suppressed(taken) and c.flagged == [] and len(c.notified) == 1


def test_a_failing_executor_is_reported_not_raised() -> None:
    c = Controller(fail_quarantine=True)
    r = Responder(
        rules(
            "{name: q, mode: active, match: {level: high}, actions: [quarantine, notify],"
            " notify: [soc]}"
        ),
        c.executors(),
        Clock(),
    )
    taken = r.handle(dlp())
    assert statuses(taken) == [("q", "quarantine", "failed"), ("q", "notify", "acted")]
    assert "cannot isolate shop/web" in taken[0].detail
    assert [e.kind for e in c.recorded] == ["response.failed", "response.acted"]
    assert "cannot isolate" in c.recorded[0].data["error"]


def test_a_failed_firing_starts_no_cooldown() -> None:
    c, clock = Controller(fail_quarantine=True), Clock()
    r = Responder(
        rules("{name: q, mode: active, cooldown: 1h, match: {level: high}, actions: [quarantine]}"),
        c.executors(),
        clock,
    )
    assert [t.status for t in r.handle(dlp())] == ["failed"]
    c.fail_quarantine = False
    clock.now += 1
    assert [t.status for t in r.handle(dlp())] == ["acted"]  # retried, not held back
    assert [t.status for t in r.handle(dlp())] == ["cooldown"]


def test_quarantine_without_a_workload_is_skipped_and_response_events_are_not_evaluated() -> None:
    c = Controller()
    r = Responder(
        rules("{name: q, mode: active, match: {level: low}, actions: [quarantine]}"),
        c.executors(),
        Clock(),
    )
    ext = Event(
        kind="firewall.violation",
        message="m",
        severity=Severity.HIGH,
        resource=ResourceRef(kind="external", name="203.0.113.9"),
    )
    assert statuses(r.handle(ext)) == [("q", "quarantine", "skipped")]
    assert r.handle(Event(kind="response.acted", message="m", severity=Severity.HIGH)) == []
    assert c.quarantined == []


def test_vulnerability_rules_use_the_supplied_summary() -> None:
    c = Controller()
    summaries = {"shop/web": VulnSummary(image="a", counts={Severity.CRITICAL: 1})}
    r = Responder(
        rules(
            "{name: crit, mode: active, match: {categories: [dlp],"
            " vulnerabilities: {critical: 1}}, actions: [quarantine]}"
        ),
        c.executors(),
        Clock(),
        vulns_for=lambda e: (
            summaries.get(f"{e.resource.namespace}/{e.resource.name}") if e.resource else None
        ),
    )
    assert statuses(r.handle(dlp())) == [("crit", "quarantine", "acted")]
    assert r.handle(dlp(name="db")) == []


def test_scan_result_quarantines_running_workloads_with_an_event_naming_the_rule() -> None:
    c = Controller()
    r = Responder(
        rules(
            "{name: crit-images, mode: active, cooldown: 1h,"
            " match: {vulnerabilities: {critical: 1}}, actions: [quarantine]}"
        ),
        c.executors(),
        Clock(),
    )
    running = {"shop/web": "reg/web:1@sha256:aa", "shop/db": "reg/db:1@sha256:bb"}
    critical = VulnSummary(image="reg/web:1", counts={Severity.CRITICAL: 1, Severity.HIGH: 2})
    taken = r.handle_scan("sha256:aa", critical, running)
    assert statuses(taken) == [("crit-images", "quarantine", "acted")]
    assert [(q[0], q[2]) for q in c.quarantined] == [("shop/web", "crit-images")]
    (rec,) = c.recorded
    assert rec.kind == "response.acted" and rec.data["rule"] == "crit-images"
    assert "crit-images" in rec.message and rec.data["trigger"]["kind"] == "scan.image_vulnerable"
    # the next re-scan within the cooldown does not quarantine again
    assert [t.status for t in r.handle_scan("sha256:aa", critical, running)] == ["cooldown"]
    assert r.handle_scan("sha256:bb", VulnSummary(image="db"), running) == []


def test_replacing_rules_keeps_cooldowns_of_rules_that_remain() -> None:
    c, clock = Controller(), Clock()
    line = "{name: q, mode: active, cooldown: 1h, match: {level: high}, actions: [quarantine]}"
    r = Responder(rules(line), c.executors(), clock)
    r.handle(dlp())
    r.replace_rules(rules(line, "{name: n, match: {level: high}, actions: [quarantine]}"))
    assert statuses(r.handle(dlp())) == [("q", "quarantine", "cooldown"), ("n", "quarantine",
                                                                           "would_act")]  # fmt: skip


# ---------------------------------------------------------------- the queue under a burst

BURST = 10_000


def test_a_burst_does_not_block_the_producer_while_the_queue_has_room() -> None:
    """The worker is stuck in a slow executor; 10,000 events still go in at once."""
    gate = threading.Event()
    c = Controller()

    def slow_quarantine(workload: str, reason: str, rule: str) -> None:
        gate.wait(30)
        c.quarantine(workload, reason, rule)

    r = Responder(
        rules("{name: q, mode: active, match: {categories: [dlp]}, actions: [quarantine]}"),
        Executors(quarantine=slow_quarantine, notify=c.notify, record=c.recorded.append),
        Clock(),
    )
    events = [dlp(name=f"w{i}") for i in range(BURST)]
    q = ResponseQueue(r, capacity=BURST).start()
    started = time.monotonic()
    assert all(q.submit(e, timeout=0) for e in events)
    elapsed = time.monotonic() - started
    stats = q.stats()
    assert stats.submitted == BURST and stats.waited == 0 and stats.refused == 0
    assert stats.handled == 0 and elapsed < 5  # nothing handled yet: the worker is blocked
    gate.set()
    stats = q.close(timeout=60)
    assert (stats.handled, stats.actions, stats.errors) == (BURST, BURST, 0)
    assert len(c.quarantined) == BURST and stats.high_water >= BURST - 1


def test_a_full_queue_applies_back_pressure_and_counts_it_never_dropping() -> None:
    c = Controller()
    gate = threading.Event()

    def slow_notify(targets: Sequence[str], event: Event) -> None:
        gate.wait(30)
        c.notify(targets, event)

    r = Responder(
        rules("{name: n, mode: active, match: {level: high}, actions: [notify], notify: [soc]}"),
        Executors(quarantine=c.quarantine, notify=slow_notify),
        Clock(),
    )
    q = ResponseQueue(r, capacity=100).start()
    # the worker takes one and blocks; 100 more fill the queue; the next cannot get in
    accepted = [q.submit(dlp(), timeout=0.5) for _ in range(102)]
    assert accepted.count(False) >= 1
    refused = q.stats().refused
    assert refused == accepted.count(False) and q.stats().waited >= refused
    gate.set()
    # now a producer that waits (no timeout) gets through every event of a burst
    for _ in range(BURST):
        assert q.submit(dlp())
    stats = q.close(timeout=60)
    assert stats.submitted == accepted.count(True) + BURST == stats.handled
    assert len(c.notified) == stats.handled and stats.refused == refused
    assert stats.high_water <= 100 and stats.capacity == 100


def test_the_worker_survives_an_unexpected_error_and_counts_it() -> None:
    def broken(*_: object) -> None:
        raise OSError("socket gone")

    r = Responder(
        rules("{name: n, mode: active, match: {level: high}, actions: [notify], notify: [soc]}"),
        Executors(quarantine=broken, notify=broken),
        Clock(),
    )
    results: list[int] = []
    with ResponseQueue(r, capacity=10, on_result=lambda e, t: results.append(len(t))) as q:
        q.submit(dlp())
        q.submit(Event(kind="tls.weak_version", message="m", severity=Severity.LOW))
    stats = q.stats()
    assert (stats.handled, stats.errors) == (2, 1) and results == [0]
    assert "OSError: socket gone" in q.last_error


def test_the_idle_hook_runs_once_the_queue_is_drained_and_survives_a_failure() -> None:
    """``on_idle`` (the controller stores the response events it kept) runs on the worker once
    the queue is empty, after the last event was handled, so nothing kept waits for a next
    event; a failing hook is counted and logged, and the worker goes on."""
    c = Controller()
    gate = threading.Event()

    def held_record(event: Event) -> None:
        gate.wait(30)
        c.recorded.append(event)

    r = Responder(
        rules("{name: n, mode: monitor, match: {level: high}, actions: [quarantine]}"),
        Executors(quarantine=c.quarantine, notify=c.notify, record=held_record),
        Clock(),
    )
    seen: list[int] = []

    def idle() -> None:
        seen.append(len(c.recorded))
        if len(seen) == 2:
            raise OSError("store gone")

    q = ResponseQueue(r, capacity=50, on_idle=idle).start()
    deadline = time.monotonic() + 30
    while not seen and time.monotonic() < deadline:  # the worker found the queue empty
        time.sleep(0.01)
    for _ in range(5):  # the worker holds the first while the others queue behind it
        assert q.submit(dlp(), timeout=0)
    gate.set()
    while seen[-1] != 5 and time.monotonic() < deadline:  # drained: the hook ran after the 5th
        time.sleep(0.01)
    assert seen[-1] == 5
    for _ in range(3):
        assert q.submit(dlp(), timeout=0)
    stats = q.close(timeout=30)
    assert stats.handled == 8 and len(c.recorded) == 8
    assert seen[0] == 0 and seen[-1] == 8  # before any event; after the last one
    assert stats.errors == 1 and "OSError: store gone" in q.last_error
