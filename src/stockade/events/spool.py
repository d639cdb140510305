"""An agent's on-disk spool: batches of events waiting for the controller.

One file per batch, JSON lines (one event each), written to a temporary name, fsync'd and renamed,
so a file is either whole or absent. Names sort in the order the batches were made:
``<time ns>-<pid>-<seq>-<events>.jsonl``. The total size is bounded: to take a new batch when full,
the oldest batches are dropped and their events counted in ``dropped`` (fsync'd too, so a count
survives the process and is reported by the next one that reaches the controller).
"""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from stockade.model.atomicfile import write_atomically
from stockade.model.errors import ConfigError, StockadeError

_BATCH_RE = re.compile(r"(\d{20})-(\d+)-(\d+)-(\d+)\.jsonl\Z")
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def _write_durably(path: Path, data: bytes) -> None:
    write_atomically(path, data, mode=0o600, fsync=True, fsync_dir=True)


def events_in(path: Path) -> int:
    """How many events a batch file holds (from its name)."""
    m = _BATCH_RE.match(path.name)
    return int(m.group(4)) if m else 0


def writer_pid(path: Path) -> int:
    m = _BATCH_RE.match(path.name)
    return int(m.group(2)) if m else 0


class Spool:
    """Batches on disk, oldest first, at most ``max_bytes`` in all."""

    def __init__(self, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 4096:
            raise ConfigError("the spool must hold at least 4096 bytes")
        self.root = root
        self.max_bytes = max_bytes
        self._seq = itertools.count()
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(f"cannot create the spool {root}: {exc.strerror}") from exc
        if not os.access(root, os.W_OK | os.X_OK):
            raise ConfigError(f"the spool {root} is not writable")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive among the processes sharing this spool (counter updates, size checks, drains)."""
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def batches(self) -> list[Path]:
        """The batch files, oldest first."""
        try:
            names = [n for n in os.listdir(self.root) if _BATCH_RE.match(n)]
        except OSError:
            return []
        return [self.root / n for n in sorted(names)]

    def size(self) -> int:
        total = 0
        for p in self.batches():
            with suppress(FileNotFoundError):
                total += p.stat().st_size
        return total

    def pending_events(self) -> int:
        return sum(events_in(p) for p in self.batches())

    def put(self, lines: list[bytes]) -> tuple[Path | None, int]:
        """Write one batch; returns its file (None when it was dropped itself) and how many
        events were dropped to make room (already added to the ``dropped`` count)."""
        data = b"".join(line + b"\n" for line in lines)
        with self.locked():
            if len(data) > self.max_bytes:
                self._add_dropped(len(lines))
                return None, len(lines)
            dropped = 0
            total = self.size()
            for old in self.batches():
                if total + len(data) <= self.max_bytes:
                    break
                try:
                    size = old.stat().st_size
                    old.unlink()
                except FileNotFoundError:
                    continue
                total -= size
                dropped += events_in(old)
            if dropped:
                self._add_dropped(dropped)
            name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq)}-{len(lines)}.jsonl"
            path = self.root / name
            try:
                _write_durably(path, data)
            except OSError as exc:  # disk full, read-only: the batch is lost, and counted
                self._add_dropped(len(lines))
                raise SpoolError(f"cannot write the spool {self.root}: {exc.strerror}") from exc
        return path, dropped

    @staticmethod
    def read(path: Path) -> list[bytes] | None:
        """The batch's lines; None when another process already sent and removed it."""
        try:
            return [line for line in path.read_bytes().split(b"\n") if line]
        except FileNotFoundError:
            return None

    def remove(self, path: Path) -> None:
        with suppress(FileNotFoundError):
            path.unlink()

    # The drop counter.

    def _counter(self) -> Path:
        return self.root / "dropped"

    def dropped(self) -> int:
        try:
            text = self._counter().read_text(encoding="ascii").strip()
            return int(text) if text.isdigit() else 0
        except (FileNotFoundError, UnicodeDecodeError):
            return 0

    def _add_dropped(self, n: int) -> None:
        _write_durably(self._counter(), str(self.dropped() + n).encode())

    def add_dropped(self, n: int) -> None:
        with self.locked():
            self._add_dropped(n)

    def settle_dropped(self, reported: int) -> None:
        """``reported`` drops reached the controller: take them off the count."""
        with self.locked():
            _write_durably(self._counter(), str(max(0, self.dropped() - reported)).encode())


class SpoolError(StockadeError):
    """The spool cannot be written (its events are counted as dropped)."""
