"""A local HTTPS server that speaks the Kubernetes API's list/watch protocol, for the identity
provider's tests (there is no API server on these machines).

Objects are real API documents (tests/identity/data/k8s/). Every change gets the next
resourceVersion and goes to a per-collection log; ``GET <collection>`` lists (with ``limit`` and
``continue``), ``?watch=1&resourceVersion=N`` streams the log after N as chunked JSON lines and then
waits for more. A test can ``compact`` a collection (watches from before get the API's 410 ERROR
Status event), ``drop`` open watches (the connection is cut mid-stream, without the last chunk) and
send ``bookmark`` events. Requests need ``Authorization: Bearer <token>``.

NetworkPolicies (``networking.k8s.io/v1``) can also be created (``POST``, ``201`` with the stored
object: uid, resourceVersion, generation, creationTimestamp; ``409 AlreadyExists``), read (``GET``
one; the cluster-wide list with ``labelSelector``), and deleted (``DELETE``, ``200`` with the
``Status`` of ``Success`` the API server answers for resources that do not return the deleted
object; ``404 NotFound``), with the API server's Status documents. ``refuse_policies`` makes
those requests answer ``403 Forbidden`` as for a service account without the verbs.
"""

from __future__ import annotations

import copy
import json
import re
import socket
import ssl
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from stockade.admission.certs import ensure_certificate

DATA = Path(__file__).parent / "data" / "k8s"

COLLECTIONS = {
    "/api/v1/pods": "PodList",
    "/api/v1/namespaces": "NamespaceList",
    "/api/v1/services": "ServiceList",
    "/api/v1/nodes": "NodeList",
    "/apis/apps/v1/replicasets": "ReplicaSetList",
    "/apis/batch/v1/jobs": "JobList",
}


NETPOL = "/apis/networking.k8s.io/v1"
_NETPOL_ONE = re.compile(
    r"/apis/networking\.k8s\.io/v1/namespaces/([a-z0-9.-]+)/networkpolicies(?:/([^/]+))?"
)


def document(name: str) -> dict[str, Any]:
    """A fresh copy of one recorded API document."""
    return json.loads((DATA / f"{name}.json").read_text())


