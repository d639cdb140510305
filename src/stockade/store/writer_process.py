"""Storing a server's events from a child process, so the serving process spends neither a core
nor its interpreter lock on the database.

:class:`EventStoreProcess` is an :class:`~stockade.store.writer.EventWriter` sink: each batch the
writer thread hands it is pickled and written to the child's stdin (a pipe of 1 MiB). The child
(``python -m stockade.store.writer_process``) runs at a lower CPU priority (nice +10: it takes what
the serving processes leave; under the normal scheduling policy even when its parent runs under
a real-time one) and stores each batch as it arrives with the
writer's own halving store (an event the database refuses is the only one lost, counted and
logged, masked), and on end of input (the server stopped, or died) stores what it has read and
exits. When the pipe has no room for a batch (the child is behind: a saturated server on a busy
machine), the batch is stored by ``overflow`` in the serving process, as it was before the child,
so storage never falls further behind than the pipe holds (at nice +10 alone, 9,000 of 58,000
events were still unstored at shutdown after 20 s at saturation, load 8).

An event crosses the pipe already masked and cleaned as the store would store it
(:func:`stockade.store.rows.storable_event`): nothing sensitive leaves the serving process
unmasked, even to its own child. Each event crosses the pipe once and is stored once: a batch whose write fails (the child died)
never reached a child whole, and goes to a new child; a child that exits other than at the end
of its input is logged with its exit code. The database URL goes over the pipe, not the command
line (where ``ps`` would show a password).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pickle
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Callable
from typing import IO, Any

from stockade.model import Event
from stockade.model.errors import StoreError
from stockade.store.rows import storable_event
from stockade.workers import normal_priority, runs_realtime

log = logging.getLogger("stockade.store")

NICE = 10  # the child's CPU priority below the server's
_PIPE_SIZE = 1 << 20
_LENGTH = struct.Struct("!I")  # each message: its length, then the pickled batch
STOP_TIMEOUT = 30.0  # seconds the child gets to store what it has read


class EventStoreProcess:
    """A child process storing the batches it is handed in the database at ``url`` (None: the
    default store). Call it with a batch (the sink of an ``EventWriter``); ``close`` when done."""

    def __init__(
        self, url: str | None, *, overflow: Callable[[list[Event]], Any] | None = None
    ) -> None:
        self._url = url or ""
        self.command = [sys.executable, "-m", "stockade.store.writer_process"]
        self._overflow = overflow  # stores a batch here when the child is behind
        self._room = 0  # the pipe's size in bytes (0: unknown, never overflow)
        self.overflowed = 0  # batches stored by ``overflow``
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # one writer thread normally; ``close`` may race it
        self.started = 0  # children started (more than one: a child died and was replaced)
        self._closed = False  # by ``close``: a batch handed later is refused, not a new child's

    def start(self) -> None:
        """Start the child now (else with the first batch)."""
        with self._lock:
            self._closed = False
            self._child()

    def __call__(self, batch: list[Event]) -> int:
        data = pickle.dumps([storable_event(e) for e in batch], protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            if self._closed:
                raise StoreError("event store process: closed")
            proc = self._child()
            assert proc.stdin is not None
            if self._overflow is not None and not self._has_room(proc, 4 + len(data)):
                self.overflowed += 1
                self._overflow(batch)
                return len(batch)
            try:
                proc.stdin.write(_LENGTH.pack(len(data)))
                proc.stdin.write(data)
                proc.stdin.flush()
            except OSError as exc:  # the child is gone: this batch goes to the next one
                self._ended(proc)
                raise StoreError(f"event store process: {exc.strerror or exc}") from exc
        return len(batch)

    def close(self) -> None:
        """End the child's input and wait until it has stored what it read."""
        self._closed = True  # from now on a batch is refused (the one being written finishes)
        if not self._lock.acquire(timeout=STOP_TIMEOUT):
            # A batch has been waiting that long for room in the pipe: the child stopped reading.
            stuck = self._proc
            if stuck is not None:
                stuck.kill()  # the write fails, and the lock comes free
            log.error("event store process stopped reading its input: killed")
            self._lock.acquire()
        try:
            proc, self._proc = self._proc, None
            if proc is None:
                return
            assert proc.stdin is not None
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                log.error("event store process did not finish in %.0f s: killed", STOP_TIMEOUT)
                return
            if proc.returncode:
                log.error("event store process exited with code %d", proc.returncode)
        finally:
            self._lock.release()

    def _child(self) -> subprocess.Popen[bytes]:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            return proc
        if proc is not None:
            self._ended(proc)
        # A worker under a real-time policy (admission serve --realtime-priority) starts its
        # store process under the normal one: the database is never worth a serving core.
        lower = normal_priority if runs_realtime() else None
        proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, preexec_fn=lower)
        assert proc.stdin is not None
        resize = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux
        if resize is not None:
            with contextlib.suppress(OSError):  # a smaller pipe only overflows sooner
                fcntl.fcntl(proc.stdin.fileno(), resize, _PIPE_SIZE)
            with contextlib.suppress(OSError):
                self._room = fcntl.fcntl(proc.stdin.fileno(), fcntl.F_GETPIPE_SZ)
        url = self._url.encode()
        proc.stdin.write(_LENGTH.pack(len(url)) + url)
        self._proc = proc
        self.started += 1
        return proc

    def _has_room(self, proc: subprocess.Popen[bytes], size: int) -> bool:
        """Whether ``size`` more bytes fit in the child's pipe now (it reads them later)."""
        if not self._room:
            return True
        assert proc.stdin is not None
        proc.stdin.flush()
        raw = fcntl.ioctl(proc.stdin.fileno(), termios.FIONREAD, b"\0" * 4)
        queued: int = struct.unpack("i", raw)[0]
        return queued + size <= self._room

    def _ended(self, proc: subprocess.Popen[bytes]) -> None:
        code = proc.poll()
        log.error(
            "event store process exited (%s); the events it had not stored are lost",
            f"code {code}" if code is not None else "its input is closed",
        )
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:  # reaped: it stores what it read, then exits at the end of its input
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._proc = None


def _read_message(stream: IO[bytes]) -> bytes | None:
    """The next message on ``stream``; None at its end (a message cut short is not one)."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    data = stream.read(size)
    return data if len(data) == size else None


def serve(stream: IO[bytes]) -> int:
    """The child: the URL, then batches until the end of ``stream``, each stored as it comes."""
    from stockade.store import open_store
    from stockade.store.records import record_events
    from stockade.store.writer import EventWriter

    with contextlib.suppress(OSError):
        os.nice(NICE)
    url = _read_message(stream)
    if url is None:
        return 0
    store = open_store(url.decode() or None, migrate=False)
    writer = EventWriter(lambda batch: record_events(store, batch))
    try:
        while (data := _read_message(stream)) is not None:
            batch: list[Any] = pickle.loads(data)  # our own parent's events, over its pipe
            writer.write(batch)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.stdin.buffer))
