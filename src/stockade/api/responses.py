"""The controller responding on its own: every event it stores goes to the response rules.

:class:`ResponseService` owns the :class:`ResponseQueue` (one worker thread) in front of the
:class:`Responder` and gives it the controller's executors:

- ``notify``: ``events.notify.deliver`` to the named targets of the targets file; what no retry
  delivered goes to the dead-letter list in the store, and the action is reported failed;
- ``suppress``: the stored event gets ``data.suppressed = {"rule": ...}`` (no notification);
- ``quarantine``: the node's nft (single-node mode) or a record awaiting an enforcer;
- ``record``: ``response.*`` events are stored like any other;
- ``capture``: a packet capture request for the workload (``api.capture_requests``), which an
  agent on its node carries out; rules whose capture filter libpcap cannot compile are refused.

A ``scan.completed`` event (ingested from an agent, or made by ``POST /api/v1/scans/summary``)
carries an image's vulnerability summary: rules with vulnerability criteria are evaluated against
every running workload of that image (the ``images`` it names, and those the controller knows).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select, update

from stockade.api import response_store
from stockade.api.capture_requests import check_rule_filters, request_capture
from stockade.api.follower import ResponseFollower
from stockade.api.leader import Leadership
from stockade.api.quarantine import Quarantine
from stockade.events.notify import Target
from stockade.events.notify.deadletters import DeadLetters
from stockade.events.notify.interface import NotifyError
from stockade.events.respond import ActionTaken, Executors, Responder, ResponseQueue
from stockade.events.rules import CaptureSpec, RuleSet, VulnSummary, same_image
from stockade.model import Event, InputError, Severity, StockadeError
from stockade.store import Store
from stockade.store.records import list_events, record_events
from stockade.store.tables import events as events_table
from stockade.store.versions import config_versions_of

log = logging.getLogger("stockade.api")

SUBMIT_TIMEOUT = 5.0  # seconds a batch waits for room in a full queue before it is reported
RECORD_BATCH = 500  # response.would_act events kept at most before they are stored together
MAX_IDS = 100_000
MAX_IMAGES = 10_000
MAX_COOLDOWNS = 10_000  # response events a new leader reads back for the running cooldowns
REFRESH_SECONDS = 1.0  # the queue's worker looks for new stored rules or targets this often


# ---------------------------------------------------------------- scan summaries


class ScanSummary(BaseModel):
    """An image's vulnerability summary: the data of ``scan.completed`` events and the body of
    ``POST /api/v1/scans/summary``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    image: str = Field(min_length=1, max_length=512)
    digest: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    counts: dict[str, int] = Field(default_factory=dict, max_length=8)  # all findings by severity
    fixable: dict[str, int] = Field(default_factory=dict, max_length=8)  # those with a fix
    ids: list[str] = Field(default_factory=list, max_length=MAX_IDS)
    images: dict[str, str] = Field(default_factory=dict, max_length=MAX_IMAGES)  # ns/name -> ref

    @field_validator("counts", "fixable")
    @classmethod
    def _severities(cls, v: dict[str, int]) -> dict[str, int]:
        for key, n in v.items():
            try:
                Severity.parse(key)
            except StockadeError as exc:
                raise ValueError(exc.message) from None
            if not 0 <= n <= 10_000_000:
                raise ValueError(f"count for {key!r} out of range")
        return v

    @field_validator("images")
    @classmethod
    def _workloads(cls, v: dict[str, str]) -> dict[str, str]:
        for workload, ref in v.items():
            if not 1 <= len(workload) <= 507 or not 1 <= len(ref) <= 512:
                raise ValueError("images: workload 'namespace/name' -> image reference or digest")
        return v

    def vulns(self) -> VulnSummary:
        return VulnSummary(
            image=self.reference,
            counts={Severity.parse(k): n for k, n in self.counts.items()},
            fixable_counts={Severity.parse(k): n for k, n in self.fixable.items()},
            ids=frozenset(self.ids),
        )

    @property
    def reference(self) -> str:
        if self.digest and "@" not in self.image:
            return f"{self.image}@{self.digest}"
        return self.image

    def running(self, known: Mapping[str, str]) -> dict[str, str]:
        """The running workloads of this image (``namespace/name`` -> the reference to match)."""
        out = {}
        for workload, ref in {**known, **self.images}.items():
            if ref == self.image or same_image(ref, self.reference):
                out[workload] = self.reference
        return out


