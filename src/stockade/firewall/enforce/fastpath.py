"""The NFQUEUE loop of the enforcer: compiled (``_fastpath``, C through cffi) or pure Python
(the ``netfilterqueue`` package), both behind one small interface.

Both paths give every queued packet to the same judge (``judge(payload, mark) -> (bits, decided)``:
the bits to add to the packet mark, and whether every later packet of the connection gets the same
bits). The compiled path waits, reads the netlink messages, parses the packets and sends the
verdicts in C without a Python object per packet, answers the later packets of connections already
decided from a small table of its own (the in-flight segments behind a decision), and calls Python
only for the others. The pure-Python path is the reference the tests compare it with; it is used
when the extension was not built (no compiler at install time) or when
``STOCKADE_ENFORCER_FASTPATH=0``; ``STOCKADE_ENFORCER_FASTPATH=loop`` keeps the compiled loop but
answers no connection from its first segment (below). A log line says which one runs.

The compiled loop also answers the common connection alone from its first segment
(fastpath_own.c): IPv4/TCP, an HTTP/1 request line or a whole TLS ClientHello from the client
in a segment with ACK (its acknowledgement is where the server's bytes start),
between two ends on a port for which ``advise(client, server, port)`` (the inspector's
``fast_bits``, asked once per pair and policy version) says the policy allows that protocol with no
event to record. With nothing to look for in the bytes the connection is allowed there and then;
with DLP, every in-order segment is scanned with the DLP engine's own Hyperscan expressions
(:func:`dlp_expressions`) and answered in C while nothing matches. At the first thing Python must
see (a prefilter or decoding-trigger match, a segment ending in a letter or digit, which the DLP
stream checks at once, a segment out of order or overlapping what came before (a plain
retransmission of bytes already scanned is answered in C), a FIN or RST, a direction past the
decoding's replay budget) the packets answered so far are handed to the judge in order, then the packet at
hand: Python's flow and DLP streams end up as if it had judged every packet.
"""

from __future__ import annotations

import logging
import os
import select
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("stockade.enforcer")

# judge(payload, packet mark) -> (bits to add to the packet mark, the connection is decided)
Judge = Callable[[bytes, int], tuple[int, bool]]
# advise(client address, server address (4 bytes each), server port) -> PAIR_* bits
Advise = Callable[[bytes, bytes, int], int]

# What the compiled loop may answer alone for TCP connections from one end to another's port
# (fastpath_own.c): PAIR_KNOWN always (the answer was given); PAIR_HTTP / PAIR_TLS: the policy
# allows that protocol there with nothing to record; PAIR_SCAN: DLP looks at every segment (the
# connection stays undecided); PAIR_ALLOW: nothing to look for, allowed once the protocol is known.
PAIR_KNOWN, PAIR_HTTP, PAIR_TLS, PAIR_SCAN, PAIR_ALLOW = 1, 2, 4, 8, 16
# With PAIR_SCAN: the sensors are covered by the kernel's first look (clean.py), so the answers
# carry marks.SCAN (and marks.SCAN_SHORT with PAIR_CLEAN_SHORT)
PAIR_CLEAN, PAIR_CLEAN_SHORT = 32, 64
# why connections went back to Python (fastpath_own.c FP_WHY_*), in counts() as handed_<cause>
HANDED_BECAUSE = ("match", "alnum", "order", "end", "limit", "slot")

DECIDED = 1 << 32  # in the compiled loop's answer: the connection is decided (fastpath.c)
END_COPY = 1 << 31  # the mark of a kept end the C loop replays at a hand-back (fastpath_own.c)
# the mark of a clean segment's copy (it passed in the kernel: judged for the sensors and the
# streams, its answer sent nowhere; see clean.py and Queue.copy)
DATA_COPY = 1 << 30
MAX_LEN = 4096  # packets the kernel holds for the enforcer before it drops (or bypasses)
# the compiled loop's longest spin after answering packets, in microseconds (fastpath.c fp_run)
SPIN_US = 0
SPIN_US_MAX = 1000
# how long a clean segment's copy may wait to be read while copies keep coming, in microseconds
# (fastpath.c fp_run): it is read before any later packet of the queue in any case
COPIES_WAIT_US = 2000
COPIES_WAIT_US_MAX = 100_000


