"""``sensor --pcap`` with the per-frame work in C (``_pcapfast``, built from pcapfast.c).

The C code reads the capture, decodes the frames and keeps the flow table and the reassembly
exactly as :class:`~stockade.network.flows.FlowTable` and
:class:`~stockade.network.reassembly.Stream` do. Where those call their hooks, it lists an event
(a direction's in-order bytes, a hole, the analysis of a flow, its end with the record's facts);
this module replays the events in order through the flow table's own hooks, detection, DLP feeds
and record building, so Python works per delivered chunk and per flow, never per frame. The hooks
change nothing the C code keeps, so the replay sees what they saw in the pure-Python path, which
stays the reference (``STOCKADE_SENSOR_FASTPATH=0``, and whenever the extension was not built);
tests/network/test_pcap_fastpath.py holds the two to the same records, statistics and errors.

The common connection goes further: clear HTTP/1.x that opens with the request, without a
hole. The C code keeps such a flow's events until it ends and then decides it (pcapfast.c
``common``): one EV_COMMON with the record's facts, the HTTP details, and the bytes of each
direction DLP must look at (a direction runscan.c's scan finds quiet, as ``DlpEngine.stretch``
would, needs nothing) replaces its events. Python builds the record from that alone
(:func:`_common`: the DLP feeds of those directions, the same record code and masking gate).
Anything else hands the kept events over in their order and is replayed as above.
``STOCKADE_SENSOR_FASTPATH=replay`` keeps the C reader but replays every flow (the step between).

With ``lines`` (a caller that only writes the JSON lines and tallies them: ``sensor --pcap
--format json --no-store``), a common connection neither of whose directions DLP must look at is
not handed over at all: the C code writes its record's JSON line (``ConnectionRecord.json_line``
byte for byte; pcapfast.c "the common connection's line" says why nothing in it can hold a
number the masking gate would mask), with the JSON of the addresses workloads own registered by
this module (:class:`_Peers`), and hands over the lines in runs.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stockade.identity import Directory
from stockade.model.errors import PacketError
from stockade.network.analysis import DlpFeed
from stockade.network.capture.decode import DecodeStats
from stockade.network.capture.pcapfile import PcapReader
from stockade.network.connection import Hit, hits_json, peer_json_parts
from stockade.network.flows import Flow, FlowTable, _ip_text
from stockade.network.interface import Detection

EV_DATA, EV_GAP, EV_ANALYZE, EV_FINISH, EV_DROP, EV_COMMON, EV_LINES = 1, 2, 3, 4, 5, 6, 7
STATES = ("closed", "reset", "timeout", "evicted", "active")
# a finished flow's facts, as pcapfast.c finish() writes them
FACTS = struct.Struct("<dd9QBBHHBBB16s16s")
DECODE_FIELDS = ("frames", "bytes", "ipv4", "ipv6", "tcp", "udp", "other", "fragments",
                 "ipv4_options", "malformed", "outgoing_skipped")  # fmt: skip
FLOW_FIELDS = ("flows", "records", "evicted", "half_open_dropped", "memcap_evictions",
               "peak_flows", "peak_memory")  # fmt: skip
MAX_EVENTS = 16384  # events per batch handed over
MAX_DATA = 4 << 20  # bytes per batch handed over
# the HTTP details after a common connection's facts: method, path and host lengths, status
COMMON = struct.Struct("<BHH3s")
U32 = struct.Struct("<I")
# bytes the flows waiting to be decided may hold in all (past it, a flow is replayed at once)
DEFER_CAP = 64 << 20
# an EV_LINES event's bytes open with the earliest start and the latest end of its connections
SPAN = struct.Struct("<dd")
COMMON_PROTOCOL = "proto.http"  # the protocol of every connection written as a line
PEERS_KEPT = 16384  # owned addresses whose JSON the C code holds (pcapfast.c SP_PEERS_KEPT)
# lines(text, count, protocol, first, last, hits): ``count`` JSON lines (each ending in a
# newline) of clear connections of ``protocol`` without TLS, the earliest starting at ``first``,
# the latest ending at ``last``; ``hits``: the DLP hits of the one connection of a line with
# findings, else ()
Lines = Callable[[str, int, str, float, float, tuple[Hit, ...]], None]
LINE = struct.Struct("<II")  # a line's length and where its "dlp": [] is


def compiled() -> Any | None:
    """The compiled module, or None (not built, or ``STOCKADE_SENSOR_FASTPATH=0``)."""
    if os.environ.get("STOCKADE_SENSOR_FASTPATH", "1") == "0":
        return None
    try:
        from stockade.network.capture import _pcapfast  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _pcapfast


class _Head:
    """What the flow table's hooks and records read of a stream: its head, the bytes delivered,
    the holes (the C code keeps the rest)."""

    __slots__ = ("delivered", "gaps", "head", "keep_head")

    def __init__(self) -> None:
        self.head = bytearray()
        self.keep_head = True
        self.delivered = 0
        self.gaps = 0

    def release(self) -> int:
        self.head = bytearray()
        self.keep_head = False
        return 0  # the C code keeps the memory account


def run(
    mod: Any, path: Path, table: FlowTable, count: int | None, lines: Lines | None = None
) -> tuple[DecodeStats, dict[str, Any]]:
    """Read ``path`` through the C path into ``table``'s hooks and records (and, with ``lines``,
    the connections the C code writes as JSON lines into ``lines``); returns the decode
    statistics and the source facts (as ``run_pcap`` reports them); fills ``table.stats``."""
    ffi, lib = mod.ffi, mod.lib
    cfg = table.cfg
    c = ffi.new("struct sp_cfg *")
    c.depth, c.ooo_limit, c.ooo_segments, c.memcap, c.max_flows = (
        cfg.stream_depth, cfg.ooo_limit, max(1, cfg.ooo_segments), cfg.memcap, cfg.max_flows
    )  # fmt: skip
    c.tcp_idle, c.udp_idle = cfg.tcp_idle, cfg.udp_idle
    c.half_open_idle, c.linger = cfg.half_open_idle, cfg.linger
    scan = _common_scan(table)
    scanner: Any = None
    if scan is not None:
        c.common, c.defer_cap = 1, DEFER_CAP
        c.rs_new, c.rs_scan_all, c.rs_free, c.rs_ids, c.rs_db, scanner = scan
        if lines is not None and isinstance(table.identities, Directory):
            c.lines = 1
            c.id_run = table.connection_id(0)[:-12].encode()
    # run_pcap counts a frame before it checks the limit: at least one frame is read
    limit = -1 if count is None else max(count, 1)
    with PcapReader(path) as reader:
        buf = reader._buf
        keep = ffi.from_buffer(buf) if len(buf) else ffi.new("uint8_t[1]")
        r = lib.sp_new(keep, len(buf), c, limit)
        try:
            if r == ffi.NULL:
                raise PacketError("out of memory", subject=str(path))
            flows: dict[int, Flow] = {}
            n = ffi.new("uint64_t *")
            peers = _Peers(ffi, lib, r, table) if c.lines else None
            while True:
                if peers is not None:
                    peers.check()
                rc = _scanning(scanner, lib.sp_step, r, MAX_EVENTS, MAX_DATA)
                if rc == 1:
                    if peers is not None:
                        peers.check()
                    rc = _scanning(scanner, lib.sp_flush, r)
                    _replay(ffi, lib, r, n, table, flows, lines)
                    if rc == 3:
                        raise PacketError("out of memory", subject=str(path))
                    break
                _replay(ffi, lib, r, n, table, flows, lines)
                if rc == 2:
                    raise PacketError(ffi.string(lib.sp_error(r)).decode(), subject=str(path))
                if rc == 3:
                    raise PacketError("out of memory", subject=str(path))
            out = ffi.new("uint64_t[22]")
            lib.sp_stats(r, out)
        finally:
            lib.sp_free(r)  # (NULL is allowed)
            del keep
    stats = DecodeStats(**{name: out[i] for i, name in enumerate(DECODE_FIELDS)})
    for i, name in enumerate(FLOW_FIELDS):
        setattr(table.stats, name, out[11 + i])
    source = {
        "file": str(path),
        "format": ("", "pcap", "pcapng")[out[18]],
        "truncated": bool(out[19]),
        "bad_timestamps": out[20],
    }
    return stats, source


def _replay(ffi: Any, lib: Any, r: Any, n: Any, table: FlowTable, flows: dict[int, Flow],
            lines: Lines | None = None) -> None:  # fmt: skip
    """Run the listed events through the flow table's hooks, in order (the lines written in C
    into ``lines``)."""
    evp = lib.sp_events(r, n)
    count = n[0]
    if not count:
        lib.sp_taken(r)
        return
    ev = memoryview(ffi.buffer(evp, count * 32)).cast("q").tolist()
    dp = lib.sp_data(r, n)
    data = ffi.buffer(dp, n[0])[:] if n[0] else b""
    lib.sp_taken(r)
    on_data, on_gap, analyze = table.on_data, table.on_gap, table._analyze
    # (kind | direction << 8, flow number, offset or count, length): one event in four numbers
    for head, no, at, size in zip(ev[0::4], ev[1::4], ev[2::4], ev[3::4], strict=True):
        kind = head & 0xFF
        if kind == EV_LINES:  # (no: the number of lines)
            first, last = SPAN.unpack_from(data, at)
            assert lines is not None
            text = data[at + SPAN.size : at + size].decode("ascii")
            lines(text, no, COMMON_PROTOCOL, first, last, ())
            continue
        if kind == EV_COMMON and head >> 8 and lines is not None:  # its line written in C
            _common_line(table, no, data, at, lines)
            continue
        f = flows.get(no)
        if f is None:
            f = _flow(table, no)
            if kind != EV_COMMON:  # (a common connection has no other event)
                flows[no] = f
        if kind == EV_DATA:
            d = head >> 8
            chunk = data[at : at + size]
            s = f.streams[d]
            s.delivered += size
            if s.keep_head:
                s.head += chunk
            on_data(f, d, chunk)
        elif kind == EV_GAP:
            d = head >> 8
            f.streams[d].gaps += 1
            on_gap(f, d, at)
        elif kind == EV_ANALYZE:
            analyze(f)
        elif kind == EV_FINISH:
            del flows[no]
            if head >> 8:
                _finish(table, f, data, at)
        elif kind == EV_DROP:
            del flows[no]
        elif kind == EV_COMMON:
            _common(table, f, data, at)


def _finish(table: FlowTable, f: Flow, data: bytes, at: int) -> None:
    table.emit(table._record(f, _facts(f, data, at)))


def _facts(f: Flow, data: bytes, at: int) -> str:
    """Set the finished flow's facts as pcapfast.c finish() wrote them; returns its end state."""
    (first, last, b0, b1, p0, p1, _gaps, _inspected, _d0, _d1, _no, fl0, fl1, cport, sport, proto,
     iplen, state, cip, sip) = FACTS.unpack_from(data, at)  # fmt: skip
    f.first, f.last = first, last
    f.bytes = [b0, b1]
    f.packets = [p0, p1]
    f.flags = [fl0, fl1]
    f.client = (cip[:iplen], cport)
    f.server = (sip[:iplen], sport)
    f.proto = proto
    f.done = True
    return STATES[state]


