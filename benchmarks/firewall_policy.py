"""Judging new connections under a large policy: groups_of, evaluate, awaited_protocols and
data_needs for one new (address pair, port), as the enforcer asks them.

    python3 benchmarks/firewall_policy.py --groups 4000 --pairs 200 --rounds 5 --clock cpu

The policy is random but reproducible (``--seed``): groups by namespace and labels, by CIDR (some
nested), a few by pod globs; allow and deny rules between them, some naming ports and protocols.
``--profile`` prints the top of a cProfile of one round instead.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

from stockade.firewall.policy.engine import Endpoint, awaited_protocols, data_needs, evaluate
from stockade.firewall.policy.model import Policy

NAMESPACES = [f"ns{i}" for i in range(40)]
APPS = [f"app{i}" for i in range(60)]
PROTOCOLS = ["proto.http", "proto.tls", "proto.redis", "proto.postgres", "proto.grpc"]


def random_policy(groups: int, rules: int, seed: int) -> Policy:
    rnd = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(groups):
        kind = rnd.random()
        if kind < 0.6:
            sel: dict[str, Any] = {"namespace": rnd.choice(NAMESPACES)}
            if rnd.random() < 0.7:
                sel["labels"] = {"app": rnd.choice(APPS)}
        elif kind < 0.9:
            a, b = rnd.randrange(1, 250), rnd.randrange(0, 256)
            prefix = rnd.choice((8, 16, 24, 28, 32))
            sel = {"cidrs": [f"10.{a}.{b}.{rnd.randrange(256)}/{prefix}"]}
            if rnd.random() < 0.1:
                sel["cidrs"].append(f"fd00:{a:x}:{b:x}::/{rnd.choice((48, 64, 120))}")
        else:
            sel = {"namespace": rnd.choice(NAMESPACES), "pods": [f"{rnd.choice(APPS)}-*"]}
        mode = rnd.choice(("discover", "monitor", "protect", "protect"))
        out.append({"name": f"g{i}", "selector": sel, "mode": mode})
    names = [g["name"] for g in out]
    rule_list: list[dict[str, Any]] = []
    for i in range(rules):
        rule: dict[str, Any] = {
            "name": f"r{i}",
            "from": rnd.sample(names, rnd.choice((1, 1, 2))) if rnd.random() < 0.95 else ["any"],
            "to": rnd.sample(names, rnd.choice((1, 1, 2))) if rnd.random() < 0.95 else ["any"],
        }
        p = rnd.random()
        if p < 0.5:
            rule["ports"] = [f"tcp/{rnd.randrange(1, 65536)}"]
        elif p < 0.7:
            low = rnd.randrange(1, 65000)
            rule["ports"] = [
                f"tcp/{low}-{low + rnd.randrange(0, 500)}",
                f"udp/{rnd.randrange(1, 65536)}",
            ]
        elif p < 0.8:
            rule["ports"] = [rnd.choice(("tcp", "udp", "icmp", "any"))]
        if rnd.random() < 0.2:
            rule["protocols"] = rnd.sample(PROTOCOLS, rnd.choice((1, 2)))
        if rnd.random() < 0.2:
            rule["action"] = "deny"
        rule_list.append(rule)
    return Policy.model_validate({"spec": {"groups": out, "rules": rule_list}})


def random_endpoint(rnd: random.Random) -> Endpoint:
    if rnd.random() < 0.5:
        return Endpoint(
            ip=f"10.{rnd.randrange(1, 250)}.{rnd.randrange(256)}.{rnd.randrange(256)}",
            name=f"{rnd.choice(APPS)}-{rnd.randrange(100)}",
            namespace=rnd.choice(NAMESPACES),
            labels={"app": rnd.choice(APPS)},
        )
    if rnd.random() < 0.1:
        return Endpoint(
            ip=f"fd00:{rnd.randrange(250):x}:{rnd.randrange(256):x}::{rnd.randrange(99)}",
            external=True,
        )
    return Endpoint(
        ip=f"10.{rnd.randrange(1, 250)}.{rnd.randrange(256)}.{rnd.randrange(256)}", external=True
    )


def judge_new(policy: Policy, src: Endpoint, dst: Endpoint, port: int) -> None:
    """What the enforcer asks for one new connection (inspector._flow and _awaited_app)."""
    evaluate(policy, src, dst, port)
    awaited_protocols(policy, src, dst, port)
    data_needs(policy, src, dst)
    evaluate(policy, src, dst, port, app="proto.http")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=4000)
    ap.add_argument("--rules", type=int, default=0, help="default: as many as groups")
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    policy = random_policy(args.groups, args.rules or args.groups, args.seed)
    rnd = random.Random(args.seed + 1)
    cases = [
        (random_endpoint(rnd), random_endpoint(rnd), rnd.randrange(1, 65536))
        for _ in range(args.pairs)
    ]
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        for src, dst, port in cases:
            judge_new(policy, src, dst, port)
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(18)
        return
    per: list[float] = []
    for _ in range(args.rounds):
        # every round on fresh endpoints: nothing the caches kept from the last round helps
        fresh = [
            (Endpoint(**{**_fields(s), "ip": s.ip}), Endpoint(**_fields(d)), port)
            for s, d, port in cases
        ]
        start = clock()
        for src, dst, port in fresh:
            judge_new(policy, src, dst, port)
        per.append((clock() - start) / len(fresh) * 1000)
    print(
        f"{args.groups} groups, {args.rules or args.groups} rules, {args.pairs} new pairs, "
        f"{args.clock} clock: median {statistics.median(per):.3f} ms a new (pair, port) "
        f"(rounds: {', '.join(f'{x:.3f}' for x in per)})"
    )


def _fields(e: Endpoint) -> dict[str, Any]:
    return {
        "ip": e.ip,
        "name": e.name,
        "namespace": e.namespace,
        "labels": dict(e.labels),
        "external": e.external,
    }


if __name__ == "__main__":
    main()
