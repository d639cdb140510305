"""The firewall's rows in the project store: the applied policy, learned connections, quarantine."""

from __future__ import annotations

from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
)

from stockade.model import Event, Severity, StockadeError
from stockade.model.redact import redact_text
from stockade.store import Store
from stockade.store.records import record_events
from stockade.store.tables import metadata
from stockade.store.versions import bump

if TYPE_CHECKING:
    from stockade.firewall.policy.model import Policy

firewall_policies = Table(
    "firewall_policies",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("yaml", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

firewall_learned = Table(
    "firewall_learned",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("src", String(400), nullable=False),  # identity key: ns/name or the address
    Column("dst", String(400), nullable=False),
    Column("src_endpoint", JSON, nullable=False),
    Column("dst_endpoint", JSON, nullable=False),
    Column("port", Integer, nullable=False),
    Column("l4", String(8), nullable=False),
    Column("app", String(40), nullable=False),
    Column("count", Integer, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    UniqueConstraint("src", "dst", "port", "l4", "app", name="uq_firewall_learned"),
)

firewall_quarantine = Table(
    "firewall_quarantine",
    metadata,
    Column("workload", String(400), primary_key=True),  # ns/name
    Column("addresses", JSON, nullable=False),
    Column("reason", Text, nullable=False),
    Column("since", DateTime(timezone=True), nullable=False),
)


class PolicyChanged(StockadeError):
    """The stored policy changed between reading it and saving an edit of it."""


def save_policy(
    store: Store, text: str, name: str = "default", *, expected: int | None = None
) -> int:
    """Store the policy text and raise the agents' ``policy`` version with it; returns the
    policy's new version number. With ``expected``, only when the stored version is still that
    one (an edit of what was read), else PolicyChanged."""
    with store.begin() as conn:
        old = conn.execute(
            select(firewall_policies.c.version).where(firewall_policies.c.name == name)
        ).scalar()
        if expected is not None and (old or 0) != expected:
            raise PolicyChanged("the policy changed meanwhile; read it again and retry")
        version = (old or 0) + 1
        conn.execute(firewall_policies.delete().where(firewall_policies.c.name == name))
        conn.execute(
            firewall_policies.insert().values(
                name=name, yaml=text, version=version, updated_at=datetime.now(UTC)
            )
        )
        bump(conn, "policy")
    return version


def apply_policy(store: Store, policy: Policy, text: str, *, expected: int | None = None) -> int:
    """Make ``policy`` the running one and record the segmentation state it sets
    (``firewall.policy_applied``: every group's mode, which groups guard card data, the rules);
    returns its version."""
    version = save_policy(store, text, expected=expected)
    record_events(store, [policy_state_event(policy, version)])
    return version


def guards_card_data(sensors: list[str], require_tls: bool) -> bool:
    """A group with a DLP rule covering payment cards, or one that requires TLS, is treated as
    part of the cardholder data environment."""
    return require_tls or any(fnmatchcase("dlp.payment_card", s) for s in sensors)


def group_states(policy: Policy) -> list[dict[str, Any]]:
    """Every group: name, mode, selector, data rules, virtual patches, TLS requirement, whether it
    guards card data."""
    return [
        {
            "name": g.name,
            "mode": g.mode,
            "selector": g.selector.model_dump(exclude_defaults=True),
            "dlp": [f"{d.sensor}:{d.action}" for d in g.dlp],
            "waf": [f"{w.sensor}:{w.action}" for w in g.waf],
            "requireTLS": g.model_dump(mode="json")["requireTLS"],
            "cde": guards_card_data([d.sensor for d in g.dlp], bool(g.tls_requirements())),
        }
        for g in policy.spec.groups
    ]


def policy_state_event(policy: Policy, version: int) -> Event:
    groups = group_states(policy)
    rules = [
        {
            "name": r.name,
            "from": r.from_,
            "to": r.to,
            "ports": r.ports,
            "protocols": r.protocols,
            "action": r.action,
        }
        for r in policy.spec.rules
    ]
    modes = ", ".join(f"{g['name']}={g['mode']}" for g in groups)
    return Event(
        kind="firewall.policy_applied",
        message=f"firewall policy {policy.metadata.name!r} version {version} applied: {modes}",
        severity=Severity.NEGLIGIBLE,
        source="policy",
        data={"policy": policy.metadata.name, "version": version, "groups": groups, "rules": rules},
    )


def load_policy(store: Store, name: str = "default") -> tuple[str, int] | None:
    with store.connect() as conn:
        row = conn.execute(
            select(firewall_policies.c.yaml, firewall_policies.c.version).where(
                firewall_policies.c.name == name
            )
        ).first()
    return (row[0], row[1]) if row else None


def _identity(ep: dict[str, Any]) -> str:
    if ep.get("external") or not ep.get("name"):
        ip: str = ep["ip"]
        return ip
    return f"{ep.get('namespace', '')}/{ep['name']}"


def record_learned(store: Store, items: list[dict[str, Any]]) -> None:
    """Upsert learned connections: ``{src, dst (endpoint dicts), port, l4, app}``."""
    now = datetime.now(UTC)
    with store.begin() as conn:
        for it in items:
            key = {
                "src": _identity(it["src"]),
                "dst": _identity(it["dst"]),
                "port": it["port"],
                "l4": it["l4"],
                "app": it.get("app") or "proto.unknown",
            }
            q = select(firewall_learned.c.pk, firewall_learned.c.count).where(
                *(getattr(firewall_learned.c, k) == v for k, v in key.items())
            )
            row = conn.execute(q).first()
            if row:
                conn.execute(
                    firewall_learned.update()
                    .where(firewall_learned.c.pk == row[0])
                    .values(count=row[1] + 1, last_seen=now)
                )
            else:
                conn.execute(
                    firewall_learned.insert().values(
                        **key,
                        src_endpoint=it["src"],
                        dst_endpoint=it["dst"],
                        count=1,
                        first_seen=now,
                        last_seen=now,
                    )
                )


def learned(store: Store) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                select(firewall_learned).order_by(firewall_learned.c.pk)
            ).mappings()
        ]


def set_quarantine(store: Store, workload: str, addresses: list[str], reason: str) -> None:
    """Record a quarantine; the reason (free text, or a rule's name) passes the masking gate."""
    reason = redact_text(reason)
    with store.begin() as conn:
        conn.execute(firewall_quarantine.delete().where(firewall_quarantine.c.workload == workload))
        conn.execute(
            firewall_quarantine.insert().values(
                workload=workload, addresses=addresses, reason=reason, since=datetime.now(UTC)
            )
        )
        bump(conn, "quarantine")


def clear_quarantine(store: Store, workload: str) -> None:
    with store.begin() as conn:
        gone = conn.execute(
            firewall_quarantine.delete().where(firewall_quarantine.c.workload == workload)
        ).rowcount
        if gone:
            bump(conn, "quarantine")


def mark_quarantine_applied(store: Store, workload: str, addresses: list[str]) -> bool:
    """An enforcer applied the recorded quarantine of ``workload`` on these addresses (the
    version does not change: what the agents follow is the same)."""
    with store.begin() as conn:
        return bool(
            conn.execute(
                firewall_quarantine.update()
                .where(firewall_quarantine.c.workload == workload)
                .values(addresses=addresses)
            ).rowcount
        )


def quarantined(store: Store) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return [dict(r) for r in conn.execute(select(firewall_quarantine)).mappings()]
