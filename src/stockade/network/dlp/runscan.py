"""The built-in sensors' prefilters and the HTTP decoding triggers, scanned by hand in C
(runscan.c).

Hyperscan spent most of the engine's scan on a handful of the built-in prefilters (the card, SSN,
IBAN and phone runs) and on the HTTP query trigger; the system's libhs spent 40% of its time
on the JSON escape trigger (3 of 7.7 ms per 16 MB of benchmarks/dlp.py), so that one is scanned
by hand too (five bytes after a backslash). ``runscan.c`` reports exactly the (expression
id, end offset) pairs Hyperscan reports for the built-in expressions in stream mode, across any
cut of the stream, so the engine compiles them out of its Hyperscan database and takes their hits
from here; with the built-in sensors alone it needs no Hyperscan stream at all
(tests/network/test_dlp_runscan.py holds the two to the same matches). A user sensor, or any
expression whose text differs from the one here, stays with Hyperscan.
``STOCKADE_DLP_RUNSCAN=0`` (or a failed build) leaves them all to Hyperscan: the reference.
"""

from __future__ import annotations

import os
from typing import Any

# The expressions runscan.c implements, in its order (index = its expression number), by their
# exact text: a sensor or trigger whose text differs (an edited prefilter) is left to Hyperscan.
# The sensors' are plain (no caseless, prefilter or single-match flag); the triggers are
# single-match, caseless where TRIGGER_AT says. tests/network/test_dlp_runscan.py checks these
# are still the built-in sensors' and triggers' texts.
EXPRESSIONS: tuple[bytes, ...] = (
    rb"(?:^|[^0-9A-Za-z_])[2-68][0-9 .\-\xa0\xc2]{12,}[0-9][^0-9A-Za-z_]",
    rb"(?:^|[^0-9A-Za-z_])(?:4[0-9 .\-\xa0\xc2]{11,}|(?:50[123]|67[56])[0-9 .\-\xa0\xc2]{8,}"
    rb"|(?:5893|6304)[0-9 .\-\xa0\xc2]{7,})[0-9][^0-9A-Za-z_]",
    rb"(?:^|[^0-9A-Za-z_])[0-9]{3}[ \-][0-9]{2}[ \-][0-9]{4}[^0-9A-Za-z_]",
    rb"(?:^|[^A-Za-z0-9])[A-Z]{2}[0-9]{2}[A-Z0-9 ]{10,38}[A-Z0-9][^A-Za-z0-9]",
    rb"(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .\-])[2-9][0-9]{2}[ .\-][0-9]{4}[^0-9A-Za-z_]",
    rb"\+[0-9][0-9 \-]{6,23}[0-9][^0-9A-Za-z_]",
    rb"[A-Z] \S*\?\S*[%+]",
    rb"\\u00(?:3[0-9]|2[0de]|a0)",  # JSON escapes of digits and card separators (a trigger)
    rb"@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]+[^A-Za-z0-9\-]",
    rb"(?i:ssn|social|security|taxpayer)",
    rb"transfer-encoding",
    rb"content-encoding",
    rb"x-www-form-urlencoded",
    rb"multipart/",
    rb"PRI \* HTTP/2\.0",
    rb"h2c",
    rb"^[\r\n]*\x00[\x00-\xff]{2}\x04[\x00\x01]\x00{4}",
    rb"websocket",
    rb"%B[0-9]{12,19}\^",  # magnetic-stripe track 1 (the card sensor's third prefilter)
)
# The single-match triggers among them: EXPRESSIONS index -> (TRIGGERS index, caseless).
TRIGGER_AT = {6: (4, False), 7: (9, True), 10: (0, True), 11: (1, True), 12: (2, True),
              13: (3, True), 14: (5, False), 15: (6, True), 16: (7, False),
              17: (8, True)}  # fmt: skip
QUERY_TRIGGER = 6
UNUSED = 0xFFFFFFFF  # the id of an expression the engine does not have
HAND = 8  # EXPRESSIONS[:HAND] are scanned by hand; the rest through libhs (built with it)
HITS = 4096  # (id, end) pairs one rs_scan call may write (rs_scan_all grows its own buffer)
MORE = 1 << 62  # rs_scan's answer holds it when it ran out of room before the end


