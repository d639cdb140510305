"""The DLP engine: a fast prefilter proposes where matches may end, exact regexes and validators
confirm them, and only masked evidence leaves.

Stages, per flow direction (one :class:`DlpStream`):

1. **Prefilter** (Hyperscan in stream mode by default) reports *end offsets* where a sensor's
   prefilter matched. No start-of-match tracking: SOM costs about 3x here (reference notes §10.5)
   and the exact start comes from stage 2 anyway.
2. **Confirm**: the stream keeps a short tail of recent bytes. Around each cluster of reported ends
   the sensor's exact Python regexes (with their lookarounds) run on the tail; candidates go to the
   sensor's validator (Luhn, SSN rules, mod 97). A candidate is decided only once ``AFTER`` bytes
   follow it (or the stream closes), so the result never depends on where segments were cut.
3. **Mask** the evidence and score it with context words.

The pure-``re`` backend replaces stage 1 by "every position is a possible end": slower, but the same
stage 2 and 3 make its results identical, which the tests check.
"""

from __future__ import annotations

import hashlib
import operator
import os
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stockade.model.errors import ConfigError
from stockade.model.redact import digits_of
from stockade.model.slots import slot_constructor

from ..interface import DlpMatch
from . import hs_cache, runscan
from .masking import MASKERS, Masker
from .sensors import BUILTIN_SENSORS, Sensor
from .triggers import TRIGGERS
from .validators import REJECT, TEST_CARD_NUMBERS, VALIDATORS, Validation, Validator

hyperscan: Any
try:  # the wheel bundles libhs; without it the engine still works, slower
    import hyperscan
except ImportError:  # pragma: no cover - exercised by a subprocess test
    hyperscan = None

BEFORE = 48  # bytes of context looked at before a match
AFTER = 32  # bytes that must follow a match before it is decided (context and lookaheads)
KEY_WINDOW = 24  # "key" zone right before a match where exclude words veto it
MERGE = 512  # hits up to this far apart are confirmed in one regex pass
SLACK = 2  # prefilter matches carry one boundary byte on each side of the candidate
BACKENDS = ("hs-stream", "hs-window", "re")
_END = operator.itemgetter(1)  # a prefilter hit's end offset
_ID_STRIDE = 64  # hyperscan id = sensor index * stride + prefilter index
_LEAD_ID = 32  # prefilter index of a sensor's first lead (context word) prefilter
_TRIGGER_ID = 1 << 24  # hyperscan ids from here are HTTP decoding triggers (see .triggers)
VERDICTS_KEPT = 512  # candidates per sensor whose verdict and mask an engine remembers
# Coalescing (DlpEngine.stream): what a passive caller (the sensor) lets wait per direction before
# one scan, and what all streams of an engine may hold unscanned (past it, a feed scans at once).
PASSIVE_COALESCE = 64 * 1024
UNSCANNED_TOTAL = 32 << 20


def hyperscan_available() -> bool:
    return hyperscan is not None


@dataclass(frozen=True, slots=True)
class _Words:
    """Context words. Plain substring search on the lower-cased window (C speed: an alternation
    regex took 20-30 us per window here); words under 4 letters must not touch other letters."""

    words: tuple[str, ...]  # lower case, longest first

    @classmethod
    def of(cls, words: Iterable[str]) -> _Words:
        return cls(tuple(sorted({w.lower() for w in words if w}, key=len, reverse=True)))

    def find(self, text: str) -> str | None:
        if not self.words:
            return None
        low = text.lower()
        for word in self.words:
            if word not in low:  # the usual answer, and the cheapest test
                continue
            at = low.find(word)
            while at >= 0:
                if len(word) >= 4 or _alone(text, at, at + len(word)):
                    return word
                at = low.find(word, at + 1)
        return None


def _alone(text: str, start: int, end: int) -> bool:
    # A word boundary is a non-letter or a camelCase hump: "id" stands alone in "user_id",
    # "objectId" and "ID:", not in "valid" or "idle".
    return (start == 0 or not text[start - 1].isalpha() or _hump(text, start)) and (
        end == len(text) or not text[end].isalpha() or _hump(text, end)
    )


