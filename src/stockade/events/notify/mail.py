"""Email over SMTP, with STARTTLS (required unless ``starttls: false``), optional login.

The subject is a template over the event's fields: ``{severity}``, ``{kind}``, ``{category}``,
``{message}``, ``{source}``, ``{resource}``, ``{id}``; nothing else is substituted (no attribute or
item access), and line breaks cannot reach the header.
"""

from __future__ import annotations

import json
import re
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from pydantic import Field, field_validator, model_validator

from stockade.events.notify import render
from stockade.events.notify.interface import Attempt, NotifyError, Target
from stockade.events.notify.settings import Settings, secret_from
from stockade.events.notify.tls import client_context
from stockade.model.redact import redact_text

SUBJECT_FIELDS = ("severity", "kind", "category", "message", "source", "resource", "id")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+")
MAX_SUBJECT = 200
DEFAULT_SUBJECT = "[stockade] {severity} {kind}: {message}"


class MailSettings(Settings):
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1, max_length=50)
    subject: str = Field(default=DEFAULT_SUBJECT, max_length=500)
    ca_file: str | None = None

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return _address(value)

    @field_validator("to")
    @classmethod
    def _to(cls, value: list[str]) -> list[str]:
        return [_address(v) for v in value]

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        unknown = [f for f in _PLACEHOLDER.findall(value) if f not in SUBJECT_FIELDS]
        if unknown:
            raise ValueError(
                f"unknown field {{{unknown[0]}}} in subject (use: {', '.join(SUBJECT_FIELDS)})"
            )
        return value

    @model_validator(mode="after")
    def _secrets(self) -> MailSettings:
        self.password, self.password_env = (
            secret_from(self.password, self.password_env, "password"),
            None,
        )
        if self.password and not self.username:
            raise ValueError("a password needs a username")
        if self.username and not self.starttls:
            raise ValueError("refusing to send a password without STARTTLS")
        return self


def _address(value: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise ValueError(f"not a mail address: {value!r}")
    return value


def subject(template: str, event: Mapping[str, Any]) -> str:
    values = {
        "severity": str(event.get("severity", "")).upper(),
        "kind": str(event.get("kind", "")),
        "category": render.category(event),
        "message": str(event.get("message", "")),
        "source": str(event.get("source", "")),
        "resource": render.ref_text(event.get("resource")) or "",
        "id": str(event.get("id", "")),
    }
    text = _PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), template)
    return render.clip(" ".join(redact_text(text).split()), MAX_SUBJECT)


def body(event: Mapping[str, Any]) -> str:
    lines = [render.summary(event), ""]
    lines += [f"{name}: {value}" for name, value in render.facts(event)]
    lines += ["", "The event as JSON:", json.dumps(dict(event), indent=2)]
    return redact_text("\n".join(lines) + "\n")


def message(event: Mapping[str, Any], settings: MailSettings, attempt: Attempt) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.sender
    msg["To"] = ", ".join(settings.to)
    msg["Subject"] = subject(settings.subject, event)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(idstring=attempt.delivery_id, domain="stockade.invalid")
    msg["X-Stockade-Delivery"] = attempt.delivery_id
    msg.set_content(body(event))
    return msg


class MailNotifier:
    def __init__(self, target: Target) -> None:
        self.settings = MailSettings.model_validate(dict(target.settings))
        self.timeout = target.timeout

    def send(self, event: Mapping[str, Any], attempt: Attempt) -> None:
        s = self.settings
        where = f"smtp://{s.host}:{s.port}"
        msg = message(event, s, attempt)
        try:
            with smtplib.SMTP(s.host, s.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                if s.starttls:
                    if not smtp.has_extn("starttls"):
                        raise NotifyError(
                            f"{where}: the server does not offer STARTTLS", retryable=False
                        )
                    smtp.starttls(context=client_context(s.ca_file))
                    smtp.ehlo()
                if s.username and s.password:
                    smtp.login(s.username, s.password)
                smtp.send_message(msg)
        except NotifyError:
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise NotifyError(
                f"{where}: every recipient refused", retryable=all(400 <= c < 500 for c in codes)
            ) from None
        except smtplib.SMTPResponseException as exc:
            text = (
                exc.smtp_error.decode("utf-8", "replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            raise NotifyError(
                f"{where}: {exc.smtp_code} {redact_text(' '.join(text.split()))}",
                retryable=400 <= exc.smtp_code < 500,
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise NotifyError(f"{where}: {exc.verify_message}", retryable=False) from None
        except TimeoutError:
            raise NotifyError(f"{where}: no answer within {self.timeout:g}s") from None
        except (smtplib.SMTPException, OSError) as exc:
            reason = (
                getattr(exc, "strerror", None) or " ".join(str(exc).split()) or type(exc).__name__
            )
            raise NotifyError(f"{where}: {redact_text(reason)}") from None
