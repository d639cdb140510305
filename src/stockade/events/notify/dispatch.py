"""Delivering one event to the targets that want it: filters, retries with exponential back-off,
the dead-letter list, redelivery and the "send test" of one target.

Targets are tried in parallel (one slow receiver does not hold up the others), each within its own
bound: ``retry.attempts`` tries of at most ``timeout`` seconds each, plus the back-off waits.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import ValidationError

from stockade.events.notify.alertmanager import AlertmanagerNotifier
from stockade.events.notify.chat import SlackNotifier, TeamsNotifier
from stockade.events.notify.deadletters import DeadLetters
from stockade.events.notify.interface import Attempt, Delivery, Notifier, NotifyError, Target
from stockade.events.notify.mail import MailNotifier
from stockade.events.notify.render import masked
from stockade.events.notify.syslog import SyslogNotifier
from stockade.events.notify.webhook import WebhookNotifier
from stockade.model import Event, Severity
from stockade.model.redact import redact_text

NOTIFIERS: dict[str, Callable[[Target], Notifier]] = {
    "webhook": WebhookNotifier,
    "slack": SlackNotifier,
    "teams": TeamsNotifier,
    "syslog": SyslogNotifier,
    "email": MailNotifier,
    "alertmanager": AlertmanagerNotifier,
}
MAX_PARALLEL = 8

Sleep = Callable[[float], None]


def build(target: Target) -> Notifier:
    """The notifier for ``target``; a NotifyError (not retryable) when its settings are wrong."""
    factory = NOTIFIERS.get(target.kind)
    if factory is None:
        raise NotifyError(f"unknown target kind {target.kind!r}", retryable=False)
    try:
        return factory(target)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise NotifyError(
            f"settings{'.' + where if where else ''}: {msg}", retryable=False
        ) from None


def send_with_retries(
    target: Target, event: Mapping[str, Any], delivery_id: str, *, sleep: Sleep = time.sleep
) -> Delivery:
    """Try ``target`` until it takes ``event``, the error is final, or the attempts run out."""
    number = 0
    error = ""
    try:
        notifier = build(target)
        delays = target.retry.delays()
        while True:
            number += 1
            try:
                notifier.send(
                    event, Attempt(delivery_id=delivery_id, target=target.name, number=number)
                )
            except NotifyError as exc:
                error = str(exc)
                delay = next(delays, None) if exc.retryable else None
                if delay is None:
                    break
                sleep(delay)
            else:
                return Delivery(
                    target=target.name,
                    kind=target.kind,
                    delivery_id=delivery_id,
                    ok=True,
                    attempts=number,
                )
    except NotifyError as exc:  # the target could not be built
        error = str(exc)
    return Delivery(
        target=target.name,
        kind=target.kind,
        delivery_id=delivery_id,
        ok=False,
        attempts=number,
        error=redact_text(f"{target.name}: {error}"),
    )


def _parallel(jobs: Sequence[Callable[[], Delivery]]) -> list[Delivery]:
    if len(jobs) <= 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(jobs))) as pool:
        return list(pool.map(lambda job: job(), jobs))


def deliver(
    targets: Sequence[Target],
    event: Event,
    *,
    dead_letters: DeadLetters | None = None,
    sleep: Sleep = time.sleep,
) -> list[Delivery]:
    """Send ``event`` to every target whose filter accepts it; one Delivery per such target, in
    the targets' order. Failures go to ``dead_letters`` when given (marked ``dead_letter``)."""
    payload = masked(event)
    chosen = [t for t in targets if t.accepts(event)]
    ids = [uuid.uuid4().hex for _ in chosen]
    jobs = [
        (lambda t=t, d=d: send_with_retries(t, payload, d, sleep=sleep))
        for t, d in zip(chosen, ids, strict=True)
    ]
    results = _parallel(jobs)
    out = []
    for target, result in zip(chosen, results, strict=True):
        if not result.ok and dead_letters is not None:
            dead_letters.add(
                delivery_id=result.delivery_id,
                target=target.name,
                target_kind=target.kind,
                event=payload,
                attempts=result.attempts,
                error=result.error or "",
            )
            result = _as_dead_letter(result)
        out.append(result)
    return out


def _as_dead_letter(d: Delivery) -> Delivery:
    return Delivery(
        target=d.target,
        kind=d.kind,
        delivery_id=d.delivery_id,
        ok=False,
        attempts=d.attempts,
        error=d.error,
        dead_letter=True,
    )


def redeliver(
    targets: Sequence[Target],
    dead_letters: DeadLetters,
    *,
    limit: int = 100,
    sleep: Sleep = time.sleep,
) -> list[Delivery]:
    """Try the oldest ``limit`` dead letters again, each to the target of its name, with the same
    delivery id. A success leaves the list; a failure stays, its attempts and error updated; a
    letter whose target is no longer defined stays untouched."""
    by_name = {t.name: t for t in targets}
    out: list[Delivery] = []
    for letter in dead_letters.list(limit=limit):
        target = by_name.get(letter.target)
        if target is None:
            out.append(
                Delivery(
                    target=letter.target,
                    kind=letter.target_kind,
                    delivery_id=letter.delivery_id,
                    ok=False,
                    attempts=0,
                    error=f"{letter.target}: no such target in the targets file; kept",
                    dead_letter=True,
                )
            )
            continue
        result = send_with_retries(target, letter.event, letter.delivery_id, sleep=sleep)
        if result.ok:
            dead_letters.remove(letter.delivery_id)
        else:
            dead_letters.add(
                delivery_id=letter.delivery_id,
                target=target.name,
                target_kind=target.kind,
                event=letter.event,
                attempts=result.attempts,
                error=result.error or "",
            )
            result = _as_dead_letter(result)
        out.append(result)
    return out


def trial_event(target: Target) -> Event:
    """The event "send test" delivers: of the target's lowest accepted severity, at least low."""
    return Event(
        kind="notify.test",
        message=f"Test notification from Stockade to target {target.name!r}",
        severity=max(target.min_severity, Severity.LOW),
        source="stockade notify test",
    )


def send_test(target: Target, *, sleep: Sleep = time.sleep) -> Delivery:
    """Deliver a test event to ``target`` whatever its filter says (no dead letter)."""
    return send_with_retries(target, masked(trial_event(target)), uuid.uuid4().hex, sleep=sleep)