def _env_us(name: str, default: int, top: int) -> int:
    """A number of microseconds from the environment, 0 to ``top``; ``default`` when unset."""
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw.strip() else default
    except ValueError:
        log.warning("%s=%r is not a number: %d us", name, raw, default)
        return default
    return max(0, min(value, top))


def spin_us() -> int:
    """The compiled loop's longest spin (``STOCKADE_ENFORCER_SPIN_US``, 0 to 1000; 0: none)."""
    return _env_us("STOCKADE_ENFORCER_SPIN_US", SPIN_US, SPIN_US_MAX)


# the compiled loop's spin after the head of an HTTP request whose body follows, microseconds
BODY_SPIN_US = 50


def body_spin_us() -> int:
    """The compiled loop's spin after answering a request head whose body is still to come
    (``STOCKADE_ENFORCER_BODY_SPIN_US``, 0 to 1000; 0: none)."""
    return _env_us("STOCKADE_ENFORCER_BODY_SPIN_US", BODY_SPIN_US, SPIN_US_MAX)


def copies_wait_us() -> int:
    """How long the compiled loop lets clean segments' copies wait while they keep coming
    (``STOCKADE_ENFORCER_COPIES_WAIT_US``, 0 to 100000; 0: each copy wakes the loop)."""
    return _env_us("STOCKADE_ENFORCER_COPIES_WAIT_US", COPIES_WAIT_US, COPIES_WAIT_US_MAX)


def compiled() -> Any | None:
    """The compiled module, or None when it cannot be used (not built, or switched off)."""
    if os.environ.get("STOCKADE_ENFORCER_FASTPATH", "1") == "0":
        return None
    try:
        from stockade.firewall.enforce import _fastpath  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _fastpath


class Queue(Protocol):
    kind: str

    def serve(self, other: int, timeout: float) -> bool:
        """Answer packets for up to ``timeout`` seconds; True as soon as ``other`` (a descriptor,
        or -1) is readable."""
        ...

    def forget(self) -> None:
        """Drop every remembered decision (the policy changed)."""
        ...

    def ended(self, packet: bytes) -> None:
        """A FIN or RST that passed in the kernel (ends.py): connections answered in the loop
        itself are forgotten a moment later."""
        ...

    def copy(self, packet: bytes, mark: int) -> None:
        """A clean segment that passed in the kernel (clean.py): read as a queued one is, in its
        place among them, with no verdict to send."""
        ...

    def counts(self) -> dict[str, int]: ...

    def close(self) -> None: ...


def dlp_expressions(engine: Any) -> list[tuple[bytes, int, int]] | None:
    """The (expression, id, Hyperscan flags) of ``engine``'s stream database, as its ``_compile``
    builds them (sensors' prefilters and lead words, then the HTTP decoding triggers), for the
    compiled loop; None where its DLP cannot be matched by one stream scan (another backend,
    sensors Hyperscan refused and scanned by regex instead)."""
    from stockade.network.dlp import engine as dlp
    from stockade.network.dlp.triggers import TRIGGERS

    if engine is None or engine.backend != "hs-stream" or engine.always_scan:
        return None
    hs = dlp.hyperscan
    out: list[tuple[bytes, int, int]] = []
    for si, compiled in enumerate(engine.sensors):
        sensor = compiled.sensor
        own = sensor.prefilter or sensor.patterns
        base = hs.HS_FLAG_CASELESS if sensor.ignore_case else 0
        flag = base if sensor.prefilter else base | hs.HS_FLAG_PREFILTER
        for k, expr in enumerate([*own, *sensor.lead_prefilter]):
            ident = si * dlp._ID_STRIDE + (k if k < len(own) else dlp._LEAD_ID + k - len(own))
            out.append((expr.encode("latin-1"), ident, flag))
    for k, (expr, caseless) in enumerate(TRIGGERS):
        single = hs.HS_FLAG_SINGLEMATCH
        out.append(
            (expr, dlp._TRIGGER_ID + k, single | hs.HS_FLAG_CASELESS if caseless else single)
        )
    return None if any(b"\0" in e for e, _, _ in out) else out


