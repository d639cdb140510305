"""Quarantine: cut every packet to and from a workload in the kernel; the workload keeps running.

Its own table (``inet stockade_quarantine``, forward hook at priority -20, before everything else)
so it works with or without the enforcer and survives policy changes. Established connections are
cut too: the rules match addresses, not connection state.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from stockade.firewall.enforce import nft
from stockade.network.netns import in_ns, run

TABLE = "stockade_quarantine"

_BASE = f"""table inet {TABLE} {{
  set q4 {{ type ipv4_addr; }}
  set q6 {{ type ipv6_addr; }}
  chain forward {{
    type filter hook forward priority -20; policy accept;
    ip saddr @q4 drop
    ip daddr @q4 drop
    ip6 saddr @q6 drop
    ip6 daddr @q6 drop
  }}
}}
"""


def _by_family(addresses: Iterable[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"q4": [], "q6": []}
    for a in addresses:
        ip = ipaddress.ip_address(a)  # validated: nothing but addresses reaches nft
        out["q4" if ip.version == 4 else "q6"].append(str(ip))
    return out


def isolate(node: str, addresses: Iterable[str]) -> None:
    """Add addresses to the quarantine (creating the table if needed)."""
    cmds = [_BASE]  # re-declaring an existing table and sets is a no-op
    for name, addrs in _by_family(addresses).items():
        if addrs:
            cmds.append(f"add element inet {TABLE} {name} {{ {', '.join(addrs)} }}\n")
    nft.load(node, "".join(cmds))


def lift(node: str, addresses: Iterable[str]) -> None:
    """Remove addresses from the quarantine; drop the table when it is empty."""
    if not _exists(node):
        return
    current = set(quarantined(node))
    cmds = []
    for name, addrs in _by_family(
        a for a in addresses if str(ipaddress.ip_address(a)) in current
    ).items():
        if addrs:
            cmds.append(f"delete element inet {TABLE} {name} {{ {', '.join(addrs)} }}\n")
    if cmds:
        nft.load(node, "".join(cmds))
    if not quarantined(node):
        run(in_ns(node, "nft", "delete", "table", "inet", TABLE), check=False)


def _exists(node: str) -> bool:
    return run(in_ns(node, "nft", "list", "table", "inet", TABLE), check=False).returncode == 0


def quarantined(node: str) -> list[str]:
    """Addresses currently in quarantine."""
    out: list[str] = []
    for name in ("q4", "q6"):
        proc = run(in_ns(node, "nft", "-j", "list", "set", "inet", TABLE, name), check=False)
        if proc.returncode != 0:
            continue
        import json

        for item in json.loads(proc.stdout).get("nftables", []):
            elems = item.get("set", {}).get("elem", [])
            out.extend(str(e) for e in elems if isinstance(e, str))
    return out
