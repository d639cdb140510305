"""Linux network namespaces and commands run in them (argument lists, never a shell).

Shared by the firewall (rules in the node's namespace), the sensor and the lab; nothing here knows
about pods.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from stockade.model.errors import EnforcementError


def run(
    args: Sequence[str], *, check: bool = True, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    """Run one command (argument list, never a shell); raise a one-line error on failure."""
    try:
        proc = subprocess.run(
            list(args), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnforcementError(f"{args[0]} failed: {exc}") from exc
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise EnforcementError(f"{' '.join(args)}: {msg[-1] if msg else proc.returncode}")
    return proc


def in_ns(netns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", netns, *args]


def netns_list() -> set[str]:
    out = run(["ip", "netns", "list"], check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def add_netns(name: str) -> None:
    run(["ip", "netns", "add", name])
    run(["ip", "-n", name, "link", "set", "lo", "up"])


def del_netns(name: str) -> None:
    if name in netns_list():
        run(["ip", "netns", "del", name], check=False)


def ns_pids(netns: str) -> list[int]:
    out = run(["ip", "netns", "pids", netns], check=False).stdout
    return [int(x) for x in out.split() if x.isdigit()]
