"""Carrying out response rules as events arrive: modes, cooldowns, suppression, a queue.

The :class:`Responder` is given the rules, the executors (callables the controller provides:
quarantine a workload, notify targets, flag an event as suppressed, record an event) and a clock;
it opens no socket and no database itself, so it is tested with real callables and a fake clock.

- A rule in ``monitor`` mode calls no executor; it records a ``response.would_act`` event.
- A rule in ``active`` mode calls the executor and records ``response.acted`` (``response.failed``
  when the executor raises a StockadeError).
- Cooldown is per (rule, workload): once a rule has fired for a workload, further matches within
  the cooldown do nothing (status ``cooldown``), in either mode; a firing in which an action failed
  starts no cooldown. Suppression has no cooldown: a suppressing rule suppresses every matching
  event.
- An active ``suppress`` stops the ``notify`` actions of every rule for that event (status
  ``suppressed``); the event is still stored, and the ``suppress`` executor flags it.
- ``response.*`` events are never evaluated, so a rule cannot trigger on its own actions; a
  ``capture.*`` event (a capture finished or failed) starts no capture, for the same reason.

:class:`ResponseQueue` puts a bounded queue and a worker thread in front, so a burst of events
does not hold up ingestion; when the queue is full the producer waits (back-pressure, counted)
and, with a timeout, gets ``False`` back (counted): nothing is dropped silently.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from stockade.events.rules import (
    Action,
    CaptureSpec,
    RuleSet,
    VulnSummary,
    evaluate,
    evaluate_scan,
    may_match,
)
from stockade.model import Event, Severity, StockadeError, UsageError

log = logging.getLogger(__name__)

Status = Literal["acted", "would_act", "cooldown", "suppressed", "skipped", "failed"]
MAX_COOLDOWN_KEYS = 100_000  # expired entries are pruned when the table grows past this


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionTaken:
    """What became of one action: done, only said (monitor), held back, or failed."""

    rule: str
    action: str  # quarantine | notify | suppress | capture
    mode: str  # monitor | active
    status: Status
    event_id: str
    workload: str | None = None
    targets: tuple[str, ...] = ()
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["targets"] = list(self.targets)
        return out


def suppressed(taken: Sequence[ActionTaken]) -> bool:
    """Whether the event's notifications are suppressed (an active suppress rule matched)."""
    return any(t.action == "suppress" and t.status == "acted" for t in taken)


@dataclass(frozen=True, slots=True, kw_only=True)
class Executors:
    """The controller's side: each callable does one thing and raises StockadeError on failure."""

    quarantine: Callable[[str, str, str], None]  # (workload, reason, rule)
    notify: Callable[[Sequence[str], Event], None]  # (target names, event)
    suppress: Callable[[Event, str], None] | None = None  # flag the stored event (event, rule)
    record: Callable[[Event], None] | None = None  # store/emit a response.* event
    # request a packet capture of the workload: (workload, spec, reason, rule) -> the request id
    capture: Callable[[str, CaptureSpec, str, str], str] | None = None


_ON_WORKLOAD = frozenset({"quarantine", "capture"})  # actions on the event's workload
_RESPONSE_KINDS = {"acted": "response.acted", "would_act": "response.would_act"}
_EVENT_FIELDS = {f.name for f in dataclasses.fields(Event)}


