"""``admission serve --controller``: the admission policy applied at the controller put in force
by version.

The configuration is fetched by the firewall's :class:`~stockade.firewall.enforce.follow.ConfigFetcher`
(one thread per webhook process, ``GET /api/v1/agents/config?since=V``), which hands each answer to
:meth:`AdmissionPolicyFollower.apply`. A policy that parses replaces the one in force between two
reviews (a review already being decided finishes under the policy it started with) and is
reported as ``admission.policy_applied``; one that does not parse is ``admission.policy_rejected``
and the policy in force stays. A webhook started with ``--policy FILE`` does not follow: the file
is the policy, as for the enforcer.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from stockade.admission.policy import Policy, parse_policy
from stockade.model import Event, Severity
from stockade.model.errors import ConfigError

if TYPE_CHECKING:
    from stockade.model.agent_config import ConfigAnswer, PolicyDocument

log = logging.getLogger("stockade.admission")

SOURCE = "stockade.admission"


class AdmissionPolicyFollower:
    """Put the controller's admission policy in force through ``install`` (once per version)."""

    def __init__(
        self,
        install: Callable[[Policy], None],
        emit: Callable[[Event], None],
        node: str | None = None,
    ) -> None:
        self.install = install
        self.emit = emit
        self.node = node
        self.version: int | None = None  # the controller's policy in force here, once one is
        self._seen: PolicyDocument | None = None

    def apply(self, answer: ConfigAnswer) -> None:
        doc = answer.admission
        if doc is None or doc == self._seen:
            return  # unchanged, or the version in force sent again with another kind
        self._seen = doc
        data = {
            "version": doc.version,
            "config_version": answer.version,
            "sha256": hashlib.sha256(doc.text.encode()).hexdigest(),
            "pid": os.getpid(),  # one event per webhook process
        }
        try:
            policy = parse_policy(doc.text, name=f"controller admission policy {doc.version}")
        except ConfigError as exc:
            log.error("controller admission policy version %d not applied: %s", doc.version, exc)
            self.emit(
                Event(
                    kind="admission.policy_rejected",
                    message=f"admission policy version {doc.version} from the controller not "
                    f"applied; the policy in force stays: {exc}",
                    severity=Severity.HIGH,
                    source=SOURCE,
                    node=self.node,
                    data={**data, "error": str(exc)[:1000]},
                )
            )
            return
        self.install(policy)
        self.version = doc.version
        self.emit(
            Event(
                kind="admission.policy_applied",
                message=f"admission policy version {doc.version} from the controller in force "
                f"(mode {policy.spec.mode}, {len(policy.spec.rules)} rules)",
                source=SOURCE,
                node=self.node,
                data={**data, "mode": str(policy.spec.mode), "rules": len(policy.spec.rules)},
                action="apply",
            )
        )
