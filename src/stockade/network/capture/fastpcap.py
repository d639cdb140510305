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
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

from stockade.model.errors import PacketError
from stockade.network.capture.decode import DecodeStats
from stockade.network.capture.pcapfile import PcapReader
from stockade.network.flows import Flow, FlowTable

EV_DATA, EV_GAP, EV_ANALYZE, EV_FINISH, EV_DROP = 1, 2, 3, 4, 5
STATES = ("closed", "reset", "timeout", "evicted", "active")
# a finished flow's facts, as pcapfast.c finish() writes them
FACTS = struct.Struct("<dd9QBBHHBBB16s16s")
DECODE_FIELDS = ("frames", "bytes", "ipv4", "ipv6", "tcp", "udp", "other", "fragments",
                 "ipv4_options", "malformed", "outgoing_skipped")  # fmt: skip
FLOW_FIELDS = ("flows", "records", "evicted", "half_open_dropped", "memcap_evictions",
               "peak_flows", "peak_memory")  # fmt: skip
MAX_EVENTS = 16384  # events per batch handed over
MAX_DATA = 4 << 20  # bytes per batch handed over


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
    mod: Any, path: Path, table: FlowTable, count: int | None
) -> tuple[DecodeStats, dict[str, Any]]:
    """Read ``path`` through the C path into ``table``'s hooks and records; returns the decode
    statistics and the source facts (as ``run_pcap`` reports them); fills ``table.stats``."""
    ffi, lib = mod.ffi, mod.lib
    cfg = table.cfg
    c = ffi.new("struct sp_cfg *")
    c.depth, c.ooo_limit, c.ooo_segments, c.memcap, c.max_flows = (
        cfg.stream_depth, cfg.ooo_limit, max(1, cfg.ooo_segments), cfg.memcap, cfg.max_flows
    )  # fmt: skip
    c.tcp_idle, c.udp_idle = cfg.tcp_idle, cfg.udp_idle
    c.half_open_idle, c.linger = cfg.half_open_idle, cfg.linger
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
            while True:
                rc = lib.sp_step(r, MAX_EVENTS, MAX_DATA)
                if rc == 1:
                    rc = lib.sp_flush(r)
                    _replay(ffi, lib, r, n, table, flows)
                    if rc == 3:
                        raise PacketError("out of memory", subject=str(path))
                    break
                _replay(ffi, lib, r, n, table, flows)
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


def _replay(ffi: Any, lib: Any, r: Any, n: Any, table: FlowTable, flows: dict[int, Flow]) -> None:
    """Run the listed events through the flow table's hooks, in order."""
    evp = lib.sp_events(r, n)
    count = n[0]
    if not count:
        lib.sp_taken(r)
        return
    ev = memoryview(ffi.buffer(evp, count * 32)).cast("q").tolist()
    dp = lib.sp_data(r, n)
    data = ffi.buffer(dp, n[0])[:] if n[0] else b""
    lib.sp_taken(r)
    run_id = table._run
    on_data, on_gap, analyze = table.on_data, table.on_gap, table._analyze
    # (kind | direction << 8, flow number, offset or count, length): one event in four numbers
    for head, no, at, size in zip(ev[0::4], ev[1::4], ev[2::4], ev[3::4], strict=True):
        f = flows.get(no)
        if f is None:
            f = flows[no] = Flow(f"{run_id}-{no}", (b"", 0), (b"", 0), 6, 0.0)
            f.streams = [_Head(), _Head()]  # type: ignore[list-item]
        kind = head & 0xFF
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


def _finish(table: FlowTable, f: Flow, data: bytes, at: int) -> None:
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
    table.emit(table._record(f, STATES[state]))
