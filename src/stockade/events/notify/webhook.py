"""Generic webhook: the event in a JSON envelope, signed.

Body: ``{"delivery": {"id", "target", "attempt", "sent_at"}, "event": <Event.to_dict(), masked>}``.
Headers: ``X-Stockade-Delivery: <uuid>`` (the same on every retry and redelivery) and
``X-Stockade-Signature: sha256=<hex HMAC-SHA256 of the body with the target's secret>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, model_validator

from stockade.events.notify import http
from stockade.events.notify.interface import Attempt, Target
from stockade.events.notify.settings import HttpUrl, Settings, secret_from
from stockade.model.redact import redact_text

SIGNATURE_HEADER = "X-Stockade-Signature"
DELIVERY_HEADER = "X-Stockade-Delivery"
RESERVED = frozenset(h.lower() for h in (SIGNATURE_HEADER, DELIVERY_HEADER, "content-type"))


class WebhookSettings(Settings):
    url: HttpUrl
    secret: str | None = Field(default=None, min_length=16)
    secret_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict, max_length=20)
    ca_file: str | None = None

    @model_validator(mode="after")
    def _check(self) -> WebhookSettings:
        key = secret_from(self.secret, self.secret_env, "secret")
        if not key:
            raise ValueError("a webhook needs a secret (secret or secret_env) to sign deliveries")
        if len(key) < 16:
            raise ValueError("the secret must have at least 16 characters")
        if RESERVED & {h.lower() for h in self.headers}:
            raise ValueError(f"headers may not set {', '.join(sorted(RESERVED))}")
        self.secret, self.secret_env = key, None
        return self


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def envelope(event: Mapping[str, Any], attempt: Attempt) -> dict[str, Any]:
    return {
        "delivery": {
            "id": attempt.delivery_id,
            "target": attempt.target,
            "attempt": attempt.number,
            "sent_at": datetime.now(UTC).isoformat(),
        },
        "event": dict(event),
    }


class WebhookNotifier:
    def __init__(self, target: Target) -> None:
        self.settings = WebhookSettings.model_validate(dict(target.settings))
        self.timeout = target.timeout

    def send(self, event: Mapping[str, Any], attempt: Attempt) -> None:
        body = redact_text(json.dumps(envelope(event, attempt), separators=(",", ":")))
        assert self.settings.secret is not None
        headers = dict(self.settings.headers)
        headers[DELIVERY_HEADER] = attempt.delivery_id
        headers[SIGNATURE_HEADER] = sign(self.settings.secret, body.encode())
        http.post(
            self.settings.url,
            body,
            headers=headers,
            timeout=self.timeout,
            ca_file=self.settings.ca_file,
        )