def compiled() -> Any | None:
    """The compiled module, or None (not built, or ``STOCKADE_DLP_RUNSCAN=0``)."""
    if os.environ.get("STOCKADE_DLP_RUNSCAN", "1") == "0":
        return None
    try:
        from stockade.network.dlp import _runscan  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _runscan


def flags(index: int, hyperscan: Any) -> int:
    """Hyperscan's compile flags of ``EXPRESSIONS[index]`` (as the engine compiles it)."""
    if index not in TRIGGER_AT:
        return 0
    caseless = hyperscan.HS_FLAG_CASELESS if TRIGGER_AT[index][1] else 0
    return int(hyperscan.HS_FLAG_SINGLEMATCH | caseless)


class Scanner:
    """An engine's scan: ``ids[k]`` is the id reported for ``EXPRESSIONS[k]`` (UNUSED: the
    engine has no such expression). Its streams' states come from :meth:`state`; one call,
    ``scan_all(state, data, len(data), pairs)``, scans a segment and answers how many (id, end)
    pairs it left at ``pairs[0]`` (in the order of their ends), -1 when out of memory."""

    def __init__(self, module: Any, ids: tuple[int, ...], hyperscan: Any) -> None:
        ffi, lib = module.ffi, module.lib
        rest = [k for k in range(HAND, len(EXPRESSIONS)) if ids[k] != UNUSED]
        keep = [ffi.new("char[]", EXPRESSIONS[k]) for k in rest]
        err = ffi.new("char[256]")
        db = lib.rs_db_new(
            ffi.new("char *[]", keep),
            ffi.new("unsigned int[]", [flags(k, hyperscan) for k in rest]),
            ffi.new("unsigned int[]", [ids[k] for k in rest]),
            len(rest),
            err,
            len(err),
        )
        if db == ffi.NULL:
            raise MemoryError(f"DLP scan: {ffi.string(err).decode(errors='replace')}")
        self._db = ffi.gc(db, lib.rs_db_free)
        self._hand = ffi.new("uint32_t[]", list(ids[:HAND]))
        self._new, self._free = lib.rs_new, lib.rs_free
        self._null = ffi.NULL
        self._gc = ffi.gc
        self.scan_all = lib.rs_scan_all
        self._busy = hyperscan.ScratchInUseError  # what the binding raises for a second thread
        self.pairs = ffi.new("uint64_t **")  # where scan_all leaves its answer (one thread)
        self.unpack = ffi.unpack
        # One token, taken (list.pop, atomic under the GIL and cheaper than a lock) from
        # scan_all to the unpack of its answer: the buffers are the engine's, one thread's.
        self.idle = [True]

    def state(self) -> Any:
        state = self._new(self._hand, self._db)
        if state == self._null:
            raise MemoryError("DLP scan: cannot open a stream")
        return self._gc(state, self._free)

    def quiet(self, data: bytes) -> bool:
        """No expression of the engine's matches anywhere in ``data``, scanned as one whole
        stream (a state of its own, freed at once: no collector work per call)."""
        return not self.whole(data)

    def whole(self, data: bytes) -> list[tuple[int, int]]:
        """The (id, end) pairs of ``data`` scanned as one whole stream, in the order of their
        ends: what a new state's :meth:`hits` gives, without keeping the state."""
        try:
            token = self.idle.pop()
        except IndexError:  # another thread is in the scan
            raise self._busy("DLP scan: engine busy in a thread") from None
        state = self._new(self._hand, self._db)
        if state == self._null:
            self.idle.append(token)
            raise MemoryError("DLP scan: cannot open a stream")
        try:
            n = self.scan_all(state, data, len(data), self.pairs)
            values = self.unpack(self.pairs[0], 2 * n) if n > 0 else ()
        finally:
            self.idle.append(token)
            self._free(state)
        if n < 0:
            raise MemoryError("DLP scan: out of memory")
        return list(zip(values[0::2], values[1::2], strict=True)) if n else []

    def hits(self, state: Any, data: bytes) -> list[tuple[int, int]]:
        """The (id, end) pairs ``data`` ends, in the order of their ends."""
        token = self.idle.pop()  # IndexError: another thread is in the scan
        try:
            n = self.scan_all(state, data, len(data), self.pairs)
            values = self.unpack(self.pairs[0], 2 * n) if n > 0 else []
        finally:
            self.idle.append(token)
        if n < 0:
            raise MemoryError("DLP scan: out of memory")
        return list(zip(values[0::2], values[1::2], strict=True))
