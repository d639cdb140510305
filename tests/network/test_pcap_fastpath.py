"""``sensor --pcap``'s compiled path (capture/pcapfast.c through capture/fastpcap.py) against the
pure-Python path it replaces (``STOCKADE_SENSOR_FASTPATH=0``): the same records (every field,
DLP findings with their evidence), the same statistics and the same errors, on the test captures
and on generated and mutated ones (truncated files, bad lengths, flipped bytes, out-of-order,
overlapping, retransmitted and missing segments, IPv6, VLAN, SLL, pcapng), with the default
flow limits and with tight ones (stream depth, out-of-order room, memory cap, flow count, idle
times) so eviction, sweeps and holes run too."""

from __future__ import annotations

import dataclasses
import itertools
import random
import struct
from pathlib import Path
from typing import Any

import pytest

from stockade.identity import Directory
from stockade.model.errors import PacketError
from stockade.network.capture import fastpcap
from stockade.network.flows import FlowConfig
from stockade.network.sensor import run_pcap
from tests.network import frames as fr
from tests.network.sensor_runs import json_lines

PROTOCOLS = Path(__file__).parent / "fixtures" / "protocols"
LOOPBACK = PROTOCOLS / "loopback.pcap"
TIGHT = FlowConfig(
    stream_depth=700, ooo_limit=900, memcap=1500, max_flows=6, tcp_idle=3.0, udp_idle=2.0,
    half_open_idle=1.5, linger=0.5,
)  # fmt: skip
# few out-of-order segments held: the segment cap gives up on holes (as the byte limit does)
FEW_HELD = FlowConfig(ooo_segments=3)
CONFIGS = {"default": None, "tight": TIGHT, "few-held": FEW_HELD}


@pytest.fixture(autouse=True)
def _built() -> None:
    assert fastpcap.compiled() is not None, (
        "the compiled pcap path is not built: python3 setup.py build_ext --inplace"
    )


def test_switched_off_the_python_path_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKADE_SENSOR_FASTPATH", "0")
    assert fastpcap.compiled() is None


