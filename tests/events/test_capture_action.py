"""The response rules' ``capture`` action: a strict parser, monitor vs active, cooldown per
(rule, workload), events that name no workload, and capture events that start no capture."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from stockade.events.respond import Executors, Responder
from stockade.events.rules import CaptureSpec, parse_rules
from stockade.model import ConfigError, Event, ResourceRef, Severity, StockadeError
from tests.events.test_responder import HEAD, Clock, dlp, rules, statuses


@dataclass
class Captures:
    asked: list[tuple[str, CaptureSpec, str, str]] = field(default_factory=list)
    recorded: list[Event] = field(default_factory=list)

    def capture(self, workload: str, spec: CaptureSpec, reason: str, rule: str) -> str:
        self.asked.append((workload, spec, reason, rule))
        return f"{len(self.asked):032x}"

    def responder(self, rule_set: object, clock: Clock) -> Responder:
        nothing = lambda *_: None  # noqa: E731
        ex = Executors(
            quarantine=nothing, notify=nothing, record=self.recorded.append, capture=self.capture
        )
        return Responder(rule_set, ex, clock)  # type: ignore[arg-type]


RULE = (
    "{name: cap, mode: active, cooldown: 10m, match: {namespaces: [shop]}, actions: [capture], "
    "capture: {duration: 20s, maxBytes: 50000, filter: 'tcp port 8080'}}"
)


def test_active_capture_asks_once_per_cooldown_and_names_the_request() -> None:
    c, clock = Captures(), Clock()
    responder = c.responder(rules(RULE), clock)
    first = dlp()
    assert statuses(responder.handle(first)) == [("cap", "capture", "acted")]
    assert statuses(responder.handle(dlp())) == [("cap", "capture", "cooldown")]
    assert statuses(responder.handle(dlp(name="api"))) == [("cap", "capture", "acted")]
    clock.now += 601
    assert statuses(responder.handle(dlp())) == [("cap", "capture", "acted")]
    workload, spec, reason, rule = c.asked[0]
    assert (workload, rule) == ("shop/web", "cap") and first.id in reason
    assert (spec.seconds, spec.maxBytes, spec.filter) == (20.0, 50000, "tcp port 8080")
    acted = c.recorded[0]
    assert acted.kind == "response.acted" and f"capture {1:032x}" in acted.message
    assert "shop/web" in acted.message


def test_monitor_mode_only_says_what_it_would_capture() -> None:
    c = Captures()
    responder = c.responder(rules(RULE.replace("active", "monitor")), Clock())
    assert statuses(responder.handle(dlp())) == [("cap", "capture", "would_act")]
    assert c.asked == [] and c.recorded[0].kind == "response.would_act"


def test_no_workload_and_capture_events_start_no_capture() -> None:
    c = Captures()
    responder = c.responder(rules(RULE.replace("cooldown: 10m", "cooldown: 0s")), Clock())
    image = Event(
        kind="dlp.x",
        message="m",
        severity=Severity.HIGH,
        resource=ResourceRef(kind="image", name="shop/web", namespace="shop"),
    )
    assert statuses(responder.handle(image)) == [("cap", "capture", "skipped")]
    done = Event(
        kind="capture.completed",
        message="m",
        severity=Severity.LOW,
        resource=ResourceRef(kind="pod", name="web", namespace="shop"),
    )
    assert statuses(responder.handle(done)) == [("cap", "capture", "skipped")]
    assert c.asked == []


def test_defaults_without_settings() -> None:
    c = Captures()
    responder = c.responder(
        rules("{name: cap, mode: active, match: {namespaces: [shop]}, actions: [capture]}"), Clock()
    )
    responder.handle(dlp())
    assert (c.asked[0][1].seconds, c.asked[0][1].maxBytes, c.asked[0][1].filter) == (
        30.0,
        10_000_000,
        None,
    )


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ("actions: [notify], notify: [x], capture: {duration: 5s}", "without the capture action"),
        ("actions: [capture], capture: {duration: 11m}", "longer than 600s"),
        ("actions: [capture], capture: {duration: 30}", "needs a unit"),
        ("actions: [capture], capture: {duration: 0s}", "more than 0"),
        ("actions: [capture], capture: {maxBytes: 10MB}", "maxBytes"),
        ("actions: [capture], capture: {maxBytes: 999999999999}", "maxBytes"),
        ('actions: [capture], capture: {filter: "tcp\\nport 80"}', "printable"),
        ("actions: [capture], capture: {interface: eth0}", "interface"),
        ("actions: [capture, capture]", "twice"),
    ],
)
def test_the_parser_stays_strict(rule: str, says: str) -> None:
    text = HEAD + f"    - {{name: r, mode: active, match: {{namespaces: [shop]}}, {rule}}}\n"
    with pytest.raises(StockadeError) as err:
        parse_rules(text, name="r.yaml")
    assert isinstance(err.value, ConfigError | StockadeError)
    assert says in str(err.value) and "\n" not in str(err.value)
