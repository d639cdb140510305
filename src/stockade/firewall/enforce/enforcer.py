"""The enforcer process: apply the compiled rules in the node's namespace, answer NFQUEUE verdicts
from the first bytes of connections, re-apply when the stored policy changes, and remove every rule
it made when it stops."""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from stockade.firewall.enforce import marks, nft, tcfilter
from stockade.firewall.enforce.answer import Injector
from stockade.firewall.enforce.ends import EndLog
from stockade.firewall.enforce.fastpath import (
    DATA_COPY,
    PAIR_ALLOW,
    PAIR_CLEAN,
    PAIR_CLEAN_SHORT,
    PAIR_HTTP,
    PAIR_SCAN,
)
from stockade.firewall.enforce.inspector import Inspector, Learned
from stockade.firewall.policy.endpoints import Directory, resolve
from stockade.firewall.policy.model import Policy
from stockade.model import Event, Severity
from stockade.model.errors import EnforcementError

if TYPE_CHECKING:
    from stockade.firewall.enforce.fastpath import Queue
    from stockade.network.dlp.engine import DlpEngine
    from stockade.network.waf import WafEngine

log = logging.getLogger("stockade.enforcer")


MAX_PENDING_LEARNED = 10_000  # learned connections kept while the store cannot take them
# Allocations before a young collection (the default is 700): a new connection's first segment
# allocates a few hundred short-lived containers that reference counting frees; collecting every
# few connections walked the live flows over and over (about 8% of the handler's time per new
# connection in benchmarks/firewall_verdict.py). Cyclic garbage still goes, a little later.
YOUNG_COLLECTION_AFTER = 10_000


