"""Live capture on several cores: one capture process per worker, one ``PACKET_FANOUT`` group.

The parent opens one TPACKET_V3 ring per worker and joins them to a new fanout group in flow-hash
mode (``live.FANOUT_FLOW_HASH``): the kernel hands every frame to one ring by the symmetric hash
of its addresses and ports, so both directions of a connection reach the same worker. The rings
exist before any worker starts, so no frame is missed while they start. Each forked worker reads
its ring through its own ``Decoder`` and ``FlowTable`` (reassembly, detection, TLS, DLP) and
sends each finished connection record, and its counters at the end, to the parent over a pipe.
The parent is the only one that names workloads (its identity directory stays live, e.g. a
Kubernetes watch) and hands every record to ``on_record``: the CLI's recorder, JSON output and
controller link see one stream, as with one process.

Supervision follows ``admission serve --workers``: a worker that fails before it is ready stops
the sensor with its exit code; SIGTERM/SIGINT (and ``duration``, ``count``, ``stop()``) stop every
worker, each then reports its open flows; workers ask for SIGTERM when the parent dies. A worker
that fails later (a frame that breaks its pipeline) reports what it saw so far and stops; its
socket leaves the group and the kernel hands its share to the others, which go on; the run then
names it in ``stats["failed"]``.

Records cross the pipe pickled: they come only from this process's own forked children. A record
goes as the tuple of its values without its names (the parent gives those), and the dataclasses
inside it (TLS facts, DLP hits) as tuples too: the default pickling of a frozen dataclass walks
its fields in Python, which cost the parent more per record than the workers' own sends.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import io
import ipaddress
import logging
import mmap
import operator
import os
import pickle
import select
import signal
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from stockade.identity import Directory
from stockade.model.errors import StockadeError
from stockade.model.resource import ResourceRef
from stockade.network.analysis import Inspectors
from stockade.network.capture.live import Ring
from stockade.network.connection import ConnectionRecord, Hit
from stockade.network.flows import FlowConfig
from stockade.network.interface import CertificateInfo, DlpMatch, TlsInfo
from stockade.network.sensor import SensorRun, _pipeline
from stockade.workers import die_with_parent

log = logging.getLogger("stockade.network")

_LEN = struct.Struct("=I")
_BATCH = 64  # records a worker sends at once (and whenever its ring runs empty)
_PIPE_SIZE = 1 << 20  # bytes a pipe holds before a worker's write waits for the parent
STOP_TIMEOUT = 20.0  # seconds the workers get to report after SIGTERM before SIGKILL

# A record on the pipe: its values in this order, without ``client`` and ``server``
_RECORD_FIELDS = tuple(
    f.name for f in fields(ConnectionRecord) if f.name not in ("client", "server")
)
_record_values = operator.attrgetter(*_RECORD_FIELDS)
_CLIENT_IP = _RECORD_FIELDS.index("client_ip")
_SERVER_IP = _RECORD_FIELDS.index("server_ip")
# The dataclasses a record holds, pickled as (index, values); any other pickles as usual
_NESTED: tuple[type, ...] = (TlsInfo, CertificateInfo, Hit, DlpMatch)
_NESTED_FIELDS = tuple(tuple(f.name for f in fields(cls)) for cls in _NESTED)


def _rebuild(index: int, values: tuple[Any, ...]) -> Any:
    return _NESTED[index](**dict(zip(_NESTED_FIELDS[index], values, strict=True)))


def _reducer(index: int) -> Callable[[Any], tuple[Any, ...]]:
    values = operator.attrgetter(*_NESTED_FIELDS[index])
    return lambda obj: (_rebuild, (index, values(obj)))


_DISPATCH = {cls: _reducer(i) for i, cls in enumerate(_NESTED)}


class WorkerFailed(StockadeError):
    """A sensor worker could not start; ``exit_code`` is the worker's."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code if exit_code > 0 else 3


