"""One collection of the Kubernetes API kept current: list, then watch from the list's
resourceVersion, with bookmarks; relist on 410 Gone; resume from the last resourceVersion with
backoff when the stream drops. Requests go through the official ``kubernetes`` client's generated
list calls (authentication, TLS, proxies); events are read as raw JSON lines, never deserialised
into the client's models, and no object is kept here: each goes to a :class:`Sink`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 16 * 1024 * 1024  # one watch event (a pod with many containers is ~50 KiB)
PAGE = 500


class Sink(Protocol):
    def relist_begin(self, collection: str) -> None: ...
    def apply(self, collection: str, kind: str, obj: dict[str, Any]) -> None: ...
    def relist_end(self, collection: str) -> None: ...


class Gone(Exception):
    """The resourceVersion is too old (HTTP 410): list again."""


class WatchProblem(Exception):
    """The server answered with an error, or the stream was not the watch protocol."""


@dataclass(frozen=True, slots=True)
class Collection:
    name: str  # "pods", "pods@node" ...
    list_call: Callable[..., Any]  # e.g. CoreV1Api(client).list_pod_for_all_namespaces
    field_selector: str = ""


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with jitter: base, 2*base, ... up to cap; reset on success."""

    base: float = 0.5
    cap: float = 30.0
    _next: float = 0.0

    def delay(self) -> float:
        self._next = min(self.cap, self._next * 2 if self._next else self.base)
        return random.uniform(self._next / 2, self._next)

    def reset(self) -> None:
        self._next = 0.0


@dataclass(slots=True)
class Stats:
    lists: int = 0
    relists_gone: int = 0
    watches: int = 0
    resumes: int = 0  # watches started again from a kept resourceVersion after a problem
    events: int = 0
    bookmarks: int = 0
    errors: int = 0
    last_error: str = ""
    last_status: int | None = None  # the HTTP status of the last error, if it was one
    untrusted: bool = False  # the last error was the server's certificate failing verification
    counts: dict[str, int] = field(default_factory=dict)


