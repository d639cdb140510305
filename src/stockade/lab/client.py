"""Traffic generators run inside a lab pod (``ip netns exec <pod> python -m ...client``).

Every loop is bounded by ``--count``. Payloads use published TEST card numbers and synthetic
SSNs; nothing here prints them.

    client http  --host H --port P [--tls --ca F --sni N --tls-max 1.2] --count N [--split] [--body JSON]
    client pg    --host H --count N [--sslmode disable|require]
    client redis --host H --count N
    client bulk  --host H --port P --size BYTES
    client syn   --host H --port P --count N
    client udp   --host H --port P --rate PPS --seconds S
    client dns   --host H --name NAME --count N
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import ssl
import struct
import sys
import time

# Published test PANs (Visa, Mastercard, Amex) and synthetic SSNs (valid area/group/serial shapes)
CARDS = ("4111111111111111", "5555555555554444", "378282246310005")
SSNS = ("536-22-8401", "412-67-9035", "287-54-1163")
PEOPLE = (
    ("Alice Martin", "alice.martin@example.com"),
    ("Bob Stone", "bob.stone@example.org"),
    ("Carol Diaz", "carol.diaz@example.net"),
)


def payment_body(i: int) -> bytes:
    name, email = PEOPLE[i % len(PEOPLE)]
    card = CARDS[i % len(CARDS)]
    return json.dumps(
        {
            "order": 1000 + i,
            "customer": name,
            "email": email,
            "card_number": card,
            "expiry": "12/29",
            "amount": "49.90",
        }
    ).encode()


def _connect(
    host: str, port: int, tls: bool, ca: str | None, sni: str | None, tls_max: str | None
) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if not tls:
        return sock
    ctx = ssl.create_default_context(cafile=ca)
    if tls_max == "1.1":
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    elif tls_max == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx.wrap_socket(sock, server_hostname=sni or host)


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head


def http_post(args: argparse.Namespace) -> int:
    ok = 0
    for i in range(args.count):
        body = args.body.encode() if args.body else payment_body(i)
        head = (
            f"POST {args.path} HTTP/1.1\r\nHost: {args.sni or args.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        with _connect(args.host, args.port, args.tls, args.ca, args.sni, args.tls_max) as sock:
            request = head + body
            if args.split:
                # two writes with TCP_NODELAY and a pause: the card straddles two TCP segments
                cut = request.index(b'"card_number": "') + len(b'"card_number": "') + 7
                sock.sendall(request[:cut])
                time.sleep(0.05)
                sock.sendall(request[cut:])
            else:
                sock.sendall(request)
            if _read_response(sock).startswith(b"HTTP/1.1 200"):
                ok += 1
    print(json.dumps({"sent": args.count, "ok": ok}))
    return 0 if ok == args.count else 1


def pg_insert(args: argparse.Namespace) -> int:
    import psycopg

    conninfo = f"host={args.host} port=5432 user=postgres dbname=postgres sslmode={args.sslmode} connect_timeout=10"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS customers (id serial primary key, name text, ssn text, email text, card text)"
        )
        for i in range(args.count):
            name, email = PEOPLE[i % len(PEOPLE)]
            # literal values in the SQL text (simple query protocol), as many applications still do
            sql = (
                f"INSERT INTO customers (name, ssn, email, card) VALUES ('{name}', '{SSNS[i % len(SSNS)]}', "
                f"'{email}', '{CARDS[(i + 1) % len(CARDS)]}')"
            )
            conn.execute(sql.encode(), prepare=False)
    print(json.dumps({"sent": args.count, "ok": args.count}))
    return 0


def _resp(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for p in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(p), p))
    return b"".join(out)


def redis_set(args: argparse.Namespace) -> int:
    ok = 0
    with socket.create_connection((args.host, 6379), timeout=10) as sock:
        for i in range(args.count):
            name, email = PEOPLE[i % len(PEOPLE)]
            value = json.dumps(
                {"name": name, "email": email, "ssn": SSNS[(i + 2) % len(SSNS)]}
            ).encode()
            sock.sendall(_resp(b"SET", b"customer:%d" % i, value))
            if sock.recv(64).startswith(b"+OK"):
                ok += 1
    print(json.dumps({"sent": args.count, "ok": ok}))
    return 0 if ok == args.count else 1


def bulk(args: argparse.Namespace) -> int:
    with _connect(args.host, args.port, False, None, None, None) as sock:
        sock.sendall(
            f"GET /bulk?size={args.size} HTTP/1.1\r\nHost: bulk\r\nConnection: close\r\n\r\n".encode()
        )
        total = 0
        while chunk := sock.recv(1 << 18):
            total += len(chunk)
    print(json.dumps({"received": total}))
    return 0


def syn_flood(args: argparse.Namespace) -> int:
    """Half-open connections: non-blocking connects abandoned at once (bounded by --count)."""
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    for _ in range(args.count):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((args.host, args.port))
        # SO_LINGER 0: close sends RST only if established; a SYN_SENT socket just vanishes
        s.close()
    print(json.dumps({"sent": args.count}))
    return 0


def udp_paced(args: argparse.Namespace) -> int:
    """``--rate`` datagrams per second for ``--seconds`` (bounded: rate x seconds in total)."""
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    total = int(args.rate * args.seconds)
    payload = b"x" * args.size
    batch = max(1, args.rate // 1000)  # pace in 1 ms batches
    sent = 0
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        start = time.perf_counter()
        while sent < total:
            for _ in range(min(batch, total - sent)):
                with contextlib.suppress(OSError):
                    s.sendto(payload, (args.host, args.port))
                sent += 1
            ahead = sent / args.rate - (time.perf_counter() - start)
            if ahead > 0:
                time.sleep(ahead)
        elapsed = time.perf_counter() - start
    print(json.dumps({"sent": sent, "seconds": round(elapsed, 3), "rate": round(sent / elapsed)}))
    return 0


def dns_query(args: argparse.Namespace) -> int:
    """A and AAAA queries over UDP, one socket per query (a new flow each), 2 s timeout."""
    ok = 0
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    qname = b"".join(bytes([len(p)]) + p.encode() for p in args.name.split(".")) + b"\0"
    for i in range(args.count):
        for qtype in (1, 28):
            query = (
                struct.pack("!HHHHHH", (i * 2 + qtype) & 0xFFFF, 0x0100, 1, 0, 0, 0)
                + qname
                + struct.pack("!HH", qtype, 1)
            )
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.settimeout(2)
                s.sendto(query, (args.host, 53))
                reply = s.recv(512)
            ok += (
                reply[:2] == query[:2]
                and reply[3] & 0x0F == 0
                and struct.unpack_from("!H", reply, 6)[0] == 1
            )
    print(json.dumps({"sent": args.count * 2, "ok": ok}))
    return 0 if ok == args.count * 2 else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lab-client")
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("http")
    h.add_argument("--host", required=True)
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--path", default="/pay")
    h.add_argument("--tls", action="store_true")
    h.add_argument("--ca")
    h.add_argument("--sni")
    h.add_argument("--tls-max", choices=["1.1", "1.2"])
    h.add_argument("--count", type=int, default=1)
    h.add_argument("--split", action="store_true")
    h.add_argument("--body")
    p = sub.add_parser("pg")
    p.add_argument("--host", required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--sslmode", default="disable")
    r = sub.add_parser("redis")
    r.add_argument("--host", required=True)
    r.add_argument("--count", type=int, default=1)
    b = sub.add_parser("bulk")
    b.add_argument("--host", required=True)
    b.add_argument("--port", type=int, default=8080)
    b.add_argument("--size", type=int, required=True)
    s = sub.add_parser("syn")
    s.add_argument("--host", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--count", type=int, default=100)
    q = sub.add_parser("dns")
    q.add_argument("--host", required=True)
    q.add_argument("--name", required=True)
    q.add_argument("--count", type=int, default=1)
    u = sub.add_parser("udp")
    u.add_argument("--host", required=True)
    u.add_argument("--port", type=int, default=9999)
    u.add_argument("--rate", type=int, default=10000)
    u.add_argument("--seconds", type=float, default=2.0)
    u.add_argument("--size", type=int, default=100)
    args = ap.parse_args(argv)
    if args.cmd == "udp" and not (1 <= args.rate <= 2_000_000 and 0 < args.seconds <= 60):
        ap.error("--rate must be 1..2000000 and --seconds 0..60")
    handlers = {
        "http": http_post,
        "pg": pg_insert,
        "redis": redis_set,
        "bulk": bulk,
        "syn": syn_flood,
    }
    handlers["udp"] = udp_paced
    handlers["dns"] = dns_query
    handler = handlers[args.cmd]
    try:
        return handler(args)
    except Exception as exc:
        print(json.dumps({"error": str(exc)}))
        return 3


if __name__ == "__main__":
    sys.exit(main())