class CompiledQueue:
    kind = "compiled"

    def __init__(
        self,
        module: Any,
        q: Any,
        judge: Judge,
        fail_mark: int,
        *,
        owned: bool = True,
        advise: Advise | None = None,
        dlp: list[tuple[bytes, int, int]] | None = None,
        end: Callable[[bytes], object] | None = None,
    ):
        self._mod = module
        self._end = end  # notes an end the kernel copied, replayed at a hand-back in its place
        self._lib, self._ffi = module.lib, module.ffi
        self._q = q
        self._judge = judge
        self._advise = advise or _never  # without advice nothing is answered from a first segment
        self._fail_mark = fail_mark
        self._owned = owned
        self._handle = self._ffi.new_handle(self)  # kept alive as long as the queue
        _install(module)
        self.dlp = False  # the loop scans DLP itself (see fastpath_own.c)
        if advise is not None and dlp:
            self.dlp = self._load_dlp(dlp)
        self._lib.fp_set_handle(q, self._handle)
        self._lib.fp_set_spin(q, spin_us())
        self._lib.fp_set_body_spin(q, body_spin_us())

    def _load_dlp(self, dlp: list[tuple[bytes, int, int]]) -> bool:
        ffi = self._ffi
        exprs = [ffi.new("char[]", e) for e, _, _ in dlp]
        err = ffi.new("char[256]")
        if self._lib.fp_dlp_load(
            self._q,
            ffi.new("char *[]", exprs),
            ffi.new("unsigned int[]", [f for _, _, f in dlp]),
            ffi.new("unsigned int[]", [i for _, i, _ in dlp]),
            len(dlp),
            err,
            len(err),
        ):
            log.warning(
                "the compiled loop leaves DLP to Python: %s",
                ffi.string(err).decode(errors="replace"),
            )
            return False
        return True

    @classmethod
    def open(
        cls,
        module: Any,
        num: int,
        judge: Judge,
        fail_mark: int,
        *,
        advise: Advise | None = None,
        dlp: list[tuple[bytes, int, int]] | None = None,
        end: Callable[[bytes], object] | None = None,
    ) -> CompiledQueue:
        q = module.lib.fp_open(num, MAX_LEN)
        if q == module.ffi.NULL:
            err = module.ffi.errno
            raise OSError(err, os.strerror(err))
        return cls(module, q, judge, fail_mark, advise=advise, dlp=dlp, end=end)

    @classmethod
    def attach(
        cls,
        module: Any,
        fd: int,
        num: int,
        judge: Judge,
        fail_mark: int,
        *,
        advise: Advise | None = None,
        dlp: list[tuple[bytes, int, int]] | None = None,
        end: Callable[[bytes], object] | None = None,
    ) -> CompiledQueue:
        """Over a socket the caller made (tests: one end of a socketpair stands for the kernel)."""
        q = module.lib.fp_attach(fd, num)
        if q == module.ffi.NULL:
            raise OSError(module.ffi.errno, os.strerror(module.ffi.errno))
        return cls(
            module, q, judge, fail_mark,
            owned=False, advise=advise, dlp=dlp, end=end,
        )  # fmt: skip

    def _answer(self, payload: bytes, mark: int) -> int:
        # a copy (DATA_COPY) is judged like a queued packet: a kept one replayed at a hand-back
        # carries its answer (a block) to the packet at hand
        if mark & END_COPY:  # a kept end, replayed in its place: noted, no verdict
            if self._end is not None:
                self._end(payload)
            return 0
        bits, decided = self._judge(payload, mark)
        return bits | DECIDED if decided and bits else bits

    def serve(self, other: int, timeout: float) -> bool:
        r: int = self._lib.fp_run(self._q, other, int(timeout * 1000), self._fail_mark)
        if r < 0:
            err = self._ffi.errno
            raise OSError(err, f"NFQUEUE: {os.strerror(err)}")
        return r == 1

    def dispatch(self, data: bytes) -> int:
        """Answer the PACKET messages of one read (tests)."""
        n: int = self._lib.fp_dispatch(self._q, data, len(data), self._fail_mark)
        if n < 0:
            err = self._ffi.errno
            raise OSError(err, os.strerror(err))
        return n

    def forget(self) -> None:
        self._lib.fp_forget_all(self._q)

    def ended(self, packet: bytes) -> None:
        self._lib.fp_own_end(self._q, packet, len(packet))

    def copy(self, packet: bytes, mark: int) -> None:
        self._lib.fp_copy_one(self._q, packet, len(packet), mark | DATA_COPY)

    def read_ends(self, fd: int) -> bool:
        """Read the connections' ends from ``fd`` (the NFLOG socket of the ends' group alone,
        ends.EndLog) in the loop itself: the ends of connections answered in C never reach
        Python (a batch of ends read in Python held the queue up to a millisecond or more)."""
        r: int = self._lib.fp_set_ends(self._q, fd)
        return r == 0

    def read_copies(self, fd: int) -> bool:
        """Read the clean segments' copies from ``fd`` (an NFLOG socket bound to their group
        only, ends.EndLog.whole) in the loop itself, before the queued packets."""
        r: int = self._lib.fp_set_copies(self._q, fd, copies_wait_us())
        return r == 0

    def counts(self) -> dict[str, int]:
        """Packets judged by Python and answered in C, callback failures; connections answered
        in C from their first segment, handed back to Python, and the packets replayed then."""
        out = self._ffi.new("uint64_t[8]")
        self._lib.fp_counts(self._q, out)
        own = self._ffi.new("uint64_t[10]")
        self._lib.fp_own_counts(self._q, own)
        counts = {
            "judged": out[0], "fast": out[1], "errors": out[2],
            "owned": own[0], "handed": own[1], "replayed": own[2],
        }  # fmt: skip
        for i, why in enumerate(HANDED_BECAUSE):
            if own[3 + i]:  # only causes that happened: the closing log line stays short
                counts[f"handed_{why}"] = own[3 + i]
        if own[9]:
            counts["retransmitted"] = own[9]  # segments already scanned, answered in C again
        if out[3] or out[4]:  # clean segments that passed in the kernel, read by Python / in C
            counts["copied"], counts["copied_fast"] = out[3], out[4]
        if out[5]:
            counts["copies_lost"] = out[5]
        if out[6]:  # reads of copies that waited (no packet of the queue read them first)
            counts["copies_due"] = out[6]
        if out[7]:  # reads that found the ends' socket had overflowed (flows idle out instead)
            counts["ends_lost"] = out[7]
        spin = self._ffi.new("uint64_t[5]")
        self._lib.fp_spin_counts(self._q, spin)
        if spin[2] or spin[3]:  # packets found while spinning after a read, spins run out
            counts["spin_hits"], counts["spin_misses"] = spin[2], spin[3]
            counts["spin_yielded"] = spin[4]  # of which cut short: another task wanted the core
        return counts

    def close(self) -> None:
        if self._q is not None:
            (self._lib.fp_close if self._owned else self._lib.fp_detach)(self._q)
            self._q = None


