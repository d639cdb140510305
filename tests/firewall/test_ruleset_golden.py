"""The compiled nftables ruleset of the example policy, pinned by a golden file (a pure function:
no root, no kernel). `pytest tests/firewall/test_ruleset_golden.py --update-golden` rewrites it
after a deliberate change; review the diff like code."""

from __future__ import annotations

from pathlib import Path

from stockade.firewall.enforce.nft import compile_ruleset
from stockade.firewall.policy.endpoints import Directory
from stockade.firewall.policy.files import load_files
from stockade.identity import Directory as Identities
from stockade.identity import Workload

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "example-policy.nft"


def _workloads() -> Identities:
    def pod(ns: str, name: str, n: int, **labels: str) -> Workload:
        return Workload(
            name=name,
            namespace=ns,
            labels=tuple(sorted(labels.items())),
            addresses=(f"10.77.0.{n}", f"fd00:77::{n:x}"),
        )

    return Identities(
        [
            pod("shop", "orders", 11, app="orders", pci="cde"),
            pod("shop", "payments", 12, app="payments", pci="cde"),
            pod("data", "db", 21, app="postgres"),
            pod("data", "cache", 22, app="redis"),
            pod("marketing", "crm", 31, app="crm"),
            Workload(name="world", external=True, addresses=("198.51.100.10",)),
        ]
    )


def test_the_example_policy_compiles_to_the_golden_ruleset(update_golden: bool) -> None:
    policy = load_files([REPO / "examples" / "firewall" / "policy.yaml"])
    ruleset = compile_ruleset(policy, Directory.from_identities(_workloads()).endpoints, {})
    if update_golden or not GOLDEN.exists():
        GOLDEN.write_text(ruleset)
    assert ruleset == GOLDEN.read_text(), (
        "the compiled ruleset changed; if on purpose, rerun with --update-golden and review the diff"
    )
    # what the golden file must say whatever its layout
    assert "table inet stockade" in ruleset and "10.77.0.11" in ruleset and "fd00:77::b" in ruleset
