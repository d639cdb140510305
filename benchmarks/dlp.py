"""DLP engine throughput on reassembled streams next to raw Hyperscan on the same bytes.

    python benchmarks/dlp.py [--mb 32] [--segment 1460]

Builds realistic, mostly clean HTTP/1.1 + JSON conversations (ids, unix-ms timestamps, prices,
UUIDs, names; one card, SSN or e-mail every ~20 KB), one stream per flow direction, and times:

* raw:       Hyperscan (the wheel's library) block mode over each whole stream with every
             built-in sensor's prefilter and lead expression, counting matches (the peer: no
             Python per match, no segmentation). The engine itself no longer scans them all
             with Hyperscan: where runscan.c is built, its hand-written scan reports the card,
             SSN, IBAN and phone prefilters' matches (and the HTTP query trigger's) and the
             system's libhs scans the rest (the e-mail prefilter, the SSN context words, the
             other decoding triggers) in the same C call; the matches are the same
             (tests/network/test_dlp_runscan.py). ``STOCKADE_DLP_RUNSCAN=0`` gives the engine
             as it was, all through the binding;
* raw stream per segment (shown, not a target): the same database in stream mode, one
             ``scan`` call per segment and nothing else: what the binding's calls alone cost a
             path that must answer per segment (the firewall's), next to raw;
* hs-stream: the engine, Hyperscan stream mode, fed in segment-sized chunks, a scan per segment
             (the firewall's path: it needs a verdict on each segment);
* coalesced: the same, but the stream scans consecutive segments together once
             ``PASSIVE_COALESCE`` bytes wait (the sensor's path: no verdict per segment);
* +http:     hs-stream through the HTTP body decoding layer the firewall uses (``dlp.decoding``:
             this traffic needs no decoding, so no decoding trigger fires and the framing never
             runs; target: within 10% of hs-stream); ``+http coalesced``: the sensor's path;
* hs-window: the engine, Hyperscan block mode over overlap tail + segment;
* re:        the engine's pure-Python fallback (on a smaller slice: it is slow).

Prints MB/s (best of --repeat runs, databases compiled and segments cut outside the timing) and
the ratio engine/raw; the last lines hold hs-stream (the firewall) and +http coalesced (the
sensor) to issue 19's 0.8. ``--clock cpu`` times CPU, which a busy machine disturbs far less.

``--hits N`` times only the sensor's ``DlpFeed`` per direction (CPU, median of ``--repeat``) on N
directions that carry a card or an SSN and N that carry nothing, as the ``sensor --pcap``
benchmark's capture has them (docs/dlp.md, session 10).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import hyperscan

from stockade.network.dlp import DlpEngine
from stockade.network.dlp.decoding import DecodingStream
from stockade.network.dlp.sensors import BUILTIN_SENSORS

try:
    from stockade.network.dlp.engine import PASSIVE_COALESCE
except ImportError:  # a tree from before coalescing, run as the baseline: no row coalesces
    PASSIVE_COALESCE = 0

NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
PII = ["4111 1111 1111 1111", "5555-5555-5555-4444", "378282246310005", "536-90-4399",
       "someone@example.com", "DE89 3704 0044 0532 0130 00"]  # fmt: skip


def conversation(rng: random.Random, target: int) -> tuple[bytes, bytes]:
    """(client stream, server stream) of keep-alive requests until ``target`` bytes."""
    client, server = bytearray(), bytearray()
    next_pii = rng.randint(10_000, 30_000)
    while len(client) + len(server) < target:
        items = [
            {"id": rng.randint(1, 10**9), "sku": f"SKU-{rng.randint(1000, 99999)}",
             "qty": rng.randint(1, 9), "price": round(rng.uniform(1, 500), 2),
             "ts": 1_700_000_000_000 + rng.randint(0, 10**10),
             "trace": f"{rng.getrandbits(128):032x}", "owner": rng.choice(NAMES)}
            for _ in range(rng.randint(3, 12))
        ]  # fmt: skip
        body = {"items": items, "customer": rng.choice(NAMES), "page": rng.randint(1, 50)}
        if len(client) + len(server) > next_pii:
            body["note"] = rng.choice(PII)
            next_pii += rng.randint(10_000, 30_000)
        payload = json.dumps(body).encode()
        client += (
            b"POST /api/v1/orders HTTP/1.1\r\nHost: orders.default.svc\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload)
        ) + payload
        reply = json.dumps(
            {"status": "ok", "order": rng.randint(1, 10**12), "items": items[:3]}
        ).encode()
        server += (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % len(reply)
        ) + reply
    return bytes(client), bytes(server)


def raw_db() -> hyperscan.Database:
    exprs, ids = [], []
    for si, sensor in enumerate(BUILTIN_SENSORS):
        for k, p in enumerate((*sensor.prefilter, *sensor.lead_prefilter)):
            exprs.append(p.encode())
            ids.append(si * 64 + k)
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=exprs, ids=ids, elements=len(exprs), flags=0)
    return db


def raw_stream_db() -> hyperscan.Database:
    exprs, ids = [], []
    for si, sensor in enumerate(BUILTIN_SENSORS):
        for k, p in enumerate((*sensor.prefilter, *sensor.lead_prefilter)):
            exprs.append(p.encode())
            ids.append(si * 64 + k)
    db = hyperscan.Database(mode=hyperscan.HS_MODE_STREAM)
    db.compile(expressions=exprs, ids=ids, elements=len(exprs), flags=0)
    return db


def engine_scan() -> str:
    """Which scan the built-in engine makes: the figures differ by half between the two, and an
    unbuilt tree (no ``setup.py build_ext --inplace``) silently gives the binding's."""
    engine = DlpEngine()
    if engine._runscan is None:
        why = (
            "STOCKADE_DLP_RUNSCAN=0"
            if os.environ.get("STOCKADE_DLP_RUNSCAN") == "0"
            else "runscan.c not built: python3 setup.py build_ext --inplace"
        )
        return f"the hyperscan binding for everything ({why})"
    if engine._hs_db is not None:
        return "runscan.c by hand, the other expressions through the binding (built without libhs)"
    return "runscan.c by hand, the other expressions through libhs (one C call a segment)"


