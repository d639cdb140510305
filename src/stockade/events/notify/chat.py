"""Slack and Microsoft Teams incoming webhooks.

Slack gets Block Kit (a header, the message, the facts as fields, a context line) with ``text`` as
the notification fallback; Teams gets an Adaptive Card (1.4) in a ``message`` attachment, the form
Teams workflows ("Post to a channel when a webhook request is received") accept.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from stockade.events.notify import http, render
from stockade.events.notify.interface import Attempt, Target
from stockade.events.notify.settings import HttpUrl, Settings
from stockade.model.redact import redact_text

SLACK_HEADER_CHARS = 150  # Block Kit limits
SLACK_TEXT_CHARS = 3000
SLACK_FIELD_CHARS = 2000
SLACK_MAX_FIELDS = 10
TEAMS_TEXT_CHARS = 4000


class ChatSettings(Settings):
    url: HttpUrl
    ca_file: str | None = None


def slack_escape(text: str) -> str:
    """Slack's mrkdwn treats ``&``, ``<`` and ``>`` as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(event: Mapping[str, Any]) -> dict[str, Any]:
    fields = [
        {
            "type": "mrkdwn",
            "text": render.clip(f"*{slack_escape(k)}*\n{slack_escape(v)}", SLACK_FIELD_CHARS),
        }
        for k, v in render.facts(event)[:SLACK_MAX_FIELDS]
    ]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": render.clip(render.title(event), SLACK_HEADER_CHARS),
            },
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": render.clip(
                    slack_escape(str(event.get("message", ""))) or " ", SLACK_TEXT_CHARS
                ),
            },
        },
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"Stockade event `{event.get('id', '')}`"}],
        }
    )
    return {
        "text": render.clip(slack_escape(render.summary(event)), SLACK_TEXT_CHARS),
        "blocks": blocks,
    }


def teams_payload(event: Mapping[str, Any]) -> dict[str, Any]:
    severity = str(event.get("severity", ""))
    color = {"critical": "Attention", "high": "Attention", "medium": "Warning"}.get(
        severity, "Default"
    )
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": render.clip(render.title(event), 200),
                "weight": "Bolder",
                "size": "Medium",
                "color": color,
                "wrap": True,
            },
            {
                "type": "TextBlock",
                "text": render.clip(str(event.get("message", "")), TEAMS_TEXT_CHARS),
                "wrap": True,
            },
            {
                "type": "FactSet",
                "facts": [{"title": k, "value": v} for k, v in render.facts(event)],
            },
        ],
    }
    return {
        "type": "message",
        "summary": render.clip(render.summary(event), 200),
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


class _ChatNotifier(ABC):
    """A chat service's incoming webhook; each service says how a message is shaped."""

    def __init__(self, target: Target) -> None:
        self.settings = ChatSettings.model_validate(dict(target.settings))
        self.timeout = target.timeout

    @abstractmethod
    def payload(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON body the service expects for ``event``."""

    def send(self, event: Mapping[str, Any], attempt: Attempt) -> None:
        body = redact_text(json.dumps(self.payload(event), separators=(",", ":")))
        http.post(self.settings.url, body, timeout=self.timeout, ca_file=self.settings.ca_file)


class SlackNotifier(_ChatNotifier):
    def payload(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return slack_payload(event)


class TeamsNotifier(_ChatNotifier):
    def payload(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return teams_payload(event)
