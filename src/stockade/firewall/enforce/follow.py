"""The enforcer following the controller's configuration by version: the recorded quarantines
and the firewall policy.

A fetcher thread asks ``GET /api/v1/agents/config?since=V`` every few seconds (so a slow or
unreachable controller never holds up packet verdicts); the answer carries only the kinds changed
after V. The enforcer's poll hook calls :meth:`ConfigFollower.apply`, which hands each kind to its
follower:

- :class:`QuarantineFollower` quarantines the workloads newly listed and lifts those no longer
  listed, with ``firewall.quarantined`` / ``firewall.quarantine_lifted`` events as the local
  command makes them;
- :class:`PolicyFollower` swaps the policy in through the enforcer's live reload (the rules
  replaced atomically; the kernel refusing them keeps the previous ones) and reports
  ``firewall.policy_applied`` or ``firewall.policy_rejected`` with the policy's version.

Errors are logged once per streak; enforcement goes on regardless.

The quarantines this follower applied are the ones whose local reason starts with ``controller:``
(so a restarted enforcer still lifts them); a quarantine made on the node with ``stockade
quarantine`` is left alone unless the controller lists the same workload.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

import httpx

from stockade.firewall.enforce.actions import quarantine_workload
from stockade.firewall.policy.endpoints import Directory
from stockade.firewall.policy.files import parse_texts
from stockade.firewall.policy.model import Policy
from stockade.firewall.policy.store import policy_state_event, quarantined
from stockade.model import Event, Severity, StockadeError
from stockade.model.agent_config import ConfigAnswer, PolicyDocument, parse_config
from stockade.store import Store

if TYPE_CHECKING:
    from stockade.firewall.enforce.clusterpolicy import ClusterQuarantine

log = logging.getLogger(__name__)


class ControllerLink(Protocol):
    """Where the controller is and how to reach it (``events.reporter.ControllerLink`` is one; the
    firewall does not import the event platform, the CLI hands it over)."""

    url: str
    timeout: float

    def client(self) -> httpx.Client: ...


CONFIG_PATH = "/api/v1/agents/config"
PREFIX = "controller: "


class ConfigFetcher:
    """Fetch the configuration in a thread; ``take`` hands over the newest answer once."""

    def __init__(
        self,
        link: ControllerLink,
        *,
        every: float = 2.0,
        deliver: Callable[[ConfigAnswer], None] | None = None,
    ) -> None:
        self.link = link
        self.every = every
        # with ``deliver``, each answer is handed over from the fetching thread and its version
        # taken as applied (for followers that need no loop of their own: ``admission serve``)
        self.deliver = deliver
        self.since: int | None = None  # the version applied (set by the follower)
        self._answer: ConfigAnswer | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._failing = False
        self._client = link.client()
        self._thread = threading.Thread(target=self._run, name="stockade-config", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started (a fetcher driven by fetch_once is not)
            self._thread.join(self.link.timeout + 1)
        self._client.close()

    def take(self) -> ConfigAnswer | None:
        with self._lock:
            answer, self._answer = self._answer, None
        return answer

    def fetch_once(self) -> None:
        params = {} if self.since is None else {"since": str(self.since)}
        try:
            response = self._client.get(self.link.url.rstrip("/") + CONFIG_PATH, params=params)
            if response.status_code != 200:
                raise ValueError(f"the controller answered {response.status_code}")
            answer = parse_config(response.json())
        except (httpx.HTTPError, OSError, ValueError) as exc:
            if not self._failing:  # once per streak, not every interval
                log.error(
                    "cannot fetch the configuration from %s (%s); enforcing what is in force",
                    self.link.url,
                    str(exc) or type(exc).__name__,
                )
            self._failing = True
            return
        if self._failing:
            log.warning("configuration from %s fetched again", self.link.url)
        self._failing = False
        if self.deliver is not None:
            self.deliver(answer)
            self.since = answer.version
            return
        with self._lock:
            self._answer = answer

    def _run(self) -> None:
        while not self._stop.is_set():
            self.fetch_once()
            self._stop.wait(self.every)


class QuarantineFollower:
    """Apply the controller's quarantine set on ``node``."""

    def __init__(
        self,
        store: Store,
        node: str,
        directory: Directory,
        emit: Callable[[Event], None],
        cluster: ClusterQuarantine | None = None,
    ) -> None:
        self.store = store
        self.node = node
        self.directory = directory
        self.emit = emit
        self.cluster = cluster  # the NetworkPolicy half, set and lifted with the nft half
        self._elsewhere: set[str] = set()  # listed workloads not on this node (said once)
        self.wanted: dict[str, str] | None = None  # the controller's last list

    def owned(self) -> dict[str, str]:
        """The quarantines on this node that came from the controller: {workload: reason}."""
        return {
            r["workload"]: r["reason"][len(PREFIX) :]
            for r in quarantined(self.store)
            if r["reason"].startswith(PREFIX)
        }

    def apply(self, wanted: dict[str, str]) -> bool:
        """Quarantine and lift to match ``wanted``; False when a change failed (retried)."""
        self.wanted = dict(wanted)
        ok = True
        have = self.owned()
        for workload in sorted(set(have) - set(wanted)):
            ok &= self._change(workload, lift=True)
        for workload in sorted(set(wanted) - set(have)):
            ok &= self._change(workload, reason=wanted[workload])
        if self.cluster is not None:
            labels = {
                f"{e.namespace}/{e.name}": e.labels
                for e in self.directory.endpoints
                if e.name and not e.external and f"{e.namespace}/{e.name}" in wanted
            }
            ok &= self.cluster.sync(set(wanted), labels)
        return ok

    def _change(self, workload: str, *, lift: bool = False, reason: str = "") -> bool:
        namespace, _, name = workload.rpartition("/")
        target = next(
            (
                e
                for e in self.directory.endpoints
                if e.name == name and (e.namespace or "") == namespace
            ),
            None,
        )
        if target is None:
            if workload not in self._elsewhere:
                log.info("quarantine of %s: not a workload of this node", workload)
                self._elsewhere.add(workload)
            return True
        try:
            quarantine_workload(
                self.store,
                self.node,
                self.directory,
                target,
                lift=lift,
                reason=PREFIX + reason,
                emit=self.emit,
            )
        except Exception as exc:  # nft or the store: retried on the next answer
            log.error(
                "cannot %s %s: %s",
                "lift the quarantine of" if lift else "quarantine",
                workload,
                exc,
            )
            return False
        return True