def _hump(text: str, at: int) -> bool:
    return text[at].isupper() and text[at - 1].islower()


# Everything up to the last field separator: one C call (five rfind calls cost 2.5x as much),
# and a match from the start (one greedy run, backtracking to the last separator) costs about
# half of searching for the separator-free tail, which tries every start.
_TO_LAST_SEPARATOR = re.compile(r".*[,;{&\n]", re.DOTALL)


def _own_key(zone: str) -> str:
    """The part of the key zone after the last field separator (``,;{&`` or a new line): in
    ``{"id":1,"pan":"`` the value's own key is ``"pan":"``, so another field's key cannot veto
    it."""
    m = _TO_LAST_SEPARATOR.match(zone)
    return zone if m is None else zone[m.end() :]


@dataclass(frozen=True, slots=True)
class _Compiled:
    sensor: Sensor
    positive: _Words
    veto: _Words
    validate: Validator
    mask: Masker
    # Verdict and masked text of recent candidates (validators and masks are pure functions of
    # the text): a value recurs within a flow (a card in a request and in the echoed response)
    # and across flows. Bounded: cleared when full; never leaves the engine. Keyed by a keyed hash
    # of the candidate (:func:`_recall_key`), so no card number is kept past its flow.
    known: dict[bytes, tuple[Validation, str]] = field(
        default_factory=dict, compare=False, repr=False
    )


# Keyed per process (the remembered keys say nothing outside it); copied per candidate, which
# costs about half of setting up a keyed hash each time.
_RECALL_HASH = hashlib.blake2b(key=os.urandom(16), digest_size=16)


def _recall_key(text: str) -> bytes:
    """What a remembered verdict is filed under: a keyed BLAKE2b of the candidate, not the
    candidate (a card number must not outlive the flow it was seen in)."""
    h = _RECALL_HASH.copy()
    h.update(text.encode())
    return h.digest()


# DlpMatch built without its frozen __init__ (3.4 us, a third of judging a candidate), fields in
# declaration order (sensor, masked, start, end, confidence, context, label); tests hold the two
# equal.
_new_match = slot_constructor(DlpMatch, positional=True)