def _key(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def _matches(obj: dict[str, Any], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        negate = "!=" in term
        field, value = term.split("!=" if negate else "=", 1)
        node = obj
        for part in field.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        actual = node if isinstance(node, str) else ""
        if (actual == value) == negate:
            return False
    return True


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-stream is what these tests do


class FakeApiServer:
    def __init__(self, tmp: Path, token: str) -> None:
        self.files = ensure_certificate(tmp / "pki", ["localhost"], ca_name="test Kubernetes CA")
        self.token = token
        self.version = 1000
        self.objects: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in COLLECTIONS}
        self.log: dict[str, list[tuple[int, str, dict[str, Any]]]] = {c: [] for c in COLLECTIONS}
        self.compacted: dict[str, int] = dict.fromkeys(COLLECTIONS, 0)
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.cond = threading.Condition()
        self.drops: dict[str, int] = dict.fromkeys(COLLECTIONS, 0)
        self.open_watches: dict[str, int] = dict.fromkeys(COLLECTIONS, 0)
        self.raw_lines: dict[str, list[bytes]] = {c: [] for c in COLLECTIONS}
        self.newest_watch: dict[str, int] = dict.fromkeys(COLLECTIONS, 0)
        self.networkpolicies: dict[tuple[str, str], dict[str, Any]] = {}
        self.policy_requests: list[tuple[str, str]] = []  # (method, path)
        self.refuse_policies = False
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.files.cert, self.files.key)
        self.httpd = _QuietServer(("127.0.0.1", 0), _handler(self))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://localhost:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    closed = False

    # -- what the tests do --------------------------------------------------------------------

    def change(self, collection: str, kind: str, obj: dict[str, Any]) -> int:
        with self.cond:
            self.version += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self.version)
            if kind == "DELETED":
                self.objects[collection].pop(_key(obj), None)
            else:
                self.objects[collection][_key(obj)] = obj
            self.log[collection].append((self.version, kind, obj))
            self.cond.notify_all()
            return self.version

    def bookmark(self, collection: str) -> int:
        with self.cond:
            self.version += 1
            kind = COLLECTIONS[collection][: -len("List")]
            mark = {
                "kind": kind,
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.version)},
            }
            self.log[collection].append((self.version, "BOOKMARK", mark))
            self.cond.notify_all()
            return self.version

    def raw(self, collection: str, line: bytes) -> None:
        """Send a line as it is, once, to the newest watch of the collection (hostile input)."""
        with self.cond:
            self.raw_lines[collection].append(line)
            self.cond.notify_all()

    def compact(self, collection: str) -> None:
        """Forget the history: a watch from an older resourceVersion gets 410 Gone."""
        with self.cond:
            self.compacted[collection] = self.version + 1
            self.drops[collection] += 1  # open watches end; their resume meets the 410
            self.cond.notify_all()

    def drop(self, collection: str) -> None:
        """Cut every open watch of the collection mid-stream."""
        with self.cond:
            self.drops[collection] += 1
            self.cond.notify_all()

    def watch_requests(self, collection: str) -> list[dict[str, str]]:
        return [q for p, q in list(self.requests) if p == collection and q.get("watch")]

    def list_requests(self, collection: str) -> list[dict[str, str]]:
        return [q for p, q in list(self.requests) if p == collection and not q.get("watch")]

    def wait_watching(self, collection: str, count: int = 1, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.open_watches[collection] < count:
                left = deadline - time.monotonic()
                assert left > 0, f"no watch of {collection}"
                self.cond.wait(left)


def _selects(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def _handler(api: FakeApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _status(self, code: int, reason: str, message: str) -> None:
            self._json(
                code,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": message,
                    "reason": reason,
                    "code": code,
                },
            )

        def _authorized(self) -> bool:
            scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or token.strip() != api.token:  # scheme: any case
                self._status(401, "Unauthorized", "Unauthorized")
                return False
            return True

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            with api.cond:
                api.requests.append((url.path, query))
            if not self._authorized():
                return
            if url.path.startswith(NETPOL):
                self._networkpolicy("GET", url.path, query)
                return
            if url.path not in COLLECTIONS:
                self._status(404, "NotFound", "the server could not find the requested resource")
                return
            if query.get("watch") in ("1", "true"):
                self._watch(url.path, query)
            else:
                self._list(url.path, query)

        def do_POST(self) -> None:
            self._write("POST")

        def do_DELETE(self) -> None:
            self._write("DELETE")

        def _write(self, method: str) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if not self._authorized():
                return
            if not url.path.startswith(NETPOL):
                self._status(405, "MethodNotAllowed", "the server does not allow this method")
                return
            self._networkpolicy(method, url.path, {}, body)

        def _networkpolicy(
            self, method: str, path: str, query: dict[str, str], body: bytes = b""
        ) -> None:
            with api.cond:
                api.policy_requests.append((method, path))
            one = _NETPOL_ONE.fullmatch(path)
            every = path == NETPOL + "/networkpolicies"
            if not one and not every:
                self._status(404, "NotFound", "the server could not find the requested resource")
                return
            if api.refuse_policies:
                verb = {"POST": "create", "DELETE": "delete"}.get(method, "get" if one else "list")
                self._status(
                    403,
                    "Forbidden",
                    'networkpolicies.networking.k8s.io is forbidden: User "system:serviceaccount:'
                    f'stockade:stockade-agent" cannot {verb} resource "networkpolicies" in API '
                    'group "networking.k8s.io"',
                )
                return
            if every and method == "GET":
                with api.cond:
                    items = [
                        copy.deepcopy(o)
                        for _, o in sorted(api.networkpolicies.items())
                        if _selects(
                            o["metadata"].get("labels") or {}, query.get("labelSelector", "")
                        )
                    ]
                    version = api.version
                self._json(
                    200,
                    {
                        "kind": "NetworkPolicyList",
                        "apiVersion": "networking.k8s.io/v1",
                        "metadata": {"resourceVersion": str(version)},
                        "items": items,
                    },
                )
                return
            assert one is not None
            namespace, name = one.group(1), one.group(2)
            if method == "POST" and name is None:
                self._create(namespace, body)
                return
            if name is None:
                self._status(405, "MethodNotAllowed", "the server does not allow this method")
                return
            with api.cond:
                current = api.networkpolicies.get((namespace, name))
                if current is not None and method == "DELETE":
                    del api.networkpolicies[(namespace, name)]
                    api.version += 1
            if current is None:
                self._status_of(404, "NotFound", f'"{name}" not found', name)
            elif method == "DELETE":
                self._json(
                    200,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": {
                            "name": name,
                            "group": "networking.k8s.io",
                            "kind": "networkpolicies",
                            "uid": current["metadata"]["uid"],
                        },
                    },
                )
            else:
                self._json(200, current)

        def _status_of(self, code: int, reason: str, what: str, name: str) -> None:
            self._json(
                code,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": f"networkpolicies.networking.k8s.io {what}",
                    "reason": reason,
                    "details": {
                        "name": name,
                        "group": "networking.k8s.io",
                        "kind": "networkpolicies",
                    },
                    "code": code,
                },
            )

        def _create(self, namespace: str, body: bytes) -> None:
            try:
                obj = json.loads(body)
                meta = obj["metadata"]
                name = meta["name"]
                assert obj["kind"] == "NetworkPolicy" and isinstance(name, str)
                assert meta.get("namespace", namespace) == namespace
            except (ValueError, KeyError, TypeError, AssertionError):
                self._status(400, "BadRequest", "the object provided is unrecognized")
                return
            with api.cond:
                if (namespace, name) in api.networkpolicies:
                    exists = True
                else:
                    exists = False
                    api.version += 1
                    meta.update(
                        namespace=namespace,
                        uid=str(uuid.uuid4()),
                        resourceVersion=str(api.version),
                        generation=1,
                        creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    )
                    api.networkpolicies[(namespace, name)] = obj
            if exists:
                self._status_of(409, "AlreadyExists", f'"{name}" already exists', name)
            else:
                self._json(201, obj)

        def _list(self, path: str, query: dict[str, str]) -> None:
            selector = query.get("fieldSelector", "")
            with api.cond:
                items = [o for _, o in sorted(api.objects[path].items()) if _matches(o, selector)]
                version = api.version
            start = int(query.get("continue") or 0)
            limit = int(query.get("limit") or 0) or len(items)
            page = items[start : start + limit]
            meta: dict[str, Any] = {"resourceVersion": str(version)}
            if start + limit < len(items):
                meta["continue"] = str(start + limit)
            self._json(
                200,
                {"kind": COLLECTIONS[path], "apiVersion": "v1", "metadata": meta, "items": page},
            )

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def _watch(self, path: str, query: dict[str, str]) -> None:
            since = int(query.get("resourceVersion") or 0)
            selector = query.get("fieldSelector", "")
            bookmarks = query.get("allowWatchBookmarks") == "true"
            deadline = time.monotonic() + float(query.get("timeoutSeconds") or 30)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            with api.cond:
                drops = api.drops[path]
                gone = since < api.compacted[path]
                api.open_watches[path] += 1
                api.newest_watch[path] += 1
                me = api.newest_watch[path]
                api.cond.notify_all()
            try:
                if gone:
                    status = {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Failure",
                        "message": f"too old resource version: {since} ({api.compacted[path]})",
                        "reason": "Expired",
                        "code": 410,
                    }
                    self._chunk(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
                else:
                    self._stream(path, since, selector, bookmarks, deadline, drops, me)
                    if api.drops[path] != drops:
                        self.connection.shutdown(socket.SHUT_RDWR)  # cut: no final chunk
                        self.close_connection = True
                        return
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:
                self.close_connection = True
            finally:
                with api.cond:
                    api.open_watches[path] -= 1

        def _stream(
            self,
            path: str,
            since: int,
            selector: str,
            bookmarks: bool,
            deadline: float,
            drops: int,
            me: int,
        ) -> None:
            sent = since
            while True:
                with api.cond:
                    while True:
                        todo = [e for e in api.log[path] if e[0] > sent]
                        raw: list[bytes] = []
                        if me == api.newest_watch[path]:
                            raw, api.raw_lines[path] = api.raw_lines[path], []
                        left = deadline - time.monotonic()
                        if raw or todo or api.drops[path] != drops or api.closed or left <= 0:
                            break
                        api.cond.wait(left)
                    if (
                        api.drops[path] != drops
                        or api.closed
                        or (not todo and not raw and left <= 0)
                    ):
                        return
                for line in raw:  # sent once, before the events of the same wake-up
                    self._chunk(line + b"\n")
                for version, kind, obj in todo:
                    sent = version
                    if kind == "BOOKMARK" and not bookmarks:
                        continue
                    if kind != "BOOKMARK" and not _matches(obj, selector):
                        continue
                    self._chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

    return Handler
