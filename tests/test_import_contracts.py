"""The import contracts of docs/architecture.md, checked on the source (no import-linter needed):
the model imports nothing; the shared layers import only what is below them; pillars reach one
another only through the interfaces listed here; the event platform imports only the shared layers
and no pillar or shared layer imports it; nothing but the CLI imports the lab."""

from __future__ import annotations

import ast
from collections import defaultdict
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "stockade"

# The shared layers, lowest first: each may import only the layers before it.
LAYERS = ("model", "config", "workers", "k8s", "store", "identity")
PILLARS = ("scanning", "compliance", "network", "firewall", "admission", "runtime")
# The event platform (ingestion, response rules, notifiers) sits above the shared layers and
# below the CLI, the API and the controller, which wire it to the pillars.
EVENTS = "events"
# Edges between pillars, each through the callee's public interface.
ALLOWED = {
    # admission reads vulnerability facts through its own interface, which scanning implements
    ("scanning", "admission.interface"),
    # admission's Pod Security criteria and workloadChecks are compliance's workload checks
    ("admission", "compliance.workloads"),
    # the firewall is built on the network pillar's inspection library
    ("firewall", "network.capture*"),
    ("firewall", "network.dlp*"),
    ("firewall", "network.waf*"),  # virtual patches in the same first-bytes path as DLP
    ("firewall", "network.interface"),
    ("firewall", "network.netns"),
    ("firewall", "network.protocols*"),
    ("firewall", "network.reassembly"),
    ("firewall", "network.tls"),
}


@cache  # the source does not change during a run: parsed once for all the contracts
def imports() -> dict[str, frozenset[str]]:
    """package -> the stockade modules it imports (without the ``stockade.`` prefix)."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).parts
        package = rel[0] if len(rel) > 1 else rel[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.startswith("stockade."):
                    target = name.removeprefix("stockade.")
                    if target.split(".")[0] != package:
                        found[package].add(target)
    return {package: frozenset(targets) for package, targets in found.items()}


def test_shared_layers_import_only_what_is_below_them() -> None:
    graph = imports()
    for i, layer in enumerate(LAYERS):
        below = set(LAYERS[:i])
        bad = sorted(t for t in graph.get(layer, ()) if t.split(".")[0] not in below)
        assert not bad, f"{layer} imports {bad}"


def test_pillars_meet_only_through_listed_interfaces() -> None:
    graph = imports()
    bad = []
    for pillar in PILLARS:
        for target in graph.get(pillar, ()):
            top = target.split(".")[0]
            if top in LAYERS or top == pillar:
                continue
            if not any(p == pillar and fnmatchcase(target, t) for p, t in ALLOWED):
                bad.append(f"{pillar} -> {target}")
    assert not bad, bad


def test_events_import_only_the_shared_layers_and_no_pillar_imports_them() -> None:
    graph = imports()
    bad = sorted(t for t in graph.get(EVENTS, ()) if t.split(".")[0] not in LAYERS)
    assert not bad, f"{EVENTS} imports {bad}"
    users = sorted(
        p
        for p, targets in graph.items()
        if p in (*LAYERS, *PILLARS) and any(t.split(".")[0] == EVENTS for t in targets)
    )
    assert not users, f"{users} import {EVENTS}"


def test_only_the_cli_imports_the_lab() -> None:
    graph = imports()
    users = sorted(
        p for p, targets in graph.items() if any(t.split(".")[0] == "lab" for t in targets)
    )
    assert users == ["cli"], users


def test_the_network_pillar_does_not_know_the_firewall() -> None:
    assert not [t for t in imports().get("network", ()) if t.startswith("firewall")]