class PolicyFollower:
    """Swap the controller's firewall policy in with ``update`` (the enforcer's live reload)."""

    def __init__(
        self, node: str, update: Callable[[Policy], None], emit: Callable[[Event], None]
    ) -> None:
        self.node = node
        self.update = update
        self.emit = emit
        self.version: int | None = None  # the controller's policy in force here, once one is
        self._seen: PolicyDocument | None = None

    def apply(self, doc: PolicyDocument, config_version: int) -> None:
        """Apply ``doc`` once: a policy that does not parse, or that the kernel refuses, is
        reported and not retried (the previous one stays) until the controller has a new one."""
        if doc == self._seen:  # sent again with another kind's change
            return
        self._seen = doc
        data = {"node": self.node, "version": doc.version, "config_version": config_version}
        try:
            policy = parse_texts([(f"controller policy version {doc.version}", doc.text)])
            self.update(policy)
        except Exception as exc:  # a bad document, DNS or nft: the enforcer keeps what it has
            error = str(exc) if isinstance(exc, StockadeError) else f"{type(exc).__name__}: {exc}"
            log.error("controller policy version %d not applied: %s", doc.version, error)
            self.emit(
                Event(
                    kind="firewall.policy_rejected",
                    message=(
                        f"policy version {doc.version} from the controller not applied on "
                        f"{self.node}; the previous one stays: {error}"
                    ),
                    severity=Severity.HIGH,
                    source="enforcer",
                    node=self.node,
                    data={**data, "error": error[:1000]},
                )
            )
            return
        self.version = doc.version
        state = policy_state_event(policy, doc.version)
        self.emit(
            replace(
                state,
                source="enforcer",
                node=self.node,
                message=f"{state.message} on {self.node} (from the controller)",
                data={**state.data, **data},
            )
        )


class ConfigFollower:
    """Hand each kind of the fetched configuration to its follower (from the enforcer's loop)."""

    def __init__(
        self,
        fetcher: ConfigFetcher,
        quarantine: QuarantineFollower,
        policy: PolicyFollower | None = None,
    ) -> None:
        self.fetcher = fetcher
        self.quarantine = quarantine
        self.policy = policy

    def apply(self) -> None:
        answer = self.fetcher.take()
        if answer is None:
            return
        ok = True
        if answer.quarantine is not None:
            ok &= self.quarantine.apply(answer.quarantine)
        if answer.policy is not None and self.policy is not None:
            self.policy.apply(answer.policy, answer.version)
        # on a failure ask for everything again next time (the difference is retried)
        self.fetcher.since = answer.version if ok else None
