"""Prometheus Alertmanager, API v2: ``POST <url>/api/v2/alerts`` with one postable alert per event.

Labels identify the alert (Alertmanager groups and deduplicates on them): ``alertname`` (the event
kind), ``severity``, ``category``, ``source``, ``stockade_event`` (the event id, so two events never
merge), ``namespace``/``workload`` when known, plus the target's fixed ``labels``. Annotations carry
the text. An event is a moment, so ``endsAt`` is ``startsAt`` plus ``resolve_after`` seconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field, field_validator

from stockade.events.notify import http, render
from stockade.events.notify.interface import Attempt, Target
from stockade.events.notify.settings import HttpUrl, Settings
from stockade.model.redact import redact_text

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MAX_LABEL_VALUE = 1024


class AlertmanagerSettings(Settings):
    url: HttpUrl
    resolve_after: float = Field(default=3600.0, gt=0, le=30 * 86400)
    labels: dict[str, str] = Field(default_factory=dict, max_length=30)
    generator_url: HttpUrl | None = None
    ca_file: str | None = None

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not LABEL_NAME.fullmatch(k) or k.startswith("__")]
        if bad:
            raise ValueError(f"not a label name: {bad[0]!r}")
        return value


def label_name(text: str) -> str:
    """``text`` as a valid label (and annotation) name: other characters become ``_``."""
    name = re.sub(r"[^a-zA-Z0-9_]", "_", text) or "_"
    return name if LABEL_NAME.fullmatch(name) and not name.startswith("__") else "x" + name


def _time(text: Any) -> datetime:
    try:
        at = datetime.fromisoformat(str(text))
    except ValueError:
        return datetime.now(UTC)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def alert(event: Mapping[str, Any], settings: AlertmanagerSettings) -> dict[str, Any]:
    labels = dict(settings.labels)
    labels.update(
        alertname=str(event.get("kind", "stockade")),
        severity=str(event.get("severity", "unknown")),
        category=render.category(event),
        source=str(event.get("source", "stockade")),
        stockade_event=str(event.get("id", "")),
    )
    resource = event.get("resource") or {}
    if resource.get("namespace"):
        labels["namespace"] = str(resource["namespace"])
    if resource.get("name"):
        labels["workload"] = str(resource["name"])
    annotations = {"summary": render.summary(event), "description": str(event.get("message", ""))}
    annotations.update({label_name(k): v for k, v in render.facts(event)})
    starts = _time(event.get("at"))
    out: dict[str, Any] = {
        "labels": {k: render.clip(v, MAX_LABEL_VALUE) for k, v in labels.items()},
        "annotations": {k: render.clip(v, 4 * MAX_LABEL_VALUE) for k, v in annotations.items()},
        "startsAt": starts.isoformat(),
        "endsAt": (starts + timedelta(seconds=settings.resolve_after)).isoformat(),
    }
    if settings.generator_url:
        out["generatorURL"] = settings.generator_url
    return out


class AlertmanagerNotifier:
    def __init__(self, target: Target) -> None:
        self.settings = AlertmanagerSettings.model_validate(dict(target.settings))
        self.timeout = target.timeout
        self.endpoint = self.settings.url.rstrip("/") + "/api/v2/alerts"

    def send(self, event: Mapping[str, Any], attempt: Attempt) -> None:
        body = redact_text(json.dumps([alert(event, self.settings)], separators=(",", ":")))
        http.post(self.endpoint, body, timeout=self.timeout, ca_file=self.settings.ca_file)
