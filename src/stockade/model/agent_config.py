"""What the controller sends the agents that follow its configuration by version
(``GET /api/v1/agents/config``, built by ``stockade.api.agent_config``): the answer's data, checked.

Pure data, no I/O: the enforcer's fetcher (``stockade.firewall.enforce.follow``) reads the answers,
and each follower (the enforcer's quarantines and policy, ``runtime watch``'s profiles,
``admission serve``'s policy) takes the kinds it knows from a :class:`ConfigAnswer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_LISTED = 10_000  # more quarantines than any node holds: an answer beyond is refused


MAX_POLICY = 1024 * 1024  # what the controller takes in a PUT


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    version: int  # the policy's version at the controller
    text: str


@dataclass(frozen=True, slots=True)
class ConfigAnswer:
    """One answer of the controller: its version, and each kind that changed (None: unchanged)."""

    version: int
    quarantine: dict[str, str] | None = None  # {workload: reason}
    policy: PolicyDocument | None = None
    runtime_profiles: PolicyDocument | None = None  # followed by ``runtime watch``
    admission: PolicyDocument | None = None  # followed by ``admission serve``


def parse_config(answer: Any) -> ConfigAnswer:
    """The controller's answer, checked; a ValueError when it is not what the controller sends."""
    if not isinstance(answer, dict) or not isinstance(answer.get("version"), int):
        raise ValueError("the configuration has no version")
    version = answer["version"]
    if answer.get("unchanged") is True:
        return ConfigAnswer(version)
    quarantine = None
    if "quarantine" in answer:
        listed = answer["quarantine"]
        if not isinstance(listed, list) or len(listed) > MAX_LISTED:
            raise ValueError("the configuration's quarantine is not a list")
        quarantine = {}
        for item in listed:
            if not isinstance(item, dict) or not isinstance(item.get("workload"), str):
                raise ValueError("a quarantine entry without a workload")
            reason = item.get("reason")
            quarantine[item["workload"][:400]] = (reason if isinstance(reason, str) else "")[:1000]
    return ConfigAnswer(
        version,
        quarantine,
        _document(answer, "policy"),
        _document(answer, "runtime_profiles"),
        _document(answer, "admission"),
    )


def _document(answer: dict[str, Any], kind: str) -> PolicyDocument | None:
    doc = answer.get(kind)
    if doc is None:
        return None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("version"), int)
        or not isinstance(doc.get("yaml"), str)
        or len(doc["yaml"]) > MAX_POLICY
    ):
        raise ValueError(
            f"the configuration's {kind.replace('_', ' ')} is not a versioned document"
        )
    return PolicyDocument(doc["version"], doc["yaml"])