@dataclass(slots=True)
class _Worker:
    index: int
    pid: int
    fd: int
    buf: bytearray = field(default_factory=bytearray)
    ready: bool = False
    done: dict[str, Any] | None = None
    error: str | None = None  # from the worker: why it failed


def run_fanout(
    interfaces: list[str] | None,
    *,
    workers: int,
    namespace: str | None,
    inspectors: Inspectors | None,
    identities: Directory,
    config: FlowConfig | None = None,
    duration: float | None = None,
    count: int | None = None,
    on_record: Callable[[ConnectionRecord], None] | None = None,
    ready: Callable[[], None] | None = None,
    stop: Callable[[], bool] | None = None,
    keep: bool = True,
    blocks: int = 32,
) -> SensorRun:
    """``run_live`` on ``workers`` processes; same arguments, same records and merged counters.
    ``count`` stops every worker once they saw that many frames together. ``blocks``: 1 MiB ring
    blocks per worker."""
    if workers < 1:
        raise StockadeError("at least one sensor worker")
    rings: list[Ring] = []
    try:
        first = Ring(interfaces, namespace=namespace, fanout=0, blocks=blocks)
        rings.append(first)
        assert first.fanout_id is not None
        for _ in range(workers - 1):
            rings.append(
                Ring(interfaces, namespace=namespace, fanout=first.fanout_id, blocks=blocks)
            )
    except BaseException:
        for ring in rings:
            ring.release()
        raise
    seen = mmap.mmap(-1, 8 * workers)  # frames per worker, shared: --count is for all of them
    pool: dict[int, _Worker] = {}
    try:
        for index, ring in enumerate(rings):
            read, write = os.pipe()
            with contextlib.suppress(OSError):  # room for bursts: a worker never waits on us
                fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
            pid = os.fork()
            if pid == 0:
                os.close(read)
                for w in pool.values():
                    os.close(w.fd)
                _child(index, ring, rings, write, inspectors, config, count, seen)
            os.close(write)
            pool[read] = _Worker(index, pid, read)
    finally:
        for ring in rings:
            ring.release()  # the workers hold them now
    run = SensorRun()
    try:
        _supervise(pool, run, identities, on_record, keep, ready, stop, duration)
        run.stats["source"].update(interfaces=interfaces or ["*"], namespace=namespace)
    finally:
        for w in pool.values():
            if w.pid > 0:  # not reaped yet: an error cut the supervision short
                _kill(w.pid, signal.SIGKILL)
                _reap(w)
            with contextlib.suppress(OSError):
                os.close(w.fd)
        seen.close()
    return run


