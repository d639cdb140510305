"""Which controller replica does the singleton work, and the worker that does it.

Several replicas on one PostgreSQL store answer the API and take agents' batches alike; the work
that must happen once (response rules, and any periodic job registered as a
:class:`SingletonJob`: retention, registry watch, schedules) runs only on the replica holding the
store's leader lock:

- **PostgreSQL**: a session-level advisory lock, ``pg_try_advisory_lock(LOCK_CLASS, key)`` (the key
  is the store's schema, so stores in several schemas of one database each have a leader), held on
  one dedicated connection. The lock lives and dies with that session: when the replica dies, its
  connection closes and PostgreSQL frees the lock, and another replica (trying every
  ``retry`` seconds) takes it. The leader waits for ``NOTIFY stockade_events`` on that connection
  (every replica's store sends one with each transaction of events) and checks the connection
  every ``check`` seconds; a broken connection means the lock is gone: the replica steps down at
  once and tries to take it again on a new connection.
- **SQLite**: one file, one controller: the process is always the leader.

:class:`SingletonWorker` runs each job on a thread of its own, only while this replica leads:
when it was woken (the job's ``wake``) or its ``interval`` passed. A job that raises is logged and
runs again at its next turn.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from stockade.store import Store

log = logging.getLogger("stockade.api")

LOCK_CLASS = 0x53544B44  # "STKD": the first key of the advisory lock
CHANNEL = "stockade_events"  # NOTIFY'd by the store with each transaction of events (records.py)


def default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"[:60]


class Leadership(ABC):
    """Whether this replica leads; listeners are called (on any thread) when that changes."""

    def __init__(self, replica: str) -> None:
        self.replica = replica
        self.on_change: list[Callable[[], None]] = []
        self.on_notify: list[Callable[[], None]] = []
        self._leader = False
        self._term = 0  # how many times this replica became the leader

    @property
    def is_leader(self) -> bool:
        return self._leader

    @property
    def term(self) -> int:
        return self._term

    @abstractmethod
    def leader(self) -> str | None:
        """The replica holding the lock now (None when nobody does)."""

    @abstractmethod
    def start(self) -> None:
        """Start leading, or trying to."""

    @abstractmethod
    def close(self) -> None:
        """Stop leading (the lock is freed)."""

    def _set(self, leader: bool) -> None:
        if leader == self._leader:
            return
        if leader:
            self._term += 1
        self._leader = leader
        log.warning(
            "controller replica %s %s", self.replica, "leads" if leader else "no longer leads"
        )
        for listener in list(self.on_change):
            listener()


class SoleLeader(Leadership):
    """SQLite: one file, one controller; the process leads from its start."""

    def leader(self) -> str | None:
        return self.replica if self.is_leader else None

    def start(self) -> None:
        self._set(True)

    def close(self) -> None:
        self._set(False)


class AdvisoryLeadership(Leadership):
    """PostgreSQL: the replica holding the session advisory lock on its dedicated connection."""

    def __init__(
        self, store: Store, replica: str, *, retry: float = 1.0, check: float = 1.0
    ) -> None:
        super().__init__(replica)
        self.store = store
        self.retry = retry
        self.check = check
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._schema = self._current_schema()
        self.key = zlib.crc32(self._schema.encode()) & 0x7FFFFFFF

    def _current_schema(self) -> str:
        with self.store.connect() as conn:
            return str(conn.execute(text("SELECT current_schema()")).scalar_one())

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="leader-lock", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.check + self.retry + 5)
        self._set(False)

    def leader(self) -> str | None:
        q = text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
            "AND l.classid::bigint = :k1 AND l.objid::bigint = :k2 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        with self.store.connect() as conn:
            name = conn.execute(q, {"k1": LOCK_CLASS, "k2": self.key}).scalar_one_or_none()
        return str(name).removeprefix("stockade:") if name else None

    # ------------------------------------------------------------ the lock's thread

    def _run(self) -> None:
        while not self._stop.is_set():
            raw: Any = None
            try:
                raw = self.store.engine.raw_connection()
                self._hold(raw.driver_connection)
            except Exception as exc:  # a lost connection: the lock went with it
                log.warning(
                    "controller replica %s: leader lock connection lost: %s",
                    self.replica,
                    " ".join(str(exc).split())[:200],
                )
            finally:
                self._set(False)
                if raw is not None:
                    # never back to the pool: a session still holding the lock must close
                    raw.invalidate()
            self._stop.wait(self.retry)

    def _hold(self, pg: Any) -> None:
        """Take the lock on ``pg`` (waiting for it), then listen until the connection breaks."""
        pg.autocommit = True
        pg.execute(
            "SELECT set_config('application_name', %s, false)", [f"stockade:{self.replica}"[:63]]
        )
        while not self._stop.is_set():
            got = pg.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_CLASS, self.key])
            if got.fetchone()[0]:
                break
            self._stop.wait(self.retry)
        else:
            return
        pg.execute(f"LISTEN {CHANNEL}")
        self._set(True)
        while not self._stop.is_set():
            for note in pg.notifies(timeout=self.check):
                if note.payload == self._schema:
                    for listener in list(self.on_notify):
                        listener()
            pg.execute("SELECT 1")  # raises when the connection (and the lock) is gone


def leadership_for(store: Store, replica: str | None = None) -> Leadership:
    """The leader lock of ``store``: advisory on PostgreSQL, the sole process on SQLite."""
    replica = replica or default_replica_id()
    if store.dialect == "postgresql":
        return AdvisoryLeadership(store, replica)
    return SoleLeader(replica)


# ---------------------------------------------------------------- the singleton worker


@dataclass(frozen=True, slots=True, kw_only=True)
class SingletonJob:
    """Work done by the leader only: ``run()`` every ``interval`` seconds, and at once when
    ``wake`` is set (and when this replica becomes the leader)."""

    name: str
    run: Callable[[], None]
    interval: float
    wake: threading.Event = field(default_factory=threading.Event)


class SingletonWorker:
    """Runs the jobs on the replica that leads, each on a thread of its own."""

    def __init__(self, leadership: Leadership, jobs: Sequence[SingletonJob] = ()) -> None:
        self.leadership = leadership
        self.jobs = list(jobs)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        leadership.on_change.append(self._wake_all)

    def start(self) -> None:
        for job in self.jobs:
            t = threading.Thread(target=self._loop, args=(job,), name=f"singleton-{job.name}")
            t.daemon = True
            t.start()
            self._threads.append(t)
        self.leadership.start()

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake_all()
        for t in self._threads:
            t.join(timeout)
        self.leadership.close()

    def _wake_all(self) -> None:
        for job in self.jobs:
            job.wake.set()

    def _loop(self, job: SingletonJob) -> None:
        while not self._stop.is_set():
            job.wake.wait(job.interval)
            job.wake.clear()
            if self._stop.is_set() or not self.leadership.is_leader:
                continue
            try:
                job.run()
            except Exception:  # the job runs again at its next turn; the failure is logged
                log.exception("singleton job %s failed", job.name)