_installed: set[int] = set()


def _never(client: bytes, server: bytes, port: int) -> int:
    return PAIR_KNOWN  # nothing is answered from a first segment


def _advice_failed(kind: Any, value: Any, tb: Any) -> None:
    log.error("compiled loop: no advice (%s); the connection goes to Python", value)


def _install(module: Any) -> None:
    """Define the C loop's callback once per module: it hands the packet to its queue's judge."""
    if id(module) in _installed:
        return
    ffi = module.ffi

    @ffi.def_extern(onerror=lambda *exc: None, error=-1)  # type: ignore[untyped-decorator]
    def fp_judge(handle: Any, pkt: Any, length: int, mark: int) -> int:
        queue: CompiledQueue = ffi.from_handle(handle)
        return queue._answer(ffi.unpack(ffi.cast("char *", pkt), length), mark)

    @ffi.def_extern(onerror=_advice_failed, error=0)  # type: ignore[untyped-decorator]
    def fp_advise(handle: Any, client: Any, server: Any, port: int) -> int:
        queue: CompiledQueue = ffi.from_handle(handle)
        return (
            int(queue._advise(ffi.buffer(client, 4)[:], ffi.buffer(server, 4)[:], port))
            | PAIR_KNOWN
        )

    _installed.add(id(module))