CLOCK = time.perf_counter  # --clock cpu: time.process_time (less sensitive to a busy machine)


def time_raw(streams: list[bytes], repeat: int) -> tuple[float, int]:
    db = raw_db()
    count = [0]

    def on_match(_id: int, _f: int, _t: int, _fl: int, _c: object) -> None:
        count[0] += 1

    best = float("inf")
    for _ in range(repeat):
        count[0] = 0
        start = CLOCK()
        for s in streams:
            db.scan(s, match_event_handler=on_match)
        best = min(best, CLOCK() - start)
    return best, count[0]


def time_raw_segments(streams: list[bytes], segment: int) -> tuple[float, int]:
    """The raw database in stream mode, one scan call per segment (segments cut beforehand)."""
    db = raw_stream_db()
    count = [0]

    def on_match(_id: int, _f: int, _t: int, _fl: int, _c: object) -> None:
        count[0] += 1

    cut = [[s[i : i + segment] for i in range(0, len(s), segment)] for s in streams]
    start = CLOCK()
    for pieces in cut:
        with db.stream(match_event_handler=on_match) as stream:
            for piece in pieces:
                stream.scan(piece)
    return CLOCK() - start, count[0]


def time_engine(
    backend: str,
    streams: list[bytes],
    segment: int,
    repeat: int,
    *,
    decode: bool = False,
    coalesce: int = 0,
    slice_in_loop: bool = False,
) -> tuple[float, int]:
    engine = DlpEngine(backend=backend)  # compiled once, outside the timing, like the raw database
    # Segments arrive as bytes objects (the capture cuts them out of frames): cut beforehand,
    # unless --slice-in-loop asks for the older harness that cut them inside the timing.
    cut = [[s[i : i + segment] for i in range(0, len(s), segment)] for s in streams]
    best, found = float("inf"), 0
    for _ in range(repeat):
        found = 0
        start = CLOCK()
        for k, s in enumerate(streams):
            extra = {"coalesce": coalesce} if coalesce else {}
            if decode:
                stream: Any = DecodingStream(engine, **extra)
            else:
                stream = engine.stream(**extra)
            if slice_in_loop:
                for i in range(0, len(s), segment):
                    found += len(stream.feed(s[i : i + segment]))
            else:
                for piece in cut[k]:
                    found += len(stream.feed(piece))
            found += len(stream.close())
        best = min(best, CLOCK() - start)
    return best, found


