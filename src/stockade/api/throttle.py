"""Slowing down password guessing: failed logins counted per user name and per client address, with
exponential backoff.

A name may fail :attr:`LoginThrottle.free_per_name` times in a row, an address
:attr:`LoginThrottle.free_per_address` times; each failure after that blocks it for twice as long
as the one before (1 s, 2 s, 4 s ... at most 15 minutes). While blocked, every login with that
name or from that address is refused with 429 and ``Retry-After``, before any password is checked,
even a right one. A successful login forgets its name's failures; a name or address quiet for
:attr:`LoginThrottle.forget_after` after its block starts afresh.

Each attempt is counted as a failure when it starts and taken back when it succeeds, so parallel
guesses cannot slip past the limit while their hashes are checked. Unknown and known names are
treated alike (the answer never tells which exist). IPv6 clients are counted by their /64, which
one host usually holds whole.

Memory is bounded: each table keeps at most ``max_entries`` (the least recently failing ones are
forgotten first).
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Record:
    failures: int = 0
    blocked_until: float = 0.0
    last: float = 0.0


class _Table:
    """Failure records by key, at most ``max_entries``, least recently failing evicted first."""

    def __init__(self, free: int, max_entries: int) -> None:
        self.free = free
        self.max_entries = max_entries
        self.records: OrderedDict[str, _Record] = OrderedDict()

    def wait(self, key: str, now: float) -> float:
        record = self.records.get(key)
        return 0.0 if record is None else max(0.0, record.blocked_until - now)

    def fail(self, key: str, now: float, throttle: LoginThrottle) -> bool:
        """Count a failure; True when it starts a block."""
        record = self.records.pop(key, None)
        if record is None or now - max(record.last, record.blocked_until) > throttle.forget_after:
            record = _Record()
        self.records[key] = record  # most recent last
        while len(self.records) > self.max_entries:
            self.records.popitem(last=False)
        record.failures += 1
        record.last = now
        return self.block(record, now, throttle)

    def block(self, record: _Record, now: float, throttle: LoginThrottle) -> bool:
        """Block a record past its free failures from ``now``; True when it is blocked."""
        if record.failures < self.free:
            return False
        delay = min(throttle.max_delay, throttle.base_delay * 2 ** (record.failures - self.free))
        record.blocked_until = max(record.blocked_until, now + delay)
        return True

    def confirm(self, key: str, now: float, throttle: LoginThrottle) -> None:
        record = self.records.get(key)
        if record is not None:
            self.block(record, now, throttle)

    def undo(self, key: str, *, forget: bool) -> None:
        record = self.records.get(key)
        if record is None:
            return
        if forget:
            del self.records[key]
            return
        record.failures = max(0, record.failures - 1)
        if record.failures < self.free:
            record.blocked_until = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The outcome of :meth:`LoginThrottle.attempt`: go ahead, or wait ``retry_after`` seconds."""

    retry_after: int = 0  # whole seconds, 0 when the attempt may go ahead
    blocked: bool = False  # this attempt, if it fails, starts a block (worth an audit event)

    @property
    def allowed(self) -> bool:
        return self.retry_after == 0


def client_key(host: str | None) -> str:
    """The key of a client address: IPv4 as is, IPv6 by its /64, anything else as given."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


class LoginThrottle:
    """Failed logins per name and per address (thread-safe; one per controller process)."""

    def __init__(
        self,
        *,
        free_per_name: int = 5,
        free_per_address: int = 50,
        base_delay: float = 1.0,
        max_delay: float = 900.0,
        forget_after: float = 900.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self._names = _Table(free_per_name, max_entries)
        self._addresses = _Table(free_per_address, max_entries)
        self._clock = clock
        self._lock = threading.Lock()

    def attempt(self, name: str, address: str) -> Verdict:
        """Before checking a password: refused while the name or the address is blocked; else the
        attempt is counted as a failure until :meth:`succeeded` takes it back."""
        with self._lock:
            now = self._clock()
            wait = max(self._names.wait(name, now), self._addresses.wait(address, now))
            if wait > 0:
                return Verdict(retry_after=max(1, math.ceil(wait)))
            by_name = self._names.fail(name, now, self)
            by_address = self._addresses.fail(address, now, self)
            return Verdict(blocked=by_name or by_address)

    def failed(self, name: str, address: str) -> None:
        """The attempt was wrong: a block it started runs from now, not from when the (slow)
        password check began."""
        with self._lock:
            now = self._clock()
            self._names.confirm(name, now, self)
            self._addresses.confirm(address, now, self)

    def succeeded(self, name: str, address: str) -> None:
        """The attempt was right: its name starts afresh, the address's count is taken back."""
        with self._lock:
            self._names.undo(name, forget=True)
            self._addresses.undo(address, forget=False)

    def sizes(self) -> tuple[int, int]:
        """(names, addresses) tracked now."""
        with self._lock:
            return len(self._names.records), len(self._addresses.records)
