"""A bounded queue of on-demand scans: a few worker slots, a short waiting line, one scan per image.

Why bounded everywhere: the admission webhook scans images a review names, and a review is written
by whoever may create pods. Without bounds, a handful of reviews naming never-answering images fill
every thread and every later image times out. Here:

- at most ``workers`` scans run at once and at most ``queue`` wait; past that ``submit`` raises
  :class:`QueueFull` at once instead of waiting;
- a second request for an image already queued or running joins that scan (no duplicate work);
- a scan still running after ``scan_timeout`` seconds gives its slot back (it is left to finish on
  its own network timeouts, as Python cannot stop a thread), so slow targets cannot hold the
  workers; at most ``workers`` such overdue scans linger, after which their slots stay taken and
  the queue reports saturation rather than starting more threads.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

from stockade.workers import normal_priority


class QueueFull(Exception):
    """No slot and no room in the waiting line for another scan."""


class ScanQueue:
    def __init__(
        self,
        run: Callable[[str], None],
        *,
        workers: int = 2,
        queue: int = 8,
        scan_timeout: float = 60.0,
    ) -> None:
        self._run = run
        self.workers = workers
        self.queue_size = queue
        self.scan_timeout = scan_timeout
        self._lock = threading.Lock()
        self._waiting: deque[str] = deque()
        self._futures: dict[str, Future[None]] = {}  # queued or running, by image
        self._running: set[str] = set()  # holding a slot
        self._overdue: set[str] = set()  # past scan_timeout, slot given back, thread still alive

    def submit(self, image: str) -> tuple[Future[None], bool]:
        """The future of the image's scan and whether this call started (queued) it."""
        with self._lock:
            future = self._futures.get(image)
            if future is not None:
                return future, False
            if self._full():
                raise QueueFull(
                    f"on-demand scan queue is full ({len(self._running)} running, "
                    f"{len(self._waiting)} waiting)"
                )
            future = Future()
            self._futures[image] = future
            self._waiting.append(image)
            self._dispatch()
        return future, True

    def saturation(self) -> str | None:
        """Why new scans are refused right now, or None."""
        with self._lock:
            if self._full():
                return (
                    f"on-demand scan queue full: {len(self._running)} running, "
                    f"{len(self._waiting)} waiting, {len(self._overdue)} overdue"
                )
        return None

    def _full(self) -> bool:  # under the lock
        return len(self._running) >= self.workers and len(self._waiting) >= self.queue_size

    def _dispatch(self) -> None:  # under the lock
        while self._waiting and len(self._running) < self.workers:
            image = self._waiting.popleft()
            self._running.add(image)
            timer = threading.Timer(self.scan_timeout, self._overdue_scan, args=(image,))
            timer.daemon = True
            thread = threading.Thread(
                target=self._work, args=(image, timer), name="admission-scan", daemon=True
            )
            thread.start()
            timer.start()

    def _work(self, image: str, timer: threading.Timer) -> None:
        normal_priority()  # a scan never competes with a real-time webhook's serving
        future = self._futures[image]
        try:
            self._run(image)
        except BaseException as exc:  # handed to whoever waits on the future
            future.set_exception(exc)
        else:
            future.set_result(None)
        finally:
            timer.cancel()
            with self._lock:
                self._running.discard(image)
                self._overdue.discard(image)
                self._futures.pop(image, None)
                self._dispatch()

    def _overdue_scan(self, image: str) -> None:
        with self._lock:
            if image not in self._running or len(self._overdue) >= self.workers:
                return  # finished meanwhile, or too many lingering threads: keep the slot
            self._running.discard(image)
            self._overdue.add(image)
            self._dispatch()
