"""Packet capture of one workload, written as pcap with sensitive data masked inside the packets.

Every card number and SSN (and whatever else the DLP sensors in use recognise) is overwritten with
``*`` in the packet bytes *before* the packet is written; nothing unmasked touches the disk.

How a packet is decided:

* **TCP** is reassembled per direction (``reassembly.Stream``, no depth limit) and the in-order
  bytes feed a DLP stream (``DlpEngine.stream``) and the masking gate (``stockade.model.redact``,
  wider: any Luhn-valid 13-19 digit run, any valid 9-digit SSN, in headers as much as in bodies).
  Matches are mapped from stream offsets back to sequence space, so a card split across two
  segments is masked in both, and a retransmitted copy gets the same masks. A packet is held until
  every byte it carries is *final*: ``HOLD`` more bytes of its direction have been seen (a match
  covering a byte is always reported by then) or the direction ended.
* **UDP** datagrams are scanned one by one and never held.
* Masking keeps the length (``4111 **** **** 1111``, ``***-**-6789``), so sequence numbers and
  lengths stay valid; IPv4 header and TCP/UDP checksums are then recomputed (for every packet:
  veth captures carry offload-partial checksums, and ``checksums_fixed`` counts them).
* **Held too long or too much** (``max_held_bytes``, ``max_held_seconds``), bytes reassembly never
  delivered (a hole it skipped, a retransmission older than ``HISTORY``), a flow table that is full,
  IP fragments and other protocols are masked **conservatively**: every digit of any run of digits
  and separators that holds 9 digits or more, or that touches either edge of the payload (it may
  continue in the neighbouring packet). Counted in ``conservative``. IBANs, e-mail addresses and
  phone numbers are not covered by that rule; card numbers and SSNs are.

Packets are written in capture order: a held packet holds back those after it.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stockade.model.errors import UsageError
from stockade.model.redact import hidden_in_place, keep_edges
from stockade.network.capture.pcapwriter import HEADER, RECORD, PcapWriter
from stockade.network.capture.rewrite import Layout, fix_checksums, layout
from stockade.network.dlp import DlpEngine
from stockade.network.dlp.engine import AFTER, SLACK
from stockade.network.dlp.masking import MASKERS
from stockade.network.reassembly import MASK, Stream, seq_diff

DEPTH = 1 << 62  # reassemble everything: a capture masks the whole stream, not its head
OOO_LIMIT = 256 * 1024  # out-of-order bytes held per direction before a hole is skipped
GATE_WINDOW = 96  # bytes before new data the gate looks at again (a card with separators < 80)
HISTORY = 1 << 20  # bytes of masks and offsets kept per direction, for retransmissions
MAX_DIRECTIONS = 16384
INF = 1 << 63
STAR = 0x2A

_RUN = re.compile(rb"[0-9]+(?:(?:[ \t._+\-\xa0\xc2]|%2[0dDeE]){1,3}[0-9]+)*")
_NOT_DIGIT = bytes(c for c in range(256) if not 48 <= c <= 57)
SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10


@dataclass(slots=True, kw_only=True)
class CaptureReport:
    """What a capture (or an offline masking run) wrote and masked."""

    path: str
    packets: int = 0  # frames written
    bytes: int = HEADER  # size of the pcap file
    frames_seen: int = 0
    packets_masked: int = 0  # frames with at least one byte masked
    masked: dict[str, int] = field(default_factory=dict)  # per DLP sensor; gate.card, gate.ssn
    conservative: int = 0  # digit runs masked without a verdict (see the module docstring)
    checksums_fixed: int = 0
    filtered_out: int = 0
    skipped_linktype: int = 0  # frames of a link type other than the file's
    kernel_drops: int = 0
    stopped: str = ""  # duration, max-bytes, max-packets, stopped, end of input
    filter: str | None = None
    filter_where: str | None = None  # "kernel" or "user space"

    @property
    def total_masked(self) -> int:
        return sum(self.masked.values()) + self.conservative

    def to_dict(self) -> dict[str, object]:
        out = {k: getattr(self, k) for k in self.__slots__}
        out["total_masked"] = self.total_masked
        return out


class _Packet:
    __slots__ = ("changed", "direction", "frame", "lay", "n", "pos", "ready", "suspect", "ts")

    def __init__(self, ts: float, frame: bytearray, lay: Layout | None) -> None:
        self.ts = ts
        self.frame = frame
        self.lay = lay
        self.direction: _Direction | None = None
        self.pos = 0
        self.n = 0
        self.ready = False
        self.suspect = False  # a retransmission or overlap: its bytes may differ from those scanned
        self.changed = False  # a byte of it was masked


def in_place_mask(mask: str, text: str) -> str:
    """The sensor's masked form of ``text`` at the same length (``***-**-6789`` keeps an SSN's
    separators; an e-mail address keeps its last 4 characters)."""
    masked = MASKERS[mask](text)
    if len(masked) == len(text):
        return masked
    return keep_edges(text, 0, 4, str.isalnum)


def _risky_runs(data: bytes | bytearray) -> list[tuple[int, int]]:
    """Runs of digits and separators that could be (part of) a card number or an SSN."""
    out = []
    for m in _RUN.finditer(data):
        digits = len(m.group().translate(None, _NOT_DIGIT))
        if digits >= 9 or m.start() == 0 or m.end() == len(data):
            out.append(m.span())
    return out


class _Direction:
    """One direction of one TCP connection: reassembly, DLP, gate, and masks in sequence space."""

    def __init__(self, masker: PacketMasker) -> None:
        self.m = masker
        self.stream = Stream(DEPTH, OOO_LIMIT, self._on_data, self._on_gap, keep_head=False)
        self.dlp = masker.engine.stream()
        self.fed = 0  # stream offset: bytes delivered in order so far
        self.chunks: list[tuple[int, int, int]] = []  # (stream offset, position, length)
        self.tail = bytearray()  # the last delivered bytes, from stream offset tail_off
        self.tail_off = 0
        self.masks: list[tuple[int, int]] = []  # position spans to overwrite, sorted
        self.matched: list[tuple[int, int]] = []  # position spans of DLP matches, sorted
        self.gate_items: list[tuple[str, int, int]] = []  # gate finds not yet counted
        self.held: list[_Packet] = []
        self.ref_seq = -1
        self.ref_pos = 0
        self.final_pos = 0
        self.closed = False

    # positions: sequence numbers unwrapped to a 64-bit count from the first one seen

    def pos(self, seq: int) -> int:
        if self.ref_seq < 0:
            self.ref_seq = seq
        return self.ref_pos + seq_diff(seq, self.ref_seq)

    def _rebase(self) -> None:
        if self.stream.started:
            self.ref_pos = self.pos(self.stream.next_seq)
            self.ref_seq = self.stream.next_seq

    def _pos_of(self, off: int) -> int:
        """Position of the byte at stream offset ``off`` (delivered, still in ``chunks``)."""
        i = bisect_right(self.chunks, (off, INF, INF)) - 1
        if i < 0:
            return -1
        coff, cpos, _n = self.chunks[i]
        return cpos + off - coff

    def _delivered(self, pos: int, end: int) -> bool:
        """Whether every byte in [pos, end) was delivered (and scanned)."""
        covered = pos
        for _off, cpos, n in self.chunks:
            if cpos <= covered < cpos + n:
                covered = cpos + n
                if covered >= end:
                    return True
        return covered >= end

    # reassembly callbacks

    def _on_data(self, data: bytes) -> None:
        start = self.pos((self.stream.next_seq - len(data)) & MASK)
        if self.chunks and sum(self.chunks[-1][1:]) == start:
            coff, cpos, n = self.chunks[-1]
            self.chunks[-1] = (coff, cpos, n + len(data))
        else:
            self.chunks.append((self.fed, start, len(data)))
        off0 = self.fed
        self.fed += len(data)
        self.tail += data
        for match in self.dlp.feed(data):
            self._take(match.sensor, match.start, match.end)
        self._gate(off0)
        keep = self.m.hold + GATE_WINDOW + self.m.engine.keep
        cut = min(off0, self.fed - keep) - GATE_WINDOW - self.tail_off
        if cut > 0:
            del self.tail[:cut]
            self.tail_off += cut

    def _on_gap(self, _missing: int) -> None:
        self._rebase()  # positions after the hole follow the sequence numbers, not the offsets

    # what to mask

    def _take(self, sensor: str, start: int, end: int) -> None:
        lo = start - self.tail_off
        text = bytes(self.tail[max(lo, 0) : end - self.tail_off]).decode("latin-1")
        mask = self.m.sensor_masks.get(sensor, "full")
        masked = in_place_mask(mask, text) if lo >= 0 else "*" * len(text)
        hide = [start + max(lo, 0) - lo + i for i, ch in enumerate(masked) if ch != text[i]]
        self._hide(hide)
        first, last = self._pos_of(start), self._pos_of(end - 1)
        if first >= 0 and last >= 0:
            insort(self.matched, (first, last + 1))
        self.m.count(sensor)

    def _gate(self, off0: int) -> None:
        lo = max(self.tail_off, off0 - GATE_WINDOW)
        text = bytes(self.tail[lo - self.tail_off :]).decode("latin-1")
        for kind, s, e, positions in hidden_in_place(text):
            if lo + e <= off0:
                continue  # wholly in bytes an earlier pass looked at
            self._hide([lo + p for p in positions])
            first, last = self._pos_of(lo + s), self._pos_of(lo + e - 1)
            self.gate_items.append((kind, first, last + 1))

    def _hide(self, offsets: list[int]) -> None:
        run_start = prev = -2
        for off in offsets:
            p = self._pos_of(off)
            if p < 0:
                continue
            if p != prev + 1:
                if run_start >= 0:
                    insort(self.masks, (run_start, prev + 1))
                run_start = p
            prev = p
        if run_start >= 0:
            insort(self.masks, (run_start, prev + 1))

    # deciding packets

    def segment(self, pkt: _Packet, flags: int, seq: int, payload: int, n: int) -> None:
        s = self.stream
        if flags & SYN:
            s.syn(seq)
            if self.ref_seq < 0:
                self.ref_seq = s.next_seq
            seq = (seq + 1) & MASK
        if n:
            pkt.direction, pkt.pos, pkt.n = self, self.pos(seq), n
            pkt.suspect = s.started and seq_diff(seq, s.next_seq) < 0
            self.held.append(pkt)
            s.segment(seq, pkt.frame, payload, n)
            self._rebase()
        else:
            pkt.ready = True
        if flags & FIN:
            s.fin(seq + n)

    def acked(self, ack: int) -> None:
        if self.stream.started and not self.closed:
            self.stream.acked(ack)
            self._rebase()

    def fin_complete(self) -> bool:
        s = self.stream
        return s.fin_seq >= 0 and s.next_seq == s.fin_seq and not s.ooo

    def close(self) -> None:
        if self.closed:
            return
        self.stream.flush()
        for match in self.dlp.close():
            self._take(match.sensor, match.start, match.end)
        self.closed = True
        self.settle()

    def settle(self) -> None:
        """Decide the held packets whose bytes are final; count the gate's own finds."""
        if self.closed:
            self.final_pos = INF
        else:
            final_off = self.fed - self.m.hold
            self.final_pos = max(self.final_pos, self._pos_of(final_off)) if final_off > 0 else 0
        if self.held:
            keep = []
            for pkt in self.held:
                if pkt.pos + pkt.n <= self.final_pos:
                    self.finish(pkt, forced=False)
                else:
                    keep.append(pkt)
            self.held = keep
        if self.gate_items:
            self._count_gate()
        self._prune()

    def finish(self, pkt: _Packet, *, forced: bool) -> None:
        """Apply every mask to the packet's payload; conservative where no verdict exists."""
        lay = pkt.lay
        assert lay is not None
        at, end = pkt.pos, pkt.pos + pkt.n
        frame, base = pkt.frame, lay.payload - pkt.pos
        changed = False
        i = bisect_left(self.masks, (at - 1024, 0))
        while i < len(self.masks) and self.masks[i][0] < end:
            s, e = self.masks[i]
            for p in range(max(s, at), min(e, end)):
                if frame[base + p] != STAR:
                    frame[base + p] = STAR
                    changed = True
            i += 1
        if forced or pkt.suspect or not self._delivered(at, end):
            changed |= self.m.conservative_mask(frame, lay.payload, lay.payload + pkt.n)
        pkt.ready = True
        self.m.note_masked(pkt, changed)

    def _count_gate(self) -> None:
        keep = []
        for kind, s, e in self.gate_items:
            if e > self.final_pos:
                keep.append((kind, s, e))
                continue
            j = bisect_left(self.matched, (s - 1024, 0))
            overlapped = False
            while j < len(self.matched) and self.matched[j][0] < e:
                if self.matched[j][1] > s:
                    overlapped = True
                    break
                j += 1
            if not overlapped:
                # the same find from an overlapping window is one item
                insort(self.matched, (s, e))
                self.m.count(f"gate.{kind}")
        self.gate_items = keep

    def _prune(self) -> None:
        floor = min(self.final_pos, self.pos(self.stream.next_seq)) - HISTORY
        if len(self.chunks) > 64:
            off_floor = self.fed - self.m.hold - self.m.engine.keep - 2 * GATE_WINDOW
            k = 0
            while (
                k < len(self.chunks) - 1
                and sum(self.chunks[k][1:]) < floor
                and self.chunks[k][0] + self.chunks[k][2] < off_floor
            ):
                k += 1
            del self.chunks[:k]
        for spans in (self.masks, self.matched):
            if len(spans) > 256:
                k = bisect_left(spans, (floor - 1024, 0))
                del spans[: max(k, 0)]


