"""The flow table: one entry per connection (5-tuple, both directions), TCP reassembly of each
direction up to ``stream_depth``, DLP fed as bytes arrive in order, detection and TLS inspection
when both heads are full or the flow ends, then one ``ConnectionRecord``.

DLP skips a direction only when it opens with a TLS hello that parses, or when an in-band
upgrade (SSLRequest, STARTTLS, ...) is judged encrypted by ``protocols.upgrades``, the same
judgement the inline enforcer uses; until that is known its bytes wait in the head, and anything
else is scanned from its first byte.

Memory stays bounded: at most ``max_flows`` entries (half-open flows go first, then the oldest),
and at most ``memcap`` bytes of reassembly buffers across flows.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stockade.identity import Directory
from stockade.network.analysis import DlpFeed, Inspectors
from stockade.network.capture.decode import Buf, FlowKey
from stockade.network.connection import ConnectionRecord, Hit, new_record
from stockade.network.interface import Detection, TlsInfo
from stockade.network.reassembly import OOO_SEGMENTS, Stream
from stockade.network.tls import CLEAR, TLS, HelloCheck, RecordWalker, opens_with_hello

if TYPE_CHECKING:
    from stockade.network.protocols.upgrades import Judgement

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
_FLAG_NAMES = (
    (SYN, "S"),
    (ACK, "A"),
    (PSH, "P"),
    (FIN, "F"),
    (RST, "R"),
    (URG, "U"),
    (ECE, "E"),
    (CWR, "C"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowConfig:
    stream_depth: int = 64 * 1024
    ooo_limit: int = 256 * 1024  # out-of-order bytes held per direction
    ooo_segments: int = OOO_SEGMENTS  # out-of-order segments held per direction
    memcap: int = 256 * 1024 * 1024  # reassembly bytes held across all flows
    max_flows: int = 65536
    tcp_idle: float = 120.0
    udp_idle: float = 30.0
    half_open_idle: float = 10.0
    linger: float = 2.0  # keep a closed flow's entry this long for its last ACKs


@dataclass(slots=True)
class FlowStats:
    flows: int = 0
    records: int = 0
    evicted: int = 0
    half_open_dropped: int = 0
    memcap_evictions: int = 0
    peak_flows: int = 0
    peak_memory: int = 0


_UNDECIDED = HelloCheck("more", 1)  # (frozen: one value serves every flow)


class Flow:
    __slots__ = (
        "analyzed",
        "bytes",
        "clear_after_tls",
        "client",
        "detection",
        "dlp",
        "done",
        "first",
        "flags",
        "hello",
        "id",
        "last",
        "packets",
        "payload",
        "proto",
        "records",
        "server",
        "streams",
        "synack",
        "tls",
    )

    def __init__(
        self, fid: str, client: tuple[bytes, int], server: tuple[bytes, int], proto: int, ts: float
    ) -> None:
        self.id = fid
        self.client = client  # (ip bytes, port)
        self.server = server
        self.proto = proto
        self.first = self.last = ts
        self.bytes = [0, 0]
        self.packets = [0, 0]
        self.flags = [0, 0]
        self.streams: list[Stream] = []
        self.dlp: list[DlpFeed | None] = [None, None]
        self.synack = False
        self.payload = False
        self.done = False
        self.analyzed = False
        # per direction: does it open with a TLS hello (then DLP skips it)? "more": not yet known
        self.hello = [_UNDECIDED, _UNDECIDED]
        # after a hello: the record framing, followed until it breaks (then DLP scans again)
        self.records: list[RecordWalker | None] = [None, None]
        self.clear_after_tls: list[int | None] = [None, None]  # stream offset where framing broke
        self.detection: Detection | None = None
        self.tls: TlsInfo | None = None


def run_prefix(random: bytes) -> str:
    """The first four groups of a run's connection ids: a connection's id is UUID-shaped, these
    80 random bits, then its counter as 12 hex digits (so ids of one run sort by creation). The
    masking gate reads a UUID with a hex letter as an id, never as a card number, whatever digits
    it holds (model.redact); the counter is mostly digits, so the run's part holds the letter (the
    first digit becomes one in the 1 run in about 12,000 whose 20 are all digits)."""
    run = random.hex()
    if run.isdigit():
        run = "abcdefabcd"[int(run[0])] + run[1:]
    return f"{run[:8]}-{run[8:12]}-{run[12:16]}-{run[16:]}-"


class FlowTable:
    """Feed it with ``tcp``/``udp`` (a ``Decoder`` sink); finished connections go to ``emit``."""

    def __init__(
        self,
        inspectors: Inspectors | None,
        identities: Directory,
        emit: Callable[[ConnectionRecord], None],
        config: FlowConfig | None = None,
    ) -> None:
        self.cfg = config or FlowConfig()
        self.inspectors = inspectors
        self.identities = identities
        self.emit = emit
        self.stats = FlowStats()
        self.memory = 0
        self._flows: dict[FlowKey, tuple[Flow, int]] = {}
        self._ids = itertools.count(1)
        self._run = run_prefix(os.urandom(10))
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._flows) // 2

    # packet entry points (the decoder's sink)

    def tcp(
        self,
        ts: float,
        key: FlowKey,
        flags: int,
        seq: int,
        ack: int,
        buf: Buf,
        off: int,
        length: int,
    ) -> None:
        entry = self._flows.get(key)
        if entry is not None and entry[0].done:
            if flags & (SYN | ACK) == SYN:  # the port pair is reused by a new connection
                self._remove(entry[0])
                entry = None
            else:  # last ACKs of a finished connection
                entry[0].last = ts
                return
        if entry is None:
            if flags & RST:
                return
            # the SYN sender is the client; a SYN-ACK seen first names the server; without
            # either (the capture began mid-connection) the ports decide, else the first sender
            entry = self._new(
                ts,
                key,
                6,
                reverse=flags & (SYN | ACK) == SYN | ACK
                or (not flags & SYN and answer_first(key[1], key[3])),
            )
        f, d = entry
        f.last = ts
        f.packets[d] += 1
        f.bytes[d] += length
        seen = f.flags
        seen[d] |= flags
        s, peer = (f.streams[0], f.streams[1]) if d == 0 else (f.streams[1], f.streams[0])
        if flags & SYN:
            s.syn(seq)
            if flags & ACK:
                f.synack = True
            seq = (seq + 1) & 0xFFFFFFFF
        held = 0
        if length:
            f.payload = True
            held = s.segment(seq, buf, off, length)
        if flags & ACK and peer.started:
            held += peer.acked(ack)
        if flags & FIN:
            s.fin(seq + length)
        if flags & RST:
            self._finish(f, "reset")
        elif seen[0] & FIN and seen[1] & FIN:
            self._finish(f, "closed")
        elif length and not f.analyzed:
            depth = self.cfg.stream_depth
            if s.delivered >= depth and peer.delivered >= depth:
                self._analyze(f)  # both heads are full: decide now and free the buffers
        if held:
            self.memory += held
            if self.memory > self.stats.peak_memory:
                self.stats.peak_memory = self.memory
            if self.memory > self.cfg.memcap:
                self._evict_memory()
        if ts >= self._next_sweep:
            self.sweep(ts)

    def udp(self, ts: float, key: FlowKey, buf: Buf, off: int, length: int) -> None:
        entry = self._flows.get(key)
        if entry is None:
            entry = self._new(ts, key, 17, reverse=answer_first(key[1], key[3]))
        f, d = entry
        f.last = ts
        f.packets[d] += 1
        f.bytes[d] += length
        if length and not f.analyzed:
            f.payload = True
            s = f.streams[d]
            s.started = True
            self.memory += s.segment(
                s.next_seq, buf, off, length
            )  # datagrams join in arrival order
        if ts >= self._next_sweep:
            self.sweep(ts)

    # lifecycle

    def connection_id(self, number: int) -> str:
        """The id of this table's ``number``-th connection (the compiled capture path numbers
        them as the table does)."""
        return f"{self._run}{number:012x}"

    def _new(self, ts: float, key: FlowKey, proto: int, *, reverse: bool) -> tuple[Flow, int]:
        src, sport, dst, dport, _ = key
        client, server = ((dst, dport), (src, sport)) if reverse else ((src, sport), (dst, dport))
        f = Flow(self.connection_id(next(self._ids)), client, server, proto, ts)
        cfg = self.cfg
        for d in (0, 1):
            f.streams.append(
                Stream(
                    cfg.stream_depth,
                    cfg.ooo_limit,
                    self._data_hook(f, d),
                    self._gap_hook(f, d),
                    ooo_segments=cfg.ooo_segments,
                )
            )
        fwd = (f, 1 if reverse else 0)
        back = (f, 0 if reverse else 1)
        self._flows[key] = fwd
        self._flows[(dst, dport, src, sport, proto)] = back
        self.stats.flows += 1
        n = len(self._flows) // 2
        if n > self.stats.peak_flows:
            self.stats.peak_flows = n
        if n > cfg.max_flows:
            self._evict_flows(ts, keep=f)
        return fwd

    def _data_hook(self, f: Flow, d: int) -> Callable[[bytes], None]:
        return functools.partial(self.on_data, f, d)

    def _gap_hook(self, f: Flow, d: int) -> Callable[[int], None]:
        return functools.partial(self.on_gap, f, d)

    def on_data(self, f: Flow, d: int, data: bytes) -> None:
        """Direction ``d`` of ``f`` delivered ``data``, in order (its stream's hook; the C path
        of ``sensor --pcap`` calls it directly)."""
        check = f.hello[d]
        if check.state == "clear":
            self._scan(f, d, data)
        elif check.state == "tls":
            self._follow_records(f, d, data)
        elif check.state == "more" and f.streams[d].delivered >= check.need:
            self._decide_hello(f, d, final=False)

    def on_gap(self, f: Flow, d: int, missing: int) -> None:
        """Direction ``d`` of ``f`` skipped a hole of ``missing`` bytes."""
        self._decide_hello(f, d, final=True)  # a hello cannot span a hole
        feed = f.dlp[d]
        if feed is not None:
            feed.gap(missing)

    def _decide_hello(self, f: Flow, d: int, *, final: bool) -> None:
        """Look at the held head again; once it is not a hello, scan it all from the start."""
        if f.hello[d].state != "more":
            return
        check = _hello_check(f, d, final=final)
        if check.state == "more" and final:
            check = CLEAR
        f.hello[d] = check
        if check.state == "clear":
            self._scan(f, d, bytes(f.streams[d].head))
        elif check.state == "tls":
            f.records[d] = RecordWalker()
            self._follow_records(f, d, bytes(f.streams[d].head))

    def _follow_records(self, f: Flow, d: int, data: bytes) -> None:
        """A TLS direction whose record framing breaks is clear text from there on: scanned."""
        walker = f.records[d]
        if walker is None:
            return
        broken = walker.feed(data)
        if broken is not None:
            f.records[d] = None
            f.hello[d] = CLEAR
            f.clear_after_tls[d] = f.streams[d].delivered - len(data) + broken
            self._scan(f, d, data[broken:])

    def _scan(self, f: Flow, d: int, data: bytes) -> None:
        feed = f.dlp[d]
        if feed is None:
            if self.inspectors is None or self.inspectors.dlp is None:
                return
            feed = f.dlp[d] = DlpFeed(self.inspectors.dlp)
        feed.feed(data)

    def _analyze(self, f: Flow) -> None:
        f.analyzed = True
        for d in (0, 1):
            self._decide_hello(f, d, final=True)
        client, server = bytes(f.streams[0].head), bytes(f.streams[1].head)
        for s in f.streams:
            self.memory -= s.release()
        if self.inspectors is None or not (client or server):
            return
        det = self.inspectors.detect(client, server)
        f.detection = det
        if det.protocol == "proto.tls":
            f.tls = self.inspectors.tls(client, server)
        elif det.encrypted and det.upgrade:
            judged = _judge(client, server, final=True)
            if (
                judged is not None
                and judged.client_tls is not None
                and judged.server_tls is not None
            ):
                f.tls = self.inspectors.tls(
                    client[judged.client_tls :], server[judged.server_tls :]
                )

    def _finish(self, f: Flow, state: str) -> None:
        if f.done:
            return
        f.done = True
        for s in f.streams:
            self.memory += s.flush()
        if not f.analyzed:
            self._analyze(f)
        if f.payload or f.synack:
            self.stats.records += 1
            self.emit(self._record(f, state))

    def _remove(self, f: Flow) -> None:
        src, sport = f.client
        dst, dport = f.server
        self._flows.pop((src, sport, dst, dport, f.proto), None)
        self._flows.pop((dst, dport, src, sport, f.proto), None)
        for s in f.streams:
            self.memory -= s.release()
        # the streams' hooks hold the flow: unlinking them lets reference counting free it at
        # once instead of leaving thousands of cycles to the collector
        f.streams = []

    def tick(self) -> None:
        """Live capture with no packets: expire idle flows by the wall clock."""
        now = time.time()
        if now >= self._next_sweep:
            self.sweep(now)

    def sweep(self, now: float) -> None:
        """Expire idle, half-open and closed flows (in capture time)."""
        self._next_sweep = now + 1.0
        cfg = self.cfg
        for f in self._unique():
            idle = now - f.last
            if f.done:
                if idle > cfg.linger:
                    self._remove(f)
            elif f.proto == 6 and not f.synack and not f.payload:
                if idle > cfg.half_open_idle:
                    self.stats.half_open_dropped += 1
                    self._remove(f)
            elif idle > (cfg.tcp_idle if f.proto == 6 else cfg.udp_idle):
                self._finish(f, "timeout")
                self._remove(f)

    def flush(self) -> None:
        """End of capture: every open flow becomes a record."""
        for f in self._unique():
            self._finish(f, "active")
            self._remove(f)

    def _unique(self) -> list[Flow]:
        seen: dict[int, Flow] = {}
        for f, _ in self._flows.values():
            seen[id(f)] = f
        return list(seen.values())

    def _evict_flows(self, now: float, keep: Flow) -> None:
        """Over ``max_flows``: drop half-open flows, then the oldest, down to 90 %."""
        target = int(self.cfg.max_flows * 0.9)
        flows = [f for f in self._unique() if f is not keep]
        half_open = [
            f for f in flows if f.proto == 6 and not f.synack and not f.payload and not f.done
        ]
        done = [f for f in flows if f.done]
        rest = sorted(
            (f for f in flows if not f.done and (f.synack or f.payload or f.proto != 6)),
            key=lambda f: f.last,
        )
        for group, counter in ((done, None), (half_open, "half_open_dropped"), (rest, "evicted")):
            for f in group:
                if len(self._flows) // 2 <= target:
                    return
                if counter == "evicted":
                    self._finish(f, "evicted")
                    self.stats.evicted += 1
                elif counter:
                    self.stats.half_open_dropped += 1
                self._remove(f)

    def _evict_memory(self) -> None:
        """Over ``memcap``: analyze (and so free) the flows holding the most bytes first."""
        flows = sorted(
            self._unique(), key=lambda f: -sum(len(s.head) + s.buffered for s in f.streams)
        )
        for f in flows:
            if self.memory <= self.cfg.memcap * 0.8:
                return
            self.stats.memcap_evictions += 1
            for s in f.streams:
                self.memory += s.flush()
            if not f.analyzed:
                self._analyze(f)

    def _record(self, f: Flow, state: str) -> ConnectionRecord:
        cip, sip = f.client[0], f.server[0]
        hits: list[Hit] = []
        for d, name in ((0, "client"), (1, "server")):
            feed = f.dlp[d]
            if feed is not None:
                found = feed.close()
                if found:
                    hits.extend(Hit(direction=name, match=m) for m in found)
        det = f.detection
        details = det.details if det else ()
        for feed in f.dlp:  # decoding that stopped short (a compression bomb, the budget)
            if feed is not None and feed.limits:
                details += tuple(("dlp.decoding", why) for why in feed.limits)
        if f.clear_after_tls != _NEITHER:
            for side, at in zip(("client", "server"), f.clear_after_tls, strict=True):
                if at is not None:  # a hello, then bytes that are no TLS record: scanned as clear
                    details += (("tls.clear_after_handshake", f"{side} at byte {at}"),)
        return new_record(  # ConnectionRecord's fields, in their order
            f.id,
            f.first,
            f.last,
            "tcp" if f.proto == 6 else "udp",
            4 if len(cip) == 4 else 6,
            _ip_text(cip),
            f.client[1],
            _ip_text(sip),
            f.server[1],
            self.identities.lookup(cip),
            self.identities.lookup(sip),
            det.protocol if det else "proto.unknown",
            bool(det.encrypted) if det else any(c.state == "tls" for c in f.hello),
            det.upgrade if det else None,
            f.tls,
            f.bytes[0],
            f.bytes[1],
            f.packets[0],
            f.packets[1],
            _FLAG_TEXT[f.flags[0]],
            _FLAG_TEXT[f.flags[1]],
            state,
            f.streams[0].gaps + f.streams[1].gaps,
            f.streams[0].delivered + f.streams[1].delivered,
            tuple(hits),
            details,
        )


def _hello_check(f: Flow, d: int, *, final: bool) -> HelloCheck:
    """Does direction ``d`` carry TLS: an in-band upgrade judged on both heads, else
    ``opens_with_hello`` on its own head. Undecided: look again at its next bytes."""
    client, server = bytes(f.streams[0].head), bytes(f.streams[1].head)
    judged = _judge(client, server, final=final)
    if judged is None:
        return opens_with_hello(client if d == 0 else server, server=d == 1)
    if judged.state == "undecided":
        return HelloCheck("more", f.streams[d].delivered + 1)
    return TLS if judged.state == "encrypted" else CLEAR


def answer_first(sport: int, dport: int) -> bool:
    """Is the first packet seen of a connection whose opening the capture missed (no SYN) the
    server's answer? Yes when it comes from a service's port (below 1024, or below the
    ephemeral ranges) to an ephemeral one (Linux's start at 32768, IANA's and Windows' at
    49152): a capture that begins during a download sees the server first. Otherwise its sender
    is taken for the client, as before. pcapfast.c ``answer_first`` is the same test."""
    return sport < 1024 <= dport or sport < 32768 <= dport


def _judge(client: bytes, server: bytes, *, final: bool) -> Judgement | None:
    """``protocols.upgrades.judge``, the detectors' package imported by the first flow that
    needs it (``sensor --pcap`` on a capture whose every connection pcapfast.c decides needs
    none of them: about 15 ms of start-up)."""
    from stockade.network.protocols import upgrades

    return upgrades.judge(client, server, final=final)


_NEITHER = [None, None]  # Flow.clear_after_tls when both directions kept their TLS framing


def _flags(bits: int) -> str:
    return "".join(name for bit, name in _FLAG_NAMES if bits & bit)


_FLAG_TEXT = tuple(_flags(bits) for bits in range(256))


def _ip_text(packed: bytes) -> str:
    """The address as ``ipaddress`` writes it (``inet_ntoa`` gives the same for IPv4, faster)."""
    return socket.inet_ntoa(packed) if len(packed) == 4 else str(ipaddress.ip_address(packed))
