"""Answering a blocked HTTP request with ``403 Forbidden`` instead of a bare reset.

When the request that is blocked travels in clear over HTTP/1.x, the enforcer drops it and sends the
client, in the server's name, a short response that says why (the masked evidence only), followed
by FIN; the server gets a reset in the client's name, so neither side waits. Everything else that
is blocked gets the TCP reset of the ``post`` chain.

The segments are written whole (IP and TCP headers, checksums) and sent through a raw socket
opened in the node's network namespace: they leave through the node's OUTPUT path, which the
firewall chains (forward hook) do not touch.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

ACK, PSH, FIN, RST = 0x10, 0x08, 0x01, 0x04


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """A blocked request: its addresses and where both byte streams stand."""

    client: str
    client_port: int
    server: str
    server_port: int
    request_seq: int  # the first byte of the blocked segment (what the server expects next)
    request_end: int  # the byte after it (what the client has now sent)
    response_seq: int  # what the client expects from the server next (the segment's ACK)
    event: str
    reason: str


def http_403(event: str, reason: str) -> bytes:
    body = f"Blocked by Stockade ({event}): {reason}\n".encode("utf-8", "replace")
    head = (
        "HTTP/1.1 403 Forbidden\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        f"X-Stockade-Event: {event}\r\n\r\n"
    )
    return head.encode("ascii") + body


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def segment(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
) -> bytes:
    """One IPv4 or IPv6 packet carrying one TCP segment, checksums filled in."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version != d.version:
        raise ValueError("source and destination are of different IP versions")
    tcp_len = 20 + len(payload)
    header = struct.pack(
        "!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0
    )
    if s.version == 4:
        pseudo = s.packed + d.packed + struct.pack("!BBH", 0, 6, tcp_len)
    else:
        pseudo = s.packed + d.packed + struct.pack("!IxxxB", tcp_len, 6)
    csum = _checksum(pseudo + header + payload)
    tcp = header[:16] + struct.pack("!H", csum) + header[18:] + payload
    if s.version == 4:
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + tcp_len, 0, 0x4000, 64, 6, 0, s.packed, d.packed
        )
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    else:
        ip = struct.pack("!IHBB16s16s", 6 << 28, tcp_len, 6, 64, s.packed, d.packed)
    return ip + tcp


def packets(answer: Answer) -> list[tuple[str, bytes]]:
    """(destination, packet): the 403 with FIN to the client, a reset to the server."""
    body = http_403(answer.event, answer.reason)
    to_client = segment(
        answer.server,
        answer.client,
        answer.server_port,
        answer.client_port,
        answer.response_seq,
        answer.request_end,
        ACK | PSH | FIN,
        body,
    )
    to_server = segment(
        answer.client,
        answer.server,
        answer.client_port,
        answer.server_port,
        answer.request_seq,
        0,
        RST,
    )
    return [(answer.client, to_client), (answer.server, to_server)]


class Injector:
    """Raw sockets (IPv4 and IPv6, headers included) in the namespace it is created in."""

    def __init__(self) -> None:
        self._v4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self._v6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)

    def send(self, answer: Answer) -> None:
        for dst, pkt in packets(answer):
            sock = self._v6 if ":" in dst else self._v4
            sock.sendto(pkt, (dst, 0))

    def close(self) -> None:
        self._v4.close()
        self._v6.close()
