"""The NFQUEUE loop of the enforcer: compiled (``_fastpath``, C through cffi) or pure Python
(the ``netfilterqueue`` package), both behind one small interface.

Both paths give every queued packet to the same judge (``judge(payload, mark) -> (bits, decided)``:
the bits to add to the packet mark, and whether every later packet of the connection gets the same
bits). The compiled path waits, reads the netlink messages, parses the packets and sends the
verdicts in C without a Python object per packet, answers the later packets of connections already
decided from a small table of its own (the in-flight segments behind a decision), and calls Python
only for the others. The pure-Python path is the reference the tests compare it with; it is used
when the extension was not built (no compiler at install time) or when
``STOCKADE_ENFORCER_FASTPATH=0``. A log line says which one runs.
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

DECIDED = 1 << 32  # in the compiled loop's answer: the connection is decided (fastpath.c)
MAX_LEN = 4096  # packets the kernel holds for the enforcer before it drops (or bypasses)


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

    def counts(self) -> dict[str, int]: ...

    def close(self) -> None: ...


class CompiledQueue:
    kind = "compiled"

    def __init__(self, module: Any, q: Any, judge: Judge, fail_mark: int, *, owned: bool = True):
        self._mod = module
        self._lib, self._ffi = module.lib, module.ffi
        self._q = q
        self._judge = judge
        self._fail_mark = fail_mark
        self._owned = owned
        self._handle = self._ffi.new_handle(self)  # kept alive as long as the queue
        self._lib.fp_set_handle(q, self._handle)
        _install(module)

    @classmethod
    def open(cls, module: Any, num: int, judge: Judge, fail_mark: int) -> CompiledQueue:
        q = module.lib.fp_open(num, MAX_LEN)
        if q == module.ffi.NULL:
            err = module.ffi.errno
            raise OSError(err, os.strerror(err))
        return cls(module, q, judge, fail_mark)

    @classmethod
    def attach(cls, module: Any, fd: int, num: int, judge: Judge, fail_mark: int) -> CompiledQueue:
        """Over a socket the caller made (tests: one end of a socketpair stands for the kernel)."""
        return cls(module, module.lib.fp_attach(fd, num), judge, fail_mark, owned=False)

    def _answer(self, payload: bytes, mark: int) -> int:
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

    def counts(self) -> dict[str, int]:
        out = self._ffi.new("uint64_t[3]")
        self._lib.fp_counts(self._q, out)
        return {"judged": out[0], "fast": out[1], "errors": out[2]}

    def close(self) -> None:
        if self._q is not None:
            (self._lib.fp_close if self._owned else self._lib.fp_detach)(self._q)
            self._q = None


_installed: set[int] = set()


def _install(module: Any) -> None:
    """Define the C loop's callback once per module: it hands the packet to its queue's judge."""
    if id(module) in _installed:
        return
    ffi = module.ffi

    @ffi.def_extern(onerror=lambda *exc: None, error=-1)  # type: ignore[untyped-decorator]
    def fp_judge(handle: Any, pkt: Any, length: int, mark: int) -> int:
        queue: CompiledQueue = ffi.from_handle(handle)
        return queue._answer(ffi.unpack(ffi.cast("char *", pkt), length), mark)

    _installed.add(id(module))


class PythonQueue:
    """The reference path: ``netfilterqueue`` calls :meth:`verdict` with each packet."""

    kind = "python"

    def __init__(self, nfq: Any, judge: Judge, fail_mark: int) -> None:
        self._nfq = nfq
        self._judge = judge
        self._fail_mark = fail_mark
        self._fd = nfq.get_fd() if nfq is not None else -1
        self.judged = self.errors = 0

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

    def counts(self) -> dict[str, int]:
        return {"judged": self.judged, "fast": 0, "errors": self.errors}

    def close(self) -> None:
        if self._nfq is not None:
            self._nfq.unbind()
            self._nfq = None


def open_queue(num: int, judge: Judge, fail_mark: int) -> Queue:
    """Bind NFQUEUE ``num`` in the current network namespace, compiled when possible."""
    module = compiled()
    if module is not None:
        queue: Queue = CompiledQueue.open(module, num, judge, fail_mark)
        log.info("NFQUEUE %d: compiled verdict loop", num)
        return queue
    why = (
        "switched off (STOCKADE_ENFORCER_FASTPATH=0)"
        if os.environ.get("STOCKADE_ENFORCER_FASTPATH") == "0"
        else "not built (python3 setup.py build_ext --inplace)"
    )
    log.info("NFQUEUE %d: pure-Python verdict loop; the compiled one is %s", num, why)
    return PythonQueue.open(num, judge, fail_mark)