class PythonQueue:
    """The reference path: ``netfilterqueue`` calls :meth:`verdict` with each packet."""

    kind = "python"

    def __init__(self, nfq: Any, judge: Judge, fail_mark: int) -> None:
        self._nfq = nfq
        self._judge = judge
        self._fail_mark = fail_mark
        self._fd = nfq.get_fd() if nfq is not None else -1
        self.judged = self.errors = self.copied = 0

    @classmethod
    def open(cls, num: int, judge: Judge, fail_mark: int) -> PythonQueue:
        from netfilterqueue import NetfilterQueue

        queue = cls(None, judge, fail_mark)
        nfq = NetfilterQueue()
        nfq.bind(num, queue.verdict, max_len=MAX_LEN)
        queue._nfq, queue._fd = nfq, nfq.get_fd()
        return queue

    def verdict(self, pkt: Any) -> None:
        self.judged += 1
        try:
            bits, _ = self._judge(pkt.get_payload(), pkt.get_mark())
        except Exception:  # the judge handles its own failures; this is the last resort
            self.errors += 1
            bits = self._fail_mark
        if bits:
            pkt.set_mark(pkt.get_mark() | bits)  # keep other software's bits (kube-proxy's 0x4000)
        pkt.accept()  # a block is carried out by the post chain (reset/drop) from the mark

    def serve(self, other: int, timeout: float) -> bool:
        fds = [self._fd] if other < 0 else [self._fd, other]
        readable, _, _ = select.select(fds, [], [], timeout)
        if self._fd in readable:
            self._nfq.run(block=False)
        return other >= 0 and other in readable

    def forget(self) -> None:
        pass  # nothing remembered here: every packet goes to the judge

    def ended(self, packet: bytes) -> None:
        pass  # the judge saw every packet (Inspector.end_seen frees its flows)

    def copy(self, packet: bytes, mark: int) -> None:
        self.copied += 1
        try:
            self._judge(packet, mark | DATA_COPY)
        except Exception:  # the judge handles its own failures; this is the last resort
            self.errors += 1

    def counts(self) -> dict[str, int]:
        counts = {"judged": self.judged, "fast": 0, "errors": self.errors}
        if self.copied:
            counts["copied"] = self.copied
        return counts

    def close(self) -> None:
        if self._nfq is not None:
            self._nfq.unbind()
            self._nfq = None


def open_queue(
    num: int,
    judge: Judge,
    fail_mark: int,
    *,
    advise: Advise | None = None,
    dlp_engine: Any = None,
    end: Callable[[bytes], object] | None = None,
) -> Queue:
    """Bind NFQUEUE ``num`` in the current network namespace, compiled when possible (with
    ``advise``, it also answers connections from their first segment, scanning DLP with
    ``dlp_engine``'s expressions)."""
    module = compiled()
    if module is not None:
        if os.environ.get("STOCKADE_ENFORCER_FASTPATH") == "loop":
            advise = None  # the compiled loop only: every connection's first segment to Python
        dlp = dlp_expressions(dlp_engine) if advise is not None else None
        queue = CompiledQueue.open(module, num, judge, fail_mark, advise=advise, dlp=dlp, end=end)
        log.info(
            "NFQUEUE %d: compiled verdict loop%s", num,
            "" if advise is None else " (first segments and DLP in C)" if queue.dlp
            else " (first segments in C, DLP in Python)",
        )  # fmt: skip
        return queue
    why = (
        "switched off (STOCKADE_ENFORCER_FASTPATH=0)"
        if os.environ.get("STOCKADE_ENFORCER_FASTPATH") == "0"
        else "not built (python3 setup.py build_ext --inplace)"
    )
    log.info("NFQUEUE %d: pure-Python verdict loop; the compiled one is %s", num, why)
    return PythonQueue.open(num, judge, fail_mark)
