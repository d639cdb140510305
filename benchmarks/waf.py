"""Added latency of the WAF on inspected HTTP requests, against DLP alone, in one run.

    python benchmarks/waf.py [--rounds 9] [--copies 4] [--exploits 2]

Two verdict handlers (``Inspector``) judge the same hand-built IP packets: the lab shop's policy
(the CDE group with its DLP rules), and the same policy with ``waf: builtin`` on that group. Each
connection is a SYN, one HTTP request and the server's answer, as the enforcer sees them from
NFQUEUE. Two mixes from tests/network/waf_corpus.py, each with ``--exploits`` percent of exploit
requests: ``web`` (a shop's everyday pages and API calls with browser headers and JSON bodies)
and ``benign`` (the false-positive corpus: the web mix plus prose, forms and JSON full of encoded
punctuation, ``$`` and SQL words, so most of it takes the decoding path). Rounds
alternate the two handlers block by block (so machine drift hits both); each prints the time per request and the
WAF/DLP ratio, then the medians over rounds. Target: ratio at most 1.10.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import statistics
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from stockade.firewall.enforce.inspector import Inspector  # noqa: E402
from stockade.firewall.policy.endpoints import Directory  # noqa: E402
from stockade.firewall.policy.engine import Endpoint  # noqa: E402
from stockade.firewall.policy.files import parse_texts  # noqa: E402
from stockade.network.dlp import DlpEngine  # noqa: E402
from stockade.network.waf import WafEngine  # noqa: E402
from tests.network.waf_corpus import BENIGN, EXPLOITS, WEB_MIX  # noqa: E402

PAY = Endpoint(ip="10.77.0.10", name="payments", namespace="shop", labels={"pci": "cde"})
ORD = Endpoint(ip="10.77.0.11", name="orders", namespace="shop", labels={"pci": "cde"})
SYN, ACK, PSH = 0x02, 0x10, 0x08
ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{"status": "ok"}'


def packet(
    src: str, dst: str, sport: int, dport: int, flags: int, seq: int, ack: int, data: bytes = b""
) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + data
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
                     ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed)  # fmt: skip
    return ip + tcp


def connections(requests: list[bytes]) -> list[list[bytes]]:
    out = []
    for i, req in enumerate(requests):
        port = 20000 + i % 40000
        out.append([
            packet(PAY.ip, ORD.ip, port, 8080, SYN, 1000, 0),
            packet(PAY.ip, ORD.ip, port, 8080, ACK | PSH, 1001, 5001, req),
            packet(ORD.ip, PAY.ip, 8080, port, ACK | PSH, 5001, 1001 + len(req), ANSWER),
        ])  # fmt: skip
    return out


def policy(waf: bool):
    text = (ROOT / "examples" / "firewall" / "policy.yaml").read_text()
    if waf:
        text = text.replace(
            "        - {sensor: dlp.us_ssn, action: alert}\n",
            "        - {sensor: dlp.us_ssn, action: alert}\n      waf: builtin\n",
            1,
        )
    return parse_texts([("policy.yaml", text)])


def run(insp: Inspector, conns: list[list[bytes]]) -> float:
    insp._flows.clear()  # every round starts from no known flow
    t0 = time.perf_counter()
    for conn in conns:
        for pkt in conn:
            insp.packet(pkt)
    return (time.perf_counter() - t0) / len(conns)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--copies", type=int, default=4, help="copies of the benign mix per round")
    ap.add_argument("--exploits", type=float, default=2.0, help="percent of exploit requests")
    args = ap.parse_args()
    directory = Directory([PAY, ORD])
    dlp = DlpEngine()
    plain = Inspector(policy(False), directory, dlp_engine=dlp)
    patched = Inspector(policy(True), directory, dlp_engine=dlp, waf_engine=WafEngine())
    for name, mix in (("web", WEB_MIX), ("benign", BENIGN)):
        rng = random.Random(7)
        requests = mix * max(1, args.copies * len(BENIGN) // len(mix))
        n_bad = int(len(requests) * args.exploits / 100)
        requests += [rng.choice(EXPLOITS)[1] for _ in range(n_bad)]
        rng.shuffle(requests)
        measure(name, connections(requests), n_bad, plain, patched, args.rounds)


def measure(
    name: str,
    conns: list[list[bytes]],
    n_bad: int,
    plain: Inspector,
    patched: Inspector,
    rounds: int,
) -> None:
    run(plain, conns[:50])
    run(patched, conns[:50])  # warm caches of both
    blocked = patched.stats["blocked"]
    print(f"\nmix {name}: {len(conns)} connections per round ({n_bad} exploits), {rounds} rounds")
    print("round   DLP alone   DLP + WAF   ratio")
    base, both, ratios = [], [], []
    for i in range(rounds):
        # Blocks of 40 connections, each judged by both handlers one after the other (the order
        # alternating), so a burst of load from elsewhere on the machine hits both sides.
        a = b = 0.0
        for k in range(0, len(conns), 40):
            block = conns[k : k + 40]
            if (i + k // 40) % 2 == 0:
                a += run(plain, block)
                b += run(patched, block)
            else:
                b += run(patched, block)
                a += run(plain, block)
        blocks = -(-len(conns) // 40)
        a, b = a / blocks, b / blocks
        base.append(a)
        both.append(b)
        ratios.append(b / a)
        print(f"{i + 1:5}   {a * 1e6:7.1f} us  {b * 1e6:7.1f} us   {b / a:.3f}")
    print(
        f"median  {statistics.median(base) * 1e6:7.1f} us  {statistics.median(both) * 1e6:7.1f} us"
        f"   {statistics.median(ratios):.3f} (mix {name}: median of per-round ratios; "
        "target <= 1.10)"
    )
    print(f"blocked by the WAF: {(patched.stats['blocked'] - blocked) // rounds} per round")


if __name__ == "__main__":
    main()
