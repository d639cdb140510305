"""A tiny authoritative DNS server for the lab's names (UDP, A and AAAA), playing kube-dns.

    python -m stockade.lab.dns --port 53 --record orders.shop.svc.cluster.local=10.77.0.11 ...

Answers A/AAAA for the names it was given, NXDOMAIN otherwise; malformed queries are ignored.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import socket
import struct
import sys

_HEADER = struct.Struct("!HHHHHH")


def parse_question(msg: bytes) -> tuple[int, int, str, int, int] | None:
    """(id, flags, name, qtype, end offset of the question) of a one-question query, else None."""
    if len(msg) < 12:
        return None
    ident, flags, qd, _an, _ns, _ar = _HEADER.unpack_from(msg)
    if flags & 0x8000 or qd != 1:
        return None
    labels, off = [], 12
    while True:
        if off >= len(msg):
            return None
        n = msg[off]
        off += 1
        if n == 0:
            break
        if n > 63 or off + n > len(msg):
            return None
        labels.append(msg[off : off + n].decode("ascii", "replace").lower())
        off += n
    if off + 4 > len(msg):
        return None
    qtype, _qclass = struct.unpack_from("!HH", msg, off)
    return ident, flags, ".".join(labels), qtype, off + 4


def answer(msg: bytes, records: dict[str, list[str]]) -> bytes | None:
    q = parse_question(msg)
    if q is None:
        return None
    ident, flags, name, qtype, end = q
    want = 4 if qtype == 1 else 6 if qtype == 28 else 0
    addrs = [ipaddress.ip_address(a) for a in records.get(name, [])]
    found = [a for a in addrs if a.version == want]
    rcode = 0 if name in records else 3
    out = (
        _HEADER.pack(ident, 0x8400 | (flags & 0x0100) | 0x0080 | rcode, 1, len(found), 0, 0)
        + msg[12:end]
    )
    for a in found:
        out += struct.pack("!HHHIH", 0xC00C, qtype, 1, 30, len(a.packed)) + a.packed
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lab-dns")
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--record", action="append", default=[], help="name=address (repeat)")
    args = ap.parse_args(argv)
    records: dict[str, list[str]] = {}
    for item in args.record:
        name, _, addr = item.partition("=")
        records.setdefault(name.lower().rstrip("."), []).append(addr)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", args.port))
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            msg, peer = sock.recvfrom(4096)
            reply = answer(msg, records)
            if reply is not None:
                sock.sendto(reply, peer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
