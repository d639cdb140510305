"""TCP reassembly of one direction: order, retransmission, overlap, holes, bounds, depth."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.network.reassembly import Stream


def _stream(depth: int = 1 << 16, ooo: int = 1 << 16) -> tuple[Stream, bytearray, list[int]]:
    out, gaps = bytearray(), []
    return Stream(depth, ooo, out.extend, gaps.append), out, gaps


def test_in_order_and_retransmission() -> None:
    s, out, gaps = _stream()
    s.syn(999)
    s.segment(1000, b"hello ", 0, 6)
    s.segment(1000, b"hello ", 0, 6)  # retransmitted
    s.segment(1006, b"world", 0, 5)
    assert bytes(out) == b"hello world" and s.retransmissions == 1 and not gaps


def test_overlap_keeps_first_copy() -> None:
    s, out, _ = _stream()
    s.syn(0)
    s.segment(1, b"abcdef", 0, 6)
    s.segment(4, b"XYZghi", 0, 6)  # overlaps "def": the first copy wins
    assert bytes(out) == b"abcdefghi" and s.overlaps == 1


def test_out_of_order_is_buffered_then_delivered() -> None:
    s, out, gaps = _stream()
    s.syn(0)
    s.segment(7, b"world", 0, 5)
    s.segment(12, b"!", 0, 1)
    assert bytes(out) == b""
    s.segment(1, b"hello ", 0, 6)
    assert bytes(out) == b"hello world!" and not gaps and s.buffered == 0


def test_gap_skipped_when_peer_acks_unseen_bytes() -> None:
    s, out, gaps = _stream()
    s.syn(0)
    s.segment(1, b"abc", 0, 3)
    s.segment(10, b"xyz", 0, 3)  # bytes 4..9 never captured
    s.acked(13)
    assert bytes(out) == b"abcxyz" and gaps == [6] and s.gaps == 1


def test_out_of_order_bound_forces_a_gap() -> None:
    s, out, gaps = _stream(ooo=10)
    s.syn(0)
    s.segment(101, b"0123456789", 0, 10)
    s.segment(111, b"abcdef", 0, 6)  # would exceed 10 buffered bytes
    assert s.buffered <= 10
    assert bytes(out).startswith(b"0123456789") and gaps == [100]


def test_depth_then_count_only() -> None:
    s, out, _ = _stream(depth=8)
    s.syn(0)
    s.segment(1, b"0123456789", 0, 10)
    s.segment(11, b"more", 0, 4)
    assert bytes(out) == b"01234567" and s.delivered == 8 and s.past_depth == 6


def test_sequence_wraparound() -> None:
    s, out, _ = _stream()
    s.syn(0xFFFFFFFD)
    s.segment(0xFFFFFFFE, b"ab", 0, 2)
    s.segment(0, b"cd", 0, 2)
    assert bytes(out) == b"abcd"


def test_fin_ack_is_not_a_gap() -> None:
    s, _out, gaps = _stream()
    s.syn(0)
    s.segment(1, b"abc", 0, 3)
    s.fin(4)
    s.acked(5)
    assert not gaps


@settings(max_examples=150, deadline=None)
@given(
    st.binary(min_size=1, max_size=3000),
    st.integers(0, 2**32 - 1),
    st.randoms(use_true_random=False),
)
def test_any_segmentation_and_order_reassembles(data: bytes, isn: int, rnd: random.Random) -> None:
    """Cut into random segments, shuffled, some duplicated and overlapping: the bytes come out whole."""
    s, out, gaps = _stream()
    s.syn(isn)
    cuts = sorted({0, len(data), *(rnd.randrange(len(data)) for _ in range(rnd.randrange(6)))})
    segs = [(cuts[i], cuts[i + 1]) for i in range(len(cuts) - 1)]
    segs += [
        (a, min(len(data), b + rnd.randrange(4))) for a, b in rnd.sample(segs, k=len(segs) // 2)
    ]
    rnd.shuffle(segs)
    for a, b in segs:
        s.segment((isn + 1 + a) & 0xFFFFFFFF, data, a, b - a)
    s.flush()
    assert bytes(out) == data and not gaps