class PacketMasker:
    """Frames in capture order in, masked frames out in the same order through ``emit``."""

    def __init__(
        self,
        engine: DlpEngine,
        emit: Callable[[float, bytearray, Layout | None, bool], None],
        report: CaptureReport,
        *,
        max_held_bytes: int = 8 << 20,
        max_held_seconds: float = 2.0,
    ) -> None:
        self.engine = engine
        self.emit = emit
        self.report = report
        self.sensor_masks = {c.sensor.id: c.sensor.mask for c in engine.sensors}
        # a match covering a byte ends at most max_length later and is decided AFTER bytes after
        self.hold = max(engine.max_length + AFTER + SLACK + 2, GATE_WINDOW)
        self.max_held_bytes = max_held_bytes
        self.max_held_seconds = max_held_seconds
        self.directions: dict[tuple[bytes, int, bytes, int], _Direction] = {}
        self.queue: deque[_Packet] = deque()
        self.held_bytes = 0

    def count(self, name: str) -> None:
        self.report.masked[name] = self.report.masked.get(name, 0) + 1

    def note_masked(self, pkt: _Packet, changed: bool) -> None:
        pkt.changed |= changed

    def conservative_mask(self, frame: bytearray, lo: int, hi: int) -> bool:
        changed = False
        for s, e in _risky_runs(frame[lo:hi]):
            self.report.conservative += 1
            for i in range(lo + s, lo + e):
                if 48 <= frame[i] <= 57:
                    frame[i] = STAR
                    changed = True
        return changed

    def add(self, ts: float, frame: bytearray, linktype: int) -> None:
        """Take one captured frame (the masker owns ``frame`` from now on)."""
        self.report.frames_seen += 1
        self._drain(ts)  # what waited too long by this frame's time goes first, conservatively
        lay = layout(frame, linktype)
        pkt = _Packet(ts, frame, lay)
        self.queue.append(pkt)
        self.held_bytes += len(frame)
        if lay is None:
            start = 14 if linktype == 1 else 0
            self.note_masked(pkt, self.conservative_mask(frame, start, len(frame)))
            pkt.ready = True
        elif lay.proto == 6:
            self._tcp(pkt, lay)
        elif lay.proto == 17:
            self._udp(pkt, lay)
        else:  # fragments, ICMP (which quotes packets), other protocols
            start = lay.payload if lay.payload >= 0 else lay.l4
            self.note_masked(pkt, self.conservative_mask(frame, start, lay.end))
            pkt.ready = True
        self._drain(ts)

    def _tcp(self, pkt: _Packet, lay: Layout) -> None:
        f = pkt.frame
        l3, l4 = lay.l3, lay.l4
        src, dst = (
            (bytes(f[l3 + 12 : l3 + 16]), bytes(f[l3 + 16 : l3 + 20]))
            if lay.version == 4
            else (bytes(f[l3 + 8 : l3 + 24]), bytes(f[l3 + 24 : l3 + 40]))
        )
        sport, dport = (
            int.from_bytes(f[l4 : l4 + 2], "big"),
            int.from_bytes(f[l4 + 2 : l4 + 4], "big"),
        )
        seq, ack = (
            int.from_bytes(f[l4 + 4 : l4 + 8], "big"),
            int.from_bytes(f[l4 + 8 : l4 + 12], "big"),
        )
        flags = f[l4 + 13]
        n = lay.end - lay.payload
        key, back = (src, sport, dst, dport), (dst, dport, src, sport)
        d = self.directions.get(key)
        if d is None and not (n or flags & SYN):
            pkt.ready = True  # an ACK or FIN of a flow already finished (or not seen starting)
            other = self.directions.get(back)
            if other is not None and flags & RST:
                del self.directions[back]
                other.close()
            elif other is not None and flags & ACK:
                other.acked(ack)
                other.settle()
            return
        if d is None:
            if len(self.directions) >= MAX_DIRECTIONS:
                self.note_masked(pkt, self.conservative_mask(f, lay.payload, lay.end))
                pkt.ready = True
                return
            d = self.directions[key] = _Direction(self)
        d.segment(pkt, flags, seq, lay.payload, n)
        other = self.directions.get(back)
        if flags & ACK and other is not None:
            other.acked(ack)
            other.settle()
        if flags & RST:
            for k in (key, back):
                gone = self.directions.pop(k, None)
                if gone is not None:
                    gone.close()
            return
        d.settle()
        if d.fin_complete():
            d.close()
            del self.directions[key]

    def _udp(self, pkt: _Packet, lay: Layout) -> None:
        f, lo, hi = pkt.frame, lay.payload, lay.end
        changed = False
        data = bytes(f[lo:hi])
        text = data.decode("latin-1")
        hidden: set[int] = set()
        found: list[tuple[int, int]] = []
        for m in self.engine.scan(data):
            masked = in_place_mask(self.sensor_masks.get(m.sensor, "full"), text[m.start : m.end])
            hidden.update(m.start + i for i, ch in enumerate(masked) if ch != text[m.start + i])
            found.append((m.start, m.end))
            self.count(m.sensor)
        for kind, s, e, positions in hidden_in_place(text):
            hidden.update(positions)
            if not any(a < e and s < b for a, b in found):
                self.count(f"gate.{kind}")
        for i in hidden:
            if f[lo + i] != STAR:
                f[lo + i] = STAR
                changed = True
        self.note_masked(pkt, changed)
        pkt.ready = True

    def _drain(self, now: float) -> None:
        q = self.queue
        while q:
            head = q[0]
            if not head.ready:
                late = now - head.ts > self.max_held_seconds
                if self.held_bytes <= self.max_held_bytes and not late:
                    return
                d = head.direction
                assert d is not None
                d.held.remove(head)
                d.finish(head, forced=True)
            q.popleft()
            self.held_bytes -= len(head.frame)
            self._write(head)

    def _write(self, pkt: _Packet) -> None:
        if pkt.lay is not None and fix_checksums(pkt.frame, pkt.lay):
            self.report.checksums_fixed += 1
        if pkt.changed:
            self.report.packets_masked += 1
        self.emit(pkt.ts, pkt.frame, pkt.lay, pkt.changed)

    def tick(self, now: float) -> None:
        """The capture is idle: release what has been held too long."""
        self._drain(now)

    def finish(self) -> None:
        """End of capture: every direction's verdicts are final; write everything."""
        for d in list(self.directions.values()):
            d.close()
        self.directions.clear()
        self._drain(INF)


