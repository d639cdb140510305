"""Choosing the benchmark version for a node from the Kubernetes version it runs, as the CIS
benchmarks target Kubernetes releases (1.11: 1.29-1.31, 1.12: 1.32-1.34)."""

from __future__ import annotations

import re

from stockade.compliance.cis.loader import DEFAULT, builtin
from stockade.compliance.cis.node import FileProblem, Node

# (lowest Kubernetes minor, benchmark), newest first
KUBERNETES = ((32, "cis-1.12"), (29, "cis-1.11"))
_TAG = re.compile(r"^\s*(?:-\s*)?image:\s*\S+:v(\d+)\.(\d+)\.\d+", re.MULTILINE)


def detect_kubernetes(node: Node) -> tuple[int, int, str] | None:
    """(major, minor, where) from a control plane static pod's image tag, or None."""
    bench = builtin("kubernetes")
    for comp in bench.components:
        spec = comp.path_spec(comp.manifest) if comp.manifest else None
        for path in spec.candidates if spec else ():
            if not node.exists(path):
                continue
            try:
                m = _TAG.search(node.read_text(path))
            except FileProblem:
                continue
            if m:
                return int(m.group(1)), int(m.group(2)), path
    return None


def choose(platform: str, node: Node) -> tuple[str, str]:
    """(benchmark version, why) for ``platform`` on ``node``."""
    if platform != "kubernetes":
        return DEFAULT[platform], "the only shipped version"
    found = detect_kubernetes(node)
    if found is None:
        return DEFAULT[platform], "Kubernetes version not found on the node: newest benchmark"
    major, minor, where = found
    seen = f"Kubernetes {major}.{minor} (image tag in {where})"
    for lowest, version in KUBERNETES:
        if major == 1 and minor >= lowest:
            return version, seen
    return KUBERNETES[-1][1], f"{seen} is older than every shipped benchmark: the oldest one"
