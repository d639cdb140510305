"""An agent's link to the controller: events in, batches out over HTTPS, a spool on disk between.

``Reporter.add`` masks and validates an event and buffers it; a sender thread cuts the buffer into
batches (at most ``batch_events`` events, ``MAX_BATCH_BYTES``, or ``interval`` seconds old), writes
each to the :class:`~stockade.events.spool.Spool` (fsync'd) and then posts the spool, oldest batch
first, to ``POST /api/v1/agents/events``, deleting a batch once the controller answered 200. So:

- while the controller is unreachable batches pile up in the spool (bounded; drops counted) and
  posting is retried with exponential backoff; when it answers, the spool drains in order;
- a crash between a post and the deletion sends the batch again: event ids make that harmless
  (the controller counts duplicates and stores nothing twice);
- events dropped because the spool was full are reported as an ``agent.dropped`` event on the next
  successful post, and on stderr when they are dropped;
- ``close`` flushes within a deadline; what is left stays in the spool for the next agent run
  (``stockade agent flush``);
- with ``heartbeat`` (seconds), a long-running agent that has had nothing to send for that long
  posts an empty batch: the controller counts every batch as the agent's heartbeat.

``add_connection`` queues a connection record (``ConnectionRecord.to_dict()``) the same way: it
travels in the same batches and spool files (a line ``{"connection": RECORD}``) and is posted in
the batch's ``connections``; the controller stores it once by its id.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from stockade.events.ingest import MAX_EVENTS, AgentInfo
from stockade.events.spool import Spool, writer_pid
from stockade.model import Event, Severity
from stockade.model.errors import ConfigError, InputError, StockadeError, UsageError
from stockade.model.redact import redact, redact_text
from stockade.store.rows import OWN_IDS
from stockade.workers import process_exists

MAX_BATCH_BYTES = (
    4 * 1024 * 1024
)  # half the controller's limit: a batch is never refused as too big
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
INGEST_PATH = "/api/v1/agents/events"
_CONNECTION_LINE = b'{"connection":'  # a spool line holding a connection record, not an event
MAX_RECORD_BYTES = 64 * 1024  # the controller's bound on one connection record
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ControllerLink:
    """Where the controller is and how to talk to it."""

    url: str
    token: str
    ca: Path | None = None
    timeout: float = 10.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise UsageError(f"--controller: expected https://HOST[:PORT], not {self.url!r}")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
            # the token would cross the network in clear
            raise UsageError("--controller: plain http is only allowed to a loopback address")
        if not self.token or not self.token.isprintable() or " " in self.token:
            raise UsageError("--token: expected the agent token `controller token create` printed")
        if self.ca is not None and not self.ca.is_file():
            raise UsageError(f"--controller-ca: {self.ca} is not a file")

    def endpoint(self) -> str:
        return self.url.rstrip("/") + INGEST_PATH

    def verify(self) -> ssl.SSLContext | bool:
        if self.ca is None:
            return True
        try:
            return ssl.create_default_context(cafile=str(self.ca))
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"--controller-ca: cannot load {self.ca}: {exc}") from None

    def client(self, headers: dict[str, str] | None = None) -> httpx.Client:
        """An HTTP client for the controller: its CA, the agent token and ``headers`` on every
        request, the link's timeout (at most 5 s of it to connect)."""
        return httpx.Client(
            verify=self.verify(),
            headers={"Authorization": f"Bearer {self.token}", **(headers or {})},
            timeout=httpx.Timeout(self.timeout, connect=min(5.0, self.timeout)),
        )


@dataclass(slots=True)
class ReportStats:
    taken: int = 0  # events given to the reporter
    accepted: int = 0  # stored by the controller
    duplicates: int = 0  # already there (a batch sent again)
    connections: int = 0  # connection records stored by the controller
    dropped: int = 0  # lost here: spool full, or refused by the controller
    pending: int = 0  # left in the spool at close
    errors: list[str] = field(default_factory=list)