def _open_filter(expression: str | None, linktype: int) -> object | None:
    if not expression:
        return None
    from stockade.network.capture.bpf import Filter

    return Filter(expression, linktype=linktype)


def _summary_emit(
    writer_box: list[PcapWriter], report: CaptureReport, on_packet: Callable[..., None] | None
) -> Callable[[float, bytearray, Layout | None, bool], None]:
    def emit(ts: float, frame: bytearray, lay: Layout | None, masked: bool) -> None:
        writer_box[0].write(ts, frame)
        report.packets += 1
        report.bytes = writer_box[0].bytes
        if on_packet is not None:
            on_packet(ts, frame, lay, masked)

    return emit


def capture_workload(
    interfaces: Sequence[str],
    *,
    namespace: str | None,
    duration: float,
    max_bytes: int,
    out_path: Path | str,
    max_packets: int | None = None,
    bpf_filter: str | None = None,
    dlp_engine: DlpEngine | None = None,
    on_packet: Callable[..., None] | None = None,
    ready: Callable[[], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> CaptureReport:
    """Capture both directions of ``interfaces`` (a workload's host-side veths, in network
    namespace ``namespace``) for ``duration`` seconds or until ``max_bytes`` of pcap or
    ``max_packets`` frames; write ``out_path`` (mode 0600) with sensitive data masked inside the
    packets. ``bpf_filter`` (tcpdump syntax) is compiled by libpcap and run by the kernel."""
    from stockade.network.capture.live import Ring

    _check_bounds(duration, max_bytes, max_packets)
    engine = dlp_engine or DlpEngine()
    report = CaptureReport(path=str(out_path), filter=bpf_filter)
    flt = _open_filter(bpf_filter, 1)
    if flt is not None:
        report.filter_where = "kernel"
    writer = PcapWriter(out_path, linktype=1)
    masker = PacketMasker(engine, _summary_emit([writer], report, on_packet), report)
    taken = HEADER
    state = {"why": ""}

    def frame(ts: float, linktype: int, buf: object, off: int, caplen: int) -> None:
        nonlocal taken
        if state["why"]:
            return
        if linktype != 1:
            report.skipped_linktype += 1
            return
        if taken + RECORD + caplen > max_bytes:
            state["why"] = "max-bytes"
            return
        taken += RECORD + caplen
        masker.add(ts, bytearray(buf[off : off + caplen]), linktype)  # type: ignore[index]

    started = time.monotonic()
    try:
        with Ring(
            list(interfaces),
            namespace=namespace,
            bpf=getattr(flt, "instructions", None),
            keep_outgoing=True,
        ) as ring:
            if ready is not None:
                ready()
            delivered = ring.run(
                frame,
                duration=duration,
                count=max_packets,
                stop=lambda: bool(state["why"]) or (stop is not None and stop()),
                idle=lambda: masker.tick(time.time()),
            )
        report.kernel_drops = ring.stats_drops
        masker.finish()
        writer.close()
    except BaseException:
        writer.abort()
        raise
    if not state["why"]:
        if max_packets is not None and delivered >= max_packets:
            state["why"] = "max-packets"
        elif time.monotonic() - started >= duration:
            state["why"] = "duration"
        else:
            state["why"] = "stopped"
    report.stopped = state["why"]
    report.bytes = writer.bytes
    return report


def mask_pcap(
    in_path: Path | str,
    out_path: Path | str,
    *,
    dlp_engine: DlpEngine | None = None,
    bpf_filter: str | None = None,
    max_bytes: int | None = None,
    max_packets: int | None = None,
    on_packet: Callable[..., None] | None = None,
) -> CaptureReport:
    """Mask an existing pcap or pcapng file into a new pcap (mode 0600); the filter runs in user
    space. Frames of a link type other than the first frame's are skipped and counted."""
    from stockade.network.capture.pcapfile import PcapReader

    if Path(in_path).resolve() == Path(out_path).resolve():
        raise UsageError("the masked capture must not overwrite its input")
    report = CaptureReport(path=str(out_path), filter=bpf_filter, stopped="end of input")
    _check_bounds(None, max_bytes, max_packets)
    _open_filter(bpf_filter, 1)  # a bad expression is a usage error whatever the file holds
    with PcapReader(in_path) as reader:
        _mask_frames(
            reader,
            lambda linktype: PcapWriter(out_path, linktype=linktype),
            report,
            engine=dlp_engine or DlpEngine(),
            bpf_filter=bpf_filter,
            max_bytes=max_bytes,
            max_packets=max_packets,
            on_packet=on_packet,
        )
    return report


def mask_pcap_bytes(
    data: bytes, *, dlp_engine: DlpEngine | None = None, max_bytes: int | None = None
) -> tuple[bytes, CaptureReport]:
    """Mask a pcap or pcapng capture held in memory into a pcap in memory: nothing is written to
    a file (the controller masks every upload again this way before it keeps it)."""
    from stockade.network.capture.pcapfile import PcapReader
    from stockade.network.capture.pcapwriter import PcapBuffer

    _check_bounds(None, max_bytes, None)
    report = CaptureReport(path="<memory>", stopped="end of input")
    box: list[PcapBuffer] = []

    def open_buffer(linktype: int) -> PcapBuffer:
        box.append(PcapBuffer(linktype=linktype))
        return box[-1]

    with PcapReader.from_bytes(data) as reader:
        _mask_frames(
            reader, open_buffer, report, engine=dlp_engine or DlpEngine(), max_bytes=max_bytes
        )
    return box[0].value(), report


def _mask_frames(
    reader: Any,
    open_writer: Callable[[int], Any],
    report: CaptureReport,
    *,
    engine: DlpEngine,
    bpf_filter: str | None = None,
    max_bytes: int | None = None,
    max_packets: int | None = None,
    on_packet: Callable[..., None] | None = None,
) -> None:
    """Read every frame of ``reader``, mask it and write it through the writer ``open_writer``
    makes for the first frame's link type (or Ethernet for an empty capture)."""
    box: list[Any] = []
    masker: PacketMasker | None = None
    flt = None
    taken = HEADER
    try:
        for ts, linktype, buf, off, caplen in reader.frames():
            if not box:
                box.append(open_writer(linktype))
                masker = PacketMasker(engine, _summary_emit(box, report, on_packet), report)
                flt = _open_filter(bpf_filter, linktype)
                report.filter_where = "user space" if flt is not None else None
            assert masker is not None
            if linktype != box[0].linktype:
                report.skipped_linktype += 1
                continue
            frame = bytearray(buf[off : off + caplen])
            if flt is not None and not flt.match(bytes(frame)):  # type: ignore[attr-defined]
                report.filtered_out += 1
                continue
            if max_packets is not None and report.frames_seen >= max_packets:
                report.stopped = "max-packets"
                break
            if max_bytes is not None and taken + RECORD + caplen > max_bytes:
                report.stopped = "max-bytes"
                break
            taken += RECORD + caplen
            masker.add(ts, frame, linktype)
        if not box:
            box.append(open_writer(1))
        if masker is not None:
            masker.finish()
        box[0].close()
    except BaseException:
        if box:
            box[0].abort()
        raise
    report.bytes = box[0].bytes


def _check_bounds(duration: float | None, max_bytes: int | None, max_packets: int | None) -> None:
    if duration is not None and not 0 < duration <= 86400:
        raise UsageError("the capture duration must be between 0 and 24 hours")
    if max_bytes is not None and max_bytes < HEADER + RECORD:
        raise UsageError(f"the size bound must be at least {HEADER + RECORD} bytes")
    if max_packets is not None and max_packets < 1:
        raise UsageError("the packet bound must be at least 1")
