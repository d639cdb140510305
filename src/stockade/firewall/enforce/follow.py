"""The enforcer following the controller's configuration by version: the recorded quarantines.

A fetcher thread asks ``GET /api/v1/agents/config?since=V`` every few seconds (so a slow or
unreachable controller never holds up packet verdicts); the enforcer's poll hook calls
:meth:`QuarantineFollower.apply`, which quarantines the workloads newly listed and lifts those no
longer listed, with ``firewall.quarantined`` / ``firewall.quarantine_lifted`` events as the local
command makes them. Errors are logged once per streak; enforcement goes on regardless.

The quarantines this follower applied are the ones whose local reason starts with ``controller:``
(so a restarted enforcer still lifts them); a quarantine made on the node with ``stockade
quarantine`` is left alone unless the controller lists the same workload.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

import httpx

from stockade.firewall.enforce.actions import quarantine_workload
from stockade.firewall.policy.endpoints import Directory
from stockade.firewall.policy.store import quarantined
from stockade.model import Event
from stockade.store import Store

log = logging.getLogger(__name__)


class ControllerLink(Protocol):
    """Where the controller is and how to reach it (``events.reporter.ControllerLink`` is one; the
    firewall does not import the event platform, the CLI hands it over)."""

    url: str
    token: str
    timeout: float

    def verify(self) -> Any: ...


CONFIG_PATH = "/api/v1/agents/config"
PREFIX = "controller: "
MAX_LISTED = 10_000  # more quarantines than any node holds: an answer beyond is refused


def parse_config(answer: Any) -> tuple[int, dict[str, str] | None]:
    """(version, {workload: reason}) from the controller's answer; None when ``unchanged``.
    A ValueError when the answer is not what the controller sends."""
    if not isinstance(answer, dict) or not isinstance(answer.get("version"), int):
        raise ValueError("the configuration has no version")
    version = answer["version"]
    if answer.get("unchanged") is True:
        return version, None
    listed = answer.get("quarantine")
    if not isinstance(listed, list) or len(listed) > MAX_LISTED:
        raise ValueError("the configuration's quarantine is not a list")
    out: dict[str, str] = {}
    for item in listed:
        if not isinstance(item, dict) or not isinstance(item.get("workload"), str):
            raise ValueError("a quarantine entry without a workload")
        reason = item.get("reason")
        out[item["workload"][:400]] = (reason if isinstance(reason, str) else "")[:1000]
    return version, out


class ConfigFetcher:
    """Fetch the configuration in a thread; ``take`` hands over the newest answer once."""

    def __init__(self, link: ControllerLink, *, every: float = 2.0) -> None:
        self.link = link
        self.every = every
        self.since: int | None = None  # the version applied (set by the follower)
        self._answer: tuple[int, dict[str, str] | None] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._failing = False
        self._client = httpx.Client(
            verify=link.verify(),
            headers={"Authorization": f"Bearer {link.token}"},
            timeout=httpx.Timeout(link.timeout, connect=min(5.0, link.timeout)),
        )
        self._thread = threading.Thread(target=self._run, name="stockade-config", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.link.timeout + 1)
        self._client.close()

    def take(self) -> tuple[int, dict[str, str] | None] | None:
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
        with self._lock:
            self._answer = answer

    def _run(self) -> None:
        while not self._stop.is_set():
            self.fetch_once()
            self._stop.wait(self.every)


class QuarantineFollower:
    """Apply the controller's quarantine set on ``node`` (called from the enforcer's loop)."""

    def __init__(
        self,
        store: Store,
        node: str,
        directory: Directory,
        fetcher: ConfigFetcher,
        emit: Callable[[Event], None],
    ) -> None:
        self.store = store
        self.node = node
        self.directory = directory
        self.fetcher = fetcher
        self.emit = emit
        self._elsewhere: set[str] = set()  # listed workloads not on this node (said once)

    def owned(self) -> dict[str, str]:
        """The quarantines on this node that came from the controller: {workload: reason}."""
        return {
            r["workload"]: r["reason"][len(PREFIX) :]
            for r in quarantined(self.store)
            if r["reason"].startswith(PREFIX)
        }

    def apply(self) -> None:
        answer = self.fetcher.take()
        if answer is None:
            return
        version, wanted = answer
        if wanted is None:  # unchanged
            return
        ok = True
        have = self.owned()
        for workload in sorted(set(have) - set(wanted)):
            ok &= self._change(workload, lift=True)
        for workload in sorted(set(wanted) - set(have)):
            ok &= self._change(workload, reason=wanted[workload])
        # on a failure ask for everything again next time (the difference is retried)
        self.fetcher.since = version if ok else None

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
