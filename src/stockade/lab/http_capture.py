"""A synthetic capture of many short HTTP/1.1 connections, for the ``sensor --pcap`` benchmark
(benchmarks/sensor_pcap.py) and its test: Ethernet/IPv4/TCP frames with real handshakes, MSS-sized
segments, ACKs and FIN exchanges, a few connections open at a time (their packets interleave as
on a busy link), JSON requests and responses. Some bodies carry a card number or an SSN; which
ones is returned, so a test can check the sensor finds exactly those.
"""

from __future__ import annotations

import json
import random
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stockade.network.capture.decode import LINK_ETHERNET
from stockade.network.capture.pcapwriter import PcapWriter

MSS = 1448
SYN, ACK, FIN, PSH = 0x02, 0x10, 0x01, 0x08
CARDS = ("4111 1111 1111 1111", "5555-5555-5555-4444", "378282246310005")
SSNS = ("536-90-4399", "536-22-8401", "401-33-7265")
NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
PATHS = ("/api/orders", "/api/cart", "/api/catalog/items", "/api/users/me", "/checkout")

_ETH = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")


@dataclass(frozen=True, slots=True)
class Planted:
    """What one connection carries: its client port and the DLP sensors its bytes should hit."""

    client_ip: str
    client_port: int
    card_in_request: bool
    ssn_in_response: bool


@dataclass(frozen=True, slots=True)
class HttpCapture:
    path: Path
    flows: int
    frames: int
    bytes: int
    planted: tuple[Planted, ...]


def _frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
           payload: bytes, ident: int) -> bytes:  # fmt: skip
    tcp = _TCP.pack(sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0)
    ip = _IPV4.pack(0x45, 0, 40 + len(payload), ident & 0xFFFF, 0x4000, 64, 6, 0, src, dst)
    return _ETH + ip + tcp + payload


def _request(rng: random.Random, card: bool) -> bytes:
    if rng.random() < 0.5 and not card:
        path = f"{rng.choice(PATHS)}?page={rng.randint(1, 40)}&limit=50"
        head = f"GET {path} HTTP/1.1\r\n"
        body = b""
    else:
        order: dict[str, object] = {
            "customer": rng.choice(NAMES),
            "items": [
                {"sku": f"SKU-{rng.randint(1000, 99999)}", "qty": rng.randint(1, 9),
                 "price": round(rng.uniform(1, 500), 2)}
                for _ in range(rng.randint(1, 4))
            ],
            "currency": "EUR",
        }  # fmt: skip
        if card:
            order["payment"] = {"card_number": rng.choice(CARDS), "exp": "12/29"}
        body = json.dumps(order).encode()
        head = f"POST {rng.choice(PATHS)} HTTP/1.1\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {len(body)}\r\n"
    head += (
        "Host: shop.internal:8080\r\nUser-Agent: shop-frontend/2.4 (python-requests)\r\n"
        "Accept: application/json\r\nAccept-Encoding: identity\r\n"
        f"X-Request-Id: req-{rng.getrandbits(64):016x}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _response(rng: random.Random, ssn: bool) -> bytes:
    items = [
        {"sku": f"SKU-{rng.randint(1000, 99999)}", "name": f"{rng.choice(NAMES)}'s item",
         "stock": rng.randint(0, 500), "price": round(rng.uniform(1, 500), 2),
         "updated": f"2026-11-0{rng.randint(1, 9)}T10:00:00Z"}
        for _ in range(rng.randint(12, 36))
    ]  # fmt: skip
    doc: dict[str, object] = {"items": items, "page": rng.randint(1, 40)}
    if ssn:
        doc["customer"] = {"name": rng.choice(NAMES), "ssn": rng.choice(SSNS)}
    body = json.dumps(doc).encode()
    head = (
        "HTTP/1.1 200 OK\r\nServer: shop-api/1.9\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _conversation(
    rng: random.Random, index: int, planted: Planted
) -> list[tuple[bool, int, bytes]]:
    """One connection's packets as (from client?, flags, payload), sequence numbers filled later."""
    req, resp = _request(rng, planted.card_in_request), _response(rng, planted.ssn_in_response)
    out: list[tuple[bool, int, bytes]] = [
        (True, SYN, b""),
        (False, SYN | ACK, b""),
        (True, ACK, b""),
    ]
    for i in range(0, len(req), MSS):
        out.append((True, PSH | ACK, req[i : i + MSS]))
    out.append((False, ACK, b""))
    for i in range(0, len(resp), MSS):
        out.append((False, PSH | ACK, resp[i : i + MSS]))
        if (i // MSS) % 2:
            out.append((True, ACK, b""))
    out += [(False, FIN | ACK, b""), (True, FIN | ACK, b""), (False, ACK, b"")]
    return out


def write_http_capture(path: Path, *, flows: int = 4000, seed: int = 19,
                       concurrent: int = 16) -> HttpCapture:  # fmt: skip
    """Write ``flows`` HTTP/1.1 connections to ``path`` (pcap, Ethernet); every 7th request posts
    a card number and every 11th response carries an SSN."""
    rng = random.Random(seed)
    server = bytes([10, 2, 0, 80])
    planted: list[Planted] = []
    pending: list[list[Any]] = []  # [client ip, port, packets, position, client seq, server seq]
    nframes = 0
    ts = 1_780_000_000.0
    writer = PcapWriter(path, linktype=LINK_ETHERNET)
    try:
        started = 0
        while started < flows or pending:
            while started < flows and len(pending) < concurrent:
                cip = bytes([10, 1, (started >> 8) & 0xFF, started & 0xFF])
                port = 32768 + started % 28000
                p = Planted(".".join(map(str, cip)), port, started % 7 == 3, started % 11 == 5)
                planted.append(p)
                pending.append([cip, port, _conversation(rng, started, p), 0,
                                rng.getrandbits(32), rng.getrandbits(32)])  # fmt: skip
                started += 1
            conv = pending[rng.randrange(len(pending))]
            cip, port, packets, pos, cseq, sseq = conv
            from_client, flags, payload = packets[pos]
            if from_client:
                frame = _frame(cip, server, port, 8080, cseq, sseq if flags & ACK else 0,
                               flags, payload, nframes)  # fmt: skip
                cseq = (cseq + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
            else:
                frame = _frame(server, cip, 8080, port, sseq, cseq, flags, payload, nframes)
                sseq = (sseq + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
            ts += rng.uniform(0.00002, 0.0004)
            writer.write(ts, frame)
            nframes += 1
            conv[3:6] = [pos + 1, cseq, sseq]
            if pos + 1 == len(packets):
                pending.remove(conv)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return HttpCapture(path, flows, nframes, writer.bytes, tuple(planted))
