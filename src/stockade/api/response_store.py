"""The response rules and notification targets in force, kept in the store so that every
controller replica follows the same ones.

One document of each kind (:data:`RULES`, :data:`TARGETS`) lives in ``response_documents``,
stamped on the shared configuration sequence (:mod:`stockade.store.versions`) in the transaction
that writes it: a replica compares the stamps with the versions it has taken
(:meth:`stockade.api.responses.ResponseService.refresh`) and reads only what changed.

A document is validated whole, as it will be stored, before anything is written: the rules masked
and in canonical form (so a diff compares settings, not layout), their capture filters compiled by
libpcap; the targets masked, with the settings of every kind checked. ``--rules FILE`` and
``--targets FILE`` only seed the store (:func:`seed`: written when it holds none).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update

from stockade.api.capture_requests import check_rule_filters
from stockade.api.tables import response_documents
from stockade.events.notify import Target
from stockade.events.rules import RuleSet, dump_rules, parse_rules_file
from stockade.firewall.policy.files import diff_lines
from stockade.model.redact import redact_text
from stockade.store import Store
from stockade.store.versions import bump

RULES = "response_rules"
TARGETS = "notification_targets"
RULES_DOC = "response-rules"  # the name errors give the document: "response-rules:7: ..."
TARGETS_DOC = "notification-targets"


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    text: str
    version: int
    updated_at: datetime
    updated_by: str


def rules_document(text: str, *, name: str = RULES_DOC) -> tuple[RuleSet, str]:
    """The rules of a ResponseRules document and the canonical, masked text to store; a
    ConfigError (one line, with the document's line) when it is not valid."""
    doc = parse_rules_file(redact_text(text), name=name)
    rules = RuleSet.from_file(doc)
    check_rule_filters(rules)
    return rules, dump_rules(doc)


def targets_document(text: str, *, name: str = TARGETS_DOC) -> tuple[list[Target], str]:
    """The targets of a targets document and the masked text to store (as written: it may name
    environment variables holding secrets, which each replica reads from its own environment)."""
    from stockade.events.notify.targets import parse_targets  # the notifiers, on first use

    stored = redact_text(text)
    return parse_targets(stored, name=name), stored


def load(store: Store, name: str) -> Stored | None:
    t = response_documents.c
    with store.connect() as conn:
        row = conn.execute(
            select(t.text, t.version, t.updated_at, t.updated_by).where(t.name == name)
        ).first()
    if row is None:
        return None
    at = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
    return Stored(text=row.text, version=int(row.version), updated_at=at, updated_by=row.updated_by)


def save(store: Store, name: str, text: str, *, by: str) -> int:
    """Make ``text`` (validated already) the document in force; returns its version."""
    t = response_documents
    with store.begin() as conn:
        version = bump(conn, name)  # holds the sequence's row: writers of a kind go one by one
        values = {
            "text": text,
            "version": version,
            "updated_at": datetime.now(UTC),
            "updated_by": by[:80],
        }
        if not conn.execute(update(t).where(t.c.name == name).values(**values)).rowcount:
            conn.execute(insert(t).values(name=name, **values))
    return version


class _Present(Exception):
    """The document was there already (the seeding transaction is rolled back)."""


def seed(store: Store, name: str, text: str, *, by: str) -> int | None:
    """Store ``text`` only when the store holds no document ``name`` yet (replicas starting
    together seed once); returns its version, or None when one was there."""
    t = response_documents
    try:
        with store.begin() as conn:
            version = bump(conn, name)  # taken first: a second seeder waits here, then sees ours
            if conn.execute(select(t.c.version).where(t.c.name == name)).first() is not None:
                raise _Present
            conn.execute(
                insert(t).values(
                    name=name,
                    text=text,
                    version=version,
                    updated_at=datetime.now(UTC),
                    updated_by=by[:80],
                )
            )
    except _Present:
        return None
    return version


def diff(old: Stored | None, new_text: str) -> dict[str, object]:
    """What making ``new_text`` the document would change: a unified diff of the stored text."""
    lines = diff_lines(old.text if old else "", new_text, old_name="running", new_name="document")
    return {"version": old.version if old else 0, "changed": bool(lines), "diff": "\n".join(lines)}


def seed_files(
    store: Store,
    *,
    rules: str | None,
    targets: str | None,
    rules_name: str,
    targets_name: str,
    by: str,
) -> dict[str, int | None]:
    """Validate the documents read from ``--rules`` and ``--targets`` (a bad one is a
    ConfigError naming the file) and store each one the store holds none of. Returns, per kind
    given, the version seeded (None: the store's own document stays in force)."""
    out: dict[str, int | None] = {}
    if rules is not None:
        out[RULES] = seed(store, RULES, rules_document(rules, name=rules_name)[1], by=by)
    if targets is not None:
        out[TARGETS] = seed(store, TARGETS, targets_document(targets, name=targets_name)[1], by=by)
    return out
