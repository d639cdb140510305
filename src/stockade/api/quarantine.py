"""Quarantine as the controller does it: on the node itself, or recorded for the enforcers.

- :class:`NodeQuarantine` (single-node mode: the controller runs on the node, ``--lab-state``
  given): the firewall's ``quarantine_workload`` cuts every address of the workload with nft in the
  node's network namespace, at once; the workload keeps running.
- :class:`RecordedQuarantine` (no node access): the quarantine is recorded in the store
  (``firewall_quarantine``, without addresses) and a ``firewall.quarantine_pending`` event says it
  awaits an enforcer. Enforcers started with ``--controller`` follow ``GET
  /api/v1/agents/config`` (:mod:`stockade.api.agent_config`: the quarantine set by version), apply it
  on their node and report ``firewall.quarantined``, which marks it applied (:func:`mark_applied`).

Both list and lift through the same table, so ``GET /api/v1/quarantine`` shows either.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from stockade.firewall.policy.store import (
    clear_quarantine,
    mark_quarantine_applied,
    quarantined,
    set_quarantine,
)
from stockade.model import Event, ResourceRef, Severity, UsageError
from stockade.store import Store
from stockade.store.records import record_events

if TYPE_CHECKING:
    from stockade.firewall.policy.endpoints import Directory


class Quarantine(Protocol):
    mode: str  # "node" or "recorded"

    def isolate(self, workload: str, reason: str) -> None:
        """Quarantine ``namespace/name``; a StockadeError when it cannot."""

    def lift(self, workload: str) -> None:
        """Lift the quarantine of ``namespace/name``."""


def _ref(workload: str) -> ResourceRef:
    namespace, _, name = workload.rpartition("/")
    return ResourceRef(kind="pod", name=name, namespace=namespace or None)


class NodeQuarantine:
    """nft in the node namespace ``node``, for the workloads of ``directory``."""

    mode = "node"

    def __init__(self, store: Store, node: str, directory: Directory) -> None:
        self.store = store
        self.node = node
        self.directory = directory
        self._lock = threading.Lock()  # the worker and API requests may both change nft

    def _target(self, workload: str) -> Any:
        namespace, _, name = workload.rpartition("/")
        for endpoint in self.directory.endpoints:
            if endpoint.name == name and (endpoint.namespace or "") == namespace:
                return endpoint
        raise UsageError(f"no workload {workload!r} on this node")

    def isolate(self, workload: str, reason: str) -> None:
        # nft's side of the firewall is loaded by single-node mode only, when it acts
        from stockade.firewall.enforce.actions import quarantine_workload

        target = self._target(workload)
        with self._lock:
            quarantine_workload(self.store, self.node, self.directory, target, reason=reason)

    def lift(self, workload: str) -> None:
        from stockade.firewall.enforce.actions import quarantine_workload

        target = self._target(workload)
        with self._lock:
            quarantine_workload(self.store, self.node, self.directory, target, lift=True)


class RecordedQuarantine:
    """The store only: the enforcers apply what is recorded."""

    mode = "recorded"

    def __init__(self, store: Store) -> None:
        self.store = store

    def isolate(self, workload: str, reason: str) -> None:
        set_quarantine(self.store, workload, [], reason)
        record_events(
            self.store,
            [
                Event(
                    kind="firewall.quarantine_pending",
                    message=f"{workload} quarantined: {reason}; awaits an enforcer to apply it",
                    severity=Severity.HIGH,
                    source="controller",
                    resource=_ref(workload),
                    data={"reason": reason, "applied": False},
                    action="quarantine",
                )
            ],
        )

    def lift(self, workload: str) -> None:
        clear_quarantine(self.store, workload)
        record_events(
            self.store,
            [
                Event(
                    kind="firewall.quarantine_lifted",
                    message=f"quarantine of {workload} lifted",
                    severity=Severity.LOW,
                    source="controller",
                    resource=_ref(workload),
                    data={"applied": False},
                )
            ],
        )


def _iso(at: datetime) -> str:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()


def listing(store: Store) -> list[dict[str, Any]]:
    """Quarantined workloads, oldest first: workload, addresses, reason, since, applied."""
    rows = sorted(quarantined(store), key=lambda r: (_iso(r["since"]), r["workload"]))
    return [
        {
            "workload": r["workload"],
            "addresses": list(r["addresses"]),
            "reason": r["reason"],
            "since": _iso(r["since"]),
            # a recorded quarantine carries no addresses until an enforcer applies it
            "applied": bool(r["addresses"]),
        }
        for r in rows
    ]


def is_quarantined(store: Store, workload: str) -> dict[str, Any] | None:
    for r in quarantined(store):
        if r["workload"] == workload:
            return r
    return None


def mark_applied(store: Store, events: list[Event]) -> int:
    """Mark recorded quarantines applied from the ``firewall.quarantined`` events enforcers
    reported; returns how many were marked."""
    marked = 0
    for event in events:
        ref = event.resource
        if event.kind != "firewall.quarantined" or ref is None or ref.kind != "pod":
            continue
        addresses = event.data.get("addresses") if isinstance(event.data, dict) else None
        if not isinstance(addresses, list) or not addresses:
            continue
        workload = f"{ref.namespace or ''}/{ref.name}"
        marked += mark_quarantine_applied(store, workload, [str(a) for a in addresses][:64])
    return marked
