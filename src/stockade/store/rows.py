"""Rows as they are stored: masked by the gate and cleaned of what a database refuses.

Kept apart from :mod:`stockade.store.records` (which holds the SQLAlchemy queries) so that a
command writing through the standard library's sqlite3 (a warm re-scan) masks its rows the same
way without importing SQLAlchemy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from stockade.model.finding import Event
from stockade.model.redact import own_id, redact_text
from stockade.model.resource import ResourceRef

# Keys of ids Stockade made itself (an event's link to its connection): a value in the shape of
# one (model.redact.own_id: a UUID or 32 hex digits, which the gate leaves as they are) skips the
# scan; any other value under them passes the gate.
OWN_IDS = frozenset({"id", "connection"})
# NUL: PostgreSQL text cannot hold it. Lone surrogates (JSON "\\ud800", file names decoded with
# surrogateescape): UTF-8, so SQLite, cannot encode them.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


_SCALARS = frozenset({int, float, bool, type(None)})  # nothing to mask (exactly these types)


def storable(value: Any) -> Any:
    """``value`` masked by the gate (:func:`stockade.model.redact.redact`, sparing ``OWN_IDS``)
    and with every NUL and lone surrogate replaced by U+FFFD, through dicts, lists and tuples.

    One walk does both (the ingestion path calls this for every string of every event)."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, dict):
        return {
            (_storable_text(k) if isinstance(k, str) else k): (
                # a number, a bool or None is kept as it is, by either (no call a value)
                v if type(v) in _SCALARS or (k in OWN_IDS and own_id(v)) else storable(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def storable_event(event: Event) -> Event:
    """``event`` with every string in it as :func:`storable` stores it (the id is Stockade's own),
    for an event that must leave the process before the store has masked it (the event store
    child of :mod:`stockade.store.writer_process`). Built field by field rather than through
    ``dataclasses.replace`` (a third of the cost on a webhook's serving path); a test holds the
    two to the same fields."""
    return Event(
        kind=_storable_text(event.kind),
        message=_storable_text(event.message),
        severity=event.severity,
        source=_storable_text(event.source),
        resource=_storable_ref(event.resource),
        peer=_storable_ref(event.peer),
        data=storable(event.data),
        at=event.at,
        id=event.id,
        action=_optional_text(event.action),
        mode=_optional_text(event.mode),
        node=_optional_text(event.node),
        rule=_optional_text(event.rule),
        count=event.count,
    )


def _storable_ref(ref: ResourceRef | None) -> ResourceRef | None:
    if ref is None:
        return None
    return ResourceRef(
        kind=_storable_text(ref.kind),
        name=_storable_text(ref.name),
        namespace=_optional_text(ref.namespace),
        digest=_optional_text(ref.digest),
        labels=tuple((_storable_text(k), _storable_text(v)) for k, v in ref.labels),
    )


# Strings the gate and the cleaning returned unchanged (kinds, names, namespaces, data keys: most
# strings of an event repeat), so the next event's copy is one set lookup. Only such strings, so
# nothing sensitive is kept; bounded in number and length.
_PASSED: set[str] = set()
_PASSED_MAX = 16_384
_PASSED_LONGEST = 128


def _storable_text(text: str) -> str:
    if text in _PASSED:
        return text
    masked = redact_text(text)
    if _UNSTORABLE.search(masked):
        return _UNSTORABLE.sub("\ufffd", masked)
    if masked is text and len(text) <= _PASSED_LONGEST:
        if len(_PASSED) >= _PASSED_MAX:
            _PASSED.clear()
        _PASSED.add(text)
    return masked


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _optional_text(text: str | None) -> str | None:
    return None if text is None else _storable_text(text)


def finding_rows(run: str, at: datetime, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``findings`` rows for one run from findings as ``Finding.to_dict()`` gives them, masked."""
    return [
        {
            "run_id": run,
            "at": at,
            "finding_id": _clean(f["id"]),
            **storable(
                {
                    "pillar": str(f["pillar"]),
                    "title": f["title"],
                    "severity": str(f["severity"]),
                    "status": str(f["status"]),
                    "resource_kind": f["resource"]["kind"],
                    "resource_name": f["resource"]["name"],
                    "resource": f["resource"],
                    "details": f.get("details"),
                    "compliance": list(f.get("compliance") or ()),
                }
            ),
        }
        for f in items
    ]
