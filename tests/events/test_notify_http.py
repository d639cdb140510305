"""Webhook, Slack, Teams and Alertmanager notifiers against a real HTTPS receiver on loopback, and
the dispatcher's retries, back-off bounds and dead-letter list."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from stockade.admission.certs import ServingFiles
from stockade.events.notify.deadletters import DeadLetters
from stockade.events.notify.dispatch import deliver, redeliver, send_test
from stockade.events.notify.interface import RetryPolicy, Target
from stockade.model import Event, ResourceRef, Severity
from stockade.store import Store
from tests.events.receivers import WEBHOOK_SECRET, HttpReceiver, SilentServer

Receiver = Callable[..., HttpReceiver]
FAST = RetryPolicy(attempts=3, backoff=0.05, max_backoff=0.2)


def event(**kw: Any) -> Event:
    base: dict[str, Any] = {
        "kind": "dlp.sensitive_in_clear",
        "message": "payment card sent in clear to api.shop:8080",
        "severity": Severity.HIGH,
        "source": "sensor",
        "resource": ResourceRef(kind="pod", name="web-7d9", namespace="shop"),
        "data": {"sensor": "dlp.payment_card", "port": 8080},
    }
    base.update(kw)
    return Event(**base)


def webhook(url: str, certs: ServingFiles, **kw: Any) -> Target:
    settings = {"url": url + "/hook", "secret": WEBHOOK_SECRET, "ca_file": str(certs.ca_cert)}
    return Target(name="soc", kind="webhook", settings=settings, retry=FAST, timeout=2, **kw)


def test_webhook_delivery_is_signed_and_enveloped(
    http_receiver: Receiver, certs: ServingFiles
) -> None:
    rx = http_receiver()
    e = event()
    [d] = deliver([webhook(rx.url, certs)], e)
    assert d.ok and d.attempts == 1 and d.error is None
    [req] = rx.requests
    assert req.path == "/hook"
    assert req.signature_ok is True
    assert req.headers["x-stockade-delivery"] == d.delivery_id
    uuid.UUID(hex=d.delivery_id)
    body = req.json()
    assert body["event"] == e.to_dict()
    assert body["delivery"]["id"] == d.delivery_id and body["delivery"]["target"] == "soc"
    assert body["delivery"]["attempt"] == 1


def test_webhook_with_another_secret_fails_verification(
    http_receiver: Receiver, certs: ServingFiles
) -> None:
    rx = http_receiver()
    target = webhook(rx.url, certs)
    target = Target(
        name=target.name,
        kind=target.kind,
        settings={**target.settings, "secret": "not-the-receivers-secret"},
        retry=FAST,
    )
    [d] = deliver([target], event())
    assert d.ok  # the receiver records, the check is ours
    assert rx.requests[0].signature_ok is False


def test_https_without_the_ca_is_refused_without_retry(
    http_receiver: Receiver, certs: ServingFiles
) -> None:
    rx = http_receiver()
    target = Target(
        name="soc",
        kind="webhook",
        settings={"url": rx.url, "secret": WEBHOOK_SECRET},
        retry=FAST,
        timeout=2,
    )
    [d] = deliver([target], event())
    assert not d.ok and "CERTIFICATE_VERIFY_FAILED" in (d.error or "")
    assert rx.requests == []


def test_500_then_200_is_delivered_on_the_retry(
    http_receiver: Receiver, certs: ServingFiles, sqlite_store: Store
) -> None:
    rx = http_receiver([500, 200])
    letters = DeadLetters(sqlite_store)
    waits: list[float] = []
    [d] = deliver([webhook(rx.url, certs)], event(), dead_letters=letters, sleep=waits.append)
    assert d.ok and d.attempts == 2 and not d.dead_letter
    assert waits == [0.05]
    first, second = rx.requests
    assert first.headers["x-stockade-delivery"] == second.headers["x-stockade-delivery"]
    assert second.json()["delivery"]["attempt"] == 2 and second.signature_ok
    assert letters.count() == 0


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(attempts=6, backoff=0.5, max_backoff=3)
    assert list(policy.delays()) == [0.5, 1, 2, 3, 3]
    with pytest.raises(ValueError):
        RetryPolicy(attempts=11)


def test_receiver_that_never_answers_times_out_retries_bounded_then_dead_letter(
    silent_server: SilentServer, sqlite_store: Store
) -> None:
    target = Target(
        name="silent",
        kind="webhook",
        settings={"url": f"http://127.0.0.1:{silent_server.port}/", "secret": WEBHOOK_SECRET},
        timeout=0.3,
        retry=RetryPolicy(attempts=3, backoff=0.05, max_backoff=0.1),
    )
    letters = DeadLetters(sqlite_store)
    started = time.monotonic()
    [d] = deliver([target], event(), dead_letters=letters)
    elapsed = time.monotonic() - started
    assert not d.ok and d.dead_letter and d.attempts == 3
    assert "no answer within 0.3s" in (d.error or "")
    assert elapsed < 3 * 0.3 + 0.15 + 2  # three timeouts and two waits, with slack for the CI
    deadline = time.monotonic() + 2
    while len(silent_server.connections) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(silent_server.connections) == 3
    [letter] = letters.list()
    assert letter.delivery_id == d.delivery_id and letter.target == "silent"
    assert letter.attempts == 3 and letter.event["kind"] == "dlp.sensitive_in_clear"


def test_client_error_is_not_retried_and_redelivery_succeeds_later(
    http_receiver: Receiver, certs: ServingFiles, sqlite_store: Store
) -> None:
    rx = http_receiver([404, 404, 200])
    letters = DeadLetters(sqlite_store)
    target = webhook(rx.url, certs)
    [d] = deliver([target], event(), dead_letters=letters, sleep=lambda _: None)
    assert not d.ok and d.attempts == 1 and "HTTP 404" in (d.error or "")
    assert "/hook" not in (d.error or "")  # the URL's path may be a secret (Slack, Teams)
    [failed] = redeliver([target], letters, sleep=lambda _: None)
    assert not failed.ok and letters.list()[0].attempts == 2
    [ok] = redeliver([target], letters, sleep=lambda _: None)
    assert ok.ok and ok.delivery_id == d.delivery_id
    assert [r.headers["x-stockade-delivery"] for r in rx.requests] == [d.delivery_id] * 3
    assert letters.count() == 0


def test_redelivery_keeps_letters_of_unknown_targets(sqlite_store: Store) -> None:
    letters = DeadLetters(sqlite_store)
    letters.add(
        delivery_id=uuid.uuid4().hex,
        target="gone",
        target_kind="webhook",
        event=event().to_dict(),
        attempts=4,
        error="x",
    )
    [d] = redeliver([], letters)
    assert not d.ok and "no such target" in (d.error or "")
    assert letters.count() == 1


def test_dead_letter_list_is_bounded(any_store: Store) -> None:
    letters = DeadLetters(any_store, max_kept=3)
    ids = [uuid.uuid4().hex for _ in range(5)]
    dropped = [
        letters.add(
            delivery_id=i, target="t", target_kind="webhook", event={}, attempts=1, error="e"
        )
        for i in ids
    ]
    assert dropped == [0, 0, 0, 1, 1]
    assert {letter.delivery_id for letter in letters.list()} == set(ids[2:])
    [first] = letters.list(limit=1)
    assert first.first_failed_at.tzinfo is not None and first.event == {}


def test_filters_by_category_and_minimum_severity(
    http_receiver: Receiver, certs: ServingFiles
) -> None:
    rx = http_receiver()
    dlp_high = webhook(
        rx.url, certs, categories=frozenset({"dlp", "firewall"}), min_severity=Severity.HIGH
    )
    assert dlp_high.accepts(event())
    assert dlp_high.accepts(event(kind="firewall.violation", severity=Severity.CRITICAL))
    assert not dlp_high.accepts(event(severity=Severity.MEDIUM))
    assert not dlp_high.accepts(event(kind="scan.completed"))
    assert deliver([dlp_high], event(kind="tls.weak_version")) == []
    assert rx.requests == []


def test_send_test_ignores_the_filter(http_receiver: Receiver, certs: ServingFiles) -> None:
    rx = http_receiver()
    target = webhook(rx.url, certs, categories=frozenset({"dlp"}), min_severity=Severity.CRITICAL)
    d = send_test(target)
    assert d.ok
    sent = rx.requests[0].json()["event"]
    assert sent["kind"] == "notify.test" and sent["severity"] == "critical"


def test_slack_blocks(http_receiver: Receiver, certs: ServingFiles) -> None:
    rx = http_receiver()
    target = Target(
        name="chat",
        kind="slack",
        settings={"url": rx.url + "/services/T0/B0/XYZ", "ca_file": str(certs.ca_cert)},
    )
    [d] = deliver([target], event(message="a <b> & c"))
    assert d.ok
    body = rx.requests[0].json()
    assert body["text"].startswith("[HIGH] dlp.sensitive_in_clear: a &lt;b&gt; &amp; c")
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds == ["header", "section", "section", "context"]
    assert body["blocks"][0]["text"] == {
        "type": "plain_text",
        "text": "[HIGH] dlp.sensitive_in_clear",
    }
    fields = body["blocks"][2]["fields"]
    assert len(fields) <= 10 and "*resource*\npod:shop/web-7d9" in [f["text"] for f in fields]


def test_teams_adaptive_card(http_receiver: Receiver, certs: ServingFiles) -> None:
    rx = http_receiver([202])
    target = Target(
        name="teams",
        kind="teams",
        settings={"url": rx.url + "/workflows/x", "ca_file": str(certs.ca_cert)},
    )
    [d] = deliver([target], event())
    assert d.ok
    body = rx.requests[0].json()
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["resource"] == "pod:shop/web-7d9" and facts["sensor"] == "dlp.payment_card"


# The postableAlerts schema of Alertmanager's api/v2/openapi.yaml, required fields and types:
# an array of objects with ``labels`` (required) and ``annotations``, both maps of strings,
# ``startsAt``/``endsAt`` date-times and ``generatorURL`` a URI.
LABEL_SET = {"type": "object", "additionalProperties": {"type": "string"}}
POSTABLE_ALERTS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["labels"],
        "properties": {
            "labels": LABEL_SET,
            "annotations": LABEL_SET,
            "startsAt": {"type": "string", "format": "date-time"},
            "endsAt": {"type": "string", "format": "date-time"},
            "generatorURL": {"type": "string", "format": "uri"},
        },
        "additionalProperties": False,
    },
}


def test_alertmanager_v2_alert(http_receiver: Receiver, certs: ServingFiles) -> None:
    rx = http_receiver()
    target = Target(
        name="am",
        kind="alertmanager",
        settings={
            "url": rx.url + "/",
            "ca_file": str(certs.ca_cert),
            "resolve_after": 600,
            "labels": {"cluster": "lab"},
            "generator_url": "https://stockade.example/events",
        },
    )
    e = event(data={"sensor": "dlp.payment_card", "odd key!": "v"})
    [d] = deliver([target], e)
    assert d.ok
    [req] = rx.requests
    assert req.path == "/api/v2/alerts"
    body = req.json()
    jsonschema.validate(body, POSTABLE_ALERTS, format_checker=jsonschema.FormatChecker())
    [alert] = body
    assert alert["labels"] == {
        "cluster": "lab",
        "alertname": "dlp.sensitive_in_clear",
        "severity": "high",
        "category": "dlp",
        "source": "sensor",
        "stockade_event": e.id,
        "namespace": "shop",
        "workload": "web-7d9",
    }
    assert all(k.replace("_", "a").isalnum() for k in alert["annotations"])
    assert alert["annotations"]["odd_key_"] == "v"
    from datetime import datetime

    starts, ends = (datetime.fromisoformat(alert[k]) for k in ("startsAt", "endsAt"))
    assert starts == e.at and (ends - starts).total_seconds() == 600


def test_targets_are_tried_in_parallel(
    silent_server: SilentServer, http_receiver: Receiver, certs: ServingFiles
) -> None:
    rx = http_receiver()
    slow = Target(
        name="slow",
        kind="webhook",
        settings={"url": f"http://127.0.0.1:{silent_server.port}/", "secret": WEBHOOK_SECRET},
        timeout=0.5,
        retry=RetryPolicy(attempts=1),
    )
    started = time.monotonic()
    results = deliver([slow, webhook(rx.url, certs)], event())
    assert [r.ok for r in results] == [False, True]
    assert time.monotonic() - started < 2