def _supervise(
    pool: dict[int, _Worker],
    run: SensorRun,
    identities: Directory,
    on_record: Callable[[ConnectionRecord], None] | None,
    keep: bool,
    ready: Callable[[], None] | None,
    stop: Callable[[], bool] | None,
    duration: float | None,
) -> None:
    workers = sorted(pool.values(), key=lambda w: w.index)
    open_fds = set(pool)
    stopping: list[float] = []  # when the workers were told to stop
    deadline = time.monotonic() + duration if duration else None
    signalled = threading.Event()
    announced = False
    startup: _Worker | None = None

    who = _Names(identities)

    def emit(values: tuple[Any, ...]) -> None:
        rec = _record(values, who)
        if keep:
            run.records.append(rec)
        if on_record is not None:
            on_record(rec)

    def halt() -> None:
        if not stopping:
            stopping.append(time.monotonic())
            for w in workers:
                _kill(w.pid, signal.SIGTERM)

    with _stop_on_signals(signalled.set):
        while open_fds:
            now = time.monotonic()
            try:
                if not stopping and (
                    signalled.is_set()
                    or (deadline is not None and now >= deadline)
                    or (stop is not None and stop())
                ):
                    halt()
                if stopping and now - stopping[0] > STOP_TIMEOUT:
                    for fd in open_fds:
                        _kill(pool[fd].pid, signal.SIGKILL)
                readable, _, _ = select.select(list(open_fds), [], [], 0.1)
            except KeyboardInterrupt:  # Ctrl-C: stop, and still report what was seen
                halt()
                continue
            for fd in readable:
                w = pool[fd]
                data = os.read(fd, 1 << 20)
                if not data:
                    open_fds.discard(fd)
                    if not w.ready and startup is None:
                        startup = w
                        halt()
                    elif w.done is None or w.error:
                        log.warning(
                            "sensor worker %d stopped: %s; the others take over its share",
                            w.index,
                            w.error or "no report",
                        )
                    continue
                w.buf += data
                for msg in _messages(w.buf):
                    kind = msg[0]
                    if kind == "records":
                        for values in msg[1]:
                            emit(values)
                    elif kind == "ready":
                        w.ready = True
                    elif kind == "done":
                        w.done, w.error = msg[1], msg[2]
                    elif kind == "failed":
                        w.error = msg[1]
            if not announced and all(w.ready for w in workers):
                announced = True
                if ready is not None:
                    ready()
    codes = {w.index: _reap(w) for w in workers}
    if startup is not None:
        why = startup.error or f"exit code {codes[startup.index]}"
        raise WorkerFailed(
            f"sensor worker {startup.index} failed at start: {why}", codes[startup.index]
        )
    run.stats = _merge([w.done for w in workers if w.done is not None])
    run.stats["source"]["workers"] = len(workers)
    run.stats["source"]["worker_frames"] = [
        w.done["source"]["frames"] if w.done else 0 for w in workers
    ]
    failed = [
        f"worker {w.index}: {w.error or f'exit code {codes[w.index]}'}"
        for w in workers
        if w.error or w.done is None or codes[w.index] != 0
    ]
    if failed:
        run.stats["failed"] = failed


def _record(values: tuple[Any, ...], who: Callable[[str], ResourceRef]) -> ConnectionRecord:
    """A worker's record (``_Pipe.record``) again, named by ``who(ip)``."""
    return ConnectionRecord(
        **dict(zip(_RECORD_FIELDS, values, strict=True)),
        client=who(values[_CLIENT_IP]),
        server=who(values[_SERVER_IP]),
    )


class _Names:
    """The workload at each address, remembered until the directory changes (its ``version``)."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.version = -1
        self.refs: dict[str, ResourceRef] = {}

    def __call__(self, ip: str) -> ResourceRef:
        directory = self.directory
        if directory.version != self.version or len(self.refs) >= 65536:
            self.refs.clear()
            self.version = directory.version  # read before the lookups it is kept for
        ref = self.refs.get(ip)
        if ref is None:
            ref = self.refs[ip] = directory.lookup(ipaddress.ip_address(ip).packed)
        return ref


class _Unnamed(Directory):
    """The workers' directory: the parent names every record, so a worker leaves names out."""

    NOBODY = ResourceRef(kind="external", name="")

    def lookup(self, packed: bytes) -> ResourceRef:
        return self.NOBODY


def _messages(buf: bytearray) -> list[tuple[Any, ...]]:
    out = []
    while len(buf) >= _LEN.size:
        (n,) = _LEN.unpack_from(buf)
        if len(buf) < _LEN.size + n:
            break
        out.append(pickle.loads(bytes(buf[_LEN.size : _LEN.size + n])))
        del buf[: _LEN.size + n]
    return out


def _reap(w: _Worker) -> int:
    if w.pid <= 0:
        return 0
    try:
        _pid, status = os.waitpid(w.pid, 0)
    except ChildProcessError:
        return 0
    w.pid = -1
    return os.waitstatus_to_exitcode(status)


def _kill(pid: int, sig: int) -> None:
    if pid > 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


