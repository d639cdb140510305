"""What the agents follow from the controller, by version: the one place that knows the kinds of
configuration (``GET /api/v1/agents/config``).

Each kind is stamped from one sequence when it changes (:mod:`stockade.store.versions`), so an
agent that has version N is sent exactly the kinds stamped after N, and ``unchanged`` when none
is. An agent without a version (just started), or with one the controller never gave (a store
restored from a backup), gets every kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stockade.admission.tables import load_policy_text
from stockade.api import quarantine as quarantines
from stockade.firewall.policy.store import load_policy
from stockade.model.redact import redact
from stockade.runtime.tables import load_applied
from stockade.store import Store
from stockade.store.versions import config_versions_of


def _quarantine(store: Store) -> Any:
    return [
        {"workload": r["workload"], "reason": r["reason"], "since": r["since"]}
        for r in quarantines.listing(store)
    ]


def _firewall_policy(store: Store) -> Any:
    """The policy in force as stored (its DLP rules and TLS requirements are part of it)."""
    row = load_policy(store)
    return None if row is None else {"name": "default", "version": row[1], "yaml": row[0]}


def _admission_policy(store: Store) -> Any:
    """The admission policy applied through the API (``admission serve --controller`` follows),
    with the version it was stamped with."""
    text = load_policy_text(store)
    if text is None:
        return None
    version = config_versions_of(store).get("admission", 0)
    return {"name": "default", "version": version, "yaml": text}


def _runtime_profiles(store: Store) -> Any:
    """The process profiles applied through the API (``runtime watch --controller`` follows)."""
    found = load_applied(store)
    return None if found is None else {"version": found[1], "yaml": found[0]}


# kind -> its section of the answer (None: nothing to follow yet). The quarantine set is always
# sent on a full answer, even empty: an enforcer lifts what is no longer listed.
KINDS: dict[str, Callable[[Store], Any]] = {
    "quarantine": _quarantine,
    "policy": _firewall_policy,
    "admission": _admission_policy,
    "runtime_profiles": _runtime_profiles,
}


def agent_config(store: Store, since: int | None) -> dict[str, Any]:
    """``{"version": N, kind: section, ...}`` with the kinds changed after ``since``, or
    ``{"version": N, "unchanged": true}``."""
    # the versions first: a change committed before the sections are read is sent again on the
    # next request, never missed
    stamps = config_versions_of(store)
    version = max(stamps.values(), default=0)
    if since == version:
        return {"version": version, "unchanged": True}
    after = -1 if since is None or since > version else since
    answer: dict[str, Any] = {"version": version}
    for kind, section in KINDS.items():
        if stamps.get(kind, 0) > after:
            value = section(store)
            if value is not None or kind == "quarantine":
                answer[kind] = value
    out: dict[str, Any] = redact(answer)
    return out
