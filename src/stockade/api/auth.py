"""Who is calling: API tokens, users with passwords, sessions, roles; and the audit trail.

- **Tokens** (``stk_`` + 43 random URL-safe characters, 256 bits) are shown once and stored as
  their SHA-256: a secret that random cannot be guessed, so a fast digest is enough and every
  agent request is checked in microseconds. Revoked tokens stop working at once.
- **Passwords** are stored as argon2id hashes (``argon2-cffi`` defaults); a login with an unknown
  name costs the same hash, so the answer time does not tell which names exist.
- **Sessions**: a login returns a random session id in a cookie; the store keeps its SHA-256 and an
  expiry.
- **Roles**: ``admin`` > ``operator`` > ``reader`` (each may do what the next may), and ``agent``,
  which may only report events and heartbeats.

Every change is an ``audit.*`` event (who, what, before, after), stored through the masking gate.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from stockade.api.tables import sessions, tokens, users
from stockade.model import Event, InputError, Severity, UsageError
from stockade.model.redact import redact_text
from stockade.store import Store
from stockade.store.records import record_events

ROLES = ("admin", "operator", "reader", "agent")
# What each role may do, as the set of roles whose rights it includes.
INCLUDES = {
    "admin": {"admin", "operator", "reader"},
    "operator": {"operator", "reader"},
    "reader": {"reader"},
    "agent": {"agent"},
}
TOKEN_PREFIX = "stk_"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")
MAX_PASSWORD = 1024
MIN_PASSWORD = 12

Sink = Callable[[Event], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """The caller of one request."""

    name: str
    role: str
    via: str  # "token", "session" or "cli"

    @property
    def who(self) -> str:
        return f"{self.via}:{self.name}"

    def may(self, role: str) -> bool:
        return role in INCLUDES[self.role]


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def check_name(name: str, what: str) -> str:
    """``name`` when it may name a user or token; a name the masking gate would change (a card
    number or an SSN in it) is refused rather than stored masked, which would name nobody."""
    if not _NAME_RE.match(name):
        shown = redact_text(name[:80])
        raise UsageError(f"{what} name must be 1-64 of A-Z a-z 0-9 _ . @ - (got {shown!r})")
    if redact_text(name) != name:
        raise UsageError(f"{what} name must not hold a card number or an SSN")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UsageError(f"unknown role {role[:40]!r} (expected one of: {', '.join(ROLES)})")
    return role


def audit(
    store: Store,
    actor: Principal,
    what: str,
    *,
    before: Any = None,
    after: Any = None,
    severity: Severity = Severity.NEGLIGIBLE,
    message: str | None = None,
    sink: Sink | None = None,
) -> Event:
    """Record one ``audit.<what>`` event: who did what, and the state before and after; ``sink``
    (the controller's response rules) is handed the stored event."""
    event = Event(
        kind=f"audit.{what}",
        message=message or f"{actor.who} {what.replace('_', ' ')}",
        severity=severity,
        source="controller",
        data={"who": actor.who, "role": actor.role, "before": before, "after": after},
        action=what,
    )
    record_events(store, [event])
    if sink is not None:
        sink(event)
    return event


# ---------------------------------------------------------------- tokens


def create_token(
    store: Store, *, name: str, role: str, actor: Principal, sink: Sink | None = None
) -> tuple[dict[str, Any], str]:
    """A new token: its public description and the secret, which is shown once and never kept."""
    check_name(name, "token")
    check_role(role)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = {
        "id": secrets.token_hex(8),
        "name": name,
        "role": role,
        "secret_sha256": _sha256(secret),
        "created_at": datetime.now(UTC),
        "created_by": actor.who,
        "revoked_at": None,
    }
    with store.begin() as conn:
        conn.execute(insert(tokens), [row])
    info = _token_info(row)
    audit(store, actor, "token_created", after=info, sink=sink)
    return info, secret


def _token_info(row: Any) -> dict[str, Any]:
    def iso(t: datetime | None) -> str | None:
        return None if t is None else (t if t.tzinfo else t.replace(tzinfo=UTC)).isoformat()

    return {
        "id": row["id"],
        "name": row["name"],
        "role": row["role"],
        "created_at": iso(row["created_at"]),
        "created_by": row["created_by"],
        "revoked_at": iso(row["revoked_at"]),
    }


def list_tokens(store: Store) -> list[dict[str, Any]]:
    with store.connect() as conn:
        rows = conn.execute(select(tokens).order_by(tokens.c.created_at)).mappings().all()
    return [_token_info(r) for r in rows]


def revoke_token(
    store: Store, token_id: str, *, actor: Principal, sink: Sink | None = None
) -> dict[str, Any] | None:
    """Revoke a token; its description after, or None when there is no such token."""
    with store.begin() as conn:
        row = conn.execute(select(tokens).where(tokens.c.id == token_id)).mappings().first()
        if row is None:
            return None
        before = _token_info(row)
        if row["revoked_at"] is None:
            conn.execute(
                update(tokens).where(tokens.c.id == token_id).values(revoked_at=datetime.now(UTC))
            )
        after_row = conn.execute(select(tokens).where(tokens.c.id == token_id)).mappings().one()
    after = _token_info(after_row)
    audit(store, actor, "token_revoked", before=before, after=after, sink=sink)
    return after


def principal_for_token(store: Store, secret: str) -> Principal | None:
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    with store.connect() as conn:
        row = (
            conn.execute(
                select(tokens.c.name, tokens.c.role).where(
                    tokens.c.secret_sha256 == _sha256(secret), tokens.c.revoked_at.is_(None)
                )
            )
            .mappings()
            .first()
        )
    return None if row is None else Principal(name=row["name"], role=row["role"], via="token")


# ---------------------------------------------------------------- users and sessions


def _hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher()


_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = _hasher().hash(secrets.token_urlsafe(16))
    return _DUMMY_HASH


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UsageError(f"a password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def add_user(
    store: Store,
    *,
    name: str,
    role: str,
    password: str,
    actor: Principal,
    sink: Sink | None = None,
) -> dict[str, Any]:
    check_name(name, "user")
    check_role(role)
    if role == "agent":
        raise UsageError("users cannot have the agent role (agents use tokens)")
    check_password(password)
    row = {
        "name": name,
        "password_hash": _hasher().hash(password),
        "role": role,
        "created_at": datetime.now(UTC),
    }
    try:
        with store.begin() as conn:
            conn.execute(insert(users), [row])
    except IntegrityError:
        raise InputError(f"user {name!r} exists already") from None
    info = {"name": name, "role": role, "created_at": row["created_at"].isoformat()}
    audit(store, actor, "user_added", after=info, sink=sink)
    return info


def list_users(store: Store) -> list[dict[str, Any]]:
    with store.connect() as conn:
        rows = conn.execute(select(users).order_by(users.c.name)).mappings().all()
    return [{"name": r["name"], "role": r["role"]} for r in rows]


def login(store: Store, name: str, password: str, *, hours: float) -> tuple[str, Principal] | None:
    """A new session for a correct name and password (its secret and the user), else None."""
    from argon2.exceptions import InvalidHashError, VerificationError

    with store.connect() as conn:
        row = conn.execute(select(users).where(users.c.name == name)).mappings().first()
    hashed = row["password_hash"] if row is not None else _dummy_hash()
    try:
        _hasher().verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with store.begin() as conn:
        conn.execute(delete(sessions).where(sessions.c.expires_at < now))
        conn.execute(
            insert(sessions),
            [
                {
                    "secret_sha256": _sha256(secret),
                    "user_name": name,
                    "created_at": now,
                    "expires_at": now + timedelta(hours=hours),
                }
            ],
        )
    return secret, Principal(name=name, role=row["role"], via="session")


def principal_for_session(store: Store, secret: str) -> Principal | None:
    if len(secret) > 200:
        return None
    now = datetime.now(UTC)
    with store.connect() as conn:
        row = (
            conn.execute(
                select(users.c.name, users.c.role)
                .select_from(sessions.join(users, users.c.name == sessions.c.user_name))
                .where(sessions.c.secret_sha256 == _sha256(secret), sessions.c.expires_at > now)
            )
            .mappings()
            .first()
        )
    return None if row is None else Principal(name=row["name"], role=row["role"], via="session")


def logout(store: Store, secret: str) -> None:
    with store.begin() as conn:
        conn.execute(delete(sessions).where(sessions.c.secret_sha256 == _sha256(secret)))
