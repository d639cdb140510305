"""The built-in list of suspicious process behaviour, checked in every mode (never learned):
each rule is an ID, a reason and a predicate over what is known of the exec."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from stockade.identity import Workload

SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "csh", "tcsh", "fish", "busybox"})
PACKAGE_MANAGERS = frozenset(
    {
        "apt",
        "apt-get",
        "aptitude",
        "dpkg",
        "yum",
        "dnf",
        "rpm",
        "apk",
        "pip",
        "pip3",
        "npm",
        "yarn",
        "gem",
    }
)
NETWORK_TOOLS = frozenset(
    {"nc", "ncat", "netcat", "nmap", "curl", "wget", "socat", "telnet", "ssh", "scp"}
)
DATABASE_APPS = frozenset(
    {"postgres", "postgresql", "mysql", "mariadb", "redis", "mongodb", "mongo", "cassandra"}
)
REVERSE_SHELL = re.compile(
    r"/dev/(tcp|udp)/|\b(ba)?sh\s+-i\b|\bnc(at)?\b.*\s-[ec]\b|mkfifo\b.*\bnc\b|"
    r"socket\.socket\(.*(pty\.spawn|subprocess|os\.dup2)|\bsocat\b.*\bexec:",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Exec:
    """What is known of one exec: ``path`` and ``parent`` as seen inside the workload."""

    workload: Workload
    path: str
    cmdline: str
    parent: str
    parent_listens: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    id: str
    reason: str
    check: Callable[[Exec], bool]


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _is_database(w: Workload) -> bool:
    labels = dict(w.labels)
    return labels.get("tier") == "db" or labels.get("app", "").lower() in DATABASE_APPS


RULES = (
    Rule(
        id="process.shell_from_service",
        reason="a shell spawned by a network service",
        check=lambda e: (
            _base(e.path) in SHELLS
            and bool(e.parent)
            and _base(e.parent) not in SHELLS
            and e.parent_listens
        ),
    ),
    Rule(
        id="process.package_manager",
        reason="a package manager ran in a workload",
        check=lambda e: (
            _base(e.path) in PACKAGE_MANAGERS
            or _base(e.path).startswith(("dpkg-", "apt-", "pip3."))
        ),
    ),
    Rule(
        id="process.network_tool_in_database",
        reason="a network tool ran in a database pod",
        check=lambda e: _base(e.path) in NETWORK_TOOLS and _is_database(e.workload),
    ),
    Rule(
        id="process.reverse_shell",
        reason="a reverse-shell command line",
        check=lambda e: bool(REVERSE_SHELL.search(e.cmdline)),
    ),
)


def matches(e: Exec) -> Rule | None:
    return next((r for r in RULES if r.check(e)), None)