def scan_summary(data: Any) -> ScanSummary:
    """A summary from untrusted data; InputError (one line) when it is not one."""
    try:
        return ScanSummary.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise InputError(f"scan summary {where}: {msg}") from None


def scan_event(summary: ScanSummary, *, source: str) -> Event:
    worst = max((Severity.parse(k) for k, n in summary.counts.items() if n), default=None)
    counts = ", ".join(f"{n} {k}" for k, n in summary.counts.items() if n) or "no findings"
    return Event(
        kind="scan.completed",
        message=f"scan of {summary.reference}: {counts}",
        severity=worst or Severity.NEGLIGIBLE,
        source=source,
        data=summary.model_dump(exclude_none=True),
    )


class ControllerResponder(Responder):
    """The Responder, plus: a ``scan.completed`` event is also a scan result for its image."""

    def __init__(
        self, rules: RuleSet, executors: Executors, *, known_images: Mapping[str, str]
    ) -> None:
        super().__init__(rules, executors)
        self.known_images = known_images
        self.before: Callable[[], object] | None = None  # takes newer stored rules and targets

    def wants(self, kind: str, severity: Severity) -> bool:
        # a scan's summary also asks whether the running workloads of its image now meet a rule
        return kind == "scan.completed" or super().wants(kind, severity)

    def handle(self, event: Event) -> list[ActionTaken]:
        if self.before is not None:
            self.before()
        taken = super().handle(event)
        if event.kind == "scan.completed":
            try:
                summary = scan_summary(event.data)
            except InputError as exc:
                log.warning("scan.completed %s carries no usable summary: %s", event.id, exc)
                return taken
            running = summary.running(self.known_images)
            if running:
                taken += self.handle_scan(summary.reference, summary.vulns(), running)
        return taken


# ---------------------------------------------------------------- the service


def _rules_summary(rules: RuleSet, version: int) -> dict[str, Any]:
    return {
        "name": rules.name,
        "version": version,  # 0: not from the store (no rules, or given to the service)
        "rules": [
            {
                "name": r.name,
                "mode": r.spec.mode,
                "actions": list(r.spec.actions),
                # the whole rule as written, so a client can show and edit it
                "spec": r.spec.model_dump(mode="json", exclude_none=True),
            }
            for r in rules.rules
        ],
        "disabled": list(rules.disabled),
    }


def _targets_summary(targets: Sequence[Target]) -> list[dict[str, Any]]:
    # never the settings: they hold webhook secrets, SMTP passwords
    return [
        {
            "name": t.name,
            "kind": t.kind,
            "categories": sorted(t.categories),
            "min_severity": str(t.min_severity),
        }
        for t in targets
    ]


def flag_suppressed(store: Store, event_id: str, rule: str) -> None:
    """Mark a stored event as suppressed by ``rule`` (it stays stored; nobody is notified)."""
    t = events_table
    with store.begin() as conn:
        data = conn.execute(select(t.c.data).where(t.c.id == event_id)).scalar_one_or_none()
        flagged = {**(data if isinstance(data, dict) else {}), "suppressed": {"rule": rule}}
        conn.execute(update(t).where(t.c.id == event_id).values(data=flagged))