def _common(table: FlowTable, f: Flow, data: bytes, at: int) -> None:
    """A common connection (pcapfast.c ``common``): clear HTTP/1.x opened by the client, no
    hole. Its record is the one the replay would build: what detection gives such a flow
    (http1.probe's details), no TLS, and the findings of the DLP feeds of the directions that
    are not quiet, fed the pieces the replay feeds them; the same record code and gate."""
    state, p = _common_facts(f, data, at)
    f.dlp, _end = _feeds(table, data, p)
    table.emit(table._record(f, state))


def _common_line(table: FlowTable, no: int, data: bytes, at: int, lines: Lines) -> None:
    """A common connection DLP must look at whose line pcapfast.c wrote but for its findings:
    the DLP feeds of :func:`_common`; the line with their findings (``hits_json``, as
    ``json_line`` writes them, through the same gate) goes to ``lines``, unless a feed noted
    why its decoding stopped short (a detail the line lacks): then the record, as _common
    builds it (its flow is made only then)."""
    m, np, nh, _status = COMMON.unpack_from(data, at + FACTS.size)
    feeds, p = _feeds(table, data, at + FACTS.size + COMMON.size + m + np + nh)
    hits: list[Hit] = []
    for d, name in ((0, "client"), (1, "server")):
        feed = feeds[d]
        if feed is not None:
            found = feed.close()
            if feed.limits:
                f = _flow(table, no)
                state, _p = _common_facts(f, data, at)
                f.dlp = feeds  # (closing a feed again gives the same findings)
                table.emit(table._record(f, state))
                return
            hits.extend(Hit(direction=name, match=m) for m in found)
    n, dlp = LINE.unpack_from(data, p)
    text = data[p + LINE.size : p + LINE.size + n].decode("ascii")
    found_hits = tuple(hits)
    if found_hits:
        text = text[:dlp] + hits_json(found_hits) + text[dlp + 2 :]
    first, last = SPAN.unpack_from(data, at)  # (the facts open with the two times)
    lines(text, 1, COMMON_PROTOCOL, first, last, found_hits)


