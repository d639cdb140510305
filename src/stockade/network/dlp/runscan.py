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


class RunScan:
    """One stream's scan: ``scan(data)`` appends the (id, end) pairs ending in ``data`` to a
    list, in the order of their ends. ``ids[k]`` is the id reported for ``EXPRESSIONS[k]``."""

    __slots__ = ("_lib", "_next", "_out", "_state", "_unpack", "hits")

    def __init__(
        self, module: Any, ids: tuple[int, ...], out: Any, hits: list[tuple[int, int]]
    ) -> None:
        ffi, self._lib = module.ffi, module.lib
        self._state = ffi.new("struct rs_state *")
        self._lib.rs_init(self._state, ffi.new("uint32_t[]", list(ids)))
        self._out = out  # uint64_t[2 * HITS], shared by the streams of one engine
        self._next = ffi.new("size_t *")
        self._unpack = ffi.unpack
        self.hits = hits

    def scan(self, data: bytes) -> None:
        lib, state, out, at = self._lib, self._state, self._out, self._next
        n = lib.rs_scan(state, data, len(data), 0, out, HITS, at)
        while True:
            if n:
                pairs = self._unpack(out, 2 * n)
                self.hits.extend(zip(pairs[0::2], pairs[1::2], strict=True))
            if at[0] >= len(data):
                return
            n = lib.rs_scan(state, data, len(data), at[0], out, HITS, at)
