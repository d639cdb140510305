"""The leader's response rules over the events table (PostgreSQL, several replicas).

Every replica stores events; only the leader evaluates them, following the events table in commit
order (:func:`stockade.store.records.events_committed_after`) from a cursor kept in the store
(``controller_cursors``), so a new leader goes on where the last one stopped.

Delivery is **at least once, made harmless**: the cursor moves after each batch of events has
been handled; a leader that dies in the middle of a batch leaves its ``response.*`` events
stored after the cursor, and the next leader skips every event one of them answers. What could
still run twice is an action the dead leader was carrying out (a notification with its retries)
whose ``response.*`` event it had not stored yet; a quarantine done twice is the same quarantine.
A new leader also takes the running cooldowns from the stored response events (``on_claim``:
:meth:`ResponseService.remember_cooldowns`). The cursor is fenced by the leader's term: a replica
that lost the lock without knowing yet cannot move it, and stops at its next batch.

Not evaluated (as before the replicas): ``response.*`` events and what the controller's own
quarantine records (``firewall.*`` with source ``controller``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from stockade.api.leader import Leadership, SingletonJob
from stockade.api.tables import cursors
from stockade.model import Event, Severity
from stockade.store import Store
from stockade.store.records import (
    event_heads_committed_after,
    events_by_id,
    events_committed_after,
    events_held_back,
    oldest_open_transaction,
    response_triggers_after,
)

log = logging.getLogger("stockade.api")

CURSOR = "response"
BATCH = 200
# with ``wants``, a batch is this many events read by their heads (the few wanted read whole):
# fewer batches mean fewer moves of the cursor, each a committed write
HEADS_BATCH = 1000
# Committed events held back behind a transaction still open elsewhere in the cluster (whose end
# NOTIFYs nobody when it stored no event) are looked for again after this, doubling up to the
# second; past HELD_WARN seconds the transaction holding them is named in a warning.
HELD_RETRY_FIRST = 0.02
HELD_RETRY_LAST = 1.0
HELD_WARN = 30.0
SAFETY_POLL = 10.0  # seconds: a missed NOTIFY is caught up at the latest after this


def _own(event: Event) -> bool:
    """Events the response side made itself (they answer rules; they are not asked)."""
    return event.kind.startswith("response.") or (
        event.source == "controller" and event.kind.startswith("firewall.")
    )


class ResponseFollower:
    """Hands every event the store takes, from any replica, to ``handle`` once, on the leader."""

    def __init__(
        self,
        store: Store,
        leadership: Leadership,
        handle: Callable[[Event], Any],
        *,
        wants: Callable[[str, Severity], bool] | None = None,
        on_claim: Callable[[], object] | None = None,
        before_batch: Callable[[], object] | None = None,
        after_batch: Callable[[], object] | None = None,
        batch: int = BATCH,
    ) -> None:
        self.store = store
        self.leadership = leadership
        self.handle = handle
        # which events ``handle`` could act on, by kind and severity: the others are passed over
        # by their stored columns, never read whole (None: every event is read and handed over)
        self.wants = wants
        self.on_claim = on_claim  # this replica took the cursor (the responder's cooldowns)
        self.before_batch = before_batch  # the rules stored since the last batch are taken
        self.after_batch = after_batch  # what handling the batch kept is stored, before the cursor
        self.batch = batch
        self.job = SingletonJob(name="response-rules", run=self.catch_up, interval=SAFETY_POLL)
        leadership.on_notify.append(self.wake)
        self._term = 0  # the leadership term this follower has claimed the cursor for
        self._fenced = False  # the cursor was taken by a newer leader during our term
        self._db_term = 0
        self._position = (0, 0)
        self._done: set[str] = set()
        self._lock = threading.Lock()
        self.handled = 0
        self.passed_over = 0  # events no rule could match, by their kind and severity
        self._held_since: float | None = None  # monotonic: when events were first held back
        self._held_retry = HELD_RETRY_FIRST
        self._held_warned = False
        self._held_timer: threading.Timer | None = None
        self._short = False  # the last batch read was not full: caught up to the horizon

    def wake(self) -> None:
        """Events were stored (here, or by another replica's NOTIFY): follow them now."""
        self.job.wake.set()

    # ------------------------------------------------------------ the cursor

    def _claim(self) -> None:
        """This replica became the leader: take the cursor (raising its term) where it is."""
        c = cursors.c
        with self.store.begin() as conn:
            row = conn.execute(
                select(c.tx, c.seq, c.term).where(c.name == CURSOR).with_for_update()
            ).one()
            self._db_term = int(row.term) + 1
            conn.execute(
                update(cursors)
                .where(c.name == CURSOR)
                .values(
                    term=self._db_term,
                    replica=self.leadership.replica[:64],
                    updated_at=datetime.now(UTC),
                )
            )
        self._position = (int(row.tx), int(row.seq))
        self._done = response_triggers_after(self.store, self._position)
        if self.on_claim is not None:
            self.on_claim()
        self._term = self.leadership.term
        self._fenced = False
        log.warning(
            "replica %s follows the events from %s (term %d; %d already answered)",
            self.leadership.replica,
            self._position,
            self._db_term,
            len(self._done),
        )

    def _save(self, position: tuple[int, int]) -> bool:
        """Move the cursor; False when another leader's term has taken it (we were deposed)."""
        c = cursors.c
        with self.store.begin() as conn:
            moved = conn.execute(
                update(cursors)
                .where(c.name == CURSOR, c.term == self._db_term)
                .values(tx=position[0], seq=position[1], updated_at=datetime.now(UTC))
            ).rowcount
        if moved:
            self._position = position
        return bool(moved)

    # ------------------------------------------------------------ following

    def catch_up(self) -> None:
        """Handle every event committed since the cursor, batch by batch, while leading."""
        with self._lock:
            if self._term != self.leadership.term:
                self._claim()
            elif self._fenced:
                return  # not ours until this replica becomes the leader again
            while self.leadership.is_leader:
                if self.before_batch is not None:
                    self.before_batch()
                read, last = self._next_batch()
                if last is None:
                    self._look_again_if_held()
                    return
                for event in read:
                    if _own(event) or event.id in self._done:
                        continue
                    try:
                        self.handle(event)
                    except Exception:  # one bad event does not stop the rest
                        log.exception("response to event %s failed", event.id)
                    self.handled += 1
                if self.after_batch is not None:
                    self.after_batch()
                if not self._save(last):
                    log.warning(
                        "replica %s: another leader took the cursor", self.leadership.replica
                    )
                    self._fenced = True
                    return
                if self._short:
                    self._look_again_if_held()
                    return

    def _next_batch(self) -> tuple[list[Event], tuple[int, int] | None]:
        """The next batch after the cursor: the events to hand over, in commit order, and the
        position of the batch's last event (None: nothing committed after the cursor). With
        ``wants``, the batch is read by its heads first, and only the events wanted in full."""
        if self.wants is None:
            rows = events_committed_after(self.store, self._position, limit=self.batch)
            self._short = len(rows) < self.batch
            return [e for _, e in rows], (rows[-1][0] if rows else None)
        limit = max(self.batch, HEADS_BATCH)
        heads = event_heads_committed_after(self.store, self._position, limit=limit)
        self._short = len(heads) < limit
        if not heads:
            return [], None
        wanted: list[str] = []
        last = heads[-1][0]
        answers: dict[tuple[str, str], bool] = {}  # a batch holds few kinds and levels
        for i, (position, ident, kind, severity) in enumerate(heads):
            want = answers.get((kind, severity))
            if want is None:
                want = answers[kind, severity] = self.wants(kind, Severity.parse(severity))
            if want:
                wanted.append(ident)
                if len(wanted) == self.batch:  # a batch hands over at most ``batch`` events
                    last, self._short = position, False
                    heads = heads[: i + 1]
                    break
        self.passed_over += len(heads) - len(wanted)
        found = events_by_id(self.store, wanted) if wanted else {}
        return [found[i] for i in wanted if i in found], last

    def _look_again_if_held(self) -> None:
        """Caught up to the horizon: if committed events wait behind it, wake again soon."""
        if not events_held_back(self.store, self._position):
            self._held_since, self._held_retry, self._held_warned = None, HELD_RETRY_FIRST, False
            return
        now = time.monotonic()
        if self._held_since is None:
            self._held_since = now
        elif now - self._held_since >= HELD_WARN and not self._held_warned:
            self._held_warned = True
            log.warning(
                "replica %s: events stored %.0f s ago wait behind a transaction still open in "
                "the PostgreSQL cluster (%s); responses to them follow when it ends",
                self.leadership.replica,
                now - self._held_since,
                oldest_open_transaction(self.store) or "not found",
            )
        if self._held_timer is not None and self._held_timer.is_alive():
            return
        self._held_timer = threading.Timer(self._held_retry, self.wake)
        self._held_timer.daemon = True
        self._held_timer.start()
        self._held_retry = min(self._held_retry * 2, HELD_RETRY_LAST)