class DlpEngine:
    """Compiled sensors; make one :meth:`stream` per flow direction. Streams of one engine share
    its Hyperscan scratch space, so feed them from one thread (a second thread feeding at the
    same time gets ``hyperscan.ScratchInUseError``)."""

    def __init__(
        self,
        sensors: Sequence[Sensor] | None = None,
        *,
        backend: str = "auto",
        ignore_test_cards: bool = False,
        compiled_prefilters: bool = True,
    ) -> None:
        chosen = tuple(BUILTIN_SENSORS if sensors is None else sensors)
        if not chosen:
            raise ConfigError("a DLP engine needs at least one sensor")
        if len({s.id for s in chosen}) != len(chosen):
            raise ConfigError("DLP sensor ids must be unique")
        if backend == "auto":
            backend = "hs-stream" if hyperscan is not None else "re"
        if backend not in BACKENDS:
            raise ConfigError(f"unknown DLP backend {backend!r}; choose one of {BACKENDS}")
        if backend != "re" and hyperscan is None:
            raise ConfigError("the hyperscan package is not installed; use backend 're'")
        self.backend = backend
        self.ignore_test_cards = ignore_test_cards
        self.sensors = tuple(
            _Compiled(
                s,
                _Words.of(s.context),
                _Words.of(s.exclude_context),
                VALIDATORS[s.validator],
                MASKERS[s.mask],
            )
            for s in chosen
        )
        self.max_length = max(s.max_length for s in chosen)
        # Per sensor, for the hit loop: how far a lead hit reaches, and how far apart hits may be
        # to share one regex pass (see DlpStream._add).
        self.reach = tuple(s.lead_reach for s in chosen)
        self.gaps = tuple(s.max_length + AFTER + MERGE for s in chosen)
        # Bytes before a cluster's first hit its confirmation reads: the sensor's longest
        # candidate, its context and the lookbehinds' reach (within AFTER + 1).
        self.reach_back = tuple(s.max_length + SLACK + BEFORE + AFTER + 1 for s in chosen)
        # Bytes a stream must keep: the longest candidate, its context and the undecided tail.
        self.keep = self.max_length + SLACK + BEFORE + AFTER + 1
        self._hs_db: Any = None  # hyperscan.Database (untyped library)
        # Sensors whose prefilter needs the byte after a match (the built-in ones); user
        # sensors are compiled with Hyperscan's prefilter flag and report their own ends.
        self.bounded = tuple(i for i, s in enumerate(chosen) if s.prefilter or backend == "re")
        # Sensors Hyperscan cannot prefilter (an expression it rejects) are scanned by regex.
        self.always_scan: tuple[int, ...] = tuple(range(len(chosen))) if backend == "re" else ()
        # Streams of the hs-stream backend also watch for the HTTP decoding triggers
        # (DlpStream.triggered), so plain HTTP needs no Python framing (see .decoding).
        self.triggers = backend == "hs-stream"
        self.held = 0  # bytes its DecodingStreams hold until a trigger (bounded there)
        self.unchecked = 0  # bytes passive callers hold before one quiet() check (bounded there)
        self._check_db: Any = None  # the stream database's expressions in block mode (quiet())
        self._check_parts: tuple[object, ...] = ()
        self.unscanned = 0  # bytes its coalescing streams hold unscanned (see UNSCANNED_TOTAL)
        # The built-in digit-run prefilters (and the query trigger) scanned by runscan.c instead
        # of Hyperscan, where it is built: the same hits, a cheaper scan (see .runscan).
        module = runscan.compiled() if backend == "hs-stream" and compiled_prefilters else None
        self.runscan_ids = _runscan_ids(chosen, module) if module is not None else ()
        if not any(i != runscan.UNUSED for i in self.runscan_ids):
            self.runscan_ids = ()
        self._runscan = (
            runscan.Scanner(module, self.runscan_ids, hyperscan) if self.runscan_ids else None
        )
        if backend != "re":  # compiled once per sensor set and kept on disk (.hs_cache)
            mode = hyperscan.HS_MODE_STREAM if backend == "hs-stream" else hyperscan.HS_MODE_BLOCK
            by_c = tuple(sorted(self.runscan_ids))
            parts = (backend, chosen, TRIGGERS, _ID_STRIDE, _LEAD_ID, _TRIGGER_ID, by_c)
            key = hs_cache.cache_key(hyperscan, parts, DlpEngine._compile)
            self._hs_db, self.always_scan = hs_cache.load_or_compile(
                hyperscan, key, mode, lambda: self._compile(chosen, backend, by_c)
            )
            # quiet()'s block database holds every expression, those runscan.c scans too
            self._check_parts = ("check", *parts[:-1])

    def quiet(self, data: bytes) -> bool:
        """True when ``data`` fed as one whole stream (``stream(coalesce=...)``, then ``close``,
        of at most the decoding replay) can give no match and needs no HTTP decoding: nothing
        of the stream database matches anywhere in it (no prefilter, context word or decoding
        trigger), no sensor is scanned by regex alone and it does not end in a letter or digit
        (a built-in candidate is then looked for at the end). One block scan, no stream: a
        passive caller whose direction is quiet needs no stream at all. Always False without
        the ``hs-stream`` backend."""
        if not self.triggers or self.always_scan:
            return False
        if data[-1:].isalnum():
            return False
        if self._runscan is not None and self._hs_db is None:
            # runscan.c reports every expression of the engine (the built-in sensors alone):
            # exactly Hyperscan's hits, about twice as fast as the block database
            return self._runscan.quiet(data)
        db = self._check_db
        if db is None:  # compiled (or loaded) at the first use: the firewall never pays for it
            sensors = tuple(c.sensor for c in self.sensors)
            key = hs_cache.cache_key(hyperscan, self._check_parts, DlpEngine._compile)
            db, _ = hs_cache.load_or_compile(
                hyperscan,
                key,
                hyperscan.HS_MODE_BLOCK,
                lambda: self._compile(sensors, self.backend, block=True),
            )
            self._check_db = db
        try:
            db.scan(data, match_event_handler=_stop)
        except hyperscan.ScanTerminated:
            return False
        return True

    def stretch(self, data: bytes) -> list[DlpMatch] | None:
        """What a passive caller's stretch gives when fed as one whole stream
        (``stream(coalesce=...)`` through the HTTP decoding, then ``close``; see :meth:`quiet`),
        from one scan: ``[]`` when it is quiet; its matches when nothing in it triggers the
        decoding (the decoding then adds nothing: see .triggers); None when the caller must
        stream it (a decoding trigger, or an engine that scans through Hyperscan)."""
        scanner = self._runscan
        if scanner is None or self._hs_db is not None or not self.triggers or self.always_scan:
            return [] if self.quiet(data) else None
        hits = scanner.whole(data)
        if not hits and not data[-1:].isalnum():
            return []
        for ident, _end in hits:
            if ident >= _TRIGGER_ID:
                return None
        stream = DlpStream(self, scanned=True)
        return stream._feed_scanned(data, hits) + stream.close()

    @staticmethod
    def _compile(
        sensors: Sequence[Sensor],
        backend: str,
        by_c: tuple[int, ...] = (),
        *,
        block: bool = False,
    ) -> tuple[Any, tuple[int, ...]]:
        """The Hyperscan database of the sensors' prefilters (and the triggers), but for the
        expressions whose ids ``by_c`` lists (runscan.c reports those); ``block``: compiled for
        block mode (see :meth:`quiet`)."""
        assert hyperscan is not None
        exprs: list[bytes] = []
        ids: list[int] = []
        flags: list[int] = []
        fallback: list[int] = []
        for si, sensor in enumerate(sensors):
            own = sensor.prefilter or sensor.patterns
            base = hyperscan.HS_FLAG_CASELESS if sensor.ignore_case else 0
            flag = base if sensor.prefilter else base | hyperscan.HS_FLAG_PREFILTER
            everything = [*own, *sensor.lead_prefilter]
            leads = range(_LEAD_ID, _LEAD_ID + len(sensor.lead_prefilter))
            if all(si * _ID_STRIDE + k in by_c for k in [*range(len(own)), *leads]):
                continue  # runscan.c reports all of them
            probe = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            try:
                encoded = [p.encode("latin-1") for p in everything]
                probe.compile(
                    expressions=encoded,
                    ids=list(range(len(encoded))),
                    elements=len(encoded),
                    flags=flag,
                )
            except (hyperscan.error, UnicodeEncodeError):
                fallback.append(si)
                continue
            for k, expr in enumerate(encoded):
                # Lead prefilters get ids in the upper half of the sensor's id block.
                ident = si * _ID_STRIDE + (k if k < len(own) else _LEAD_ID + k - len(own))
                if ident in by_c:
                    continue
                exprs.append(expr)
                ids.append(ident)
                flags.append(flag)
        if backend == "hs-stream":
            for k, (expr, caseless) in enumerate(TRIGGERS):
                if _TRIGGER_ID + k in by_c:
                    continue
                exprs.append(expr)
                ids.append(_TRIGGER_ID + k)
                # the first trigger of each kind is all a stream needs to know
                single = hyperscan.HS_FLAG_SINGLEMATCH
                flags.append(single | hyperscan.HS_FLAG_CASELESS if caseless else single)
        if not exprs:
            return None, tuple(fallback)
        stream = backend == "hs-stream" and not block
        mode = hyperscan.HS_MODE_STREAM if stream else hyperscan.HS_MODE_BLOCK
        db = hyperscan.Database(mode=mode)
        db.compile(expressions=exprs, ids=ids, elements=len(exprs), flags=flags)
        return db, tuple(fallback)

    def stream(self, *, coalesce: int = 0) -> DlpStream:
        """A stream for one flow direction. ``coalesce`` (bytes, for a passive caller that needs
        no verdict per segment) lets it scan consecutive segments in one call, once that many
        bytes wait (and at :meth:`DlpStream.decide_now` / :meth:`DlpStream.close`): the same
        findings, fewer calls into Hyperscan."""
        return CoalescingStream(self, coalesce) if coalesce > 0 else DlpStream(self)

    def _verdict(self, compiled: _Compiled, text: str) -> tuple[Validation, str]:
        """The validator's verdict on a candidate and its masked text, remembered."""
        verdict = compiled.validate(text)
        if (
            verdict.ok
            and self.ignore_test_cards
            and compiled.sensor.validator == "payment_card"
            and digits_of(text) in TEST_CARD_NUMBERS
        ):
            verdict = REJECT
        known = (verdict, compiled.mask(text) if verdict.ok else "")
        if len(compiled.known) >= VERDICTS_KEPT:
            compiled.known.clear()
        compiled.known[_recall_key(text)] = known
        return known

    def scan(self, data: bytes) -> list[DlpMatch]:
        """One whole buffer (a file, a message): feed + close."""
        s = self.stream()
        return s.feed(data) + s.close()