class ResponseService:
    """Response rules, notification targets and quarantine, wired for one controller process."""

    def __init__(
        self,
        store: Store,
        *,
        quarantine: Quarantine,
        rules: RuleSet | None = None,
        targets: Sequence[Target] = (),
        known_images: Mapping[str, str] | None = None,
        capacity: int = 10_000,
        submit_timeout: float = SUBMIT_TIMEOUT,
    ) -> None:
        if rules is not None:
            check_rule_filters(rules)
        self.store = store
        self.quarantine = quarantine
        self.targets: tuple[Target, ...] = tuple(targets)
        # the stamps of the stored rules and targets in force here (0: none taken from the store)
        self.versions = {response_store.RULES: 0, response_store.TARGETS: 0}
        self._refused = dict(self.versions)  # stored versions this replica could not take
        self._refresh_lock = threading.Lock()
        self._checked = float("-inf")
        self.submit_timeout = submit_timeout
        self.dead_letters = DeadLetters(store)
        self.on_stored: Callable[[], None] | None = None  # wakes the live stream
        self._pending: list[Event] = []  # response.* events kept for flush_records
        self._pending_lock = threading.Lock()
        self.responder = ControllerResponder(
            rules or RuleSet("none", ()),
            Executors(
                quarantine=self._quarantine,
                notify=self._notify,
                suppress=self._suppress,
                record=self._record,
                capture=self._capture,
            ),
            known_images=known_images or {},
        )
        self.responder.before = self.refresh
        self.queue = ResponseQueue(self.responder, capacity=capacity, on_idle=self.flush_records)
        # PostgreSQL (replicas): the leader follows the events table instead of the queue; set by
        # create_app. submit() then only wakes it.
        self.follower: ResponseFollower | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.follower is None:
            self.queue.start()

    def close(self, timeout: float = 10.0) -> None:
        self.queue.close(timeout)
        self.flush_records()

    def submit(self, events: Iterable[Event]) -> int:
        """Queue stored events for the rules; returns how many found no room in time (each such
        batch is reported by a ``response.backlog`` event: stored, but not evaluated).

        With a follower (PostgreSQL) the events are in the store already: wake it, never wait."""
        if self.follower is not None:
            self.follower.wake()
            return 0
        refused = [e.id for e in events if not self.queue.submit(e, timeout=self.submit_timeout)]
        if refused:
            log.warning("%d events not evaluated: the response queue is full", len(refused))
            self._record(
                Event(
                    kind="response.backlog",
                    message=f"{len(refused)} stored events were not evaluated by the response "
                    "rules: the response queue stayed full",
                    severity=Severity.HIGH,
                    source="controller",
                    data={"events": refused[:1000], "count": len(refused)},
                )
            )
        return len(refused)

    def follow(self, leadership: Leadership) -> ResponseFollower:
        """PostgreSQL (replicas): evaluate the events of the store on the leader, following the
        events table, instead of the queue; returns the follower (its job is the leader's)."""
        self.follower = ResponseFollower(
            self.store,
            leadership,
            self.responder.handle,
            wants=self.responder.wants,
            on_claim=self._claimed,
            before_batch=lambda: self.refresh(force=True),
            after_batch=self.flush_records,
        )
        return self.follower

    def _claimed(self) -> None:
        self.refresh(force=True)  # the rules in force now, then the cooldowns they run
        self.remember_cooldowns()

    def remember_cooldowns(self) -> int:
        """A new leader takes the cooldowns running from the ``response.acted`` and
        ``response.would_act`` events the store holds (what the last leader fired); returns how
        many firings it found."""
        longest = max((r.cooldown.total_seconds() for r in self.rules.rules), default=0.0)
        if longest <= 0:
            return 0
        now = datetime.now(UTC)
        since = now - timedelta(seconds=longest)
        found = 0
        for e in list_events(self.store, kind="response.*", since=since, limit=MAX_COOLDOWNS):
            if e.kind not in ("response.acted", "response.would_act"):
                continue
            rule, workload = e.data.get("rule"), e.data.get("workload")
            if isinstance(rule, str) and (workload is None or isinstance(workload, str)):
                self.responder.remember_fired(rule, workload, (now - e.at).total_seconds())
                found += 1
        return found

    # ------------------------------------------------------------ executors

    def _quarantine(self, workload: str, reason: str, rule: str) -> None:
        self.quarantine.isolate(workload, reason)

    def _notify(self, names: Sequence[str], event: Event) -> None:
        from stockade.events.notify.dispatch import deliver  # the notifiers, on first use

        by_name = {t.name: t for t in self.targets}
        missing = [n for n in names if n not in by_name]
        chosen = [by_name[n] for n in names if n in by_name]
        failed = [
            d.error or d.target
            for d in deliver(chosen, event, dead_letters=self.dead_letters)
            if not d.ok
        ]
        problems = [f"no target named {n!r}" for n in missing] + failed
        if problems:
            raise NotifyError(
                "; ".join(problems)[:500] + (" (kept as dead letters)" * bool(failed))
            )

    def _capture(self, workload: str, spec: CaptureSpec, reason: str, rule: str) -> str:
        row = request_capture(
            self.store,
            workload=workload,
            duration=spec.seconds,
            max_bytes=spec.maxBytes,
            bpf_filter=spec.filter,
            requested_by=f"rule:{rule}"[:80],
            reason=reason,
        )
        return str(row["id"])

    def _suppress(self, event: Event, rule: str) -> None:
        flag_suppressed(self.store, event.id, rule)

    def _record(self, event: Event) -> None:
        """Store a ``response.*`` event. What a monitor rule would do is kept until the batch
        being evaluated ends (``flush_records``: one transaction for a burst, not one per
        event); anything else is stored at once, after what was kept, so the order holds and an
        action's record never waits behind its side effect."""
        with self._pending_lock:
            self._pending.append(event)
            if event.kind == "response.would_act" and len(self._pending) < RECORD_BATCH:
                return
        self.flush_records()

    def flush_records(self) -> None:
        """Store the kept ``response.*`` events in one transaction (the follower calls this
        before it moves its cursor, the queue when it runs dry)."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
        if not pending:
            return
        record_events(self.store, pending)
        if self.on_stored is not None:
            self.on_stored()

    # ------------------------------------------------------------ configuration

    @property
    def rules(self) -> RuleSet:
        return self.responder.rules

    def refresh(self, *, force: bool = False) -> bool:
        """Take the rules and targets stored after the versions in force here (another replica,
        the API or ``stockade rules apply`` wrote them); returns whether anything changed. Without
        ``force`` the store is asked at most every REFRESH_SECONDS (it runs before each event).

        A stored document this replica cannot take (a target's ``secret_env`` unset here) is
        logged, and the previous one stays in force."""
        now = time.monotonic()
        if not force and now - self._checked < REFRESH_SECONDS:
            return False
        with self._refresh_lock:
            self._checked = now
            stamps = config_versions_of(self.store)
            changed = False
            for name in (response_store.RULES, response_store.TARGETS):
                if stamps.get(name, 0) > max(self.versions[name], self._refused[name]):
                    changed |= self._take(name)
            return changed

    def _take(self, name: str) -> bool:
        stored = response_store.load(self.store, name)
        if stored is None:
            return False
        try:
            if name == response_store.RULES:
                rules, _ = response_store.rules_document(stored.text, name="stored response rules")
                self.responder.replace_rules(rules)
            else:
                targets, _ = response_store.targets_document(
                    stored.text, name="stored notification targets"
                )
                self.targets = tuple(targets)
        except StockadeError as exc:
            log.error("%s version %d not taken: %s", name, stored.version, exc)
            self._refused[name] = stored.version  # said once; the next version is tried again
            return False
        self.versions[name] = stored.version
        log.warning("%s version %d in force", name, stored.version)
        return True

    def rules_summary(self) -> dict[str, Any]:
        self.refresh(force=True)
        return _rules_summary(self.rules, self.versions[response_store.RULES])

    def targets_summary(self) -> list[dict[str, Any]]:
        self.refresh(force=True)
        return _targets_summary(self.targets)

    def replace_rules(self, text: str, *, by: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Validate a ResponseRules document whole and store it as the rules of every replica
        (in force here at once): (before, after) summaries."""
        _, canonical = response_store.rules_document(text)
        before = self.rules_summary()
        response_store.save(self.store, response_store.RULES, canonical, by=by)
        return before, self.rules_summary()

    def diff_rules(self, text: str) -> dict[str, Any]:
        _, canonical = response_store.rules_document(text)
        return response_store.diff(response_store.load(self.store, response_store.RULES), canonical)

    def send_test(self, name: str) -> dict[str, Any] | None:
        """Deliver a test event to the target ``name`` (None: no such target)."""
        self.refresh(force=True)
        target = next((t for t in self.targets if t.name == name), None)
        if target is None:
            return None
        from stockade.events.notify.dispatch import send_test

        delivery = send_test(target)
        return {"target": name, "ok": delivery.ok, "error": delivery.error}

    def replace_targets(
        self, text: str, *, by: str
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Validate a targets document and store it for every replica: (before, after)."""
        _, stored = response_store.targets_document(text)
        before = self.targets_summary()
        response_store.save(self.store, response_store.TARGETS, stored, by=by)
        return before, self.targets_summary()