def _flow(table: FlowTable, no: int) -> Flow:
    """The flow the events of the C code's flow ``no`` are replayed on."""
    f = Flow(table.connection_id(no), (b"", 0), (b"", 0), 6, 0.0)
    f.streams = [_Head(), _Head()]  # type: ignore[list-item]
    return f


def _common_facts(f: Flow, data: bytes, at: int) -> tuple[str, int]:
    """Set up ``f`` from its EV_COMMON (facts, bytes delivered, detection); returns its end
    state and where its DLP pieces start."""
    state = _facts(f, data, at)
    f.streams[0].delivered, f.streams[1].delivered = FACTS.unpack_from(data, at)[8:10]
    m, np, nh, status = COMMON.unpack_from(data, at + FACTS.size)
    p = at + FACTS.size + COMMON.size
    details = [("http.method", data[p : p + m].decode()),
               ("http.path", data[p + m : p + m + np].decode("latin-1"))]  # fmt: skip
    if nh:
        details.append(("http.host", data[p + m + np : p + m + np + nh].decode("latin-1")))
    details.append(("http.status", status.decode()))
    f.detection = Detection(protocol="proto.http", encrypted=False, upgrade=None,
                            details=tuple(details), confidence=1.0)  # fmt: skip
    return state, p + m + np + nh