def response_event(a: Action, status: Status, detail: str = "") -> Event:
    """The ``response.*`` event recording what a rule did (or would do) about an event."""
    kind = _RESPONSE_KINDS.get(status, "response.failed")
    verb = {"acted": "did", "would_act": "would"}.get(status, "failed to")
    what = a.kind + (f" {', '.join(a.targets)}" if a.targets else "")
    on = f" {a.workload}" if a.workload and a.kind in _ON_WORKLOAD else ""
    # the controller's envelope adds rule/action/mode; fill them where the model has them
    extra: dict[str, Any] = {"rule": a.rule, "action": a.kind, "mode": a.mode}
    return Event(
        kind=kind,
        message=f"rule {a.rule} ({a.mode}) {verb} {what}{on} for {a.event.kind} {a.event.id}"
        + (f": {detail}" if detail else ""),
        severity=a.event.severity,
        source="response",
        resource=a.event.resource,
        peer=a.event.peer,
        data={
            "rule": a.rule,
            "action": a.kind,
            "mode": a.mode,
            "workload": a.workload,
            "targets": list(a.targets),
            "trigger": {"id": a.event.id, "kind": a.event.kind},
            **({"error": detail} if status == "failed" else {}),
        },
        **{k: v for k, v in extra.items() if k in _EVENT_FIELDS},
    )


class Responder:
    """Evaluates each event against the rules and carries out what they ask."""

    def __init__(
        self,
        rules: RuleSet,
        executors: Executors,
        clock: Callable[[], float] = time.monotonic,
        *,
        vulns_for: Callable[[Event], VulnSummary | None] | None = None,
    ) -> None:
        self._rules = rules
        self._executors = executors
        self._clock = clock
        self._vulns_for = vulns_for  # the summary of the event's workload image, if known
        self._last_fired: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()  # handle() may be called from several threads

    @property
    def rules(self) -> RuleSet:
        return self._rules

    def replace_rules(self, rules: RuleSet) -> None:
        """Take a new version of the rules; cooldowns of rules that remain carry over."""
        with self._lock:
            self._rules = rules
            kept = {r.name for r in rules.rules}
            self._last_fired = {k: v for k, v in self._last_fired.items() if k[0] in kept}

    def remember_fired(self, rule: str, workload: str | None, seconds_ago: float) -> None:
        """A firing of ``rule`` for ``workload`` that happened ``seconds_ago`` (recorded by another
        replica): its cooldown runs on here, as if this responder had fired."""
        key = (rule, workload or "")
        at = self._clock() - max(seconds_ago, 0.0)
        with self._lock:
            if at > self._last_fired.get(key, float("-inf")):
                self._last_fired[key] = at

    def wants(self, kind: str, severity: Severity) -> bool:
        """Whether :meth:`handle` could act on an event of this kind and severity (a reader of
        stored events leaves the others unread)."""
        return not kind.startswith("response.") and may_match(self._rules, kind, severity)

    def handle(self, event: Event) -> list[ActionTaken]:
        """Evaluate one event and carry out the actions of every rule that matches it."""
        if event.kind.startswith("response."):
            return []
        vulns = self._vulns_for(event) if self._vulns_for is not None else None
        return self._run(evaluate(self._rules, event, vulns))

    def handle_scan(
        self, image: str, vulns: VulnSummary, running: Mapping[str, str]
    ) -> list[ActionTaken]:
        """A scan result for ``image``: act on every running workload it now makes meet a rule's
        vulnerability criteria (``running``: ``namespace/name`` -> image reference or digest)."""
        taken: list[ActionTaken] = []
        by_event: dict[str, list[Action]] = {}
        for a in evaluate_scan(self._rules, image, vulns, running):
            by_event.setdefault(a.event.id, []).append(a)
        for actions in by_event.values():
            taken += self._run(actions)
        return taken

    # ------------------------------------------------------------ carrying out

    def _run(self, actions: list[Action]) -> list[ActionTaken]:
        if not actions:
            return []
        suppressor = next(
            (a.rule for a in actions if a.kind == "suppress" and a.mode == "active"), None
        )
        now = self._clock()
        firing = self._fire(actions, now)
        taken: list[ActionTaken] = []
        for a in actions:
            if a.kind == "suppress":
                taken.append(self._carry_out(a))
            elif (a.rule, a.workload) not in firing:
                taken.append(_taken(a, "cooldown", "within the rule's cooldown"))
            elif a.kind == "notify" and suppressor is not None:
                taken.append(_taken(a, "suppressed", f"suppressed by rule {suppressor}"))
            elif a.kind in _ON_WORKLOAD and a.workload is None:
                taken.append(_taken(a, "skipped", "the event names no workload"))
            elif a.kind == "capture" and a.event.kind.startswith("capture."):
                taken.append(_taken(a, "skipped", "a capture event starts no capture"))
            else:
                taken.append(self._carry_out(a))
        # a rule whose action failed has not done its job: the next event may try again
        failed = {(t.rule, t.workload or "") for t in taken if t.status == "failed"}
        with self._lock:
            for key in failed:
                if self._last_fired.get(key) == now:
                    del self._last_fired[key]
        return taken

    def _fire(self, actions: list[Action], now: float) -> set[tuple[str, str | None]]:
        """The (rule, workload) pairs out of cooldown, whose last firing is now set to now."""
        firing: set[tuple[str, str | None]] = set()
        with self._lock:
            for a in actions:
                pair = (a.rule, a.workload)
                if a.kind == "suppress" or pair in firing:
                    continue
                seconds = a.cooldown.total_seconds()
                key = (a.rule, a.workload or "")
                last = self._last_fired.get(key)
                if seconds > 0 and last is not None and now - last < seconds:
                    continue
                firing.add(pair)
                if seconds > 0:
                    self._last_fired[key] = now
            if len(self._last_fired) > MAX_COOLDOWN_KEYS:
                self._prune(now)
        return firing

    def _prune(self, now: float) -> None:
        longest = {r.name: r.cooldown.total_seconds() for r in self._rules.rules}
        self._last_fired = {
            k: t for k, t in self._last_fired.items() if now - t < longest.get(k[0], 0.0)
        }

    def _carry_out(self, a: Action) -> ActionTaken:
        if a.mode == "monitor":
            return self._record(a, "would_act")
        ex = self._executors
        detail = ""
        try:
            if a.kind == "quarantine":
                assert a.workload is not None  # _run skipped it otherwise
                reason = f"response rule {a.rule}: {a.event.kind} {a.event.id}"
                ex.quarantine(a.workload, reason, a.rule)
            elif a.kind == "notify":
                ex.notify(a.targets, a.event)
            elif a.kind == "capture":
                assert a.workload is not None and a.capture is not None
                if ex.capture is None:
                    raise UsageError("this controller cannot request packet captures")
                reason = f"response rule {a.rule}: {a.event.kind} {a.event.id}"
                detail = f"capture {ex.capture(a.workload, a.capture, reason, a.rule)}"
            elif ex.suppress is not None:
                ex.suppress(a.event, a.rule)
        except StockadeError as exc:
            return self._record(a, "failed", str(exc))
        return self._record(a, "acted", detail)

    def _record(self, a: Action, status: Status, detail: str = "") -> ActionTaken:
        if self._executors.record is not None:
            self._executors.record(response_event(a, status, detail))
        return _taken(a, status, detail)


