"""Issue 14: nothing a notification carries may hold a card number or an SSN in clear.

A card and an SSN are planted in every string field of an event (message, data keys and values,
nested data, resource and peer names, labels) and the event is delivered to a real receiver of
every kind: HTTPS webhook, Slack, Teams, Alertmanager, rsyslog over UDP, TCP and TLS (key=value
and JSON), SMTP with STARTTLS; a target that fails keeps a dead letter in a real SQLite store.
Every byte the receivers got, rsyslog's output file and the dead-letter table are searched for the
numbers, with and without separators.
"""

from __future__ import annotations

import importlib.util
import re
import sqlite3
from contextlib import ExitStack
from pathlib import Path

import pytest

from stockade.admission.certs import ServingFiles
from stockade.events.notify.deadletters import DeadLetters
from stockade.events.notify.dispatch import deliver, send_test
from stockade.events.notify.interface import RetryPolicy, Target
from stockade.model import Event, ResourceRef, Severity
from stockade.network.dlp.validators import luhn_check_digit
from stockade.store import Store
from tests.events.receivers import (
    WEBHOOK_SECRET,
    HttpReceiver,
    MailBox,
    Rsyslog,
    make_certs,
    run_rsyslog,
    run_smtp,
    serve_http,
)
from tests.support import require

CARD_BODY = "453914880343646"
CARD = CARD_BODY + luhn_check_digit(CARD_BODY)
CARD_SPACED = " ".join(CARD[i : i + 4] for i in range(0, 16, 4))
SSN = "078-05-1120"
SECRETS = (CARD[4:12], "07805")  # what masking hides: a card's middle digits, an SSN's area+group


def planted_event() -> Event:
    return Event(
        kind="dlp.sensitive_in_clear",
        message=f"card {CARD_SPACED} and ssn {SSN} posted to api",
        severity=Severity.CRITICAL,
        source=f"sensor-{CARD}",
        resource=ResourceRef(
            kind="pod", name=f"web-{CARD}", namespace="shop", labels=(("owner-ssn", SSN),)
        ),
        peer=ResourceRef(kind="external", name=f"{CARD}.example"),
        data={
            "evidence": f"number={CARD}",
            f"key-{CARD}": "v",
            "nested": {"list": [SSN, f"x{CARD_SPACED}x"]},
            "sni": f"{CARD}.shop.example",
        },
    )


def assert_clean(where: str, text: str) -> None:
    flat = re.sub(r"[\s\-._+]|%20|\\u0020", "", text)
    for secret in SECRETS:
        assert secret not in flat, f"{where} holds {secret!r} in clear"


def test_every_notifier_sends_only_masked_text(
    tmp_path: Path, sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    require(importlib.util.find_spec("aiosmtpd") is not None, "needs aiosmtpd (the test extra)")
    monkeypatch.setenv("STOCKADE_TEST_SMTP_PASSWORD", "s3cret-pass")
    certs = make_certs(tmp_path / "tls")
    with ExitStack() as stack:
        rx = stack.enter_context(serve_http(HttpReceiver(), certs))
        failing = stack.enter_context(serve_http(HttpReceiver(statuses=[400]), certs))
        rsyslog = stack.enter_context(run_rsyslog(tmp_path / "rsyslog"))
        smtp_server = stack.enter_context(run_smtp(tmp_path / "smtp"))
        check_every_notifier(certs, rx, failing, rsyslog, smtp_server, sqlite_store)


def check_every_notifier(
    certs: ServingFiles,
    rx: HttpReceiver,
    failing: HttpReceiver,
    rsyslog: Rsyslog,
    smtp_server: MailBox,
    sqlite_store: Store,
) -> None:
    ca = str(certs.ca_cert)
    http = [
        ("webhook", {"url": rx.url + "/hook", "secret": WEBHOOK_SECRET, "ca_file": ca}),
        ("slack", {"url": rx.url + "/slack", "ca_file": ca}),
        ("teams", {"url": rx.url + "/teams", "ca_file": ca}),
        ("alertmanager", {"url": rx.url, "ca_file": ca}),
    ]
    targets = [Target(name=kind, kind=kind, settings=s) for kind, s in http]
    syslog_ports = {"udp": rsyslog.udp_port, "tcp": rsyslog.tcp_port, "tls": rsyslog.tls_port}
    for transport, port in syslog_ports.items():
        for fmt in ("kv", "json"):
            settings = {"host": "127.0.0.1", "port": port, "transport": transport, "format": fmt}
            if transport == "tls":
                settings["ca_file"] = str(rsyslog.ca_file)
            targets.append(
                Target(name=f"syslog-{transport}-{fmt}", kind="syslog", settings=settings)
            )
    targets.append(
        Target(
            name="mail",
            kind="email",
            settings={
                "host": "127.0.0.1",
                "port": smtp_server.port,
                "from": "stockade@lab.example",
                "to": ["soc@lab.example"],
                "username": "alert",
                "password_env": "STOCKADE_TEST_SMTP_PASSWORD",
                "subject": "{severity} {message} {resource} {source}",
                "ca_file": str(smtp_server.ca_file),
            },
        )
    )
    dead = Target(
        name="failing",
        kind="webhook",
        settings={"url": failing.url, "secret": WEBHOOK_SECRET, "ca_file": ca},
        retry=RetryPolicy(attempts=1),
    )
    targets.append(dead)

    results = deliver(targets, planted_event(), dead_letters=DeadLetters(sqlite_store))
    assert [r.target for r in results if not r.ok] == ["failing"], results
    assert send_test(Target(name=f"t-{CARD}", kind="slack", settings=http[1][1])).ok

    assert len(rx.requests) == 5
    for req in rx.requests + failing.requests:
        assert_clean(f"HTTP {req.path}", req.body.decode())
        assert_clean(f"HTTP {req.path} headers", repr(req.headers))
    assert CARD_SPACED[:4] in rx.requests[0].body.decode()  # masked, not dropped: 4539 **** ...
    lines = rsyslog.wait_for(6)
    assert len(lines) == 6
    assert_clean("rsyslog output", rsyslog.out.read_text())
    [mail] = smtp_server.messages
    assert_clean("mail", mail["data"].decode())
    conn = sqlite3.connect(sqlite_store.engine.url.database)
    try:
        rows = conn.execute("SELECT * FROM notify_dead_letters").fetchall()
    finally:
        conn.close()
    assert len(rows) == 1
    assert_clean("dead letters", repr(rows))