def test_without_the_extension_the_python_path_reads(
    corpus: dict[str, Path], inspectors: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An install that could not compile it: the import fails, the pure-Python path serves."""
    import sys

    from stockade.network import capture

    ref = _outcome(corpus["messy1"], inspectors, False, monkeypatch)
    monkeypatch.delenv("STOCKADE_SENSOR_FASTPATH")
    monkeypatch.delattr(capture, "_pcapfast", raising=False)
    monkeypatch.setitem(sys.modules, "stockade.network.capture._pcapfast", None)
    assert fastpcap.compiled() is None
    records: list[Any] = []
    run_pcap(corpus["messy1"], inspectors=inspectors, identities=Directory(),
             on_record=records.append, keep=False)  # fmt: skip
    assert [dataclasses.replace(r, id=r.id.rsplit("-", 1)[1]) for r in records] == ref[0]


def _outcome(path: Path, inspectors: Any, fast: bool | str, monkeypatch: pytest.MonkeyPatch,
             config: FlowConfig | None = None, count: int | None = None) -> tuple[Any, ...]:  # fmt: skip
    """``fast``: True (the C path, common connections decided in C), "replay" (the C path,
    every flow replayed in Python) or False (the Python path)."""
    mode = fast if isinstance(fast, str) else "1" if fast else "0"
    monkeypatch.setenv("STOCKADE_SENSOR_FASTPATH", mode)
    records: list[Any] = []
    try:
        run = run_pcap(path, inspectors=inspectors, identities=Directory(), config=config,
                       count=count, on_record=records.append, keep=False)  # fmt: skip
        end: Any = run.stats
    except PacketError as exc:
        end = ("error", str(exc))
    # the id is random per run but for its last part, the flow's number
    same = [dataclasses.replace(r, id=r.id.rsplit("-", 1)[1]) for r in records]
    return same, end


def _same(path: Path, inspectors: Any, monkeypatch: pytest.MonkeyPatch, *,
          replay: bool = False, **kw: Any) -> Any:  # fmt: skip
    """The C path's outcome is the Python path's (and, with ``replay``, the replay's too)."""
    ref = _outcome(path, inspectors, False, monkeypatch, **kw)
    for mode in (True, "replay") if replay else (True,):
        fast = _outcome(path, inspectors, mode, monkeypatch, **kw)
        assert fast[1] == ref[1]
        assert len(fast[0]) == len(ref[0])
        for a, b in zip(fast[0], ref[0], strict=True):
            assert a == b
    return ref


def _frames_of(path: Path) -> list[tuple[float, bytes]]:
    from stockade.network.capture.pcapfile import PcapReader

    with PcapReader(path) as reader:
        return [(ts, bytes(buf[off : off + n])) for ts, _l, buf, off, n in reader.frames()]


def _protocol_conversations(rng: random.Random, *, v6: bool, vlans: tuple[int, ...]) -> list[bytes]:
    """Every recorded protocol opening as a conversation, a few cut into segments."""
    out: list[bytes] = []
    for i, c2s in enumerate(sorted(PROTOCOLS.glob("*.c2s"))):
        s2c = c2s.with_suffix(".s2c").read_bytes()
        req = c2s.read_bytes()
        client, server = ("fd00::1", "fd00::2") if v6 else ("10.9.0.1", "10.9.0.2")
        split = rng.randrange(1, len(req)) if len(req) > 1 and rng.random() < 0.5 else None
        conv = fr.conversation(client, server, 40000 + i, 443 if "tls" in c2s.name else 8000 + i,
                               req, s2c, v6=v6, isn=rng.randrange(1 << 32), split=split)  # fmt: skip
        out += [fr.ether(p, vlans=vlans) for p in conv]
    return out


def _messy_conversation(rng: random.Random, n: int, *, v6: bool = False) -> list[bytes]:
    """A conversation whose request arrives in overlapping, repeated, out-of-order pieces with
    holes, and whose sequence numbers may wrap."""
    ip = fr.ipv6 if v6 else fr.ipv4
    client, server = ("fd00::a", "fd00::b") if v6 else (f"10.8.{n}.1", "10.8.0.2")
    cport, sport = 30000 + n, 80
    body = b"card=4111 1111 1111 1111&ssn=123-45-6789&" + bytes(
        rng.randrange(256) for _ in range(rng.randrange(0, 900))
    )
    req = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n078-05-1120"
    c = rng.choice([1000, 0xFFFFFF00 + rng.randrange(200), rng.randrange(1 << 32)])
    s = rng.randrange(1 << 32)
    m = 0xFFFFFFFF
    out = []
    if rng.random() < 0.8:
        out.append(ip(client, server, 6, fr.tcp(cport, sport, c, 0, fr.SYN)))
    if rng.random() < 0.8:
        out.append(ip(server, client, 6, fr.tcp(sport, cport, s, (c + 1) & m, fr.SYN | fr.ACK)))
    pieces = []
    for _ in range(rng.randrange(1, 12)):
        a = rng.randrange(len(req))
        b = min(len(req), a + rng.randrange(1, 400))
        pieces.append((a, b))
    pieces.append((0, len(req) // 2))
    if rng.random() < 0.7:
        pieces.append((len(req) // 2, len(req)))
    rng.shuffle(pieces)
    for a, b in pieces:
        flags = fr.ACK | fr.PSH if rng.random() < 0.9 else fr.PSH
        out.append(
            ip(
                client,
                server,
                6,
                fr.tcp(cport, sport, (c + 1 + a) & m, (s + 1) & m, flags, req[a:b]),
            )
        )
    ack = (c + 1 + len(req) + rng.choice([0, 0, 0, 5, -3])) & m
    out.append(ip(server, client, 6, fr.tcp(sport, cport, (s + 1) & m, ack, fr.ACK | fr.PSH, resp)))
    if rng.random() < 0.6:
        out.append(
            ip(
                client,
                server,
                6,
                fr.tcp(
                    cport, sport, (c + 1 + len(req)) & m, (s + 1 + len(resp)) & m, fr.ACK | fr.FIN
                ),
            )
        )
    if rng.random() < 0.5:
        out.append(
            ip(
                server,
                client,
                6,
                fr.tcp(
                    sport, cport, (s + 1 + len(resp)) & m, (c + 2 + len(req)) & m, fr.ACK | fr.FIN
                ),
            )
        )
    if rng.random() < 0.2:
        out.append(ip(client, server, 6, fr.tcp(cport, sport, (c + 5) & m, 0, fr.RST)))
    if rng.random() < 0.3:
        out.append(
            ip(client, server, 17, fr.udp(cport, 53, b"\x12\x34\x01\x00\x00\x01" + body[:60]))
        )
    return out


def _many_pieces(rng: random.Random, n: int) -> list[bytes]:
    """A request cut into hundreds of small pieces sent out of order, some again and some
    longer the second time, with a hole that a late piece fills (many segments held at once)."""
    client, server = f"10.7.{n}.1", "10.7.0.2"
    req = b"POST /p HTTP/1.1\r\nContent-Length: 2000\r\n\r\n" + b"n=4111111111111111&" * 110
    c, s = rng.randrange(1 << 32), 7000
    m = 0xFFFFFFFF
    cuts = sorted({0, len(req), *rng.sample(range(1, len(req)), 400)})
    pieces = list(itertools.pairwise(cuts))
    order = pieces[1:]
    rng.shuffle(order)
    order += rng.sample(pieces[1:], 60)  # retransmissions
    order += [(a, min(len(req), b + 5)) for a, b in rng.sample(pieces[1:], 30)]  # longer again
    order.append(pieces[0])  # the hole at the start, filled last
    order += rng.sample(pieces, 10)
    out = [
        fr.ipv4(client, server, 6, fr.tcp(30000 + n, 80, c, 0, fr.SYN)),
        fr.ipv4(server, client, 6, fr.tcp(80, 30000 + n, s, (c + 1) & m, fr.SYN | fr.ACK)),
    ]
    for a, b in order:
        seg = fr.tcp(30000 + n, 80, (c + 1 + a) & m, s + 1, fr.ACK, req[a:b])
        out.append(fr.ipv4(client, server, 6, seg))
    return [fr.ether(p) for p in out]


def _timed(rng: random.Random, packets: list[bytes]) -> list[tuple[float, bytes]]:
    ts, out = 1_700_000_000.0, []
    for p in packets:
        ts += rng.choice([0.0001, 0.001, 0.01, 0.3, 1.2, 4.0])
        out.append((ts, p))
    return out


def _messy_capture(seed: int) -> list[tuple[float, bytes]]:
    rng = random.Random(seed)
    convs = [
        _messy_conversation(rng, i, v6=rng.random() < 0.3) for i in range(rng.randrange(2, 14))
    ]
    packets = []
    while any(convs):  # interleaved
        conv = rng.choice([c for c in convs if c])
        packets.append(conv.pop(0) if rng.random() < 0.85 else conv.pop(rng.randrange(len(conv))))
    tagged = [
        fr.ether(p, vlans=(rng.randrange(1, 4000),) if rng.random() < 0.2 else ()) for p in packets
    ]
    return _timed(rng, tagged)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Named captures: the recorded loopback capture, the protocol openings (IPv4, IPv6 in
    VLANs, SLL, pcapng), HTTP flows with planted cards, messy conversations in both formats."""
    from stockade.lab.http_capture import write_http_capture

    d = tmp_path_factory.mktemp("pcaps")
    rng = random.Random(19)
    files: dict[str, bytes] = {}
    files["loopback"] = LOOPBACK.read_bytes()
    loop = _frames_of(LOOPBACK)
    files["loopback.pcapng"] = fr.pcapng(loop, tsresol=9)
    files["protocols"] = fr.pcap(_timed(rng, _protocol_conversations(rng, v6=False, vlans=())))
    files["protocols.v6.vlan"] = fr.pcap(
        _timed(rng, _protocol_conversations(rng, v6=True, vlans=(7, 9))), big=True, nano=True
    )
    sll = [p[14:] for p in _protocol_conversations(rng, v6=False, vlans=())]
    files["protocols.sll"] = fr.pcap(_timed(rng, [fr.sll(p) for p in sll]), linktype=113)
    files["protocols.raw.pcapng"] = fr.pcapng(_timed(rng, sll), linktype=101, big=True)
    files["pieces"] = fr.pcap(_timed(rng, _many_pieces(rng, 1) + _many_pieces(rng, 2)))
    kinds = ["ipip", "gre", "gre-key-seq-teb", "vxlan", "flannel", "geneve-opt"]
    frags = [p for v6 in (False, True) for o in ("reversed", "overlap") for p in _fragmented(v6, o)]
    files["fragments"] = fr.pcapng([(1.0 + i / 100, fr.ether(p)) for i, p in enumerate(frags)])
    files["tunnels"] = fr.pcap(
        _timed(rng, [_tunnelled(rng.choice(kinds), p[14:]) for p in _protocol_conversations(
            rng, v6=bool(rng.randrange(2)), vlans=())])
    )  # fmt: skip
    write_http_capture(d / "http", flows=150)
    files["http"] = (d / "http").read_bytes()
    for seed in range(24):
        cap = _messy_capture(seed)
        files[f"messy{seed}"] = fr.pcapng(cap) if seed % 3 == 0 else fr.pcap(cap)
    paths = {}
    for name, data in files.items():
        paths[name] = d / name
        paths[name].write_bytes(data)
    return paths


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_compiled_and_python_paths_give_the_same_records(
    corpus, inspectors, monkeypatch, config
) -> None:
    records = 0
    for path in corpus.values():
        recs, end = _same(path, inspectors, monkeypatch, replay=True, config=CONFIGS[config])
        records += len(recs)
        assert not isinstance(end, tuple), f"{path.name}: {end}"
    assert records > 400
    # the corpus does reach DLP findings, holes and evictions
    recs, end = _outcome(corpus["http"], inspectors, True, monkeypatch)
    assert sum(len(r.hits) for r in recs) > 20


def _same_lines(path: Path, inspectors: Any, monkeypatch: pytest.MonkeyPatch,
                config: FlowConfig | None = None) -> list[str]:  # fmt: skip
    """The JSON lines, statistics and tallies of ``--format json --no-store`` are the Python
    path's with the C code writing the lines it can; returns those lines."""
    monkeypatch.setenv("STOCKADE_SENSOR_FASTPATH", "0")
    ref = json_lines(path, inspectors, config=config)
    monkeypatch.setenv("STOCKADE_SENSOR_FASTPATH", "1")
    got = json_lines(path, inspectors, config=config)
    assert got[0] == ref[0], path.name
    assert got[1:3] == ref[1:3], path.name
    return got[3]


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_the_lines_written_in_c_are_the_python_paths(corpus, inspectors, monkeypatch, config):
    in_c = sum(len(_same_lines(path, inspectors, monkeypatch, CONFIGS[config]))
               for path in corpus.values())  # fmt: skip
    assert in_c > (50 if config == "default" else 10)


def test_the_tight_limits_are_reached(corpus, inspectors, monkeypatch) -> None:
    seen = {"evicted": 0, "half_open_dropped": 0, "memcap_evictions": 0, "gaps": 0}
    for path in corpus.values():
        recs, end = _outcome(path, inspectors, True, monkeypatch, config=TIGHT)
        for k in ("evicted", "half_open_dropped", "memcap_evictions"):
            seen[k] += end["flows"][k]
        seen["gaps"] += sum(r.gaps for r in recs)
    assert all(seen.values()), seen


def test_a_count_stops_both_paths_alike(corpus, inspectors, monkeypatch) -> None:
    for count in (0, 1, 7, 100):
        _same(corpus["messy1"], inspectors, monkeypatch, count=count)


def _mutants(data: bytes, rng: random.Random, n: int) -> list[bytes]:
    out = []
    for i in range(n):
        b = bytearray(data)
        kind = i % 4
        if kind == 0:  # cut anywhere
            b = b[: rng.randrange(len(b))]
        elif kind == 1:  # flipped bytes
            for _ in range(rng.randrange(1, 12)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif kind == 2:  # a record or block length made wrong
            at = rng.randrange(len(b) - 4)
            b[at : at + 4] = struct.pack(
                "<I", rng.choice([0, 1, 13, 0xFFFF, 1 << 24, (1 << 24) + 1, 0xFFFFFFFF])
            )
        else:  # bytes of another place repeated
            a = rng.randrange(len(b))
            b[a:a] = b[rng.randrange(len(b)) :][: rng.randrange(1, 200)]
        out.append(bytes(b))
    return out


@pytest.mark.parametrize(
    "base",
    [
        "messy2",
        "messy3",
        "protocols.v6.vlan",
        "loopback.pcapng",
        "protocols.sll",
        "pieces",
        "tunnels",
        "fragments",
    ],
)
def test_mutated_captures_give_the_same_records_and_errors(
    corpus, inspectors, monkeypatch, tmp_path, base
) -> None:
    rng = random.Random(base)
    data = corpus[base].read_bytes()
    errors = 0
    for i, mutant in enumerate(_mutants(data, rng, 40)):
        path = tmp_path / f"m{i}"
        path.write_bytes(mutant)
        for config in (None, TIGHT, FEW_HELD):
            _recs, end = _same(path, inspectors, monkeypatch, config=config)
            errors += isinstance(end, tuple)
        _same_lines(path, inspectors, monkeypatch)
    assert errors  # some mutants are refused, with the same one-line error on both paths


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xd4\xc3",
        b"\xd4\xc3\xb2\xa1" + b"\0" * 10,
        b"\x0a\x0d\x0d\x0a" + b"\0" * 20,
        b"garbage!" * 9,
    ],
)
def test_garbage_gives_the_same_error(tmp_path, inspectors, monkeypatch, content) -> None:
    path = tmp_path / "bad"
    path.write_bytes(content)
    _recs, end = _same(path, inspectors, monkeypatch)
    assert isinstance(end, tuple)


def test_an_unsupported_link_type_is_refused_alike(tmp_path, inspectors, monkeypatch) -> None:
    path = tmp_path / "link"
    path.write_bytes(fr.pcap([(1.0, b"\0" * 40)], linktype=147))
    _recs, end = _same(path, inspectors, monkeypatch)
    assert end[0] == "error" and "unsupported link type 147" in end[1]


def test_the_command_gives_the_same_output_and_exit_code(corpus, tmp_path) -> None:
    """The whole command (stdout, stderr, exit code) on a capture with findings and on a
    damaged one, each path in its own process."""
    from tests.network.sensor_runs import sensor_pcap

    bad = tmp_path / "bad.pcap"
    bad.write_bytes(corpus["messy4"].read_bytes()[:300] + b"\xff" * 16)
    for path in (corpus["messy5"], bad):
        outs = [sensor_pcap(path, fast) for fast in ("0", "1")]
        assert outs[0] == outs[1]
        assert "Traceback" not in outs[1][2]


CARD_REQUEST = (
    b"POST /pay HTTP/1.1\r\nHost: orders\r\nContent-Length: 34\r\n\r\n"
    b'{"card_number": "4111111111111111"}'
)
CARD_CONVERSATION = fr.conversation(
    "10.0.0.1", "10.0.0.2", 40000, 8080, CARD_REQUEST, b"HTTP/1.1 200 OK\r\n\r\n"
)


def _sensors(records: list[Any]) -> list[list[str]]:
    return [[h.match.sensor for h in r.hits] for r in records]


@pytest.mark.parametrize("field", [0x04000001, 0x14000001, 0xF4000001, 0x50000001])
def test_the_fcs_bits_of_the_pcap_link_type_field_are_not_the_link_type(
    tmp_path, inspectors, monkeypatch, field
) -> None:
    """libpcap keeps only the low 16 bits of the header's link type (LT_LINKTYPE): above them
    it writes whether the frames end in an FCS and its length, as tcpdump and Wireshark read
    it. Such an Ethernet capture (4 FCS bytes after each frame) is read, not refused."""
    path = tmp_path / "fcs.pcap"
    frames = [(1.0 + i, fr.ether(p) + b"\xde\xad\xbe\xef") for i, p in enumerate(CARD_CONVERSATION)]
    path.write_bytes(fr.pcap(frames, linktype=field))
    recs, end = _same(path, inspectors, monkeypatch)
    assert not isinstance(end, tuple) and end["decode"]["tcp"] == len(frames)
    assert _sensors(recs) == [["dlp.payment_card"]]


@pytest.mark.parametrize(("family", "v6"), [(2, False), (24, True), (28, True), (30, True)])
def test_openbsd_loopback_captures_are_read(tmp_path, inspectors, monkeypatch, family, v6) -> None:
    """LINKTYPE_LOOP (108, tcpdump on an OpenBSD lo0): NULL's 4-byte address family, always in
    network byte order (AF_INET 2; AF_INET6 24 on OpenBSD, 28 on FreeBSD, 30 on macOS)."""
    conv = fr.conversation(
        "fd00::1" if v6 else "10.0.0.1", "fd00::2" if v6 else "10.0.0.2", 40000, 8080,
        CARD_REQUEST, b"HTTP/1.1 200 OK\r\n\r\n", v6=v6,
    )  # fmt: skip
    path = tmp_path / "loop.pcap"
    path.write_bytes(fr.pcap([(1.0 + i, struct.pack("!I", family) + p) for i, p in enumerate(conv)],
                             linktype=108))  # fmt: skip
    recs, end = _same(path, inspectors, monkeypatch)
    assert not isinstance(end, tuple)
    assert [(r.ip_version, r.protocol) for r in recs] == [(6 if v6 else 4, "proto.http")]
    assert _sensors(recs) == [["dlp.payment_card"]]


def test_a_pcapng_interface_of_another_link_type_does_not_hide_the_others(
    tmp_path, inspectors, monkeypatch
) -> None:
    """dumpcap writes one interface block per interface it captured on; one of a link type the
    sensor does not decode (a USB bus, 189) has its frames counted as not IP, and the Ethernet
    and SLL2 interfaces' connections are still read: before, the first USB frame ended the run
    with exit 3 and the cards in clear on the other interfaces went unreported."""
    other = fr.conversation(
        "fd00::1", "fd00::2", 40001, 8080, CARD_REQUEST.replace(b"4111111111111111",
        b"5555555555554444"), b"HTTP/1.1 200 OK\r\n\r\n", v6=True,
    )  # fmt: skip
    frames = [(1, 0.5, b"\x00" * 48)]
    for i, (a, b) in enumerate(zip(CARD_CONVERSATION, other, strict=True)):
        frames += [(0, 1.0 + i, fr.ether(a)), (1, 1.2 + i, b"\x80" * 40), (2, 1.5 + i, fr.sll2(b))]
    path = tmp_path / "multi.pcapng"
    path.write_bytes(fr.pcapng_interfaces([1, 189, 276], frames))
    recs, end = _same(path, inspectors, monkeypatch, replay=True)
    assert not isinstance(end, tuple)
    assert end["decode"]["frames"] == len(frames) and end["decode"]["other"] == len(other) + 1
    assert _sensors(recs) == [["dlp.payment_card"], ["dlp.payment_card"]]
    assert sorted(h.match.masked for r in recs for h in r.hits) == [
        "4111********1111", "5555********4444"
    ]  # fmt: skip


def test_a_pcapng_of_only_unsupported_link_types_is_refused_alike(
    tmp_path, inspectors, monkeypatch
) -> None:
    path = tmp_path / "usb.pcapng"
    path.write_bytes(fr.pcapng_interfaces([189, 147], [(0, 1.0, b"\0" * 40), (1, 2.0, b"\0" * 9)]))
    _recs, end = _same(path, inspectors, monkeypatch)
    assert end == ("error", f"{path}: unsupported link type 147")


def _mid_connection(cport: int, sport: int) -> list[bytes]:
    """A capture begun during a download: no handshake, the server's answer (a card in it) seen
    first, then the client's ACK and both FINs."""
    body = b'{"card": "4111 1111 1111 1111"}'
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    c, s = "10.0.0.1", "10.0.0.2"
    return [
        fr.ipv4(s, c, 6, fr.tcp(sport, cport, 9000, 5000, fr.ACK | fr.PSH, answer)),
        fr.ipv4(c, s, 6, fr.tcp(cport, sport, 5000, 9000 + len(answer), fr.ACK)),
        fr.ipv4(s, c, 6, fr.tcp(sport, cport, 9000 + len(answer), 5000, fr.ACK | fr.FIN)),
        fr.ipv4(c, s, 6, fr.tcp(cport, sport, 5000, 9001 + len(answer), fr.ACK | fr.FIN)),
    ]


@pytest.mark.parametrize(("cport", "sport"), [(40000, 8080), (51000, 80), (2000, 443)])
def test_a_capture_begun_mid_connection_with_the_servers_answer_keeps_the_roles(
    tmp_path, inspectors, monkeypatch, cport, sport
) -> None:
    """Without a SYN the first packet's sender was the client: the server's answer became the
    client's request (protocol unknown, its card reported as sent towards the server, the
    workloads swapped). A first packet from a service's port to an ephemeral one is the
    server's, on both paths (flows.answer_first, pcapfast.c answer_first)."""
    path = tmp_path / "mid.pcap"
    path.write_bytes(
        fr.pcap([(1.0 + i, fr.ether(p)) for i, p in enumerate(_mid_connection(cport, sport))])
    )
    recs, _end = _same(path, inspectors, monkeypatch, replay=True)
    (rec,) = recs
    assert (rec.client_ip, rec.client_port, rec.server_ip, rec.server_port) == (
        "10.0.0.1", cport, "10.0.0.2", sport
    )  # fmt: skip
    assert rec.protocol == "proto.http" and rec.bytes_to_server == 0 and rec.bytes_to_client > 0
    assert [(h.direction, h.match.sensor) for h in rec.hits] == [("server", "dlp.payment_card")]


def test_a_dns_answer_seen_before_its_query_names_the_resolver_the_server(
    tmp_path, inspectors, monkeypatch
) -> None:
    answer = bytes.fromhex("123481800001000100000000") + b"\x01a\x00\x00\x01\x00\x01"
    path = tmp_path / "dns.pcap"
    path.write_bytes(fr.pcap([(1.0, fr.ether(fr.ipv4("10.0.0.53", "10.0.0.1", 17,
                                                       fr.udp(53, 41000, answer))))]))  # fmt: skip
    recs, _end = _same(path, inspectors, monkeypatch, replay=True)
    assert [(r.client_port, r.server_ip, r.server_port) for r in recs] == [(41000, "10.0.0.53", 53)]


def test_without_a_syn_a_first_packet_between_two_service_ports_keeps_its_sender_the_client(
    tmp_path, inspectors, monkeypatch
) -> None:
    """Nothing to go by (both ports below the ephemeral ranges): the first sender stays the
    client, as before."""
    path = tmp_path / "same.pcap"
    path.write_bytes(
        fr.pcap([(1.0 + i, fr.ether(p)) for i, p in enumerate(_mid_connection(8081, 8080))])
    )
    recs, _end = _same(path, inspectors, monkeypatch)
    assert [(r.client_port, r.server_port) for r in recs] == [(8080, 8081)]


def _tunnelled(kind: str, packet: bytes) -> bytes:
    """``packet`` (an IP packet) as a node's capture shows it inside an overlay."""
    outer, inner_eth = ("192.168.0.1", "192.168.0.2"), fr.ether(packet)
    v6 = packet[0] >> 4 == 6
    carried: dict[str, tuple[int, bytes]] = {
        "ipip": (41 if v6 else 4, packet),
        "gre": (47, b"\x00\x00" + (b"\x86\xdd" if v6 else b"\x08\x00") + packet),
        "gre-key-seq-teb": (47, b"\x30\x00\x65\x58" + b"\0\0\0\x07" + b"\0\0\0\x01" + inner_eth),
        "vxlan": (17, fr.udp(54321, 4789, b"\x08\0\0\0\0\0\x2a\0" + inner_eth)),
        "flannel": (17, fr.udp(54321, 8472, b"\x08\0\0\0\0\0\x01\0" + inner_eth)),
        "geneve-opt": (17, fr.udp(54321, 6081, b"\x01\x00\x65\x58\0\0\x01\0" + b"\0" * 4 + inner_eth)),
    }  # fmt: skip
    proto, payload = carried[kind]
    return fr.ether(fr.ipv4(*outer, proto, payload))


@pytest.mark.parametrize("v6", [False, True])
@pytest.mark.parametrize(
    "kind", ["ipip", "gre", "gre-key-seq-teb", "vxlan", "flannel", "geneve-opt"]
)
def test_pod_traffic_inside_an_overlay_is_read_as_the_pods(
    tmp_path, inspectors, monkeypatch, kind, v6
) -> None:
    """A capture on a node's uplink shows pod-to-pod traffic inside the overlay (Calico's IP in
    IP, GRE, VXLAN on IANA's port or Flannel's, Cilium's Geneve): the connection is the pods',
    with its protocol and the card in clear. Before, IP in IP and GRE were "other" (nothing
    reported) and VXLAN a UDP flow between the nodes."""
    a, b = ("fd00::1", "fd00::2") if v6 else ("10.244.1.5", "10.244.2.7")
    conv = fr.conversation(a, b, 40000, 8080, CARD_REQUEST, b"HTTP/1.1 200 OK\r\n\r\n", v6=v6)
    path = tmp_path / f"{kind}.pcap"
    path.write_bytes(fr.pcap([(1.0 + i, _tunnelled(kind, p)) for i, p in enumerate(conv)]))
    recs, _end = _same(path, inspectors, monkeypatch, replay=True)
    assert [(r.transport, r.client_ip, r.server_ip, r.server_port, r.protocol) for r in recs] == [
        ("tcp", a, b, 8080, "proto.http")
    ]
    assert _sensors(recs) == [["dlp.payment_card"]]


def test_nested_tunnels_stop_at_the_limit_and_odd_headers_stay_datagrams(
    tmp_path, inspectors, monkeypatch
) -> None:
    """Hostile nesting costs a bounded walk: past three levels the packet is counted as not
    IP. A datagram to the VXLAN port without the VXLAN flag, and GRE with source routing or
    PPTP's version, are not opened."""
    pkt = fr.ipv4("10.0.0.1", "10.0.0.2", 17, fr.udp(41000, 2000, b"x"))
    deep = pkt
    for _ in range(50):
        deep = fr.ipv4("10.9.9.1", "10.9.9.2", 4, deep)
    frames = [
        fr.ether(fr.ipv4("10.9.9.1", "10.9.9.2", 4, fr.ipv4("10.9.9.3", "10.9.9.4", 4, pkt))),
        fr.ether(deep),
        fr.ether(fr.ipv4("10.9.9.1", "10.9.9.2", 17, fr.udp(40000, 4789, b"\0" * 8 + b"plain"))),
        fr.ether(fr.ipv4("10.9.9.1", "10.9.9.2", 47, b"\x40\x00\x08\x00" + pkt)),
        fr.ether(fr.ipv4("10.9.9.1", "10.9.9.2", 47, b"\x00\x01\x88\x0b" + pkt)),
        fr.ether(fr.ipv4("10.9.9.1", "10.9.9.2", 47, b"\x80\x00\x08\x00")),  # cut short
    ]
    path = tmp_path / "deep.pcap"
    path.write_bytes(fr.pcap([(1.0 + i, f) for i, f in enumerate(frames)]))
    recs, end = _same(path, inspectors, monkeypatch)
    assert sorted((r.client_port, r.server_port) for r in recs) == [(40000, 4789), (41000, 2000)]
    assert end["decode"]["other"] == 3 and end["decode"]["malformed"] == 1


def test_a_kernel_vxlan_capture_is_read_as_the_inner_connection(inspectors, monkeypatch) -> None:
    """``fixtures/vxlan_http.pcap``, recorded here (session 14): two network namespaces joined
    by a veth, a Linux VXLAN device in each (``id 42 dstport 4789 udpcsum``), an HTTP POST with
    a test card and a synthetic SSN over it, tcpdump on the underlay veth (22 frames, the ARP
    and ICMPv6 of the overlay's Ethernet included). tshark reads the same conversation."""
    recs, _end = _same(PROTOCOLS.parent / "vxlan_http.pcap", inspectors, monkeypatch, replay=True)
    assert [(r.client_ip, r.server_ip, r.server_port, r.protocol) for r in recs] == [
        ("10.3.0.1", "10.3.0.2", 8080, "proto.http")
    ]
    assert sorted(h.match.masked for h in recs[0].hits) == ["***-**-8401", "4111 **** **** 1111"]


def _fragments4(packet: bytes, size: int, ident: int = 77) -> list[bytes]:
    """``packet`` (IPv4) cut into fragments of ``size`` payload bytes (a multiple of 8)."""
    ihl = (packet[0] & 15) * 4
    payload, out = packet[ihl:], []
    for at in range(0, len(payload), size):
        part = payload[at : at + size]
        head = bytearray(packet[:ihl])
        more = 0x2000 if at + size < len(payload) else 0
        struct.pack_into("!HHH", head, 2, ihl + len(part), ident, more | at // 8)
        out.append(bytes(head) + part)
    return out


def _fragments6(packet: bytes, size: int, ident: int = 99) -> list[bytes]:
    """``packet`` (IPv6, no extension header) cut into fragments behind a fragment header."""
    payload, out = packet[40:], []
    for at in range(0, len(payload), size):
        part = payload[at : at + size]
        head = bytearray(packet[:40])
        head[6] = 44
        struct.pack_into("!H", head, 4, 8 + len(part))
        more = 1 if at + size < len(payload) else 0
        out.append(bytes(head) + struct.pack("!BBHI", packet[6], 0, at | more, ident) + part)
    return out


def _fragmented(v6: bool, order: str) -> list[bytes]:
    a, b = ("fd00::1", "fd00::2") if v6 else ("10.0.0.1", "10.0.0.2")
    conv = fr.conversation(a, b, 40000, 8080, CARD_REQUEST, b"HTTP/1.1 200 OK\r\n\r\n", v6=v6)
    pieces = (_fragments6 if v6 else _fragments4)(conv[3], 48)  # the request, the card cut
    if order == "reversed":
        pieces = pieces[::-1]
    elif order == "overlap":  # a second copy of the card's piece, blanked, comes after it
        blank = bytearray(pieces[2])
        blank[-16:] = b"X" * 16
        pieces = [*pieces[:3], bytes(blank), *pieces[3:]]
    return [*conv[:3], *pieces, *conv[4:]]


@pytest.mark.parametrize("v6", [False, True])
@pytest.mark.parametrize("order", ["in-order", "reversed", "overlap"])
def test_a_card_cut_by_ip_fragmentation_is_found(
    tmp_path, inspectors, monkeypatch, v6, order
) -> None:
    """IP fragments were counted and skipped: a request sent in fragments (or fragmented on
    purpose to slip by) was lost, its card with it. They are put together again (IPv4, IPv6's
    fragment header; any order; an overlap keeps the first copy, as TCP's does)."""
    path = tmp_path / "frag.pcap"
    frames = _fragmented(v6, order)
    path.write_bytes(fr.pcap([(1.0 + i / 100, fr.ether(p)) for i, p in enumerate(frames)]))
    recs, end = _same(path, inspectors, monkeypatch, replay=True)
    assert [(r.protocol, r.bytes_to_server) for r in recs] == [("proto.http", len(CARD_REQUEST))]
    assert _sensors(recs) == [["dlp.payment_card"]]
    assert end["decode"]["fragments"] == len(frames) - 6


def test_fragments_that_never_complete_hold_bounded_memory_and_bad_ones_are_refused(
    tmp_path, inspectors, monkeypatch
) -> None:
    """A flood of first fragments whose rest never comes holds at most 64 datagrams (the
    longest waiting given up first) and each for 30 s of capture time; a fragment reaching
    past 65,535 bytes (ping of death), a middle one not a multiple of 8 long, or one past the
    datagram's end are malformed. The datagram completed after the flood is still read."""
    udp = fr.udp(41000, 9999, b"card 4111 1111 1111 1111 " * 8)
    whole = fr.ipv4("10.0.0.1", "10.0.0.2", 17, udp)
    good = _fragments4(whole, 64, ident=5)
    frames = [
        good[0],
        *[fr.ipv4("10.7.0.1", "10.0.0.2", 17, b"y" * 64, frag=0x2000 | 0) for _ in range(1)],
        *[_fragments4(fr.ipv4(f"10.6.{i >> 8}.{i & 255}", "10.0.0.2", 17, udp), 64)[0]
          for i in range(3000)],
        fr.ipv4("10.0.0.9", "10.0.0.2", 17, b"z" * 64, frag=0x2000 | 8190),  # past 65,535
        fr.ipv4("10.0.0.9", "10.0.0.2", 17, b"z" * 63, frag=0x2000 | 1),  # not a multiple of 8
        fr.ipv4("10.0.0.8", "10.0.0.2", 17, b"a" * 8, frag=8),  # the last: 72 bytes in all
        fr.ipv4("10.0.0.8", "10.0.0.2", 17, b"b" * 8, frag=0x2000 | 9),  # past them
        *_fragments4(whole, 64, ident=6),
    ]  # fmt: skip
    path = tmp_path / "flood.pcap"
    path.write_bytes(fr.pcap([(1.0 + i / 1000, fr.ether(p)) for i, p in enumerate(frames)]))
    recs, end = _same(path, inspectors, monkeypatch)
    # ident 5 waited behind 3,000 others and was given up; ident 6 completed
    assert [(r.client_port, r.bytes_to_server) for r in recs] == [(41000, len(udp) - 8)]
    assert end["decode"]["malformed"] == 3


def test_a_hosts_own_packets_in_an_any_capture_are_kept(inspectors, monkeypatch) -> None:
    """``fixtures/any_client_sll2.pcap``, recorded here (session 14): ``tcpdump -i any -y
    LINUX_SLL2`` in a client's network namespace while it POSTs a test card and a synthetic SSN
    to a server in another namespace (23 frames). The client's packets are seen once, as
    outgoing: they were all skipped, the request and its card with them (0 bytes to the
    server, the connection never closed)."""
    recs, end = _same(PROTOCOLS.parent / "any_client_sll2.pcap", inspectors, monkeypatch,
                      replay=True)  # fmt: skip
    assert [(r.protocol, r.bytes_to_server, r.state) for r in recs] == [
        ("proto.http", 106, "closed")
    ]
    assert sorted(h.match.masked for h in recs[0].hits) == ["***-**-8401", "4111 **** **** 1111"]
    assert end["decode"]["outgoing_skipped"] == 0


@pytest.mark.parametrize("sll", [fr.sll, fr.sll2])
def test_the_second_copy_of_a_forwarded_packet_is_skipped_and_a_retransmission_kept(
    tmp_path, inspectors, monkeypatch, sll
) -> None:
    """A router's "any" capture sees a forwarded packet in on one interface and out on the
    other (its TTL one lower, its checksum changed): the second copy is skipped, whichever
    comes first. A third identical packet is a retransmission, not a copy."""
    frames: list[tuple[float, bytes]] = []
    for i, p in enumerate(CARD_CONVERSATION):
        hop = bytearray(p)
        hop[8] -= 1  # TTL
        hop[10:12] = b"\xbe\xef"  # checksum
        first, second = (p, 0), (bytes(hop), 4)
        if i % 2:
            first, second = (bytes(hop), 4), (p, 0)
        frames += [(1.0 + i, sll(first[0], first[1])), (1.0 + i, sll(second[0], second[1]))]
    frames.insert(8, (4.5, sll(CARD_CONVERSATION[3], 0)))  # the request again: retransmitted
    path = tmp_path / "router.pcap"
    path.write_bytes(fr.pcap(frames, linktype=113 if sll is fr.sll else 276))
    recs, end = _same(path, inspectors, monkeypatch, replay=True)
    assert end["decode"]["outgoing_skipped"] == len(CARD_CONVERSATION)
    assert [(r.packets_to_server, r.bytes_to_server) for r in recs] == [(5, 2 * len(CARD_REQUEST))]
    assert _sensors(recs) == [["dlp.payment_card"]]


# Cards in the spellings DLP reads since session 16: points and no-break spaces (UTF-8 and
# Latin-1) between groups, Maestro 56-59, JSON escapes in a plain body (a decoding trigger, so
# the compiled path hands the flow to Python), each a request in its own flow.
SPELLED_CARDS = [
    (b'{"card": "4111.1111.1111.1111"}', "4111.****.****.1111"),
    (b'{"card": "4111\xc2\xa01111\xc2\xa01111\xc2\xa01111"}', "4111\xa0****\xa0****\xa01111"),
    (b'{"card": "3782\xa0822463\xa010005"}', "3782\xa0******\xa0*0005"),
    (b'{"card": "5641 8200 0000 0005"}', "5641 **** **** 0005"),
    (b'{"card": "41\\u00311 1111 \\u0031111 1111"}', "4111 **** **** 1111"),
    (b'{"note": "\\u0034\\u0031\\u0031\\u0031\\u002d1111-1111-1111"}', "4111-****-****-1111"),
    (b'{"v": "1.2.3.4567", "ip": "41.111.111.111", "x": 4111.1111}', None),
]


def test_the_new_card_spellings_are_found_once_on_every_path(tmp_path, inspectors, monkeypatch):
    frames = []
    for i, (body, _) in enumerate(SPELLED_CARDS):
        req = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        conv = fr.conversation("10.7.0.1", "10.7.0.2", 42000 + i, 8080, req,
                               b"HTTP/1.1 204 No Content\r\n\r\n")  # fmt: skip
        frames += [fr.ether(p) for p in conv]
    path = tmp_path / "spelled.pcap"
    path.write_bytes(fr.pcap([(1.0 + k / 100, f) for k, f in enumerate(frames)]))
    records, _ = _same(path, inspectors, monkeypatch, replay=True)
    by_port = {r.client_port: r for r in records}
    for i, (_, masked) in enumerate(SPELLED_CARDS):
        got = [h.match.masked for h in by_port[42000 + i].hits]
        assert got == ([] if masked is None else [masked]), (i, got)