class Reflector:
    """Keeps one collection in a sink, in its own thread, until :meth:`stop`."""

    def __init__(
        self,
        collection: Collection,
        sink: Sink,
        *,
        backoff: Backoff | None = None,
        watch_seconds: int = 240,
        connect_timeout: float = 10.0,
    ) -> None:
        self.collection = collection
        self.sink = sink
        self.backoff = backoff or Backoff()
        self.watch_seconds = watch_seconds
        self.connect_timeout = connect_timeout
        self.resource_version: str | None = None
        self.synced = threading.Event()
        self.stats = Stats()
        self._stop = threading.Event()
        self._resp: Any = None
        self._thread = threading.Thread(
            target=self._run, name=f"k8s-watch-{collection.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        resp = self._resp
        if resp is not None:
            _interrupt(resp)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        resumed = False
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self._list()
                    if self._stop.is_set():
                        break
                    resumed = False
                elif resumed:
                    self.stats.resumes += 1
                self._watch()
                resumed = False  # the server closed the watch at its timeout: watch again
            except Gone:
                self.stats.relists_gone += 1
                self.resource_version = None
            except (ApiException, HTTPError, OSError, ValueError, WatchProblem) as exc:
                if self._stop.is_set():
                    break
                self.stats.errors += 1
                self.stats.last_error = _describe(exc)
                status = getattr(exc, "status", None)
                self.stats.last_status = status if isinstance(status, int) else None
                self.stats.untrusted = _certificate_refused(exc)
                log.info("kubernetes %s: %s", self.collection.name, self.stats.last_error)
                resumed = self.resource_version is not None
                self._stop.wait(self.backoff.delay())
            except Exception as exc:  # a bug in the sink: say so, and stop this collection
                self.stats.last_error = f"stopped: {_describe(exc)}"
                log.exception("kubernetes %s: watch stopped", self.collection.name)
                raise

    def _call(self, **kwargs: Any) -> Any:
        if self.collection.field_selector:
            kwargs["field_selector"] = self.collection.field_selector
        return self.collection.list_call(_preload_content=False, **kwargs)

    def _list(self) -> None:
        from kubernetes.client.exceptions import ApiException

        self.sink.relist_begin(self.collection.name)
        token: str | None = None
        while True:
            args: dict[str, Any] = {"limit": PAGE}
            if token:
                args["_continue"] = token
            try:
                resp = self._call(
                    _request_timeout=(self.connect_timeout, self.connect_timeout * 6), **args
                )
            except ApiException as exc:
                if exc.status == 410:  # the continue token expired: start over
                    raise Gone() from exc
                raise
            body = json.loads(resp.data)
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise WatchProblem("a list answer without items")
            for item in body["items"]:
                if isinstance(item, dict):
                    self.sink.apply(self.collection.name, "ADDED", item)
            meta = _dict(body.get("metadata"))
            token = str(meta.get("continue") or "") or None
            if token is None:
                self.sink.relist_end(self.collection.name)
                self.resource_version = str(meta.get("resourceVersion") or "") or None
                self.stats.lists += 1
                self.synced.set()
                if self.resource_version is None:
                    raise WatchProblem("a list answer without metadata.resourceVersion")
                return

    def _watch(self) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            resp = self._call(
                watch=True,
                resource_version=self.resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=self.watch_seconds,
                _request_timeout=(self.connect_timeout, self.watch_seconds + 30),
            )
        except ApiException as exc:
            if exc.status == 410:
                raise Gone() from exc
            raise
        self._resp = resp  # then the flag: stop() sets the flag, then reads _resp
        try:
            if self._stop.is_set():
                return
            if resp.status == 410:
                raise Gone()
            if not 200 <= resp.status < 300:
                raise WatchProblem(f"HTTP {resp.status} {_status_message(resp.data)}")
            self.stats.watches += 1
            for line in _lines(resp):
                if self._stop.is_set():
                    return
                self._event(line)
        finally:
            self._resp = None
            _interrupt(resp, "close", "release_conn")

    def _event(self, line: bytes) -> None:
        event = json.loads(line)
        obj = event.get("object") if isinstance(event, dict) else None
        kind = event.get("type") if isinstance(event, dict) else None
        if not isinstance(obj, dict) or kind not in (
            "ADDED",
            "MODIFIED",
            "DELETED",
            "BOOKMARK",
            "ERROR",
        ):
            raise WatchProblem("a watch line that is not an event")
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise WatchProblem(f"watch error {obj.get('code')}: {obj.get('message', '')}"[:300])
        meta = _dict(obj.get("metadata"))
        version = str(meta.get("resourceVersion") or "")
        if kind == "BOOKMARK":
            self.stats.bookmarks += 1
        else:
            self.sink.apply(self.collection.name, kind, obj)
            self.stats.events += 1
        self.backoff.reset()
        if version:
            self.resource_version = version


def _lines(resp: Any) -> Iterator[bytes]:
    """Newline-delimited events from a chunked response, each at most MAX_EVENT_BYTES."""
    buf = bytearray()
    for chunk in resp.stream(None, decode_content=True):
        buf.extend(chunk)
        while True:
            end = buf.find(b"\n")
            if end < 0:
                break
            if end > MAX_EVENT_BYTES:
                raise WatchProblem(f"a watch event larger than {MAX_EVENT_BYTES} bytes")
            line = bytes(buf[:end]).strip()
            del buf[: end + 1]
            if line:
                yield line
        if len(buf) > MAX_EVENT_BYTES:
            raise WatchProblem(f"a watch event larger than {MAX_EVENT_BYTES} bytes")
    if buf.strip():
        raise WatchProblem("the watch stream ended inside an event")


def _interrupt(resp: Any, *steps: str) -> None:
    """Unblock a read in progress from another thread (urllib3 2.3+ ``shutdown``), close the
    response and give its connection back; a step that no longer applies is skipped."""
    for name in steps or ("shutdown", "close", "release_conn"):
        method = getattr(resp, name, None)
        if method is not None:
            with contextlib.suppress(OSError, ValueError, AttributeError, RuntimeError):
                method()


def _status_message(data: Any) -> str:
    try:
        body = json.loads(data)
    except (TypeError, ValueError):
        return ""
    return str(body.get("message") or "")[:200] if isinstance(body, dict) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _certificate_refused(exc: BaseException) -> bool:
    """Whether the server's certificate failed verification somewhere in the error's chain (urllib3
    wraps it: MaxRetryError.reason is an SSLError whose argument is the verification error)."""
    import ssl

    seen: list[object] = [exc]
    for _ in range(8):  # a bounded walk: chains are a few links long
        nxt: list[object] = []
        for e in seen:
            if isinstance(e, ssl.SSLCertVerificationError):
                return True
            if isinstance(e, BaseException):
                nxt += [getattr(e, "reason", None), e.__cause__, e.__context__, *e.args[:2]]
        seen = [e for e in nxt if isinstance(e, BaseException)]
        if not seen:
            return False
    return False


def _describe(exc: BaseException) -> str:
    """One line: ``HTTP 403 Forbidden: <the Status message>``, or the exception's first words."""
    status, reason = getattr(exc, "status", None), getattr(exc, "reason", None)
    if status and reason is not None:
        message = _status_message(getattr(exc, "body", None))
        text = f"HTTP {status} {reason}" + (f": {message}" if message else "")
    else:
        detail = str(reason if reason is not None else exc)
        text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return " ".join(text.split())[:300]
