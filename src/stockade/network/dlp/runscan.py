"""The built-in sensors' digit-run prefilters, scanned by hand in C (runscan.c).

Hyperscan spends most of the engine's scan on a handful of the built-in prefilters (the card,
SSN, IBAN and phone runs) and on the HTTP query trigger. ``runscan.c`` reports exactly the
(expression id, end offset) pairs Hyperscan reports for those expressions in stream mode, across
any cut of the stream, so the engine compiles them out of its Hyperscan database and takes their
hits from here (tests/network/test_dlp_runscan.py holds the two to the same matches). Any other
expression, or a sensor whose prefilter text differs, stays with Hyperscan.
``STOCKADE_DLP_RUNSCAN=0`` (or a failed build) leaves them all to Hyperscan: the reference.
"""

from __future__ import annotations

import os
from typing import Any

from .sensors import BUILTIN_SENSORS
from .triggers import TRIGGERS

_BY_ID = {s.id: s for s in BUILTIN_SENSORS}
# The expressions runscan.c implements, in its order (index = its expression number), by text;
# flags: plain (no caseless, prefilter or single-match flag) except the trigger (single match).
EXPRESSIONS: tuple[bytes, ...] = (
    _BY_ID["dlp.payment_card"].prefilter[0].encode(),
    _BY_ID["dlp.payment_card"].prefilter[1].encode(),
    _BY_ID["dlp.us_ssn"].prefilter[0].encode(),
    _BY_ID["dlp.iban"].prefilter[0].encode(),
    _BY_ID["dlp.phone"].prefilter[0].encode(),
    _BY_ID["dlp.phone"].prefilter[1].encode(),
    TRIGGERS[4][0],
)
QUERY_TRIGGER = 6  # the index of the (single-match) trigger among EXPRESSIONS
UNUSED = 0xFFFFFFFF  # the id of an expression no sensor of the engine has
HITS = 4096  # (id, end) pairs one call may write before it returns to be emptied


def compiled() -> Any | None:
    """The compiled module, or None (not built, or ``STOCKADE_DLP_RUNSCAN=0``)."""
    if os.environ.get("STOCKADE_DLP_RUNSCAN", "1") == "0":
        return None
    try:
        from stockade.network.dlp import _runscan  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _runscan


MORE = 1 << 62  # rs_scan's answer holds it when it ran out of room before the end


class RunScan:
    """One stream's scan state. The engine's hot path calls ``call(state, data, len(data), 0,
    out, HITS, next)`` itself and, when that answers anything but 0, :meth:`collect`, which
    appends the (id, end) pairs to ``hits`` in the order of their ends (and scans on where the
    call ran out of room); :meth:`scan` does both. ``ids[k]`` is the id reported for
    ``EXPRESSIONS[k]``."""

    __slots__ = ("_unpack", "call", "hits", "next", "out", "state")

    def __init__(
        self, module: Any, ids: tuple[int, ...], out: Any, hits: list[tuple[int, int]]
    ) -> None:
        ffi = module.ffi
        self.call = module.lib.rs_scan
        self.state = ffi.new("struct rs_state *")
        module.lib.rs_init(self.state, ffi.new("uint32_t[]", list(ids)))
        self.out = out  # uint64_t[2 * HITS], shared by the streams of one engine
        self.next = ffi.new("size_t *")
        self._unpack = ffi.unpack
        self.hits = hits

    def scan(self, data: bytes) -> None:
        n = self.call(self.state, data, len(data), 0, self.out, HITS, self.next)
        if n:
            self.collect(data, n)

    def collect(self, data: bytes, n: int) -> None:
        """Take the pairs of a call that answered ``n``; scan on if it ran out of room."""
        while True:
            if n & ~MORE:
                pairs = self._unpack(self.out, 2 * (n & ~MORE))
                self.hits.extend(zip(pairs[0::2], pairs[1::2], strict=True))
            if not n & MORE:
                return
            n = self.call(self.state, data, len(data), self.next[0], self.out, HITS, self.next)
