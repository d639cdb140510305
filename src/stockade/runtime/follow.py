"""``runtime watch --controller``: the process profiles applied at the controller put in force by
version, and what Discover learned sent up.

The configuration is fetched by the firewall's :class:`~stockade.firewall.enforce.follow.ConfigFetcher`
(one thread, ``GET /api/v1/agents/config?since=V``); the watch's loop hands each answer to
:meth:`ProfileFollower.apply`, which swaps the monitor's profiles at once and reports
``process.profiles_applied`` (or ``process.profiles_rejected``, the previous profiles staying,
for a document that does not parse). From the first applied version on, the controller alone
changes the watch's profiles: the local file is no longer re-read.

:class:`LearnedSender` posts the newest learned profiles from a thread of its own (the watch's
loop never waits on the network), when they changed, and once more when the watch stops.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from stockade.model import Event, Severity
from stockade.model.errors import ConfigError
from stockade.runtime.profile import Profiles, dump, parse_texts

if TYPE_CHECKING:
    from stockade.model.agent_config import ConfigAnswer, PolicyDocument

log = logging.getLogger(__name__)

SOURCE = "stockade.runtime"
LEARNED_PATH = "/api/v1/runtime-profiles/learned"


class ProfileFollower:
    """Put the controller's profiles in force through ``install(profiles, version)`` (once per
    version)."""

    def __init__(
        self,
        install: Callable[[Profiles, int], None],
        emit: Callable[[list[Event]], None],
        node: str,
    ) -> None:
        self.install = install
        self.emit = emit
        self.node = node
        self.version: int | None = None  # the controller's version in force here, once one is
        self._seen: PolicyDocument | None = None

    def apply(self, answer: ConfigAnswer) -> None:
        doc = answer.runtime_profiles
        if doc is None or doc == self._seen or doc.version == self.version:
            return  # unchanged, or the version in force sent again with another kind
        self._seen = doc
        data = {"version": doc.version, "config_version": answer.version, "node": self.node}
        try:
            profiles = parse_texts([(f"controller profiles version {doc.version}", doc.text)])
        except ConfigError as exc:
            log.error("controller profiles version %d not applied: %s", doc.version, exc)
            self.emit(
                [
                    Event(
                        kind="process.profiles_rejected",
                        message=f"process profiles version {doc.version} from the controller "
                        f"not applied; the previous ones stay: {exc}",
                        severity=Severity.HIGH,
                        source=SOURCE,
                        node=self.node or None,
                        data={**data, "error": str(exc)[:1000]},
                    )
                ]
            )
            return
        self.install(profiles, doc.version)
        self.version = doc.version
        self.emit([applied_event(profiles, source="controller", **data)])


def applied_event(profiles: Profiles, *, source: str, **data: object) -> Event:
    """``process.profiles_applied``: the canonical YAML's sha256 and each profile's mode and size
    (what ``profile apply`` and a watch following the controller report)."""
    text = dump(profiles)
    where = f" (version {data['version']} from the controller)" if source == "controller" else ""
    node = data.get("node")
    return Event(
        kind="process.profiles_applied",
        message=f"{len(profiles.spec.profiles)} process profiles applied{where}",
        source=SOURCE,
        node=str(node) if node else None,
        data={
            **data,
            "from": source,
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "profiles": {
                p.name: {"mode": p.mode, "zeroDrift": p.zero_drift, "processes": len(p.processes)}
                for p in profiles.spec.profiles
            },
        },
        action="apply",
    )


# Posts one payload to the controller's ``path``, trying ``attempts`` times; True once taken
# (``stockade.events.upload.upload`` bound to the agent's link, handed over by the CLI: the
# runtime pillar does not import the event platform).
Upload = Callable[[str, dict[str, str], int], bool]


class LearnedSender:
    """Send the newest learned profiles to the controller, from a thread."""

    def __init__(
        self, upload: Upload, agent: str, *, every: float = 2.0, timeout: float = 10.0
    ) -> None:
        self.upload = upload
        self.timeout = timeout  # how long ``close`` waits for a post under way
        self.agent = agent
        self.every = every
        self.sent = 0  # uploads the controller took
        self._pending: str | None = None
        self._last: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stockade-learned", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def offer(self, profiles: Profiles) -> None:
        with self._lock:
            self._pending = dump(profiles)

    def close(self) -> None:
        """Stop the thread, then send what is still new (the watch is ending)."""
        self._stop.set()
        self._thread.join(self.timeout + 1)
        self._send(attempts=2)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._send(attempts=1)

    def _send(self, *, attempts: int) -> None:
        with self._lock:
            text = self._pending
        if text is None or text == self._last:
            return
        payload = {"agent": self.agent, "yaml": text}
        if self.upload(LEARNED_PATH, payload, attempts):
            self._last = text
            self.sent += 1
