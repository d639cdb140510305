"""Recent decisions by the content they were decided on, so a review of an object seen moments ago
(the replicas of one workload, a controller's retries, a re-applied manifest) costs a hash instead
of a policy evaluation.

The key is a digest of the request body as received with its uid taken out: everything
:func:`stockade.admission.review.answer` reads to decide is in it (the user and dry-run too, so they
only make more keys). The uid's JSON text must occur exactly once in the body; it is replaced by a
NUL byte, which valid JSON never holds, so two bodies share a key only when they are the same but
for the request's uid (anything else: no key, no caching). The uid comes from each review into its
response and its event. An entry lives ``ttl`` seconds, and one cache serves one policy (the
server makes a new one with each policy it puts in force). Only decisions made from memory are kept
(the server asks only when every lookup answers at once) and never one with an error (a lookup
that failed may succeed next time). One per worker process, used from its event loop only.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from stockade.admission.engine import Decision


@dataclass(frozen=True, slots=True)
class Decided:
    """A decision with the workload facts its event names."""

    decision: Decision
    display: str
    namespace: str
    kind: str
    name: str


class DecisionCache:
    def __init__(self, *, ttl: float = 10.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[bytes, tuple[float, Decided]] = {}
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(body: bytes, uid: str) -> bytes | None:
        """The key of the review in ``body`` whose request uid is ``uid`` (None: none)."""
        needle = json.dumps(uid).encode()
        if body.count(needle) != 1:
            return None
        return hashlib.blake2b(body.replace(needle, b"\0"), digest_size=16).digest()

    def get(self, key: bytes) -> Decided | None:
        hit = self._entries.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            self.hits += 1
            return hit[1]
        self.misses += 1
        return None

    def put(self, key: bytes, decided: Decided) -> None:
        if decided.decision.error is not None:
            return
        entries = self._entries
        entries.pop(key, None)
        while len(entries) >= self.max_entries:  # the oldest first: dicts keep insertion order
            del entries[next(iter(entries))]
        entries[key] = (time.monotonic(), decided)

    def __len__(self) -> int:
        return len(self._entries)