def _taken(a: Action, status: Status, detail: str = "") -> ActionTaken:
    return ActionTaken(
        rule=a.rule,
        action=a.kind,
        mode=a.mode,
        status=status,
        event_id=a.event.id,
        workload=a.workload,
        targets=a.targets,
        detail=detail,
    )


# ---------------------------------------------------------------- the queue in front


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStats:
    submitted: int  # events the queue accepted
    handled: int  # events the worker evaluated
    actions: int  # ActionTaken produced
    waited: int  # submissions that found the queue full and had to wait (back-pressure)
    refused: int  # submissions that gave up after their timeout (returned False to the caller)
    errors: int  # events whose handling raised (logged; the worker goes on)
    high_water: int  # the deepest the queue has been
    capacity: int


@dataclass(slots=True)
class _Counters:
    submitted: int = 0
    handled: int = 0
    actions: int = 0
    waited: int = 0
    refused: int = 0
    errors: int = 0
    high_water: int = 0
    last_error: str = field(default="")


_STOP = object()
IDLE_AT_LEAST_EVERY = 0.5  # seconds: ``on_idle`` runs this often even while the queue never empties


class ResponseQueue:
    """A bounded queue drained by one worker thread that calls ``responder.handle``.

    ``on_result(event, taken)`` (optional) receives each event's ActionTaken list on the worker
    thread (the controller uses it to flag suppressed events and count actions); ``on_idle``
    (optional) is called on the worker thread whenever it has emptied the queue (the controller
    stores the response events it kept while a burst was evaluated).
    """

    def __init__(
        self,
        responder: Responder,
        *,
        capacity: int = 10_000,
        on_result: Callable[[Event, list[ActionTaken]], None] | None = None,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._responder = responder
        self._queue: queue.Queue[object] = queue.Queue(maxsize=capacity)
        self._capacity = capacity
        self._on_result = on_result
        self._on_idle = on_idle
        self._counters = _Counters()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._closed = False

    def start(self) -> ResponseQueue:
        if self._worker is None:
            self._worker = threading.Thread(target=self._drain, name="responder", daemon=True)
            self._worker.start()
        return self

    def __enter__(self) -> ResponseQueue:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, event: Event, *, timeout: float | None = None) -> bool:
        """Queue an event. Returns at once while there is room; when the queue is full, waits for
        room (at most ``timeout`` seconds, for ever with None) and returns False if none came."""
        if self._closed:
            raise RuntimeError("the response queue is closed")
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            with self._lock:
                self._counters.waited += 1
            try:
                self._queue.put(event, timeout=timeout)
            except queue.Full:
                with self._lock:
                    self._counters.refused += 1
                return False
        with self._lock:
            self._counters.submitted += 1
            self._counters.high_water = max(self._counters.high_water, self._queue.qsize())
        return True

    def close(self, timeout: float | None = None) -> QueueStats:
        """Stop taking events, let the worker finish what is queued, and return the counts."""
        self._closed = True
        if self._worker is not None:
            self._queue.put(_STOP)
            self._worker.join(timeout)
        return self.stats()

    def stats(self) -> QueueStats:
        with self._lock:
            c = self._counters
            return QueueStats(
                submitted=c.submitted,
                handled=c.handled,
                actions=c.actions,
                waited=c.waited,
                refused=c.refused,
                errors=c.errors,
                high_water=c.high_water,
                capacity=self._capacity,
            )

    @property
    def last_error(self) -> str:
        with self._lock:
            return self._counters.last_error

    def _drain(self) -> None:
        last_idle = time.monotonic()
        while True:
            if self._on_idle is not None and (
                self._queue.empty() or time.monotonic() - last_idle >= IDLE_AT_LEAST_EVERY
            ):
                self._idle()
                last_idle = time.monotonic()
            item = self._queue.get()
            if item is _STOP:
                self._idle()
                return
            assert isinstance(item, Event)
            try:
                taken = self._responder.handle(item)
                if self._on_result is not None:
                    self._on_result(item, taken)
            except Exception as exc:  # the worker outlives one bad event
                # Stopping here would leave every later event unanswered; the failure is counted
                # in stats() and logged (through the masking gate), not hidden.
                log.exception("response to event %s failed", item.id)
                with self._lock:
                    self._counters.errors += 1
                    self._counters.handled += 1
                    self._counters.last_error = f"{type(exc).__name__}: {exc}"
                continue
            with self._lock:
                self._counters.handled += 1
                self._counters.actions += len(taken)

    def _idle(self) -> None:
        if self._on_idle is None:
            return
        try:
            self._on_idle()
        except Exception as exc:  # the worker outlives a failed flush, which is logged and counted
            log.exception("the response queue's idle work failed")
            with self._lock:
                self._counters.errors += 1
                self._counters.last_error = f"{type(exc).__name__}: {exc}"
