"""Retention: how long and how much of each event category the store keeps.

```yaml
apiVersion: stockade.dev/v1
kind: Retention
spec:
  every: 1h                  # how often the controller applies it
  batch: 5000                # rows deleted per transaction
  default: {maxAge: 90d, maxRows: 1000000}   # every category not listed below
  categories:
    audit: {maxAge: 400d}    # PCI DSS 10.5.1: a year of audit trail
    dlp: {maxAge: 30d, maxRows: 200000, maxBytes: 512MiB}
    firewall: {}             # no limit: kept until pruned by hand
```

A category is the event kind before its first dot. Each limit is optional; every limit given
holds after a run: events older than ``maxAge`` go, then the oldest beyond the newest ``maxRows``,
then the oldest beyond ``maxBytes`` (the size of an event is the length of its stored text:
message, data, resource and peer, plus :data:`ROW_OVERHEAD`). Deleting is oldest first in
transactions of ``batch`` rows, so pruning a million rows never holds a long lock.

:func:`prune_once` stores one ``store.pruned`` event per run with the counts, after pruning, so a
run never prunes its own event.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Text, and_, case, cast, delete, func, select

from stockade.config import load_yaml_model, parse_yaml, validate
from stockade.model import Event, Severity
from stockade.model.duration import parse_duration
from stockade.model.errors import StockadeError
from stockade.store.db import Store
from stockade.store.records import record_events
from stockade.store.tables import events

ROW_OVERHEAD = 200  # bytes an event costs beyond its text (keys, times, indexes), for maxBytes
MAX_CATEGORIES = 256
MAX_AGE = timedelta(days=3650)
MIN_EVERY = timedelta(seconds=1)
MAX_EVERY = timedelta(days=7)
_CATEGORY = re.compile(r"[a-z][a-z0-9_-]{0,79}\Z")
_SIZE = re.compile(r"(\d{1,15})\s*(B|KiB|MiB|GiB|TiB)?\Z")
_SIZE_UNITS = {None: 1, "B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}

Sink = Callable[[Event], None]


# ---------------------------------------------------------------- the document


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_size(text: str | int) -> int:
    """``512MiB``, ``2GiB``, ``4096`` (bytes) -> bytes; binary units only."""
    m = _SIZE.match(str(text).strip())
    if not m:
        raise ValueError(f"bad size {str(text)[:40]!r} (a number and B, KiB, MiB, GiB or TiB)")
    value = int(m.group(1)) * _SIZE_UNITS[m.group(2)]
    if not 1024 <= value <= 2**50:
        raise ValueError(f"the size {str(text)[:40]!r} must be between 1KiB and 1024TiB")
    return value


def _duration(text: str, lowest: timedelta, highest: timedelta) -> timedelta:
    try:
        value = parse_duration(text)
    except StockadeError as exc:
        raise ValueError(exc.message) from None
    if not lowest <= value <= highest:
        raise ValueError(f"{text[:40]!r} must be between {lowest} and {highest.days} days")
    return value


class LimitsDoc(_Strict):
    maxAge: str | int | None = Field(default=None)
    maxRows: int | None = Field(default=None, ge=1, le=10**12, strict=True)
    maxBytes: str | int | None = None

    @field_validator("maxAge")
    @classmethod
    def _age(cls, v: str | int | None) -> str | None:
        if v is None:
            return None
        text = str(v)  # a bare number gets the duration's own message (write the unit)
        if len(text) > 40:
            raise ValueError("a duration has at most 40 characters")
        _duration(text, timedelta(minutes=1), MAX_AGE)
        return text

    @field_validator("maxBytes")
    @classmethod
    def _bytes(cls, v: str | int | None) -> str | int | None:
        if v is not None:
            if isinstance(v, bool):
                raise ValueError("expected a size such as 512MiB")
            parse_size(v)
        return v


class SpecDoc(_Strict):
    every: str = Field(default="1h", max_length=40)
    batch: int = Field(default=5000, ge=100, le=100_000, strict=True)
    default: LimitsDoc = Field(default_factory=lambda: LimitsDoc(maxAge="90d", maxRows=1_000_000))
    categories: dict[str, LimitsDoc] = Field(default_factory=dict, max_length=MAX_CATEGORIES)

    @field_validator("every")
    @classmethod
    def _every(cls, v: str) -> str:
        _duration(v, MIN_EVERY, MAX_EVERY)
        return v

    @field_validator("categories")
    @classmethod
    def _names(cls, v: dict[str, LimitsDoc]) -> dict[str, LimitsDoc]:
        for name in v:
            if not _CATEGORY.match(name):
                raise ValueError(
                    f"category {name[:60]!r} must be an event kind's first part (a-z, 0-9, _ -)"
                )
        return v


class RetentionDoc(_Strict):
    apiVersion: Literal["stockade.dev/v1"]
    kind: Literal["Retention"]
    metadata: dict[str, str] = Field(default_factory=dict, max_length=16)
    spec: SpecDoc = Field(default_factory=SpecDoc)


# ---------------------------------------------------------------- the compiled policy


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """What one category may keep; None is no limit of that kind."""

    max_age: timedelta | None = None
    max_rows: int | None = None
    max_bytes: int | None = None

    @classmethod
    def from_doc(cls, doc: LimitsDoc) -> Limits:
        return cls(
            max_age=parse_duration(str(doc.maxAge)) if doc.maxAge is not None else None,
            max_rows=doc.maxRows,
            max_bytes=parse_size(doc.maxBytes) if doc.maxBytes is not None else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "maxAge": f"{int(self.max_age.total_seconds())}s" if self.max_age else None,
            "maxRows": self.max_rows,
            "maxBytes": self.max_bytes,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionPolicy:
    every: timedelta = timedelta(hours=1)
    batch: int = 5000
    default: Limits = field(default_factory=Limits)
    categories: Mapping[str, Limits] = field(default_factory=dict)

    def limits(self, category: str) -> Limits:
        return self.categories.get(category, self.default)

    @classmethod
    def from_doc(cls, doc: RetentionDoc) -> RetentionPolicy:
        s = doc.spec
        return cls(
            every=parse_duration(s.every),
            batch=s.batch,
            default=Limits.from_doc(s.default),
            categories={name: Limits.from_doc(lim) for name, lim in s.categories.items()},
        )


# Without --retention: three months or a million events per category; the audit trail a year.
DEFAULT_POLICY = RetentionPolicy(
    default=Limits(max_age=timedelta(days=90), max_rows=1_000_000),
    categories={"audit": Limits(max_age=timedelta(days=400))},
)


def load_retention(path: Path) -> RetentionPolicy:
    """Read and validate a Retention file; any problem is one ``file:line: ...`` error."""
    return RetentionPolicy.from_doc(load_yaml_model(RetentionDoc, path))


def parse_retention(text: str, *, name: str) -> RetentionPolicy:
    value, node = parse_yaml(text, name=name)
    return RetentionPolicy.from_doc(validate(RetentionDoc, value, node, name=name))


# ---------------------------------------------------------------- pruning


@dataclass(frozen=True, slots=True, kw_only=True)
class Pruned:
    """Events of one category pruned (or, in a dry run, that would be) for each limit."""

    age: int = 0
    rows: int = 0
    bytes: int = 0

    @property
    def total(self) -> int:
        return self.age + self.rows + self.bytes

    def to_dict(self) -> dict[str, int]:
        return {"age": self.age, "rows": self.rows, "bytes": self.bytes, "total": self.total}


def _size() -> Any:
    """The stored size of an event, as maxBytes counts it."""
    texts = [events.c.id, events.c.kind, events.c.source, events.c.message]
    jsons = [events.c.data, events.c.resource, events.c.peer]
    size: Any = ROW_OVERHEAD
    for column in texts:
        size = size + func.coalesce(func.length(column), 0)
    for column in jsons:
        size = size + func.coalesce(func.length(cast(column, Text)), 0)
    return size


def _where(category: str, cutoff: datetime | None, *, older: bool) -> Any:
    if cutoff is None:
        return events.c.category == category
    at = events.c.at < cutoff if older else events.c.at >= cutoff
    return and_(events.c.category == category, at)


def _plan(store: Store, category: str, limits: Limits, cutoff: datetime | None) -> Pruned:
    """How many events of ``category`` each limit removes (read only)."""
    aged = over_rows = over_bytes = 0
    with store.connect() as conn:
        if cutoff is not None:
            q = select(func.count()).select_from(events).where(_where(category, cutoff, older=True))
            aged = int(conn.execute(q).scalar_one())
        kept = _where(category, cutoff, older=False)
        if limits.max_bytes is not None:
            newest_first = (events.c.at.desc(), events.c.id.desc())
            inner = (
                select(
                    func.row_number().over(order_by=newest_first).label("n"),
                    func.sum(_size()).over(order_by=newest_first).label("running"),
                )
                .where(kept)
                .subquery()
            )
            rows_cap = limits.max_rows if limits.max_rows is not None else 2**62
            q = select(
                func.coalesce(func.sum(case((inner.c.n > rows_cap, 1), else_=0)), 0),
                func.coalesce(
                    func.sum(
                        case(
                            (and_(inner.c.n <= rows_cap, inner.c.running > limits.max_bytes), 1),
                            else_=0,
                        )
                    ),
                    0,
                ),
            )
            over_rows, over_bytes = (int(v) for v in conn.execute(q).one())
        elif limits.max_rows is not None:
            n = int(conn.execute(select(func.count()).select_from(events).where(kept)).scalar_one())
            over_rows = max(0, n - limits.max_rows)
    return Pruned(age=aged, rows=over_rows, bytes=over_bytes)


def _delete_oldest(store: Store, condition: Any, count: int, batch: int) -> int:
    """Delete the ``count`` oldest events meeting ``condition``, ``batch`` per transaction."""
    deleted = 0
    while deleted < count:
        ids = (
            select(events.c.id)
            .where(condition)
            .order_by(events.c.at, events.c.id)
            .limit(min(batch, count - deleted))
        )
        with store.begin() as conn:
            gone = conn.execute(delete(events).where(events.c.id.in_(ids))).rowcount
        if not gone:
            break  # pruned meanwhile (another run, by hand)
        deleted += gone
    return deleted


def _categories(store: Store) -> list[str]:
    with store.connect() as conn:
        found = conn.execute(select(events.c.category).distinct()).scalars().all()
    return sorted(c for c in found if c)


def prune_once(
    store: Store,
    policy: RetentionPolicy,
    now: datetime,
    *,
    dry_run: bool = False,
    sink: Sink | None = None,
) -> dict[str, Pruned]:
    """Apply ``policy`` at ``now``: the events pruned per category (those that would be, with
    ``dry_run``). A real run then stores one ``store.pruned`` event with the counts and hands it to
    ``sink`` (the controller's response rules)."""
    started = time.monotonic()
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    counts: dict[str, Pruned] = {}
    for category in _categories(store):
        limits = policy.limits(category)
        cutoff = now - limits.max_age if limits.max_age is not None else None
        plan = _plan(store, category, limits, cutoff)
        if plan.total == 0:
            continue
        if dry_run:
            counts[category] = plan
            continue
        aged = 0
        if plan.age:
            aged = _delete_oldest(
                store, _where(category, cutoff, older=True), plan.age, policy.batch
            )
        capped = _delete_oldest(
            store, _where(category, cutoff, older=False), plan.rows + plan.bytes, policy.batch
        )
        rows = min(capped, plan.rows)
        counts[category] = Pruned(age=aged, rows=rows, bytes=capped - rows)
    if not dry_run:
        event = pruned_event(counts, now=now, took=time.monotonic() - started)
        record_events(store, [event])
        if sink is not None:
            sink(event)
    return counts


def pruned_event(counts: Mapping[str, Pruned], *, now: datetime, took: float) -> Event:
    total = sum(p.total for p in counts.values())
    detail = ", ".join(f"{c} {p.total}" for c, p in sorted(counts.items()))
    return Event(
        kind="store.pruned",
        message=f"retention pruned {total} events" + (f" ({detail})" if detail else ""),
        severity=Severity.NEGLIGIBLE,
        source="retention",
        at=now,
        data={
            "total": total,
            "categories": {c: p.to_dict() for c, p in sorted(counts.items())},
            "seconds": round(took, 3),
        },
        action="prune",
    )


@dataclass(slots=True)
class RetentionJob:
    """The retention run as a job for whichever worker runs singleton work: call it every
    ``interval`` seconds."""

    store: Store
    policy: RetentionPolicy
    sink: Sink | None = None
    name: str = "retention"

    @property
    def interval(self) -> float:
        return self.policy.every.total_seconds()

    def __call__(self) -> dict[str, Pruned]:
        return prune_once(self.store, self.policy, datetime.now(UTC), sink=self.sink)