@contextlib.contextmanager
def _stop_on_signals(handler: Callable[[], None]) -> Any:
    """SIGTERM (and SIGINT) stop the workers gracefully; only the main thread may set handlers
    (a sensor run from another thread is stopped with ``stop()``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, lambda *_: handler()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The workers' counters added up (peaks too: an upper bound of what the workers held at once)."""
    decode: dict[str, Any] = {}
    flows: dict[str, int] = {}
    source: dict[str, Any] = {"kernel_packets": 0, "kernel_drops": 0, "frames": 0}
    for r in reports:
        for k, v in r["decode"].items():
            if isinstance(v, dict):
                merged = decode.setdefault(k, {})
                for kk, vv in v.items():
                    merged[kk] = merged.get(kk, 0) + vv
            else:
                decode[k] = decode.get(k, 0) + v
        for k, v in r["flows"].items():
            flows[k] = flows.get(k, 0) + v
        for k in ("kernel_packets", "kernel_drops", "frames"):
            source[k] += r["source"][k]
    return {"decode": decode, "flows": flows, "source": source}


class _Pipe:
    """The worker's side: records in batches, then its counters."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending: list[tuple[Any, ...]] = []

    def record(self, rec: ConnectionRecord) -> None:
        self.pending.append(_record_values(rec))
        if len(self.pending) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.send(("records", self.pending))
            self.pending = []

    def send(self, msg: tuple[Any, ...]) -> None:
        out = io.BytesIO()
        out.write(b"\0" * _LEN.size)
        pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.dispatch_table = _DISPATCH
        pickler.dump(msg)
        data = out.getbuffer()
        _LEN.pack_into(data, 0, len(data) - _LEN.size)
        view = data
        while view:
            view = view[os.write(self.fd, view) :]


def _child(
    index: int,
    ring: Ring,
    rings: list[Ring],
    fd: int,
    inspectors: Inspectors | None,
    config: FlowConfig | None,
    count: int | None,
    seen: mmap.mmap,
) -> None:
    """The worker process: never returns (``os._exit``: the parent's cleanup never runs twice)."""
    code = 1
    pipe = _Pipe(fd)
    stopping = threading.Event()
    try:
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, lambda *_: stopping.set())
        die_with_parent()
        for other in rings:
            if other is not ring:
                other.release()
        run = SensorRun()
        # names are the parent's to give (its directory is the live one): none here
        decoder, table = _pipeline(inspectors, _Unnamed(), config, pipe.record, run, False)
        frame: Callable[..., None] = decoder.frame
        stop: Callable[[], bool] = stopping.is_set
        if count is not None:
            frames = (ctypes.c_uint64 * (len(seen) // 8)).from_buffer(seen)
            inner = decoder.frame

            def counted(ts: float, link: int, buf: Any, off: int, caplen: int) -> None:
                inner(ts, link, buf, off, caplen)
                frames[index] += 1

            def enough() -> bool:
                return stopping.is_set() or sum(frames) >= count

            frame, stop = counted, enough

        def idle() -> None:
            table.tick()
            pipe.flush()

        pipe.send(("ready",))
        code = 0
        error = None
        try:
            ring.run(frame, stop=stop, idle=idle)
        except Exception as exc:  # a frame broke this worker's pipeline: report what it saw
            error = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            code = 3
        try:
            table.flush()  # its open flows become records, as with one process
        except Exception as exc:  # the same frame's flow again: the records so far still go
            error = error or f"{type(exc).__name__}: {exc}"
            code = 3
        pipe.flush()
        ring.close()
        source = {
            "kernel_packets": ring.stats_packets,
            "kernel_drops": ring.stats_drops,
            "frames": ring.frames,
        }
        stats = {
            "decode": decoder.stats.as_dict(),
            "flows": {k: getattr(table.stats, k) for k in table.stats.__slots__},
            "source": source,
        }
        pipe.send(("done", stats, error))
    except StockadeError as exc:
        code = exc.exit_code
        with contextlib.suppress(OSError):
            pipe.send(("failed", str(exc)))
    except BaseException as exc:
        traceback.print_exc()
        with contextlib.suppress(OSError):
            pipe.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
