"""The enforcer process: apply the compiled rules in the node's namespace, answer NFQUEUE verdicts
from the first bytes of connections, re-apply when the stored policy changes, and remove every rule
it made when it stops."""

from __future__ import annotations

import logging
import select
import signal
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from stockade.model import Event
from stockade.model.errors import EnforcementError
from stockade.network.enforce import marks, nft
from stockade.network.enforce.inspector import Inspector, Learned
from stockade.network.policy.endpoints import Directory, resolve
from stockade.network.policy.model import Policy

if TYPE_CHECKING:
    from stockade.network.dlp.engine import DlpEngine

log = logging.getLogger("stockade.enforcer")


def _dns_names(policy: Policy) -> list[str]:
    return [n for g in policy.spec.groups for n in g.selector.dns]


class Enforcer:
    def __init__(
        self,
        node: str,
        policy: Policy,
        directory: Directory,
        settings: nft.Settings,
        *,
        emit: Callable[[Event], None],
        learn: Callable[[list[dict[str, Any]]], None],
        dlp_engine: DlpEngine | None = None,
    ) -> None:
        self.node = node
        self.settings = settings
        self.directory = directory
        self._emit = emit
        self._learn_sink = learn
        self._learned: list[dict[str, Any]] = []
        self._dlp = dlp_engine
        self.inspector = self._inspector(policy)
        self._stop = False
        self.errors = 0

    def _inspector(self, policy: Policy) -> Inspector:
        resolved = resolve(_dns_names(policy), netns=self.node)
        self.ruleset = nft.compile_ruleset(policy, self.directory.endpoints, resolved)
        return Inspector(
            policy,
            self.directory,
            resolved=resolved,
            dlp_engine=self._dlp,
            depth=self.settings.depth,
            emit=self._emit,
            learn=self._on_learn,
        )

    def _on_learn(self, item: Learned) -> None:
        self._learned.append(
            {
                "src": asdict(item.src),
                "dst": asdict(item.dst),
                "port": item.port,
                "l4": item.l4,
                "app": item.app,
            }
        )

    def update(self, policy: Policy) -> None:
        """Swap in a new policy: new inspector, rules replaced atomically."""
        inspector = self._inspector(policy)
        nft.apply(self.node, self.ruleset, self.settings)
        self.inspector = inspector

    def stop(self, *_: object) -> None:
        self._stop = True

    def _verdict(self, pkt: Any) -> None:
        try:
            _, mark = self.inspector.packet(pkt.get_payload())
        except Exception:  # a bug must not stop enforcement: the fail mode decides
            self.errors += 1
            if self.errors == 1:
                log.exception(
                    "verdict failed; applying the fail-%s setting",
                    "open" if self.settings.fail_open else "closed",
                )
            mark = 0 if self.settings.fail_open else marks.BLOCK
        if mark:
            pkt.set_mark(pkt.get_mark() | mark)  # keep other software's bits (kube-proxy's 0x4000)
        pkt.accept()  # a block is carried out by the post chain (reset/drop) from the mark

    def run(
        self,
        *,
        duration: float | None = None,
        poll: Callable[[], Policy | None] | None = None,
        poll_every: float = 2.0,
        ready: Callable[[], None] | None = None,
    ) -> None:
        from netfilterqueue import NetfilterQueue

        from stockade.network.capture.live import netns

        with netns(
            self.node
        ):  # the netlink socket is opened by the constructor: inside the namespace
            nfq = NetfilterQueue()
            try:
                nfq.bind(self.settings.queue, self._verdict, max_len=4096)
            except OSError as exc:
                raise EnforcementError(
                    f"cannot bind NFQUEUE {self.settings.queue} in {self.node} (another enforcer running?): {exc}"
                ) from exc
            sock_fd = nfq.get_fd()
        old = {s: signal.signal(s, self.stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            nft.apply(self.node, self.ruleset, self.settings)
            if ready is not None:
                ready()
            end = None if duration is None else time.monotonic() + duration
            next_poll = time.monotonic() + poll_every
            while not self._stop and (end is None or time.monotonic() < end):
                readable, _, _ = select.select([sock_fd], [], [], 0.2)
                if readable:
                    nfq.run(block=False)
                if self._learned:
                    batch, self._learned = self._learned, []
                    self._learn_sink(batch)
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + poll_every
                    self.inspector.expire()
                    new = poll() if poll is not None else None
                    if new is not None:
                        self.update(new)
        finally:
            nfq.unbind()
            for s, h in old.items():
                signal.signal(s, h)
            nft.remove(self.node)
            if self._learned:
                self._learn_sink(self._learned)
