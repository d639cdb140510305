"""Response actions callable from code (automated responses) and from the CLI."""

from __future__ import annotations

from collections.abc import Callable

from stockade.firewall.enforce import quarantine
from stockade.firewall.policy.endpoints import Directory
from stockade.firewall.policy.engine import Endpoint
from stockade.firewall.policy.store import clear_quarantine, set_quarantine
from stockade.model import Event, ResourceRef, Severity
from stockade.store import Store
from stockade.store.records import record_events


def quarantine_workload(
    store: Store,
    node: str,
    directory: Directory,
    target: Endpoint,
    *,
    lift: bool = False,
    reason: str = "manual",
    emit: Callable[[Event], None] | None = None,
) -> list[str]:
    """Isolate (or release) every address of ``target``'s workload; records the state and an event
    (stored, or given to ``emit``: the enforcer's writer, which also reports it)."""
    addrs = (
        [
            e.ip
            for e in directory.endpoints
            if e.name == target.name and e.namespace == target.namespace
        ]
        if target.name
        else [target.ip]
    )
    key = f"{target.namespace}/{target.name}" if target.name else target.ip
    ref = (
        ResourceRef(kind="pod", name=target.name, namespace=target.namespace or None)
        if target.name
        else ResourceRef(kind="external", name=target.ip)
    )
    if lift:
        quarantine.lift(node, addrs)
        clear_quarantine(store, key)
        event = Event(
            kind="firewall.quarantine_lifted",
            message=f"quarantine of {key} lifted",
            severity=Severity.LOW,
            source="enforcer",
            resource=ref,
            data={"addresses": addrs},
        )
    else:
        quarantine.isolate(node, addrs)
        set_quarantine(store, key, addrs, reason)
        event = Event(
            kind="firewall.quarantined",
            message=f"{key} quarantined: {reason}",
            severity=Severity.HIGH,
            source="enforcer",
            resource=ref,
            data={"addresses": addrs, "reason": reason},
        )
    if emit is None:
        record_events(store, [event])
    else:
        emit(event)
    return addrs