# posts one spooled batch may cost when the controller refuses some of it: one bad line in a
# thousand is found in 20; past the budget, what is left of the batch is dropped (and counted)
_MAX_POSTS_PER_BATCH = 64


class _Refused(Exception):
    """The controller refused the batch for good (400, 413): resending cannot help."""


def _stderr(message: str) -> None:
    import sys

    sys.stderr.write(f"stockade: {message}\n")
    sys.stderr.flush()


class Reporter:
    """Send events to the controller. Use as a context manager (it starts one thread)."""

    def __init__(
        self,
        link: ControllerLink,
        agent: AgentInfo,
        spool: Spool,
        *,
        batch_events: int = 500,
        interval: float = 1.0,
        notice: Callable[[str], None] = _stderr,
        heartbeat: float | None = None,
    ) -> None:
        if not 1 <= batch_events <= MAX_EVENTS:
            raise UsageError(f"a batch holds 1 to {MAX_EVENTS} events")
        self.link = link
        self.agent = agent
        self.spool = spool
        self.batch_events = batch_events
        self.interval = interval
        self.notice = notice
        self.heartbeat = heartbeat
        self._last_post = 0.0  # monotonic time of the last answered post (0: never)
        self.stats = ReportStats()
        self._agent_json = json.dumps(
            {
                "name": agent.name,
                "node": agent.node,
                "version": agent.version,
                "capabilities": list(agent.capabilities),
            }
        ).encode()
        self._cond = threading.Condition()
        self._buffer: list[bytes] = []
        self._buffer_since = 0.0
        self._closing = False
        self._deadline: float | None = None
        self._backlog = True  # the spool may hold batches from an earlier run
        self._retry_at = 0.0
        self._failures = 0
        self._client = link.client(
            {"Content-Type": "application/json", "User-Agent": f"stockade-agent/{agent.version}"}
        )
        self._thread = threading.Thread(target=self._run, name="stockade-reporter", daemon=True)

    def start(self) -> Reporter:
        """Start sending (the spool's backlog first); :meth:`close` sends what is left and stops."""
        self._thread.start()
        return self

    def __enter__(self) -> Reporter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The producer side.

    def add(self, event: Event) -> None:
        """Queue one event (masked by the gate; refused locally if the controller would refuse it)."""
        doc = redact(event.to_dict(), keep=OWN_IDS)
        try:
            Event.from_dict(doc)
            line = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
        except (InputError, ValueError) as exc:
            self.stats.dropped += 1
            self.notice(f"event {event.id} ({event.kind}) not sent to the controller: {exc}")
            return
        self._queue(line)

    def add_all(self, events: Iterable[Event]) -> None:
        for e in events:
            self.add(e)

    def add_connection(self, record: dict[str, Any]) -> None:
        """Queue one connection record (masked by the gate; its id kept, it makes resending
        harmless). One the controller would refuse as too large is dropped here, counted."""
        doc = redact(record, keep=OWN_IDS)
        try:
            line = json.dumps({"connection": doc}, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            self.stats.dropped += 1
            self.notice(f"connection {record.get('id')} not sent to the controller: {exc}")
            return
        if len(line) > MAX_RECORD_BYTES:
            self.stats.dropped += 1
            self.notice(f"connection {record.get('id')} not sent: larger than {MAX_RECORD_BYTES}")
            return
        self._queue(line.encode())

    def _queue(self, line: bytes) -> None:
        with self._cond:
            self.stats.taken += 1
            if not self._buffer:
                self._buffer_since = time.monotonic()
            self._buffer.append(line)
            if len(self._buffer) >= self.batch_events:
                self._cond.notify()

    def close(self, timeout: float = 10.0) -> ReportStats:
        """Send what is buffered and spooled, for at most ``timeout`` seconds; the rest stays in
        the spool (said on stderr)."""
        with self._cond:
            if self._closing:
                return self.stats
            self._closing = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout + 1.0)
        with self._cond:  # the thread died or missed the deadline: keep its buffer on disk
            rest, self._buffer = self._buffer, []
        self._spool_lines(rest)
        self._client.close()
        self.stats.pending = self.spool.pending_events()
        if self.stats.pending:
            self.notice(
                f"{self.stats.pending} events wait in the spool {self.spool.root}; the next "
                "command with --controller (or `stockade agent flush`) sends them"
            )
        return self.stats

    # The sender thread.

    def _due(self, now: float) -> bool:
        if len(self._buffer) >= self.batch_events:
            return True
        if self._buffer and now - self._buffer_since >= self.interval:
            return True
        if self._backlog and now >= self._retry_at:
            return True
        return self._beat_due(now)

    def _beat_due(self, now: float) -> bool:
        return (
            self.heartbeat is not None
            and now >= self._retry_at
            and now - self._last_post >= self.heartbeat
        )

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closing:
                    now = time.monotonic()
                    if self._due(now):
                        break
                    waits = [self.interval]
                    if self._buffer:
                        waits.append(self._buffer_since + self.interval - now)
                    if self._backlog:
                        waits.append(self._retry_at - now)
                    if self.heartbeat is not None:
                        waits.append(max(self._retry_at, self._last_post + self.heartbeat) - now)
                    self._cond.wait(max(0.01, min(waits)))
                lines, self._buffer = self._buffer, []
                closing = self._closing
            try:
                self._spool_lines(lines)
                if closing or time.monotonic() >= self._retry_at:
                    self._drain(final=closing)
            except StockadeError as exc:
                self._note_error(str(exc))
            if closing:
                return
            if self._beat_due(time.monotonic()):
                self._beat()

    def _beat(self) -> None:
        """An empty batch: the controller records the agent as up (and its capabilities)."""
        try:
            self._post([])
        except (_Refused, httpx.HTTPError, OSError, StockadeError) as exc:
            self._failed(exc)
        else:
            self._recovered()

    def _spool_lines(self, lines: list[bytes]) -> None:
        batch: list[bytes] = []
        size = 0
        for line in lines:
            if batch and (len(batch) >= self.batch_events or size + len(line) > MAX_BATCH_BYTES):
                self._put(batch)
                batch, size = [], 0
            batch.append(line)
            size += len(line) + 1
        if batch:
            self._put(batch)

    def _put(self, batch: list[bytes]) -> None:
        _, dropped = self.spool.put(batch)
        self._backlog = True
        if dropped:
            self.stats.dropped += dropped
            self.notice(
                f"the spool {self.spool.root} is full ({self.spool.max_bytes} bytes): dropped "
                f"{dropped} events (the count is reported to the controller as agent.dropped)"
            )

    def _drain(self, *, final: bool) -> None:
        """Post the spool's batches in order; stop at the first failure (and back off)."""
        lock = os.open(self.spool.root / ".drain", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:  # one process drains a spool at a time; the others come back later
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if final else fcntl.LOCK_NB))
            except BlockingIOError:
                self._retry_at = time.monotonic() + self.interval
                return
            self._drain_locked(final=final)
        finally:
            os.close(lock)

    def _drain_locked(self, *, final: bool) -> None:
        skipped = False
        for path in self.spool.batches():
            if final and self._deadline is not None and time.monotonic() >= self._deadline:
                return
            if not process_exists(writer_pid(path)) or writer_pid(path) == os.getpid():
                lines = self.spool.read(path)
            elif path.stat().st_mtime < time.time() - 60:
                lines = self.spool.read(path)  # a live process that does not drain its own
            else:
                skipped = True  # another running agent sends it
                continue
            if lines is None:
                continue
            try:
                refused, why = self._send(lines, [_MAX_POSTS_PER_BATCH])
            except (httpx.HTTPError, OSError, StockadeError) as exc:
                self._failed(exc)
                return
            self.spool.remove(path)
            if refused:
                self.stats.dropped += refused
                self.spool.add_dropped(refused)
                self._note_error(
                    f"the controller refused {refused} of a batch of {len(lines)} events: {why}"
                )
            if refused < len(lines):
                self._recovered()
        self._backlog = skipped
        self._report_drops()

    def _send(self, lines: list[bytes], posts: list[int]) -> tuple[int, str]:
        """Post ``lines``; a batch the controller refuses for good (one event or record it cannot
        take) is halved and each half sent again, so that event alone is lost, not the other 999
        with it. ``posts`` is what is left of the batch's budget of posts (a controller refusing
        everything costs that many, then the rest is dropped). Returns the lines refused and the
        controller's first reason."""
        posts[0] -= 1
        try:
            self._post(lines)
            return 0, ""
        except _Refused as exc:
            if len(lines) == 1 or posts[0] < 2:
                return len(lines), str(exc)
            why = str(exc)
        half = len(lines) // 2
        first, why_first = self._send(lines[:half], posts)
        second, why_second = self._send(lines[half:], posts)
        return first + second, why_first or why_second or why

    def _post(self, lines: list[bytes]) -> None:
        events = [line for line in lines if not line.startswith(_CONNECTION_LINE)]
        records = [
            line[len(_CONNECTION_LINE) : -1] for line in lines if line.startswith(_CONNECTION_LINE)
        ]
        body = b'{"agent":' + self._agent_json + b',"events":[' + b",".join(events) + b"]"
        if records:  # only then: a controller without the graph still takes events-only batches
            body += b',"connections":[' + b",".join(records) + b"]"
        body += b"}"
        timeout = None
        if self._deadline is not None:
            timeout = max(0.1, min(self.link.timeout, self._deadline - time.monotonic()))
        response = self._client.post(
            self.link.endpoint(),
            content=body,
            timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
        )
        if response.status_code == 200:
            self._last_post = time.monotonic()
            try:
                answer = response.json()
                self.stats.accepted += int(answer.get("accepted", 0))
                self.stats.duplicates += int(answer.get("duplicates", 0))
                self.stats.connections += int((answer.get("connections") or {}).get("accepted", 0))
            except (ValueError, TypeError, AttributeError):
                pass  # stored; only the counts are unknown
            return
        detail = _detail(response)
        if response.status_code in (400, 413, 422):
            raise _Refused(f"{response.status_code} {detail}")
        if response.status_code in (401, 403):
            raise StockadeError(
                f"the controller refused the token ({response.status_code} {detail}): "
                "check --token (an agent token from `stockade controller token create --role agent`)"
            )
        raise StockadeError(f"the controller answered {response.status_code} {detail}")

    def _failed(self, exc: BaseException) -> None:
        self._failures += 1
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self._failures - 1))
        self._retry_at = time.monotonic() + delay * random.uniform(0.5, 1.0)
        self._backlog = True
        if self._failures == 1:
            reason = str(exc) or type(exc).__name__
            self.notice(
                f"controller {self.link.url} unreachable ({reason}); spooling events in "
                f"{self.spool.root} and retrying"
            )

    def _recovered(self) -> None:
        if self._failures:
            self.notice(f"controller {self.link.url} reachable again; sending the spool")
        self._failures = 0
        self._retry_at = 0.0

    def _note_error(self, message: str) -> None:
        self.stats.errors.append(message)
        self.notice(message)

    def _report_drops(self) -> None:
        n = self.spool.dropped()
        if not n:
            return
        event = Event(
            kind="agent.dropped",
            severity=Severity.MEDIUM,
            source="agent",
            node=self.agent.node,
            message=f"agent {self.agent.name} dropped {n} events: its spool was full or "
            "the controller refused them",
            data={"dropped": n, "agent": self.agent.name},
        )
        line = json.dumps(redact(event.to_dict(), keep=OWN_IDS), separators=(",", ":")).encode()
        try:
            self._post([line])
        except (_Refused, httpx.HTTPError, OSError, StockadeError):
            return  # still counted on disk: reported by the next successful post
        self.spool.settle_dropped(n)
        self.notice(f"reported {n} dropped events to the controller (agent.dropped)")


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    text = detail if isinstance(detail, str) else response.text
    # said in a notice and kept in the stats: the controller may quote the line it refused (one
    # damaged on disk, or written by another version), so it passes the masking gate too
    return redact_text(" ".join(text.split())[:200])