def _feeds(table: FlowTable, data: bytes, p: int) -> tuple[list[DlpFeed | None], int]:
    """The DLP feeds of an EV_COMMON's two directions (from ``p``), each fed its pieces (None:
    quiet, so its feed would find nothing and note no limit); and where its bytes go on."""
    feeds: list[DlpFeed | None] = [None, None]
    for d in (0, 1):
        loud = data[p]
        p += 1
        if not loud:
            continue
        (pieces,) = U32.unpack_from(data, p)
        sizes = struct.unpack_from(f"<{pieces}I", data, p + 4)
        p += 4 + 4 * pieces
        feed = feeds[d] = DlpFeed(table.inspectors.dlp)  # type: ignore[union-attr]
        for n in sizes:
            feed.feed(data[p : p + n])
            p += n
    return feeds, p


class _Peers:
    """The JSON of the addresses workloads own, which the C code writes lines with (pcapfast.c
    ``sp_peer``; it writes any other address as ``Directory.lookup`` names it, ``external``):
    registered before the first frame and again whenever the identities change (a watched
    directory: a line is written with what was registered when the C code finished its
    connection, at most one batch before Python would have looked the address up). Lines are off
    while the workloads own more than PEERS_KEPT addresses."""

    __slots__ = ("ffi", "lib", "r", "table", "version")

    def __init__(self, ffi: Any, lib: Any, r: Any, table: FlowTable) -> None:
        self.ffi, self.lib, self.r, self.table = ffi, lib, r, table
        self.version: int | None = None

    def check(self) -> None:
        """Register the owned addresses again when the identities changed since."""
        directory = self.table.identities
        if directory.version == self.version:
            return
        self.version = directory.version
        lib, r, null = self.lib, self.r, self.ffi.NULL
        lib.sp_peers_clear(r)
        owned = directory.owned()
        lib.sp_set_lines(r, len(owned) <= PEERS_KEPT)
        if len(owned) > PEERS_KEPT:
            return
        for packed, ref in owned:
            parts = peer_json_parts(_ip_text(packed), ref)
            if parts is None:  # json.dumps writes it: its connections stay with Python
                lib.sp_peer(r, packed, len(packed), null, 0, null, 0)
                continue
            before, after = parts[0].encode("ascii"), parts[1].encode("ascii")
            if lib.sp_peer(r, packed, len(packed), before, len(before), after, len(after)):
                lib.sp_set_lines(r, 0)  # out of memory: it would be written as external
                return


def _scanning(scanner: Any, call: Any, *args: Any) -> int:
    """``call(*args)`` holding the engine's scan token when the C code scans with it (see
    runscan.Scanner: its buffers are one thread's at a time)."""
    if scanner is None:
        return int(call(*args))
    try:
        token = scanner.idle.pop()
    except IndexError:  # another thread is in the scan
        raise scanner._busy("DLP scan: engine busy in a thread") from None
    try:
        return int(call(*args))
    finally:
        scanner.idle.append(token)


def _common_scan(table: FlowTable) -> tuple[int, int, int, int, int, Any] | None:
    """runscan.c's whole-stream scan as pcapfast.c calls it (its three functions, the engine's
    expression ids and database), when the table's inspectors are the shipped ones and their
    DLP engine's ``stretch`` is exactly that scan; else None: every flow is replayed."""
    if os.environ.get("STOCKADE_SENSOR_FASTPATH") == "replay":
        return None
    ins = table.inspectors
    if ins is None or ins.dlp is None:
        return None
    from stockade.network import analysis
    from stockade.network.dlp import runscan
    from stockade.network.dlp.engine import DlpEngine

    engine = ins.dlp
    if ins.detect is not analysis.detect or type(engine) is not DlpEngine:
        return None
    scanner = engine._runscan
    module = runscan.compiled()
    if scanner is None or module is None or engine._hs_db is not None:
        return None
    if not engine.triggers or engine.always_scan:
        return None
    ffi, lib = module.ffi, module.lib

    def address(x: Any) -> int:
        return int(ffi.cast("uintptr_t", x))

    return (address(ffi.addressof(lib, "rs_new")), address(ffi.addressof(lib, "rs_scan_all")),
            address(ffi.addressof(lib, "rs_free")), address(scanner._hand),
            address(scanner._db), scanner)  # fmt: skip
