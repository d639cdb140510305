"""Email over SMTP with STARTTLS and login, against an aiosmtpd server on loopback."""

from __future__ import annotations

import email
from email import policy
from typing import Any

import pytest

from stockade.events.notify.dispatch import deliver
from stockade.events.notify.interface import RetryPolicy, Target
from stockade.events.notify.mail import MailSettings, subject
from stockade.model import Event, ResourceRef, Severity
from tests.events.receivers import MailBox


def mail_target(box: MailBox, **extra: Any) -> Target:
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": box.port,
        "from": "stockade@lab.example",
        "to": ["soc@lab.example", "oncall@lab.example"],
        "username": "alert",
        "password_env": "STOCKADE_TEST_SMTP_PASSWORD",
        "subject": "[{severity}] {kind} on {resource}",
        "ca_file": str(box.ca_file),
    }
    settings.update(extra)
    return Target(
        name="mail",
        kind="email",
        settings=settings,
        timeout=5,
        retry=RetryPolicy(attempts=2, backoff=0.05),
    )


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKADE_TEST_SMTP_PASSWORD", "s3cret-pass")


def event() -> Event:
    return Event(
        kind="quarantine.applied",
        message="workload quarantined by rule critical-vulns",
        severity=Severity.HIGH,
        resource=ResourceRef(kind="pod", name="web", namespace="shop"),
        data={"rule": "critical-vulns"},
    )


def test_mail_over_starttls_with_login(smtp_server: MailBox) -> None:
    e = event()
    [d] = deliver([mail_target(smtp_server)], e)
    assert d.ok, d.error
    [got] = smtp_server.messages
    assert got["tls"] and got["auth"]
    assert got["from"] == "stockade@lab.example"
    assert got["to"] == ["soc@lab.example", "oncall@lab.example"]
    msg = email.message_from_bytes(got["data"], policy=policy.default)
    assert msg["Subject"] == "[HIGH] quarantine.applied on pod:shop/web"
    assert msg["X-Stockade-Delivery"] == d.delivery_id
    text = msg.get_content()
    assert "workload quarantined by rule critical-vulns" in text and e.id in text


def test_wrong_password_is_not_retried(
    smtp_server: MailBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STOCKADE_TEST_SMTP_PASSWORD", "wrong")
    [d] = deliver([mail_target(smtp_server)], event())
    assert not d.ok and d.attempts == 1 and "535" in (d.error or "")
    assert smtp_server.messages == []


def test_untrusted_certificate_is_refused(smtp_server: MailBox, tmp_path: Any) -> None:
    from tests.events.receivers import make_certs

    other = make_certs(tmp_path / "other").ca_cert
    [d] = deliver([mail_target(smtp_server, ca_file=str(other))], event())
    assert not d.ok and d.attempts == 1 and "certificate" in (d.error or "")


def test_subject_template_is_one_safe_line() -> None:
    e = event().to_dict()
    e["message"] = "first\r\nBcc: victim@example.com"
    assert subject("{message}", e) == "first Bcc: victim@example.com"
    assert subject("{severity} {{x}} {id}", e) == f"HIGH {{{{x}}}} {e['id']}".replace(
        "{{{{x}}}}", "{{x}}"
    )


def test_settings_are_checked() -> None:
    from pydantic import ValidationError

    base = {"host": "h", "from": "a@b.c", "to": ["d@e.f"]}
    with pytest.raises(ValidationError, match=r"unknown field \{event.__class__\}"):
        MailSettings.model_validate({**base, "subject": "{event.__class__}"})
    with pytest.raises(ValidationError, match="without STARTTLS"):
        MailSettings.model_validate({**base, "starttls": False, "username": "u", "password": "p"})
    with pytest.raises(ValidationError, match="not a mail address"):
        MailSettings.model_validate({**base, "to": ["a@b.c\nBcc: x@y.z"]})
