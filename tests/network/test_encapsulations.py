"""Link types and encapsulations between the link layer and IP: Linux NFLOG (linktype 239),
MPLS label stacks and PPPoE sessions, on real captures (fixtures/encapsulations, from Zeek's
test traces) and on generated frames of each variant; the compiled path (pcapfast.c) gives the
pure-Python path's records and counts."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from stockade.identity import Directory
from stockade.network.capture import fastpcap
from stockade.network.sensor import run_pcap
from tests.network import frames as F

HERE = Path(__file__).parent / "fixtures" / "encapsulations"
CARD = b"4111111111111111"


def _run(path: Path, inspectors: Any, mode: str, mp: pytest.MonkeyPatch) -> tuple[list[Any], Any]:
    mp.setenv("STOCKADE_SENSOR_FASTPATH", mode)
    if mode != "0":
        assert fastpcap.compiled() is not None
    out: list[Any] = []
    run = run_pcap(path, inspectors=inspectors, identities=Directory(), on_record=out.append,
                   keep=False)  # fmt: skip
    return [dataclasses.replace(r, id=r.id.rsplit("-", 1)[1]) for r in out], run.stats


def _both(path: Path, inspectors: Any, mp: pytest.MonkeyPatch) -> tuple[list[Any], Any]:
    """The records and statistics of ``path``, the same on both paths."""
    ref = _run(path, inspectors, "0", mp)
    assert _run(path, inspectors, "1", mp) == ref
    assert _run(path, inspectors, "replay", mp) == ref
    return ref


def test_nflog_capture_of_an_http_exchange(
    inspectors: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (rec,), stats = _both(HERE / "nflog-http.pcap", inspectors, monkeypatch)
    assert (rec.client_ip, rec.server_ip, rec.server_port) == ("10.0.2.15", "93.184.216.34", 80)
    assert rec.protocol == "proto.http" and ("http.method", "GET") in rec.details
    assert rec.bytes_to_server == 79 and rec.bytes_to_client > 1000
    assert stats["decode"]["tcp"] == 13 and stats["decode"]["malformed"] == 0


def test_nflog_tlv_past_the_frame_is_malformed(
    inspectors: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    records, stats = _both(HERE / "nflog-bad-tlv-len.pcap", inspectors, monkeypatch)
    assert records == [] and stats["decode"]["malformed"] == 1


def test_mpls_under_a_vlan_tag_one_and_two_labels(
    inspectors: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    records, stats = _both(HERE / "mpls-in-vlan.pcap", inspectors, monkeypatch)
    assert sorted((r.server_port, r.protocol) for r in records) == [
        (80, "proto.http"), (80, "proto.http"), (80, "proto.unknown"),
    ]  # fmt: skip
    assert stats["decode"]["tcp"] == 3 and stats["decode"]["other"] == 0


def test_pppoe_session_in_qinq_carries_a_tls_handshake(
    inspectors: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (rec,), stats = _both(HERE / "pppoe-qinq-tls.pcap", inspectors, monkeypatch)
    assert (rec.client_ip, rec.server_ip, rec.server_port) == ("1.1.1.1", "2.2.2.2", 443)
    assert rec.protocol == "proto.tls" and rec.encrypted and rec.tls is not None
    assert stats["decode"]["tcp"] == 10


def _conversation(wrap: Any, *, v6: bool = False) -> list[bytes]:
    request = (
        b"POST /pay HTTP/1.1\r\nHost: shop\r\nContent-Length: 22\r\n\r\ncard=" + CARD + b"\r\n"
    )
    hosts = ("fd00::1", "fd00::2") if v6 else ("10.1.0.1", "10.1.0.2")
    return [
        wrap(p)
        for p in F.conversation(*hosts, 40100, 8080, request, b"HTTP/1.1 200 OK\r\n\r\n", v6=v6)
    ]


VARIANTS = {
    "mpls-one-label": (1, lambda ip: F.mpls(ip)),
    "mpls-three-labels-vlan": (1, lambda ip: F.mpls(ip, (100, 200, 300), vlans=(7,))),
    "pppoe": (1, lambda ip: F.pppoe(ip)),
    "pppoe-compressed-protocol": (1, lambda ip: F.pppoe(ip, compressed=True)),
    "nflog-little-endian": (239, lambda ip: F.nflog(ip)),
    "nflog-big-endian": (239, lambda ip: F.nflog(ip, big=True)),
}


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_a_card_in_clear_behind_each_encapsulation_is_found(
    name: str, v6: bool, inspectors: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    link, wrap = VARIANTS[name]
    path = tmp_path / "c.pcap"
    path.write_bytes(
        F.pcap([(1.0 + i / 10, f) for i, f in enumerate(_conversation(wrap, v6=v6))], linktype=link)
    )
    (rec,), stats = _both(path, inspectors, monkeypatch)
    assert rec.protocol == "proto.http" and rec.ip_version == (6 if v6 else 4)
    assert [(h.direction, h.match.masked) for h in rec.hits] == [("client", "4111********1111")]
    assert stats["decode"]["malformed"] == stats["decode"]["other"] == 0


def test_what_is_not_ip_is_counted_and_cut_short_is_malformed(
    inspectors: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ip = F.ipv4("10.1.0.1", "10.1.0.2", 6, F.tcp(40100, 8080, 1, 0, F.SYN))
    other = [
        F.pppoe(ip, code=0x09),  # a discovery code in a session frame
        F.pppoe(ip, proto=0x8021),  # IPCP: not IP
        F.mpls(b"\x00" * 40),  # a pseudowire control word: no IP follows
        F.nflog(ip)[: -(4 + len(ip))],  # no payload TLV: a log line without the packet
    ]
    malformed = [
        F.mpls(ip)[:14] + b"\x00\x01\x00\x40"[:3],  # the label stack cut short
        F.mpls(ip)[:14] + b"\x00\x01\x00\x40",  # a label that is not the bottom, then nothing
        F.pppoe(ip)[:19],  # the PPPoE header cut short
    ]
    frames = [(1.0 + i, f) for i, f in enumerate(other + malformed)]
    path = tmp_path / "odd.pcap"
    path.write_bytes(F.pcap(frames[:3] + frames[4:]))
    records, stats = _both(path, inspectors, monkeypatch)
    assert records == [] and (stats["decode"]["other"], stats["decode"]["malformed"]) == (3, 3)
    log = tmp_path / "log.pcap"
    log.write_bytes(F.pcap([frames[3]], linktype=239))
    records, stats = _both(log, inspectors, monkeypatch)
    assert records == [] and (stats["decode"]["other"], stats["decode"]["malformed"]) == (1, 0)


@pytest.mark.parametrize("big", [False, True], ids=["little-endian", "big-endian"])
def test_pcapng_interfaces_with_their_own_time_offset(
    big: bool, inspectors: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``if_tsoffset`` (pcapng option 14) adds seconds to every timestamp of its interface: two
    interfaces (Ethernet and NFLOG) whose clocks count from different epochs see one
    conversation at its real times, on both paths."""
    packets = _conversation(lambda ip: ip)
    frames = [
        (i % 2, 1_700_000_000.0 + i / 10, F.ether(p) if i % 2 == 0 else F.nflog(p))
        for i, p in enumerate(packets)
    ]
    path = tmp_path / "offsets.pcapng"
    path.write_bytes(F.pcapng_interfaces([1, 239], frames, offsets=[1_600_000_000, -3600], big=big))
    (rec,), _stats = _both(path, inspectors, monkeypatch)
    assert (rec.start, rec.end) == (frames[0][1], frames[-1][1])
    assert [h.match.masked for h in rec.hits] == ["4111********1111"]
