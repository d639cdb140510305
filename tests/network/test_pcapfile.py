"""The pcap/pcapng reader and frame decoder on files laid out per the specs, and fuzzed."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockade.model.errors import PacketError
from stockade.network.capture.decode import Decoder
from stockade.network.capture.pcapfile import PcapReader
from tests.network import frames as F


class Sink:
    def __init__(self) -> None:
        self.tcp_calls: list[tuple] = []
        self.udp_calls: list[tuple] = []

    def tcp(self, ts, key, flags, seq, ack, buf, off, length) -> None:
        self.tcp_calls.append((ts, key, flags, seq, bytes(buf[off : off + length])))

    def udp(self, ts, key, buf, off, length) -> None:
        self.udp_calls.append((ts, key, bytes(buf[off : off + length])))


def _decode(path: Path) -> tuple[Sink, Decoder, PcapReader]:
    sink = Sink()
    dec = Decoder(sink)
    with PcapReader(path) as r:
        for ts, link, buf, off, n in r.frames():
            dec.frame(ts, link, buf, off, n)
    return sink, dec, r


PKT = F.ipv4(
    "10.0.0.1", "10.0.0.2", 6, F.tcp(40000, 80, 7, 0, F.ACK | F.PSH, b"GET / HTTP/1.1\r\n\r\n")
)


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_both_byte_orders_and_resolutions(tmp_path: Path, big: bool, nano: bool) -> None:
    p = tmp_path / "a.pcap"
    p.write_bytes(F.pcap([(1700000000.123456, F.ether(PKT))], big=big, nano=nano))
    sink, _, r = _decode(p)
    ((ts, key, _flags, seq, payload),) = sink.tcp_calls
    assert r.format == "pcap" and abs(ts - 1700000000.123456) < 1e-6
    assert key[1] == 40000 and key[3] == 80 and seq == 7 and payload.startswith(b"GET /")


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("tsresol", [None, 9])
@pytest.mark.parametrize("simple", [False, True])
def test_pcapng_sections(tmp_path: Path, big: bool, tsresol: int | None, simple: bool) -> None:
    p = tmp_path / "a.pcapng"
    p.write_bytes(F.pcapng([(1700000000.5, F.ether(PKT))], big=big, tsresol=tsresol, simple=simple))
    sink, _, r = _decode(p)
    assert r.format == "pcapng" and len(sink.tcp_calls) == 1
    if not simple:
        assert abs(sink.tcp_calls[0][0] - 1700000000.5) < 1e-6


def test_two_pcapng_sections_of_different_byte_order(tmp_path: Path) -> None:
    p = tmp_path / "two.pcapng"
    p.write_bytes(F.pcapng([(1.0, F.ether(PKT))]) + F.pcapng([(2.0, F.ether(PKT))], big=True))
    sink, _, _ = _decode(p)
    assert [round(c[0]) for c in sink.tcp_calls] == [1, 2]


@pytest.mark.parametrize(
    ("linktype", "frame"),
    [
        (113, F.sll(PKT)),
        (276, F.sll2(PKT)),
        (101, PKT),
        (228, PKT),
        (1, F.ether(PKT, vlans=(10,))),
        (1, F.ether(PKT, vlans=(10, 20))),
    ],
)
def test_link_layers(tmp_path: Path, linktype: int, frame: bytes) -> None:
    p = tmp_path / "l.pcap"
    p.write_bytes(F.pcap([(1.0, frame)], linktype=linktype))
    sink, _, _ = _decode(p)
    assert len(sink.tcp_calls) == 1 and sink.tcp_calls[0][4].startswith(b"GET /")


def test_outgoing_copies_are_skipped_once(tmp_path: Path) -> None:
    p = tmp_path / "any.pcap"
    p.write_bytes(F.pcap([(1.0, F.sll2(PKT, 0)), (1.0, F.sll2(PKT, 4))], linktype=276))
    sink, dec, _ = _decode(p)
    assert len(sink.tcp_calls) == 1 and dec.stats.outgoing_skipped == 1


def test_ipv4_options_fragments_and_ipv6_extension_headers(tmp_path: Path) -> None:
    udp = F.udp(5353, 53, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00")
    frames = [
        F.ether(F.ipv4("10.0.0.1", "10.0.0.2", 17, udp, options=b"\x01\x01\x01\x00")),  # NOPs + EOL
        F.ether(F.ipv4("10.0.0.1", "10.0.0.2", 17, udp, frag=0x2000)),  # MF
        F.ether(F.ipv4("10.0.0.1", "10.0.0.2", 17, udp, frag=0x0010)),  # offset 128
        F.ether(
            F.ipv6("fd00::1", "fd00::2", 17, udp, ext=[(0, b"\x01\x00"), (60, b"\x01\x02\x00\x00")])
        ),
        F.ether(F.ipv6("fd00::1", "fd00::2", 17, udp, ext=[(44, b"\x00\x01\x00\x00\x00\x07")])),
    ]
    p = tmp_path / "x.pcap"
    p.write_bytes(F.pcap([(1.0, f) for f in frames]))
    sink, dec, _ = _decode(p)
    assert dec.stats.ipv4_options == 1 and dec.stats.fragments == 3
    assert len(sink.udp_calls) == 2 and all(c[2].startswith(b"\x12\x34") for c in sink.udp_calls)
    assert len(sink.udp_calls[1][1][0]) == 16  # the IPv6 one


def test_ethernet_padding_is_trimmed(tmp_path: Path) -> None:
    small = F.ipv4("10.0.0.1", "10.0.0.2", 6, F.tcp(1, 2, 0, 0, F.ACK))
    p = tmp_path / "pad.pcap"
    p.write_bytes(F.pcap([(1.0, F.ether(small) + b"\0" * 6)]))
    sink, _, _ = _decode(p)
    assert sink.tcp_calls[0][4] == b""


def test_truncated_last_record_is_flagged(tmp_path: Path) -> None:
    data = F.pcap([(1.0, F.ether(PKT)), (2.0, F.ether(PKT))])
    p = tmp_path / "t.pcap"
    p.write_bytes(data[:-10])
    sink, _, r = _decode(p)
    assert len(sink.tcp_calls) == 1 and r.truncated


@pytest.mark.parametrize(
    "content", [b"", b"abc", b"not a capture file at all", b"\x0a\x0d\x0d\x0a" + b"\xff" * 20]
)
def test_garbage_is_a_packet_error(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "g.pcap"
    p.write_bytes(content)
    with pytest.raises(PacketError):
        _decode(p)


def test_missing_file_is_a_packet_error(tmp_path: Path) -> None:
    with pytest.raises(PacketError):
        PcapReader(tmp_path / "nope.pcap")


_CORPUS = [
    F.pcap(
        [
            (1.0, F.ether(p))
            for p in F.conversation(
                "10.0.0.1",
                "10.0.0.2",
                40000,
                80,
                b"POST /x HTTP/1.1\r\n\r\n",
                b"HTTP/1.1 200 OK\r\n\r\n",
            )
        ]
    ),
    F.pcapng(
        [
            (1.0, F.ether(p))
            for p in F.conversation(
                "fd00::1", "fd00::2", 40000, 5432, b"\0\0\0\x08\x04\xd2\x16\x2f", b"N", v6=True
            )
        ]
    ),
    F.pcap(
        [
            (1.0, F.sll2(p))
            for p in F.conversation(
                "10.0.0.1", "10.0.0.2", 1, 2, b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"
            )
        ],
        linktype=276,
    ),
]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(_CORPUS), st.data())
def test_fuzzed_files_never_crash(tmp_path: Path, base: bytes, data: st.DataObject) -> None:
    """Truncations and byte flips: either frames come out or a PacketError, never anything else."""
    buf = bytearray(base[: data.draw(st.integers(0, len(base)))])
    for _ in range(data.draw(st.integers(0, 8))):
        if buf:
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    p = tmp_path / "f.pcap"
    p.write_bytes(bytes(buf))
    with contextlib.suppress(PacketError):
        _decode(p)


def _calls(linktype: int, frame: bytes) -> tuple[list[tuple], list[tuple], dict[str, object]]:
    sink = Sink()
    dec = Decoder(sink)
    dec.frame(1.0, linktype, frame, 0, len(frame))
    return sink.tcp_calls, sink.udp_calls, dec.stats.as_dict()


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 59), st.integers(0, 255), st.integers(0, 80), st.booleans())
def test_raw_ipv4_tcp_fast_path_decodes_as_the_long_way(
    at: int, value: int, cut: int, pad: bool
) -> None:
    """Raw IP (NFQUEUE's packets) in one unpack: the same calls and counts as the general path,
    which LINKTYPE_IPV4 takes for the same bytes, on altered and cut headers too."""
    frame = bytearray(PKT + (b"\0" * 6 if pad else b""))
    frame[at % len(frame)] = value
    frame = frame[: len(frame) - cut]
    assert _calls(101, bytes(frame)) == _calls(228, bytes(frame))