def quiet_collector() -> tuple[int, int, int]:
    """For the verdict loop: everything loaded so far (modules, the DLP engine, the policy) lives
    as long as the process, so it goes out of the collector's sight (a full collection no longer
    walks it on a packet's path: tens of milliseconds on a loaded 2-core node), and young
    collections run less often. Returns the thresholds :func:`restore_collector` puts back."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_AFTER, *before[1:])
    return before


def restore_collector(before: tuple[int, int, int]) -> None:
    gc.set_threshold(*before)
    gc.unfreeze()


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
        waf_engine: WafEngine | None = None,
    ) -> None:
        self.node = node
        self.settings = settings
        self.directory = directory
        self.generation = 1  # of the rules in force (see marks.GENERATION)
        self._emit = emit
        self._learn_sink = learn
        self._learned: list[dict[str, Any]] = []
        self._dlp = dlp_engine
        self._waf = waf_engine
        self.inspector, self.ruleset = self._inspector(policy)
        self._stop = False
        self.errors = 0
        self._retry_learned_at = 0.0
        self._injector: Injector | None = None
        self._queue: Queue | None = None
        self.queue_counts: dict[str, int] = {}  # of the last run (see fastpath.Queue.counts)
        self._poll_failing = False
        # pairs the compiled loop was told it may answer alone from an HTTP/1 request line,
        # for the kernel's sets (nft.OWN_SETS), with the generation of the rules they hold for;
        # the lock keeps a pair of one generation out of another's table
        self._own_pending: list[tuple[int, str, tuple[str, str, int]]] = []
        self._own_lock = threading.Lock()
        self._own_pending_lock = threading.Lock()
        self._own_on = False  # a classifier (which marks heads) runs: pairs are collected
        self.own_pairs = 0  # pairs given to the kernel (closing counts)
        # the pairs given under the rules in force, and the kernel's handle of the table they
        # went into: loaded again by another hand (same rules), the table gets them again
        self._own_given: dict[str, set[tuple[str, str, int]]] = {}
        self._own_table: int | None = None

    def _inspector(self, policy: Policy, generation: int | None = None) -> tuple[Inspector, str]:
        resolved = resolve(_dns_names(policy), netns=self.node)
        ruleset = nft.compile_ruleset(
            policy,
            self.directory.endpoints,
            resolved,
            log_group=self.settings.queue,
            generation=self.generation if generation is None else generation,
            depth=self.settings.depth,
        )
        inspector = Inspector(
            policy,
            self.directory,
            resolved=resolved,
            dlp_engine=self._dlp,
            waf_engine=self._waf,
            depth=self.settings.depth,
            emit=self._emit,
            learn=self._on_learn,
        )
        return inspector, ruleset

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
        """Swap in a new policy: new inspector, rules replaced atomically. If the kernel refuses the
        new rules, the old ones (and the old inspector) stay in force."""
        generation = self.generation % marks.GENERATIONS + 1  # connections decided before: again
        inspector, ruleset = self._inspector(policy, generation)
        with self._own_lock:  # the kernel's pairs go with the rules they were given under
            nft.apply(self.node, ruleset, self.settings)
            self.generation = generation
            self._own_given = {}
            self._own_table = None  # read again by the keeper
        previous, self.inspector, self.ruleset = self.inspector, inspector, ruleset
        previous.forget()  # it may be frozen (see run): its flows would never be collected
        if self._queue is not None:
            self._queue.forget()  # decisions remembered by the compiled loop were the old policy's

    def rebase(self, directory: Directory) -> None:
        """Swap in a new set of workloads (the identity seam changed): the same policy's rules
        recompiled with the new addresses, replaced atomically as :meth:`update` does."""
        previous, self.directory = self.directory, directory
        try:
            self.update(self.inspector.policy)
        except Exception:
            self.directory = previous  # the kernel refused: the old rules and workloads stay
            raise

    def _flush_learned(self) -> None:
        if not self._learned or time.monotonic() < self._retry_learned_at:
            return
        batch, self._learned = self._learned, []
        try:
            self._learn_sink(batch)
        except Exception:  # the store is away: keep the rows (bounded) and retry later
            log.exception("could not store %d learned connections; retrying", len(batch))
            self._learned = (batch + self._learned)[-MAX_PENDING_LEARNED:]
            self._retry_learned_at = time.monotonic() + 5.0

    def _check_policy(self, poll: Callable[[], Policy | None]) -> None:
        """Pick up a new policy. Failures are logged and retried; enforcement goes on meanwhile."""
        try:
            new = poll()
        except Exception as exc:
            if not self._poll_failing:  # once per streak, not every interval
                log.error("cannot read the policy (%s); enforcing the one in force", exc)
            self._poll_failing = True
            return
        self._poll_failing = False
        if new is None:
            return
        try:
            self.update(new)
        except Exception as exc:
            log.error("new policy not applied, the previous one stays in force: %s", exc)
            self._emit(
                Event(
                    kind="firewall.policy_rejected",
                    message=f"policy not applied on {self.node}; the previous one stays: {exc}",
                    severity=Severity.HIGH,
                    source="enforcer",
                    data={"node": self.node, "error": str(exc)},
                )
            )

    def stop(self, *_: object) -> None:
        self._stop = True

    def judge(self, payload: bytes, mark: int) -> tuple[int, bool]:
        """The bits to add to one queued packet's mark, and whether every later packet of its
        connection gets the same (the compiled loop then answers those itself; see fastpath.py).
        A clean segment's copy (``DATA_COPY``) is judged alike, but it passed already: no 403."""
        decided = False
        try:
            _, bits = self.inspector.packet(payload, mark)
            decided = self.inspector.decided
            reply = self.inspector.reply
            if mark & DATA_COPY and bits & marks.BLOCK:
                # the kernel's first look let through what a sensor blocks: a covered sensor
                # broader than clean.py's predicate. The event is out; later segments are held.
                log.error("a segment that passed as clean held what a sensor blocks")
            elif reply is not None and self._injector is not None:
                decided = False  # this packet alone is dropped quietly
                try:
                    self._injector.send(reply)  # a 403 to the client, a reset to the server
                    bits |= marks.QUIET
                except OSError as exc:  # the block stands; the client gets the plain reset
                    log.warning("could not send the 403 answer: %s", exc)
        except Exception:  # a bug must not stop enforcement: the fail mode decides
            self.errors += 1
            if self.errors == 1:
                log.exception(
                    "verdict failed; applying the fail-%s setting",
                    "open" if self.settings.fail_open else "closed",
                )
            bits, decided = self._fail_bits, False
        return bits, decided

    def _keep_classifier(self, classifier: tcfilter.Classifier, stop: threading.Event) -> None:
        """Attach the classifier, then to the interfaces of pods that start later, until ``stop``."""
        first = True
        while not stop.is_set() and not self._stop:
            try:
                classifier.sync()
                if first:
                    log.info(
                        "the kernel's first look is on %d interfaces", len(classifier.attached)
                    )
                    first = False
            except Exception:  # an optimisation only: segments wait for the enforcer without it
                log.exception("the classifier could not be kept attached")
            try:
                self._keep_own_pairs()
            except Exception:  # an optimisation only: heads take the trip without it
                log.exception("the kernel's pairs could not be kept")
            for _ in range(10):  # the pairs each 0.2 s, the interfaces each 2 s
                try:
                    self._give_own_pairs()
                except Exception:  # an optimisation only: heads take the trip without it
                    log.exception("the kernel's pairs could not be given")
                if stop.wait(0.2) or self._stop:
                    break

    def _classifier(self) -> tcfilter.Classifier | None:
        """The kernel's first look (clean.py) for this node, unless switched off
        (``STOCKADE_ENFORCER_CLEAN=0``) or not built (no clang)."""
        if os.environ.get("STOCKADE_ENFORCER_CLEAN", "1") == "0":
            log.info("the kernel's first look is switched off: every inspected segment waits")
            return None
        obj = tcfilter.program()
        if obj is None:
            return None
        log.info("the kernel's first look: clean segments of DLP-only connections pass at once")
        return tcfilter.Classifier(self.node, obj)

    def advise(self, client: bytes, server: bytes, port: int) -> int:
        """For the compiled loop: what it may answer alone between two ends (fastpath.PAIR_*).
        A pair it may answer from an HTTP/1 request line is also given to the kernel (see
        nft.OWN_SETS), whose classifier then lets the connection's head pass without a trip."""
        bits = self.inspector.fast_bits(client, server, port)
        if self._own_on and bits & PAIR_HTTP:
            kind = (
                "own_allow"
                if bits & PAIR_ALLOW
                else "own_scan_short"
                if bits & PAIR_SCAN and bits & PAIR_CLEAN and bits & PAIR_CLEAN_SHORT
                else "own_scan"
                if bits & PAIR_SCAN and bits & PAIR_CLEAN
                else None
            )
            if kind is not None and len(self._own_pending) < nft.OWN_SET_SIZE:
                pair = (socket.inet_ntoa(client), socket.inet_ntoa(server), port)
                with self._own_pending_lock:
                    self._own_pending.append((self.generation, kind, pair))
        return bits

    def _give_own_pairs(self) -> None:
        """Add the pending pairs of the rules in force to the kernel's sets (nft.OWN_SETS)."""
        if not self._own_pending:
            return
        with self._own_pending_lock:
            batch, self._own_pending = self._own_pending, []
        with self._own_lock:
            by_set: dict[str, list[tuple[str, str, int]]] = {}
            for generation, kind, pair in batch:
                if generation == self.generation:  # else the rules changed: asked again
                    by_set.setdefault(kind, []).append(pair)
            try:
                nft.add_own_pairs(self.node, by_set)
                self.own_pairs += sum(map(len, by_set.values()))
                for kind, pairs in by_set.items():
                    self._own_given.setdefault(kind, set()).update(pairs)
                if self._own_given and self._own_table is None:  # the table they went into
                    self._own_table = nft.table_handle(self.node)
            except EnforcementError as exc:  # a full set: those heads take the trip, no more
                log.warning("the kernel's pairs: %s", exc)

    def _keep_own_pairs(self) -> None:
        """The table loaded again by another hand (its handle changed; the same rules): the pairs
        given under them go into it again (nothing asks the enforcer for them again)."""
        with self._own_lock:
            if not self._own_given:  # nothing given under these rules yet: nothing to look at
                return
            handle = nft.table_handle(self.node)
            if handle is None or handle == self._own_table:
                return
            try:
                nft.add_own_pairs(self.node, {k: sorted(v) for k, v in self._own_given.items()})
            except EnforcementError as exc:
                log.warning("the kernel's pairs: %s", exc)
            self._own_table = handle

    @property
    def _fail_bits(self) -> int:
        return 0 if self.settings.fail_open else marks.BLOCK

    def run(
        self,
        *,
        duration: float | None = None,
        poll: Callable[[], Policy | None] | None = None,
        poll_every: float = 2.0,
        ready: Callable[[], None] | None = None,
    ) -> None:
        from stockade.firewall.enforce.fastpath import CompiledQueue, open_queue
        from stockade.network.capture.live import netns

        with netns(self.node):  # the netlink sockets are opened inside the namespace
            try:
                queue = open_queue(
                    self.settings.queue,
                    self.judge,
                    self._fail_bits,
                    advise=self.advise,
                    dlp_engine=self._dlp,
                    end=self.inspector.end_seen,
                )
            except OSError as exc:
                raise EnforcementError(
                    f"cannot bind NFQUEUE {self.settings.queue} in {self.node} (another enforcer running?): {exc}"
                ) from exc
            self._queue = queue
            ends: EndLog | None = None
            whole: EndLog | None = None  # the clean segments' copies, when the C loop reads them
            ends_in_c = False  # the C loop reads the ends too (Python sees those of its flows)
            copies = nft.copy_group(self.settings.queue)
            try:  # connection ends and clean segments copied by the kernel (see ends.py)
                if isinstance(queue, CompiledQueue):
                    whole = EndLog.whole(copies)
                    if not queue.read_copies(whole.fileno()):
                        whole.close()
                        whole = None
                ends = EndLog(self.settings.queue, None if whole is not None else copies)
                if whole is not None and isinstance(queue, CompiledQueue):
                    ends_in_c = queue.read_ends(ends.fileno())
            except EnforcementError as exc:
                log.warning("%s; flows of finished connections are freed when idle", exc)
            try:  # raw sockets for the 403 answers, opened in the node's namespace
                self._injector = Injector()
            except OSError as exc:
                log.warning("cannot answer blocked HTTP requests with a 403 (%s); resets only", exc)
        old = {s: signal.signal(s, self.stop) for s in (signal.SIGTERM, signal.SIGINT)}
        collector: tuple[int, int, int] | None = None
        classifier = self._classifier() if ends is not None else None
        self._own_on = classifier is not None  # given to the kernel once it is attached
        # the classifier is attached beside the loop (its first load takes a second or two):
        # enforcement starts at once, clean segments pass quietly once it is in place
        attached = threading.Event()
        keeper = None
        if classifier is not None:
            keeper = threading.Thread(
                target=self._keep_classifier,
                args=(classifier, attached),
                daemon=True,
                name="stockade-classifier",
            )
        try:
            nft.apply(self.node, self.ruleset, self.settings)
            if keeper is not None:
                keeper.start()
            collector = quiet_collector()
            if ready is not None:
                ready()
            end = None if duration is None else time.monotonic() + duration
            next_poll = time.monotonic() + poll_every
            while not self._stop and (end is None or time.monotonic() < end):
                # packets are answered inside serve(); it returns when the ends are readable
                woken_by = -1 if ends is None or ends_in_c else ends.fileno()
                if queue.serve(woken_by, 0.2) and ends is not None:
                    # Before the queue's packets (serve returns first): a clean segment's copy
                    # is read before the later segments of its direction held there. An end
                    # only ever frees its flow later (see END_GRACE).
                    for group, mark, copy in ends.packets():
                        if group == copies:
                            queue.copy(copy, mark)
                        else:
                            self.inspector.end_seen(copy)
                            queue.ended(copy)
                self._flush_learned()
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + poll_every
                    self.inspector.expire()
                    if poll is not None:
                        self._check_policy(poll)
        finally:
            if collector is not None:
                restore_collector(collector)
            self.queue_counts = queue.counts()
            if self.own_pairs:
                self.queue_counts["own_pairs"] = self.own_pairs
            self._own_on = False
            if ends is not None and ends.lost:
                self.queue_counts["copies_lost"] = ends.lost
            queue.close()
            self._queue = None
            if keeper is not None and keeper.is_alive():
                attached.set()  # stop keeping it attached, then take it off
                keeper.join(timeout=60)
            if classifier is not None:
                classifier.remove()
            if ends is not None:
                ends.close()
            if whole is not None:
                whole.close()
            if self._injector is not None:
                self._injector.close()
                self._injector = None
            for s, h in old.items():
                signal.signal(s, h)
            nft.remove(self.node)
            self._retry_learned_at = 0.0
            self._flush_learned()