def time_directions(n: int, repeat: int, seed: int) -> int:
    """``--hits``: CPU per direction through the sensor's ``DlpFeed`` (feed its segments, close),
    on directions as ``stockade.lab.http_capture`` writes them: half requests, half responses;
    "hit": each carries a card (request) or an SSN (response); "quiet": none does."""
    from stockade.lab import http_capture as hc
    from stockade.network.analysis import DlpFeed

    engine = DlpEngine()
    for kind in ("hit", "quiet"):
        rng = random.Random(seed)
        whole = [
            (hc._request if i % 2 == 0 else hc._response)(rng, kind == "hit") for i in range(n)
        ]
        dirs = [[d[i : i + hc.MSS] for i in range(0, len(d), hc.MSS)] for d in whole]
        times, found = [], 0
        for _ in range(repeat + 1):  # the first run warms up, uncounted
            t0, found = time.process_time(), 0
            for segments in dirs:
                feed = DlpFeed(engine)
                for segment in segments:
                    feed.feed(segment)
                found += len(feed.close())
            times.append(time.process_time() - t0)
        per = [t / n * 1e6 for t in times[1:]]
        print(f"{kind:5} directions: {statistics.median(per):6.1f} us CPU each (median of "
              f"{repeat}, min {min(per):.1f}), {found} findings in {n}")  # fmt: skip
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=32.0, help="total stream bytes (MB)")
    ap.add_argument("--segment", type=int, default=1460, help="bytes per feed (a TCP segment)")
    ap.add_argument("--flow-kb", type=int, default=64, help="bytes per flow (stream depth)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=5, help="best of N runs")
    ap.add_argument(
        "--coalesce", type=int, default=PASSIVE_COALESCE, help="bytes a passive stream lets wait"
    )
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    ap.add_argument("--slice-in-loop", action="store_true", help="cut segments inside the timing")
    ap.add_argument(
        "--hits",
        type=int,
        default=0,
        help="only time the sensor's feed on N hit and N quiet directions",
    )
    args = ap.parse_args()
    if args.hits:
        return time_directions(args.hits, args.repeat, args.seed)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    rng = random.Random(args.seed)
    streams: list[bytes] = []
    while sum(map(len, streams)) < args.mb * 1e6:
        streams.extend(conversation(rng, args.flow_kb * 1024))
    total = sum(map(len, streams)) / 1e6
    print(f"{len(streams)} streams, {total:.1f} MB, segments of {args.segment} bytes, "
          f"{args.clock} clock{', cut in the timing' if args.slice_in_loop else ''}")  # fmt: skip
    print(f"engine scan: {engine_scan()}")
    # Interleaved rounds, best of each: a busy machine slows every contender alike.
    best: dict[str, float] = {}
    counts: dict[str, int] = {}
    for _ in range(args.repeat):
        secs, counts["raw"] = time_raw(streams, 1)
        best["raw"] = min(best.get("raw", secs), secs)
        secs, counts["raw-seg"] = time_raw_segments(streams, args.segment)
        best["raw-seg"] = min(best.get("raw-seg", secs), secs)
        runs = {
            "hs-stream": ("hs-stream", False, 0),
            "coalesced": ("hs-stream", False, args.coalesce),
            "hs-window": ("hs-window", False, 0),
            "+http": ("hs-stream", True, 0),
            "+http coalesced": ("hs-stream", True, args.coalesce),
        }
        for name, (backend, decode, coalesce) in runs.items():
            secs, counts[name] = time_engine(
                backend,
                streams,
                args.segment,
                1,
                decode=decode,
                coalesce=coalesce,
                slice_in_loop=args.slice_in_loop,
            )
            best[name] = min(best.get(name, secs), secs)
    raw = total / best["raw"]
    print(f"{'raw hyperscan block':24} {raw:8.1f} MB/s  ({counts['raw']} prefilter matches)")
    raw_seg = total / best["raw-seg"]
    print(f"{'raw stream per segment':24} {raw_seg:8.1f} MB/s  ({counts['raw-seg']} prefilter "
          f"matches)  ratio {raw_seg / raw:.2f}  (binding calls alone; not a target)")  # fmt: skip
    results = {}
    for name in ("hs-stream", "coalesced", "hs-window", "+http", "+http coalesced"):
        results[name] = total / best[name]
        print(f"{'engine ' + name:24} {results[name]:8.1f} MB/s  ({counts[name]} confirmed)  "
              f"ratio {results[name] / raw:.2f}")  # fmt: skip
    http = results["+http"]
    print(f"+http is {http / results['hs-stream']:.2f} of hs-stream")
    subset = streams[: max(2, len(streams) // 16)]
    sub_mb = sum(map(len, subset)) / 1e6
    secs, found = time_engine("re", subset, args.segment, 1)
    print(f"{'engine re (fallback)':24} {sub_mb / secs:8.1f} MB/s  ({found} confirmed on "
          f"{sub_mb:.1f} MB)  ratio {sub_mb / secs / raw:.2f}")  # fmt: skip
    for name in ("hs-stream", "+http coalesced"):
        ratio = results[name] / raw
        print(f"{name} / raw = {ratio:.2f} (target >= 0.80): {'OK' if ratio >= 0.8 else 'BELOW'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
