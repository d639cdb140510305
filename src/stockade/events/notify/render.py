"""What every notifier shows of an event: the masked dict, a title, a summary line and facts.

The event is masked (``stockade.model.redact``) *before* anything is cut to fit a format, so a
truncation can never leave part of a card number the gate no longer recognises; the notifiers gate
the final wire text again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stockade.model import Event
from stockade.model.redact import redact

MAX_FACTS = 12
MAX_FACT_CHARS = 300


def masked(event: Event) -> dict[str, Any]:
    """``event.to_dict()`` with every card number and SSN masked (the id is Stockade's own)."""
    value: dict[str, Any] = redact(event.to_dict(), keep=frozenset({"id"}))
    return value


def category(event: Mapping[str, Any]) -> str:
    return str(event.get("kind", "")).split(".", 1)[0]


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "\u2026"


def ref_text(ref: Mapping[str, Any] | None) -> str | None:
    """``pod:namespace/name`` for a resource dict, as ResourceRef.display() does."""
    if not ref:
        return None
    ns = ref.get("namespace")
    return f"{ref.get('kind', '?')}:{ns + '/' if ns else ''}{ref.get('name', '?')}"


def title(event: Mapping[str, Any]) -> str:
    return f"[{str(event.get('severity', 'unknown')).upper()}] {event.get('kind', 'event')}"


def summary(event: Mapping[str, Any]) -> str:
    """One line: ``[HIGH] dlp.sensitive_in_clear: message (pod:shop/web)``."""
    where = ref_text(event.get("resource"))
    return f"{title(event)}: {event.get('message', '')}" + (f" ({where})" if where else "")


def facts(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Name/value pairs for cards and mail bodies: the envelope first, then scalar data fields."""
    out: list[tuple[str, str]] = []
    for name, value in (
        ("severity", event.get("severity")),
        ("source", event.get("source")),
        ("resource", ref_text(event.get("resource"))),
        ("peer", ref_text(event.get("peer"))),
        ("at", event.get("at")),
        ("event id", event.get("id")),
    ):
        if value:
            out.append((name, clip(str(value), MAX_FACT_CHARS)))
    data = event.get("data") or {}
    for key in sorted(data):
        if len(out) >= MAX_FACTS:
            break
        value = data[key]
        if isinstance(value, str | int | float | bool) and value != "":
            out.append((clip(str(key), 60), clip(str(value), MAX_FACT_CHARS)))
    return out
