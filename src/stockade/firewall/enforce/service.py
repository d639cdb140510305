"""The enforcer as a service: enforce the policy on a node until stopped, re-applying it when the
stored version changes, with events written in batches and learned connections stored; with a
controller, its recorded quarantines and its firewall policy followed by version (:mod:`.follow`);
with a live identity directory (the Kubernetes API), the workloads followed too."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stockade.firewall.enforce.enforcer import Enforcer
from stockade.firewall.enforce.nft import Settings
from stockade.firewall.policy.endpoints import Directory
from stockade.firewall.policy.files import load_files, parse_texts
from stockade.firewall.policy.model import Policy
from stockade.firewall.policy.store import load_policy, record_learned
from stockade.identity import Directory as Identities
from stockade.model import Event
from stockade.model.errors import ConfigError
from stockade.store import Store
from stockade.store.records import record_events
from stockade.store.writer import EventWriter

if TYPE_CHECKING:
    from stockade.firewall.enforce.follow import ControllerLink
    from stockade.network.waf import WafEngine


@dataclass(frozen=True, slots=True, kw_only=True)
class Hooks:
    """What the caller is told (the CLI prints it)."""

    ready: Callable[[Policy], None] = lambda policy: None
    reloading: Callable[[int], None] = lambda version: None
    # every batch of events before it is stored (the CLI sends them to the controller)
    events: Callable[[list[Event]], None] = lambda batch: None


def stored_policy(store: Store) -> tuple[Policy, int]:
    """The applied policy and its version; a ConfigError when none was applied."""
    row = load_policy(store)
    if row is None:
        raise ConfigError("no firewall policy applied yet (stockade policy apply FILE)")
    return parse_texts([("stored policy", row[0])]), row[1]


def serve(
    store: Store,
    node: str,
    directory: Directory,
    settings: Settings,
    *,
    policy_files: list[Path] | None = None,
    duration: float | None = None,
    hooks: Hooks | None = None,
    waf_engine: WafEngine | None = None,
    controller: ControllerLink | None = None,
    follow_every: float = 2.0,
    identities: Identities | None = None,
    network_policies: Any = None,
) -> dict[str, Any]:
    """Enforce ``policy_files`` (fixed) or the stored policy (followed by version) in ``node``'s
    namespace until ``duration`` passes or a signal stops it; returns the inspector's counters.
    With ``controller``, its recorded quarantines are applied and lifted as they change, and its
    firewall policy, once it has one, replaces the local one (local changes are then ignored).
    With ``identities`` (kept current by a watch), the rules are recompiled for the new
    workloads when it changes, checked at every poll. With ``network_policies`` (a Kubernetes
    ``ApiClient``) and ``controller``, each quarantine is also a deny-all NetworkPolicy
    (:mod:`.clusterpolicy`), written and deleted with the nft side.
    Every rule made is removed on the way out (quarantines stay: they are state, not policy)."""
    from stockade.firewall.enforce.follow import (
        ConfigFetcher,
        ConfigFollower,
        PolicyFollower,
        QuarantineFollower,
    )
    from stockade.network.dlp.engine import DlpEngine

    hooks = hooks or Hooks()
    if policy_files:
        policy, version = load_files(policy_files), None
    elif controller is not None and load_policy(store) is None:
        # nothing local: manage nothing until the controller's policy arrives
        policy, version = parse_texts([]), None
    else:
        policy, version = stored_policy(store)
    current = {"version": version}

    follower: ConfigFollower | None = None
    quarantines: QuarantineFollower | None = None
    seen = {"identities": identities.version if identities is not None else 0}

    def follow_workloads() -> None:
        if identities is None or identities.version == seen["identities"]:
            return
        seen["identities"] = identities.version
        fresh = Directory.from_identities(identities)
        enforcer.rebase(fresh)
        if quarantines is not None:
            quarantines.directory = fresh
            if quarantines.wanted is not None:  # a listed workload may have just arrived
                quarantines.apply(quarantines.wanted)

    def poll() -> Policy | None:
        follow_workloads()
        if follower is not None:
            follower.apply()
            if follower.policy is not None and follower.policy.version is not None:
                return None  # the controller's policy is in force: it alone changes it
        if policy_files:
            return None
        row = load_policy(store)
        if row is None or row[1] == current["version"]:
            return None
        current["version"] = row[1]
        hooks.reloading(row[1])
        return parse_texts([("stored policy", row[0])])

    def sink(batch: list[Event]) -> int:
        hooks.events(batch)
        return record_events(store, batch)

    writer = EventWriter(sink)
    enforcer = Enforcer(
        node,
        policy,
        directory,
        settings,
        emit=writer.put,
        learn=lambda rows: record_learned(store, rows),
        dlp_engine=DlpEngine(),
        waf_engine=waf_engine,
    )
    fetcher = None
    if controller is not None:
        fetcher = ConfigFetcher(controller, every=follow_every)
        cluster = None
        if network_policies is not None:
            from stockade.firewall.enforce.clusterpolicy import ClusterQuarantine

            cluster = ClusterQuarantine(network_policies, node=node, emit=writer.put)
        quarantines = QuarantineFollower(store, node, directory, emit=writer.put, cluster=cluster)
        follower = ConfigFollower(
            fetcher,
            quarantines,
            PolicyFollower(node, enforcer.update, emit=writer.put),
        )
    writer.start()
    if fetcher is not None:
        fetcher.start()
    try:
        enforcer.run(
            duration=duration,
            poll=poll,
            poll_every=min(2.0, follow_every),
            ready=lambda: hooks.ready(policy),
        )
    finally:
        if fetcher is not None:
            fetcher.stop()
        writer.stop()
    # the inspector's counts, and the verdict loop's (packets judged in Python, answered in C)
    return {
        **enforcer.inspector.stats,
        **{f"queue_{k}": v for k, v in enforcer.queue_counts.items()},
    }
