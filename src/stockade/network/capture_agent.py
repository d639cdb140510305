"""Packet captures the controller asks for, made on this node (``stockade sensor --lab
--controller``).

A thread asks ``GET /api/v1/agents/captures?since=V`` every few seconds. For each pending request
whose workload runs on this node (``locate`` finds its interfaces), it claims the request
(``POST .../state {"state": "running"}``; only one agent wins), runs the masked capture of
:func:`stockade.network.forensics.capture_workload` into a private temporary folder (mode 0700,
the file 0600, masked before any byte is written), uploads the pcap with ``PUT
/api/v1/agents/captures/{id}`` and deletes it. A capture that cannot be made is reported
``failed`` with the reason. Each capture runs in a thread of its own (at most ``MAX_RUNNING``), so
polling goes on meanwhile; errors talking to the controller are logged once per streak.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx

from stockade.model import StockadeError

log = logging.getLogger(__name__)

PENDING_PATH = "/api/v1/agents/captures"
PCAP_TYPE = "application/vnd.tcpdump.pcap"
MAX_RUNNING = 4
MAX_LISTED = 1000

# namespace/name -> (host-side interfaces, network namespace), or None when not on this node
Locate = Callable[[str], tuple[list[str], str | None] | None]


class ControllerLink(Protocol):
    """Where the controller is (``events.reporter.ControllerLink`` is one; the CLI hands it over)."""

    url: str
    timeout: float

    def client(self) -> httpx.Client: ...


def parse_pending(answer: Any) -> tuple[int, list[dict[str, Any]] | None]:
    """(version, requests) from the controller's answer; None when ``unchanged``. A ValueError
    when the answer is not what the controller sends."""
    if not isinstance(answer, dict) or not isinstance(answer.get("version"), int):
        raise ValueError("the pending captures have no version")
    if answer.get("unchanged") is True:
        return answer["version"], None
    listed = answer.get("captures")
    if not isinstance(listed, list) or len(listed) > MAX_LISTED:
        raise ValueError("the pending captures are not a list")
    out = []
    for item in listed:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("id"), str)
            and isinstance(item.get("workload"), str)
            and isinstance(item.get("duration"), int | float)
            and isinstance(item.get("max_bytes"), int)
            and (item.get("filter") is None or isinstance(item.get("filter"), str))
        ):
            raise ValueError("a pending capture without id, workload, duration or max_bytes")
        out.append(item)
    return answer["version"], out


class CaptureAgent:
    """``with CaptureAgent(link, locate): ...`` follows the controller's capture requests."""

    def __init__(
        self,
        link: ControllerLink,
        locate: Locate,
        *,
        every: float = 2.0,
        engine: Any = None,
        capture: Callable[..., Any] | None = None,
    ) -> None:
        from stockade.network.forensics import capture_workload

        self.link = link
        self.locate = locate
        self.every = every
        self.engine = engine
        self.capture = capture or capture_workload
        self.since: int | None = None
        self._seen: set[str] = set()  # requests handled (or not ours): never taken twice
        self._running: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._failing = False
        self._client = link.client()
        self._base = link.url.rstrip("/") + PENDING_PATH
        self._thread = threading.Thread(target=self._run, name="stockade-captures", daemon=True)

    def __enter__(self) -> CaptureAgent:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop polling, end running captures early (they are still uploaded) and wait."""
        self._stop.set()
        if self._thread.ident is not None:  # started (a test may drive poll_once itself)
            self._thread.join(self.link.timeout + 1)
        with self._lock:
            threads = list(self._running.values())
        for t in threads:
            t.join(self.link.timeout * 2 + 5)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.every)

    def poll_once(self) -> None:
        params = {} if self.since is None else {"since": str(self.since)}
        try:
            response = self._client.get(self._base, params=params)
            if response.status_code != 200:
                raise ValueError(f"the controller answered {response.status_code}")
            version, listed = parse_pending(response.json())
        except (httpx.HTTPError, OSError, ValueError) as exc:
            self._trouble(f"cannot fetch the capture requests ({str(exc) or type(exc).__name__})")
            return
        self._failing = False
        complete = True
        for item in listed or ():
            complete &= self._consider(item)
        # on a request left for later (too many running, a claim that did not get through) ask
        # for the whole list again next time
        self.since = version if complete else None

    def _consider(self, item: dict[str, Any]) -> bool:
        """Take the request if it is ours; False when it should be looked at again."""
        ident = item["id"]
        if ident in self._seen:
            return True
        where = self.locate(item["workload"])
        if where is None:
            self._seen.add(ident)  # another node's workload
            return True
        with self._lock:
            if len(self._running) >= MAX_RUNNING:
                return False
        try:
            answer = self._client.post(f"{self._base}/{ident}/state", json={"state": "running"})
        except (httpx.HTTPError, OSError) as exc:
            self._trouble(f"cannot claim capture {ident} ({exc})")
            return False
        if answer.status_code != 200:  # 409: another agent took it; 404: gone
            self._seen.add(ident)
            return True
        self._seen.add(ident)
        worker = threading.Thread(
            target=self._capture, args=(item, where), name=f"capture-{ident[:8]}", daemon=True
        )
        with self._lock:
            self._running[ident] = worker
        worker.start()
        return True

    def _capture(self, item: dict[str, Any], where: tuple[list[str], str | None]) -> None:
        ident = item["id"]
        folder = Path(tempfile.mkdtemp(prefix="stockade-capture-"))  # mode 0700
        try:
            out = folder / f"{ident}.pcap"
            try:
                report = self.capture(
                    where[0],
                    namespace=where[1],
                    duration=float(item["duration"]),
                    max_bytes=int(item["max_bytes"]),
                    bpf_filter=item.get("filter"),
                    out_path=out,
                    dlp_engine=self.engine,
                    stop=self._stop.is_set,
                )
                self._upload(ident, out, report)
            except (StockadeError, OSError, httpx.HTTPError, ValueError) as exc:
                self._failed(ident, str(exc) or type(exc).__name__)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            with self._lock:
                self._running.pop(ident, None)

    def _upload(self, ident: str, path: Path, report: Any) -> None:
        params = {
            "masked": str(report.total_masked),
            "packets": str(report.packets),
            "stopped": report.stopped,
        }
        with path.open("rb") as fh:
            answer = self._client.put(
                f"{self._base}/{ident}",
                content=fh.read(),
                params=params,
                headers={"Content-Type": PCAP_TYPE},
                timeout=max(self.link.timeout, 60.0),
            )
        if answer.status_code != 200:
            raise ValueError(f"the controller refused the upload ({answer.status_code})")
        log.info(
            "capture %s uploaded: %d packets, %d masked", ident, report.packets, report.total_masked
        )

    def _failed(self, ident: str, why: str) -> None:
        log.error("capture %s failed: %s", ident, why)
        try:
            self._client.post(
                f"{self._base}/{ident}/state", json={"state": "failed", "error": why[:1000]}
            )
        except (httpx.HTTPError, OSError) as exc:
            self._trouble(f"cannot report capture {ident} failed ({exc})")

    def _trouble(self, message: str) -> None:
        if not self._failing:  # once per streak, not every interval
            log.error("%s from %s", message, self.link.url)
        self._failing = True
