"""The firewall's verdict handler alone (no kernel, no root): the time ``Inspector.packet`` takes
per queued segment, on the segments benchmarks/firewall.py sends to user space for a new connection
per request (the request, the response's headers, its body), with the same policy (Protect, DLP
on the first 64 KiB). It shows where the handler's share of the added latency goes: the first
segment (flow, protocol detection, DLP streams) against the later ones; then the segments of one
keep-alive connection inside the inspected depth (request, response headers, response body, again).

``--loop compiled`` sends every segment through the compiled NFQUEUE loop as well (fastpath.c: the
kernel's netlink messages written to a socketpair, the verdicts read back), so the figures include
the loop's own cost: netlink parse, the call into Python, the verdict message. ``--loop own``: the
same, with the loop answering connections from their first segment and scanning DLP in C
(fastpath_own.c), as the enforcer runs it.

    python benchmarks/firewall_verdict.py [--connections 3000] [--rounds 5] [--loop compiled|own]

Each figure is the median over rounds of the mean per segment (CPU time of the process, so other
processes on a loaded machine do not count); the spread is the rounds' range. The collector is set
as the enforcer sets it for its verdict loop (start-up heap frozen, see ``quiet_collector``).
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import statistics
import struct
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from firewall import POLICY  # noqa: E402  (the end-to-end benchmark's policy)

CLIENT, SERVER = "10.77.0.10", "10.77.0.11"
BODY = b'{"order": 12, "qty": 2}'
REQUEST = (
    b"POST /orders HTTP/1.1\r\nHost: 10.77.0.11:8080\r\nAccept-Encoding: identity\r\n"
    b"Content-Length: 23\r\ncontent-type: application/json\r\n\r\n" + BODY
)
HEADERS = (
    b"HTTP/1.0 200 OK\r\nServer: BaseHTTP/0.6 Python/3.11.7\r\n"
    b"Date: Sat, 05 Dec 2026 05:13:03 GMT\r\ncontent-length: 12\r\n\r\n"
)
RESPONSE_BODY = b'{"ok": true}'
SEGMENTS = ("request", "response headers", "response body")


def segment(
    src: str, dst: str, sport: int, dport: int, seq: int, ack: int, data: bytes, flags: int = 0x18
) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + data
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(tcp),
        1,
        0,
        64,
        6,
        0,
        ipaddress.ip_address(src).packed,
        ipaddress.ip_address(dst).packed,
    )
    return ip + tcp


def connection(port: int) -> list[tuple[bytes, int]]:
    """The three segments of one exchange, with the packet marks the kernel sets."""
    from stockade.firewall.enforce import marks

    end = 1001 + len(REQUEST)
    return [
        (segment(CLIENT, SERVER, port, 8080, 1001, 5001, REQUEST), marks.FIRST),
        (segment(SERVER, CLIENT, 8080, port, 5001, end, HEADERS), marks.REPLY),
        (segment(SERVER, CLIENT, 8080, port, 5001 + len(HEADERS), end, RESPONSE_BODY), marks.REPLY),
    ]


def ends(port: int, server_port: int = 8080) -> list[bytes]:
    """The FINs of a connection, as ends.py hands them to the enforcer (they pass in the kernel)."""
    return [
        segment(CLIENT, SERVER, port, server_port, 0, 0, b"", 0x11),
        segment(SERVER, CLIENT, server_port, port, 0, 0, b"", 0x11),
    ]


def keepalive(port: int, requests: int) -> list[tuple[bytes, int]]:
    """The segments of ``requests`` exchanges on one connection (8088: the keep-alive rule)."""
    from stockade.firewall.enforce import marks

    out, cs, ss = [], 1001, 5001
    for i in range(requests):
        out.append(
            (segment(CLIENT, SERVER, port, 8088, cs, ss, REQUEST), marks.FIRST if not i else 0)
        )
        cs += len(REQUEST)
        for data in (HEADERS, RESPONSE_BODY):
            out.append((segment(SERVER, CLIENT, 8088, port, ss, cs, data), marks.REPLY))
            ss += len(data)
    return out


class Through:
    """Segments through the compiled loop: NFQUEUE messages in, verdict messages out."""

    def __init__(self, judge, advise=None, engine=None) -> None:  # type: ignore[no-untyped-def]
        import socket

        from stockade.firewall.enforce import fastpath

        module = fastpath.compiled()
        if module is None:
            raise SystemExit("the compiled loop is not built: python3 setup.py build_ext --inplace")
        self.ours, self.kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for sock, opt in ((self.ours, socket.SO_SNDBUF), (self.kernel, socket.SO_RCVBUF)):
            sock.setsockopt(socket.SOL_SOCKET, opt, 8 << 20)  # the verdicts of a whole connection
        own = {"advise": advise, "dlp": fastpath.dlp_expressions(engine)} if advise else {}
        self.queue = fastpath.CompiledQueue.attach(module, self.ours.fileno(), 0, judge, 0, **own)

    def prepare(self, payload: bytes, mark: int) -> bytes:
        """The NFQUEUE message the kernel would send (built before the clock starts)."""
        attrs = (
            _attr(1, struct.pack("!IHB", 1, 0x0800, 2))
            + _attr(3, struct.pack("!I", mark))
            + struct.pack("=HH", 4 + len(payload), 10)
            + payload
        )
        body = struct.pack("=BBH", 0, 0, 0) + attrs
        return struct.pack("=IHHII", 16 + len(body), 3 << 8, 0, 0, 0) + body

    def drain(self, n: int) -> None:
        for _ in range(n):
            self.kernel.recv(256)


def _attr(kind: int, data: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(data), kind) + data
    return raw + b"\0" * (-len(raw) % 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--loop", choices=("none", "compiled", "own"), default="none")
    args = ap.parse_args()
    from stockade.firewall.enforce.inspector import Inspector
    from stockade.firewall.policy.endpoints import Directory
    from stockade.firewall.policy.engine import Endpoint
    from stockade.firewall.policy.files import parse_texts
    from stockade.network.dlp.engine import DlpEngine

    policy = parse_texts([("policy.yaml", POLICY)])
    pods = [
        Endpoint(ip=ip, name=name, namespace="shop", labels={"pci": "cde"})
        for ip, name in ((CLIENT, "payments"), (SERVER, "orders"))
    ]
    engine = DlpEngine()
    per_segment: list[list[float]] = [[] for _ in SEGMENTS]
    kept: list[float] = []
    clock = time.process_time_ns
    try:
        from stockade.firewall.enforce.enforcer import quiet_collector, restore_collector
    except ImportError:  # a tree from before them: the enforcer froze the start-up heap only

        def quiet_collector() -> tuple[int, int, int]:
            gc.freeze()
            return gc.get_threshold()

        def restore_collector(before: tuple[int, int, int]) -> None:
            gc.unfreeze()

    for _ in range(args.rounds):
        insp = Inspector(policy, Directory(pods), dlp_engine=engine)

        def judge(payload: bytes, mark: int, insp: Inspector = insp) -> tuple[int, bool]:
            return insp.packet(payload, mark)[1], insp.decided

        through = (
            None
            if args.loop == "none"
            else Through(judge, insp.fast_bits if args.loop == "own" else None, engine)
        )

        def prepared(
            segs: list[tuple[bytes, int]], insp: Inspector = insp, through: Through | None = through
        ) -> list[tuple[Any, tuple[Any, ...]]]:
            if through is None:
                return [(insp.packet, seg) for seg in segs]
            return [(through.queue.dispatch, (through.prepare(*seg),)) for seg in segs]

        for i in range(100):  # warm: lazy imports, the verdict caches
            for call, call_args in prepared(connection(10000 + i)):
                call(*call_args)
            if through is not None:
                through.drain(3)
        gc.collect()
        collector = quiet_collector()
        spent = [0] * len(SEGMENTS)
        for i in range(args.connections):
            for k, (call, call_args) in enumerate(prepared(connection(20000 + i % 40000))):
                t0 = clock()
                call(*call_args)
                spent[k] += clock() - t0
            if through is not None:
                through.drain(3)
                for fin in ends(20000 + i % 40000):  # the enforcer's ends loop, not timed
                    through.queue.ended(fin)
        for k in range(len(SEGMENTS)):
            per_segment[k].append(spent[k] / args.connections / 1e3)
        # keep-alive: 100 exchanges per connection (about 20 KiB, inside the depth)
        total = count = 0
        for c in range(args.connections // 100 or 1):
            calls = prepared(keepalive(30000 + c, 100))
            t0 = clock()
            for call, call_args in calls:
                call(*call_args)
            total += clock() - t0
            count += len(calls)
            if through is not None:
                through.drain(len(calls))
                for fin in ends(30000 + c, 8088):
                    through.queue.ended(fin)
        kept.append(total / count / 1e3)
        restore_collector(collector)
        assert insp.stats["blocked"] == 0
        if through is not None:
            counts = through.queue.counts()
    loop = {
        "none": "handler alone",
        "compiled": "through the compiled loop",
        "own": "through the compiled loop, first segments and DLP in C",
    }[args.loop]
    if through is not None:
        print(f"last round's loop counts: {counts}")
    print(
        f"verdict handler ({loop}), {args.connections} connections x {args.rounds} rounds"
        " (µs of CPU per segment)"
    )
    for name, values in zip(SEGMENTS, per_segment, strict=True):
        print(
            f"  {name:17s} median {statistics.median(values):6.1f}"
            f"  (range {min(values):.1f} to {max(values):.1f})"
        )
    total = [sum(v) for v in zip(*per_segment, strict=True)]
    print(f"  per connection    median {statistics.median(total):6.1f}")
    print(
        f"  keep-alive segment median {statistics.median(kept):5.1f}"
        f"  (range {min(kept):.1f} to {max(kept):.1f})"
    )


if __name__ == "__main__":
    main()