def _stop(*_match: object) -> bool:
    return True  # the first match answers DlpEngine.quiet: stop the scan


def _runscan_ids(sensors: Sequence[Sensor], module: Any) -> tuple[int, ...]:
    """The Hyperscan id runscan.c reports for each of its expressions (runscan.UNUSED where the
    engine has no such expression, or for those it scans through libhs when built without it): a
    sensor's plain prefilter or lead prefilter of the same text, a trigger. An expression two
    sensors share is left to Hyperscan for the second."""
    ids = [runscan.UNUSED] * len(runscan.EXPRESSIONS)
    for si, sensor in enumerate(sensors):
        if sensor.ignore_case or not sensor.prefilter:  # else compiled with other flags
            continue
        own = [(k, p) for k, p in enumerate(sensor.prefilter)]
        own += [(_LEAD_ID + k, p) for k, p in enumerate(sensor.lead_prefilter)]
        for k, pattern in own:
            text = pattern.encode("latin-1", "replace")
            at = runscan.EXPRESSIONS.index(text) if text in runscan.EXPRESSIONS else -1
            if at >= 0 and at not in runscan.TRIGGER_AT and ids[at] == runscan.UNUSED:
                ids[at] = si * _ID_STRIDE + k
    for at, (k, caseless) in runscan.TRIGGER_AT.items():
        if k < len(TRIGGERS) and TRIGGERS[k] == (runscan.EXPRESSIONS[at], caseless):
            ids[at] = _TRIGGER_ID + k
    if not module.lib.rs_has_hs():
        ids[runscan.HAND :] = [runscan.UNUSED] * (len(ids) - runscan.HAND)
    return tuple(ids)


