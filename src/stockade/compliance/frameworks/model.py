"""Compliance frameworks as data: requirements and the check selectors that evidence them.

A selector is one of:

    pss.baseline.*                   a glob on the finding id (check slug, CVE id, sensor id)
    pillar:scanning                  every finding of a pillar
    bench:cis-kubernetes-*/1.2.1[6-9]  a glob on the benchmark name and the benchmark's own number

A finding also evidences a requirement when its ``compliance`` tags name it
(``pci-dss:1.2.5``). A requirement without selectors has no automated evidence: its ``manual`` text
says what an auditor has to look at instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache
from importlib import resources
from typing import Any

import yaml

from stockade.model import ConfigError, UsageError

FRAMEWORKS = ("pci-dss", "hipaa", "gdpr", "nist-800-190")


@dataclass(frozen=True, slots=True, kw_only=True)
class Requirement:
    id: str
    title: str
    selectors: tuple[str, ...] = ()
    manual: str = ""  # what to review by hand when there is no (or only partial) automated evidence
    aliases: tuple[str, ...] = ()  # other spellings in findings' compliance tags ("art-32")

    def tags(self, framework_id: str) -> frozenset[str]:
        """The compliance tags (``pci-dss:1.2.5``) that name this requirement."""
        return frozenset(f"{framework_id}:{x}" for x in (self.id, *self.aliases))

    @property
    def automated(self) -> bool:
        return bool(self.selectors)


@dataclass(frozen=True, slots=True, kw_only=True)
class Framework:
    id: str
    title: str
    version: str
    source: str
    requirements: tuple[Requirement, ...]


def matches(selector: str, row: dict[str, Any]) -> bool:
    """Whether one stored finding (a row of the ``findings`` table) is selected."""
    if selector.startswith("pillar:"):
        return row.get("pillar") == selector[len("pillar:") :]
    if selector.startswith("bench:"):
        bench, _, number = selector[len("bench:") :].partition("/")
        details = row.get("details") or {}
        return fnmatchcase(str(details.get("benchmark") or ""), bench) and fnmatchcase(
            str(details.get("benchmark_id") or ""), number or "*"
        )
    return fnmatchcase(str(row.get("finding_id") or ""), selector)


def parse(data: Any, name: str) -> Framework:
    """Build a Framework from its YAML document; a malformed one is a ConfigError naming the "
    "field."""
    if not isinstance(data, dict) or not isinstance(data.get("requirements"), list):
        raise ConfigError(f"framework {name}: expected a mapping with a requirements list")
    reqs = []
    for i, r in enumerate(data["requirements"]):
        if not isinstance(r, dict) or not r.get("id") or not r.get("title"):
            raise ConfigError(f"framework {name}: requirement #{i + 1} needs an id and a title")
        sel = r.get("checks") or []
        if not isinstance(sel, list) or not all(isinstance(s, str) for s in sel):
            raise ConfigError(
                f"framework {name}: requirement {r['id']}: checks must be a list of strings"
            )
        if not sel and not r.get("manual"):
            raise ConfigError(
                f"framework {name}: requirement {r['id']} has neither checks nor manual"
            )
        aliases = r.get("aliases") or []
        if not isinstance(aliases, list):
            raise ConfigError(f"framework {name}: requirement {r['id']}: aliases must be a list")
        reqs.append(
            Requirement(
                id=str(r["id"]),
                title=str(r["title"]),
                selectors=tuple(sel),
                manual=str(r.get("manual") or ""),
                aliases=tuple(str(a) for a in aliases),
            )
        )
    return Framework(
        id=str(data.get("id") or name),
        title=str(data.get("title") or name),
        version=str(data.get("version") or ""),
        source=str(data.get("source") or ""),
        requirements=tuple(reqs),
    )


@cache
def load(name: str) -> Framework:
    """One of the built-in frameworks: pci-dss, hipaa, gdpr, nist-800-190."""
    if name not in FRAMEWORKS:
        raise UsageError(f"unknown framework {name!r} (expected one of: {', '.join(FRAMEWORKS)})")
    text = resources.files(__package__).joinpath("data", f"{name}.yaml").read_text(encoding="utf-8")
    return parse(yaml.safe_load(text), name)
