"""The node agent: one process per node that follows the node's pods from the identity directory
and keeps four jobs going for them, each in its own thread:

- **pods**: on every directory change (and every ``rescan_every`` seconds, for a namespace that
  appears after its pod's address), the local pods' host-side interfaces are found again
  (:mod:`.interfaces`); a changed set bumps a generation the sensor follows;
- **sensor**: ``capture(interfaces, stop)`` on the current host-side interfaces, restarted when the
  set changes (connections in flight at that moment are cut short in the records);
- **benchmark**: ``bench_runs(sleep)`` yields runs on the schedule; ``sleep`` returns early when a
  watched configuration file or process command line changes (:mod:`.changes`, polled every
  ``watch_every`` seconds), so the next run follows the change;
- **scans**: ``scan(target, workload)`` of each running root filesystem of the node's pods, at
  start and whenever a container of a new image (or, without a digest, a new container) appears,
  at most ``scan_workers`` at a time and at most ``MAX_PENDING`` waiting. The containers come from
  the runtime's state on disk (``containers()``, :mod:`.containers`: containerd and CRI-O, their
  mounted root filesystem or ``/proc/PID/root``, the image digest the runtime names); a pod the
  runtime's state does not show is scanned through its main process (``/proc/PID/root``) as
  :mod:`.interfaces` found it.

The callables are the CLI's: this module knows no controller and no output. A job's error is
reported through ``notice`` and the job goes on at its next turn."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from stockade.identity.directory import Directory
from stockade.identity.model import Workload
from stockade.model.errors import StockadeError
from stockade.nodeagent.changes import Watched, changed, fingerprint
from stockade.nodeagent.containers import RuntimeContainer, ScanTarget, image_digest, scan_source
from stockade.nodeagent.interfaces import PodInterface, discover

MAX_PENDING = 256
STOP_SLICE = 0.5
Capture = Callable[[list[str], Callable[[], bool]], None]
BenchRuns = Callable[[Callable[[float], object]], Iterator[Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    node: str
    node_netns: str | None = None  # None: this process's own namespace (the host's, hostNetwork)
    rescan_every: float = 5.0
    watch: Watched = field(default_factory=Watched)
    watch_every: float = 10.0
    scan_workers: int = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Jobs:
    capture: Capture | None = None
    bench_runs: BenchRuns | None = None
    on_bench: Callable[[Any, list[str]], None] = lambda run, why: None
    scan: Callable[[ScanTarget, Workload], None] | None = None
    containers: Callable[[], list[RuntimeContainer]] | None = None  # the runtime's, on disk
    notice: Callable[[str], None] = lambda line: None


class NodeAgent:
    """Run with :meth:`run` until :meth:`stop` (from a signal handler or another thread)."""

    def __init__(self, directory: Directory, settings: Settings, jobs: Jobs) -> None:
        self.directory = directory
        self.settings = settings
        self.jobs = jobs
        self.pods: dict[str, PodInterface] = {}
        self.generation = 0
        self.bench_runs = 0
        self.scans_started = 0
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._wake_bench = threading.Event()
        self._why: list[str] = ["start"]
        self._scanned: set[tuple[str, ...]] = set()
        self._pending: set[Future[None]] = set()
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, settings.scan_workers), thread_name_prefix="agent-scan"
        )

    # -- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        self._wake_bench.set()
        with self._changed:
            self._changed.notify_all()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, duration: float | None = None) -> None:
        threads = [threading.Thread(target=self._pods_loop, name="agent-pods", daemon=True)]
        if self.jobs.capture is not None:
            threads.append(
                threading.Thread(target=self._sensor_loop, name="agent-sensor", daemon=True)
            )
        if self.jobs.bench_runs is not None:
            threads.append(threading.Thread(target=self._bench_loop, name="agent-cis", daemon=True))
            threads.append(
                threading.Thread(target=self._watch_loop, name="agent-watch", daemon=True)
            )
        for t in threads:
            t.start()
        try:
            self._stop.wait(duration)
        finally:
            self.stop()
            for t in threads:
                t.join(30)
            self._pool.shutdown(wait=True, cancel_futures=True)

    # -- pods --------------------------------------------------------------------------------

    def local_pods(self) -> list[tuple[str, Workload]]:
        out = []
        for key in self.directory.keys("pod/"):
            w = self.directory.entry(key)
            if w is not None and w.node == self.settings.node and w.kind == "pod":
                out.append((key.removeprefix("pod/"), w))
        return out

    def _pods_loop(self) -> None:
        while not self.stopping:
            seen = self.directory.version

            def moved(d: Directory, v: int = seen) -> bool:
                return d.version != v

            local = self.local_pods()
            try:
                found = discover(local, node_netns=self.settings.node_netns)
            except (OSError, StockadeError) as exc:
                self.jobs.notice(f"agent: cannot read the pods' namespaces: {exc}")
                found = self.pods
            self._follow(found, dict(local))
            deadline = time.monotonic() + self.settings.rescan_every
            while not self.stopping and time.monotonic() < deadline:
                # short slices: a stop is seen within half a second
                if self.directory.wait_until(moved, STOP_SLICE):
                    break

    def _follow(self, found: dict[str, PodInterface], workloads: dict[str, Workload]) -> None:
        before = {k: p.host_if for k, p in self.pods.items()}
        after = {k: p.host_if for k, p in found.items()}
        if before != after:
            for k in sorted(after.keys() - before.keys()):
                p = found[k]
                self.jobs.notice(f"agent: pod {k} on {p.host_if} ({p.cni}), process {p.pid}")
            for k in sorted(before.keys() - after.keys()):
                self.jobs.notice(f"agent: pod {k} gone from {before[k]}")
            with self._changed:
                self.pods = found
                self.generation += 1
                self._changed.notify_all()
        else:
            self.pods = found
        self._scan_turn(found, workloads)

    # -- scans -------------------------------------------------------------------------------

    def _scan_turn(self, found: dict[str, PodInterface], workloads: dict[str, Workload]) -> None:
        if self.jobs.scan is None:
            return
        by_pod: dict[str, list[RuntimeContainer]] = {}
        if self.jobs.containers is not None:
            try:
                listed = self.jobs.containers()
            except OSError as exc:
                self.jobs.notice(f"agent: cannot read the container runtime's state: {exc}")
                listed = []
            for container in listed:
                by_pod.setdefault(container.workload, []).append(container)
        for key, workload in sorted(workloads.items()):
            if key in by_pod:
                for container in by_pod[key]:
                    self._maybe_scan_container(container, workload)
            elif key in found:
                self._maybe_scan(found[key], workload)

    def _maybe_scan_container(self, container: RuntimeContainer, workload: Workload) -> None:
        digest = image_digest(container, workload.images)
        key = ("digest", digest) if digest else ("container", container.id)
        if key in self._scanned:
            return
        source = scan_source(container)
        if source is None:
            return  # not running: looked at again at the next turn
        target = ScanTarget(
            pod=container.workload,
            source=source,
            image=container.image or None,
            digest=digest,
            container=container.name,
            runtime=container.runtime,
        )
        self._submit(key, target, workload)

    def _maybe_scan(self, pod: PodInterface, workload: Workload) -> None:
        if pod.pid is None or not pod.container_root:
            return  # no process, or it sees the node's own root: not a container's filesystem
        key = ("image", *workload.images) if workload.images else ("pod", pod.pod)
        if key in self._scanned:
            return
        image = workload.images[0] if workload.images else None
        digest = (image or "").rpartition("@")[2]
        target = ScanTarget(
            pod=pod.pod,
            source=f"pid:{pod.pid}",
            image=image,
            digest=digest if digest.startswith("sha256:") else None,
        )
        self._submit(key, target, workload)

    def _submit(self, key: tuple[str, ...], target: ScanTarget, workload: Workload) -> None:
        self._pending = {f for f in self._pending if not f.done()}
        if len(self._pending) >= MAX_PENDING:
            return  # picked up again at a later turn
        self._scanned.add(key)
        self.scans_started += 1
        future = self._pool.submit(self._scan, target, workload)
        future.add_done_callback(self._unexpected)
        self._pending.add(future)

    def _unexpected(self, future: Future[None]) -> None:
        exc = None if future.cancelled() else future.exception()
        if exc is not None:  # a bug, not a scan error: said, not swallowed by the pool
            self.jobs.notice(f"agent: scan job failed: {type(exc).__name__}: {exc}")

    def _scan(self, target: ScanTarget, workload: Workload) -> None:
        assert self.jobs.scan is not None
        try:
            self.jobs.scan(target, workload)
        except (OSError, StockadeError) as exc:
            self.jobs.notice(f"agent: scan of pod {target.pod} ({target.source}) failed: {exc}")

    # -- sensor ------------------------------------------------------------------------------

    def _sensor_loop(self) -> None:
        assert self.jobs.capture is not None
        while not self.stopping:
            with self._changed:
                generation = self.generation
                interfaces = sorted({p.host_if for p in self.pods.values()})
                if not interfaces:
                    self._changed.wait(self.settings.rescan_every)
                    continue

            def done(gen: int = generation) -> bool:
                return self.stopping or self.generation != gen

            try:
                self.jobs.capture(interfaces, done)
            except (OSError, StockadeError) as exc:
                # an interface gone between finding and opening it: the next turn has the new set
                self.jobs.notice(f"agent: capture on {', '.join(interfaces)} stopped: {exc}")
                self._stop.wait(1.0)

    # -- benchmark ---------------------------------------------------------------------------

    def _bench_sleep(self, seconds: float) -> None:
        self._wake_bench.wait(seconds)
        self._wake_bench.clear()

    def _bench_loop(self) -> None:
        assert self.jobs.bench_runs is not None
        while not self.stopping:
            try:
                for run in self.jobs.bench_runs(self._bench_sleep):
                    self.bench_runs += 1
                    why, self._why = self._why or ["schedule"], []
                    self.jobs.on_bench(run, why)
                    if self.stopping:
                        return
            except (OSError, StockadeError) as exc:
                self.jobs.notice(f"agent: CIS benchmark run failed: {exc}")
                self._stop.wait(self.settings.watch_every)
            else:
                return  # a schedule that ends (max runs)

    def _watch_loop(self) -> None:
        last = fingerprint(self.settings.watch)
        while not self._stop.wait(self.settings.watch_every):
            now = fingerprint(self.settings.watch)
            diff = changed(last, now)
            last = now
            if diff:
                self.jobs.notice(f"agent: changed {', '.join(diff[:5])}: CIS benchmark again")
                self._why = diff
                self._wake_bench.set()
