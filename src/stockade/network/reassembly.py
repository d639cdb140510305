"""TCP reassembly of one direction, up to a stream depth.

In-order bytes are delivered to ``on_data``; retransmissions are dropped, overlaps trimmed (the
first copy wins, as on most stacks), out-of-order segments buffered up to ``ooo_limit`` bytes. A
hole is skipped (and reported to ``on_gap``) when the buffer overflows, when the peer acknowledges
bytes the capture never saw, or when the stream is flushed. After ``depth`` bytes only counting
continues.
"""

from __future__ import annotations

from collections.abc import Callable

from stockade.network.capture.decode import Buf

MASK = 0xFFFFFFFF


def seq_diff(a: int, b: int) -> int:
    """a - b in 32-bit sequence space (negative when a is before b)."""
    d = (a - b) & MASK
    return d - 0x100000000 if d & 0x80000000 else d


class Stream:
    __slots__ = (
        "_on_data",
        "_on_gap",
        "buffered",
        "delivered",
        "depth",
        "fin_seq",
        "gaps",
        "head",
        "keep_head",
        "next_seq",
        "ooo",
        "ooo_limit",
        "overlaps",
        "past_depth",
        "retransmissions",
        "started",
    )

    def __init__(
        self,
        depth: int,
        ooo_limit: int,
        on_data: Callable[[bytes], None] | None = None,
        on_gap: Callable[[int], None] | None = None,
        *,
        keep_head: bool = True,
    ) -> None:
        self.depth = depth
        self.ooo_limit = ooo_limit
        self._on_data = on_data
        self._on_gap = on_gap
        self.started = False
        self.next_seq = 0
        self.fin_seq = -1
        self.head = bytearray()  # the first ``depth`` bytes, for protocol detection
        self.keep_head = keep_head
        self.delivered = 0
        self.past_depth = 0  # bytes seen after the depth, counted only
        self.ooo: dict[int, bytes] = {}
        self.buffered = 0  # bytes held in ``ooo`` (memory accounting)
        self.gaps = 0
        self.overlaps = 0
        self.retransmissions = 0

    def syn(self, seq: int) -> None:
        self.next_seq = (seq + 1) & MASK
        self.started = True

    def fin(self, seq: int) -> None:
        self.fin_seq = seq & MASK

    def segment(self, seq: int, buf: Buf, off: int, length: int) -> int:
        """Take one segment; returns the change in bytes held by this stream."""
        if self.delivered >= self.depth:
            self.past_depth += length
            return 0
        if not self.started:  # picked up mid-stream: start where we are
            self.next_seq = seq
            self.started = True
        rel = seq_diff(seq, self.next_seq)
        if rel < 0:
            if rel + length <= 0:
                self.retransmissions += 1
                return 0
            self.overlaps += 1
            off -= rel
            length += rel
            seq = self.next_seq
            rel = 0
        before = self.buffered + len(self.head)
        if rel == 0:
            self._deliver(bytes(buf[off : off + length]))
            if self.ooo:
                self._drain()
        else:
            if self.buffered + length > self.ooo_limit:
                # no room: give up on the hole before the earliest data held (or this segment)
                first = self._first_buffered()
                self._skip(seq if first is None or seq_diff(seq, first) < 0 else first)
                self.segment(seq, buf, off, length)
                return self.buffered + len(self.head) - before
            old = self.ooo.get(seq)
            if old is None or len(old) < length:
                self.buffered += length - (len(old) if old else 0)
                self.ooo[seq] = bytes(buf[off : off + length])
            else:
                self.retransmissions += 1
        return self.buffered + len(self.head) - before

    def acked(self, ack: int) -> int:
        """The peer acknowledged up to ``ack``: bytes before it that we never saw are a gap."""
        if not self.started or self.delivered >= self.depth:
            return 0
        ahead = seq_diff(ack, self.next_seq)
        if ahead <= 0 or (self.fin_seq >= 0 and ack == ((self.fin_seq + 1) & MASK) and ahead == 1):
            return 0
        before = self.buffered + len(self.head)
        first = self._first_buffered()
        if first is not None and seq_diff(first, ack) < 0:
            self._skip(first)
        else:
            self._skip(ack)
        return self.buffered + len(self.head) - before

    def flush(self) -> int:
        """Deliver whatever is buffered, skipping holes; returns the change in held bytes."""
        before = self.buffered + len(self.head)
        while self.ooo and self.delivered < self.depth:
            self._skip_to_buffered()
        self.buffered = 0
        self.ooo.clear()
        return self.buffered + len(self.head) - before

    def release(self) -> int:
        """Free the head and buffers (after analysis); returns the bytes freed."""
        freed = self.buffered + len(self.head)
        self.head = bytearray()
        self.keep_head = False
        self.ooo.clear()
        self.buffered = 0
        return freed

    # internals

    def _deliver(self, data: bytes) -> None:
        room = self.depth - self.delivered
        if len(data) > room:
            self.past_depth += len(data) - room
            data = data[:room]
        self.next_seq = (self.next_seq + len(data)) & MASK
        self.delivered += len(data)
        if self.keep_head:
            self.head += data
        if self._on_data is not None and data:
            self._on_data(data)
        if self.delivered >= self.depth and self.ooo:
            self.ooo.clear()
            self.buffered = 0

    def _drain(self) -> None:
        progressed = True
        while progressed and self.ooo and self.delivered < self.depth:
            progressed = False
            for seq in list(self.ooo):
                rel = seq_diff(seq, self.next_seq)
                if rel > 0:
                    continue
                data = self.ooo.pop(seq)
                self.buffered -= len(data)
                if rel + len(data) > 0:
                    if rel < 0:
                        self.overlaps += 1
                    self._deliver(data[-rel:] if rel < 0 else data)
                    progressed = True
                else:
                    self.retransmissions += 1
                if self.delivered >= self.depth:
                    break

    def _first_buffered(self) -> int | None:
        if not self.ooo:
            return None
        return min(self.ooo, key=lambda s: seq_diff(s, self.next_seq))

    def _skip_to_buffered(self) -> None:
        first = self._first_buffered()
        if first is not None:
            self._skip(first)

    def _skip(self, seq: int) -> None:
        missing = seq_diff(seq, self.next_seq)
        if missing <= 0:
            self._drain()
            return
        self.gaps += 1
        self.next_seq = seq & MASK
        if self._on_gap is not None:
            self._on_gap(missing)
        self._drain()