class DlpStream:
    """One direction of one flow. ``feed`` returns matches decided so far; ``close`` the rest."""

    __slots__ = ("_always", "_base", "_buf", "_chunks", "_chunks_base", "_closed", "_end",
                 "_engine", "_hits", "_hs_stream", "_keep", "_last_end", "_on_match", "_pending",
                 "_runscan", "_scan", "_waiting", "triggered")  # fmt: skip

    def __init__(self, engine: DlpEngine, *, scanned: bool = False) -> None:
        """``scanned``: the caller gives the scan's hits (:meth:`DlpEngine.stretch`), so the
        stream needs no scan state of its own."""
        self._engine = engine
        # Recent bytes as received (no copy per feed); a cluster's part decoded into _buf.
        self._chunks: deque[bytes] = deque()
        self._chunks_base = 0  # stream offset of _chunks[0]
        self._keep = engine.keep
        self._always = engine.always_scan
        self._buf = ""  # latin-1 text: one char per byte, so spans are byte offsets
        self._base = 0  # stream offset of _buf[0]
        self._end = 0  # bytes fed so far
        n = len(engine.sensors)
        self._pending: list[list[list[int]]] = [[] for _ in range(n)]  # clusters [lo, hi]
        self._waiting = 0  # number of clusters in _pending
        self._last_end = [0] * n
        self._hits: list[tuple[int, int]] = []
        self._closed = False
        self.triggered = False  # an HTTP decoding trigger was seen (hs-stream backend only)
        self._hs_stream = None
        self._scan: Any = None  # the Hyperscan stream's bound scan method (hs-stream backend)
        self._on_match = self._record  # one long-lived callable: hyperscan keeps a pointer
        self._runscan = None
        if scanned:
            return
        if engine.backend == "hs-stream" and engine._hs_db is not None:
            self._hs_stream = engine._hs_db.stream(match_event_handler=self._on_match)
            self._hs_stream.__enter__()
            self._scan = self._hs_stream.scan
        if engine._runscan is not None:
            self._runscan = engine._runscan.state()

    def _feed_scanned(self, data: bytes, hits: list[tuple[int, int]]) -> list[DlpMatch]:
        """``feed(data)`` as a new stream's first bytes, their scan's hits given (``hits`` is
        the scan's answer, taken over): see :meth:`DlpEngine.stretch`."""
        self._end = end = len(data)
        self._chunks.append(data)
        if hits:
            self._hits = hits
            self._take_hits()
        return self._confirm(end - AFTER) if self._waiting else []

    def _record(self, ident: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
        self._hits.append((ident, to))

    def feed(self, data: bytes) -> list[DlpMatch]:
        if self._closed:
            raise ValueError("feed() after close()")
        if not data:
            return []
        if type(data) is not bytes:  # a bytearray (typed as bytes): runscan.c takes bytes
            data = bytes(data)
        start = self._end
        self._end = end = start + len(data)
        chunks = self._chunks
        if len(chunks) > 1:
            # Drop chunks no candidate, context or overlap window can reach any more (never the
            # last: it ends at start, past keep_from).
            keep_from = start - self._keep
            base = self._chunks_base
            while base + len(chunks[0]) <= keep_from:
                base += len(chunks.popleft())
            self._chunks_base = base
        chunks.append(data)
        scan = self._scan
        state = self._runscan
        if scan is not None:  # the hot path, kept flat on purpose
            scan(data)
        elif state is None:  # (runscan.c alone needs no call here: the built-in sensors)
            self._scan_without_stream(data, start)
        if state is not None:
            rs: Any = self._engine._runscan
            # The engine's scratch and hit buffers are shared, and cffi lets go of the GIL in
            # the call: a second thread gets the error the binding gives, not others' hits.
            idle = rs.idle
            try:
                token = idle.pop()
            except IndexError:
                raise hyperscan.ScratchInUseError("DLP scan: engine busy in a thread") from None
            try:
                n = rs.scan_all(state, data, end - start, rs.pairs)
                values = rs.unpack(rs.pairs[0], 2 * n) if n > 0 else ()
            finally:
                idle.append(token)
            if n:
                if n < 0:
                    raise MemoryError("DLP scan: out of memory")
                hits = self._hits
                from_hs = len(hits)
                hits.extend(zip(values[0::2], values[1::2], strict=True))
                if from_hs:  # stable: the two scans' hits in the order of their ends
                    hits.sort(key=_END)
        if self._hits:
            self._take_hits()
        if self._always:
            for si in self._always:
                self._add(si, start + 1, end)
        return self._confirm(end - AFTER) if self._waiting else []

    def _take_hits(self) -> None:
        """Turn the prefilter's reported ends into clusters to confirm (stage 1 -> 2)."""
        hits = self._hits
        reach = self._engine.reach
        add = self._add
        for ident, hit in hits:
            if ident >= _TRIGGER_ID:
                self.triggered = True
                continue
            si, k = divmod(ident, _ID_STRIDE)
            if k < _LEAD_ID:
                add(si, hit, hit)
            else:  # a context word: candidates may end up to lead_reach bytes later
                add(si, hit, hit + reach[si])
        hits.clear()

    def decide_now(self) -> list[DlpMatch]:
        """Decide every pending candidate with the bytes seen so far; the stream stays open.

        Inline blocking cannot wait for trailing context: a packet that ends a request right after
        a card number must be judged before it is let through."""
        if self._closed:
            return []
        self._candidates_at_end()
        return self._confirm(self._end) if self._waiting else []

    def discard(self) -> None:
        """Close without deciding what is pending (the caller no longer needs the answer)."""
        self._closed = True
        self._runscan = None
        if self._hs_stream is not None:
            self._hs_stream.close()
            self._hs_stream = self._scan = None
        self._chunks.clear()

    def close(self) -> list[DlpMatch]:
        if self._closed:
            return []
        self._closed = True
        self._runscan = None
        if self._hs_stream is not None:
            self._hs_stream.close()
            self._hs_stream = self._scan = None
        self._candidates_at_end()
        return self._confirm(self._end) if self._waiting else []

    def _candidates_at_end(self) -> None:
        # Built-in prefilters need the byte after a candidate; at the end of the stream (or of
        # what has arrived) there is none. Every built-in match ends in a letter or digit, so look
        # only when the bytes do too.
        last = self._chunks[-1][-1:] if self._chunks else b""
        if last.isalnum():
            for si in self._engine.bounded:
                self._add(si, self._end, self._end)

    # stage 1 (see feed) -----------------------------------------------------------------------------

    def _scan_without_stream(self, data: bytes, start: int) -> None:
        engine = self._engine
        if engine.backend == "hs-window" and engine._hs_db is not None:
            # Block mode on tail + data: a match that ends in the new bytes may begin in the tail.
            tail_from = max(self._chunks_base, start - engine.max_length - SLACK)
            window = b"".join(self._chunks)[tail_from - self._chunks_base :]
            engine._hs_db.scan(window, match_event_handler=self._on_match)
            self._hits[:] = [(i, tail_from + e) for i, e in self._hits if tail_from + e > start]

    def _add(self, si: int, lo: int, hi: int) -> None:
        clusters = self._pending[si]
        # Hits close together share one regex pass: one call over a few hundred bytes costs less
        # than several calls (measured in benchmarks/dlp.py).
        if clusters:
            last = clusters[-1]
            if lo - last[1] <= self._engine.gaps[si]:
                if hi > last[1]:
                    last[1] = hi
                return
        clusters.append([lo, hi])
        self._waiting += 1

    # stage 2 and 3 -----------------------------------------------------------------------

    def _confirm(self, ready: int) -> list[DlpMatch]:
        out: list[DlpMatch] = []
        reach = self._engine.reach_back
        pending = self._pending
        for si, clusters in enumerate(pending):
            if not clusters or clusters[0][0] > ready:
                continue
            keep: list[list[int]] = []
            back = reach[si]
            for lo, hi in clusters:
                if lo > ready:
                    keep.append([lo, hi])
                    continue
                self._text(lo - back, hi + AFTER)
                self._confirm_cluster(si, lo, hi, ready, out)
                if hi > ready:
                    keep.append([ready + 1, hi])
            self._waiting += len(keep) - len(clusters)
            pending[si] = keep
        if len(out) > 1:
            out.sort(key=lambda m: (m.start, m.sensor))
        return out

    def _text(self, start: int, end: int) -> None:
        """Decode the kept bytes between two stream offsets (clipped to what is kept) into
        ``_buf``: one cluster's candidates and their context, however long the chunks are."""
        at = self._chunks_base
        start = max(start, at)
        self._base = start
        if len(self._chunks) == 1:  # a whole stretch (DlpEngine.stretch), or a first segment
            self._buf = str(self._chunks[0][start - at : end - at], "latin-1")
            return
        parts: list[memoryview] = []
        for chunk in self._chunks:
            size = len(chunk)
            if at + size > start and at < end:
                parts.append(memoryview(chunk)[max(start - at, 0) : end - at])
            at += size
            if at >= end:
                break
        self._buf = str(parts[0] if len(parts) == 1 else b"".join(parts), "latin-1")

    def _confirm_cluster(
        self, si: int, lo: int, hi: int, ready: int, found: list[DlpMatch]
    ) -> None:
        """Append the cluster's confirmed matches to ``found``; ``_buf`` holds its bytes."""
        compiled = self._engine.sensors[si]
        sensor = compiled.sensor
        buf, base = self._buf, self._base
        last_end = self._last_end
        # Every match starts at pos or later, so past the sensor's last match (last_end).
        pos = max(lo - sensor.max_length - SLACK, last_end[si], base) - base
        endpos = min(hi + AFTER, self._end) - base
        if sensor.anchor:  # no match starts before the anchor's reach
            at = buf.find(sensor.anchor, pos, endpos)
            if at < 0:
                return
            pos = max(pos, at - sensor.anchor_reach)
        starts_by, ends_by = ready - base, hi - base
        candidates: list[tuple[int, int, str]] = []
        for pattern in sensor.compiled:
            for m in pattern.finditer(buf, pos, endpos):
                s, e = m.span()
                if s > starts_by:
                    break
                if e <= ends_by:  # ends past hi are truncation artefacts
                    candidates.append((s + base, e + base, m.group()))
        if len(candidates) > 1:
            candidates.sort(key=lambda c: (c[0], c[0] - c[1]))
        for s, e, text in candidates:
            if e > ready:
                break  # undecided: this and every later candidate wait for more bytes
            if s < last_end[si]:
                continue
            match = self._judge(compiled, s, e, text)
            if match is not None:
                found.append(match)
                last_end[si] = e

    def _judge(self, compiled: _Compiled, s: int, e: int, text: str) -> DlpMatch | None:
        verdict, masked = compiled.known.get(_recall_key(text)) or self._engine._verdict(
            compiled, text
        )
        if not verdict.ok:
            return None
        b = self._base
        buf = self._buf
        before = buf[max(s - BEFORE - b, 0) : s - b]
        positive = compiled.positive
        # The nearest key decides: "order_id": 4539... is an order id even with "card" further
        # away; a key that names both ("card_id") keeps the match.
        if compiled.veto.words:
            key_zone = _own_key(before[-KEY_WINDOW:])
            if compiled.veto.find(key_zone) is not None and positive.find(key_zone) is None:
                return None
        word = positive.find(before)
        if word is None:
            if verdict.context_before:
                return None
            word = positive.find(buf[e - b : e - b + AFTER])
        sensor = compiled.sensor
        score = sensor.score if verdict.score is None else verdict.score
        if word is not None:
            score = min(1.0, score + sensor.context_boost)
        if score < sensor.min_score:
            return None
        return _new_match(sensor.id, masked, s, e, round(score, 3), word or "", verdict.label)


class CoalescingStream(DlpStream):
    """A :class:`DlpStream` for a passive caller (see :meth:`DlpEngine.stream`): segments are
    held by reference and scanned together once ``coalesce`` bytes wait, or when the engine's
    streams hold :data:`UNSCANNED_TOTAL` bytes unscanned, and always before ``decide_now`` or
    ``close`` answer. The per-segment stream stays as it was (the firewall's path pays nothing
    for this one)."""

    __slots__ = ("_coalesce", "_unscanned", "_unscanned_size")

    def __init__(self, engine: DlpEngine, coalesce: int) -> None:
        super().__init__(engine)
        self._coalesce = coalesce
        self._unscanned: list[bytes] = []
        self._unscanned_size = 0

    def feed(self, data: bytes) -> list[DlpMatch]:
        if self._closed:
            raise ValueError("feed() after close()")
        size = len(data)
        if not size:
            return []
        self._unscanned.append(data)
        waiting = self._unscanned_size = self._unscanned_size + size
        engine = self._engine
        engine.unscanned += size
        if waiting < self._coalesce and engine.unscanned <= UNSCANNED_TOTAL:
            return []
        return DlpStream.feed(self, self._take_unscanned())

    def _take_unscanned(self) -> bytes:
        waiting = self._unscanned
        data = waiting[0] if len(waiting) == 1 else b"".join(waiting)
        self._engine.unscanned -= self._unscanned_size
        self._unscanned = []
        self._unscanned_size = 0
        return data

    def _flush(self) -> list[DlpMatch]:
        return DlpStream.feed(self, self._take_unscanned()) if self._unscanned_size else []

    def decide_now(self) -> list[DlpMatch]:
        if self._closed:
            return []
        found = self._flush()
        return found + DlpStream.decide_now(self)

    def close(self) -> list[DlpMatch]:
        if self._closed:
            return []
        found = self._flush()
        return found + DlpStream.close(self)

    def discard(self) -> None:
        self._engine.unscanned -= self._unscanned_size
        self._unscanned = []
        self._unscanned_size = 0
        DlpStream.discard(self)
