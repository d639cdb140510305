"""The admission webhook under hostile clients (issue 11): starvation of its scans, slow and
oversized requests, too many connections, weak TLS 1.2 suites, deeply nested JSON, and denial
messages that hide the rule behind a failed lookup. Real webhook processes over real HTTPS."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from stockade.admission.engine import decide
from stockade.admission.policy import parse_policy
from stockade.admission.workload import workload_of
from stockade.lab.samples import build_sample, push_sample
from stockade.scanning.admission_source import StoreVulnSource
from stockade.store import open_store
from tests.admission.webhook import (
    EXAMPLES,
    Webhook,
    manifests,
    review_for,
    start_webhook,
    stop_webhook,
)
from tests.scanning.conftest import OPEN_REGISTRY, listening
from tests.scanning.scan_cli_support import make_db, run
from tests.support import require

OBJECTS = manifests()


def pod(name: str, images: list[str], **security: object) -> dict:
    containers = [
        {"name": f"c{i}", "image": image, "securityContext": dict(security)}
        for i, image in enumerate(images)
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"containers": containers},
    }


class Silent:
    """A loopback TCP server that accepts connections and never answers (at most 2000 held)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while len(self.held) < 2000:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._thread.join(5)
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    try:
        yield server
    finally:
        server.close()


# -- item 3: starvation of on-demand scans ---------------------------------------------------------

STARVE_POLICY = """\
apiVersion: stockade.dev/v1
kind: AdmissionPolicy
spec:
  mode: protect
  failurePolicy: fail
  scanBudgetSeconds: 2
  rules:
    - name: no-requests-cve
      criteria: {cves: [CVE-2024-35195]}
"""


@pytest.mark.slow
def test_starved_scans_leave_known_images_decided_and_readiness_reports_it(
    tmp_path: Path, silent: Silent
) -> None:
    db = make_db(tmp_path / "stockade.db")
    # admission looks up registry references only: the known image is the sample in the registry
    require(listening(OPEN_REGISTRY), f"no registry on {OPEN_REGISTRY}")
    sample = build_sample()
    push_sample(sample, OPEN_REGISTRY)
    known = f"{OPEN_REGISTRY}/stockade/sample:{sample.tag}"
    scanned = run("scan", "image", known, "--insecure", "--db", db, "--format", "json")
    assert scanned.returncode in (0, 1), scanned.stderr
    policy = tmp_path / "policy.yaml"
    policy.write_text(STARVE_POLICY)
    # saturation and readiness are per webhook process (docs/admission.md): one process here
    hook = start_webhook(tmp_path, "--policy", str(policy), "--workers", "1")
    assert hook.db == db
    try:
        attack = [
            pod(f"starve-{r}", [f"127.0.0.1:{silent.port}/starve/i{r}-{n}:1" for n in range(100)])
            for r in range(8)
        ]

        def send(obj: dict) -> tuple[float, dict]:
            started = time.monotonic()
            with hook.client() as c:
                r = c.post("/validate", json=review_for(obj), timeout=30)
            return time.monotonic() - started, r.json()["response"]

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, attack))
        for took, resp in answers:  # each answered within its one deadline, per failurePolicy
            assert took < 2 + 1 + 3, took  # a deadline per image would be minutes
            assert resp["allowed"] is False and "could not decide" in resp["status"]["message"]
            assert "failurePolicy is fail" in resp["status"]["message"]

        with hook.client() as c:
            ready = c.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert "queue full" in " ".join(ready.json()["saturation"])
            assert c.get("/healthz").status_code == 200  # alive: no restart loop under attack
            took, resp = send(pod("known", [known]))
        assert took < 2 + 1, took
        assert resp["allowed"] is False
        assert "rule 'no-requests-cve'" in resp["status"]["message"]
        assert "could not decide" not in resp["status"]["message"]

        silent.close()  # the never-answering registry goes away: the queue drains, ready again
        deadline = time.monotonic() + 60
        with hook.client() as c:
            while c.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "still saturated 60 s after the attack"
                time.sleep(0.5)
    finally:
        stop_webhook(hook)


def test_a_full_scan_queue_fails_fast_and_dedups(tmp_path: Path, silent: Silent) -> None:
    """Unit level, real store: one scan per image however many ask; a full queue refuses at once."""
    from stockade.admission.interface import LookupBudget, LookupUnavailable

    store = open_store(make_db(tmp_path / "db.sqlite"))
    source = StoreVulnSource(store, workers=1, queue=1, max_scans_per_review=10)
    images = [f"127.0.0.1:{silent.port}/q/i{n}:1" for n in range(3)]
    first = source.summary(images[0], budget=LookupBudget(0))  # runs
    assert first is not None and not first.scanned
    again = source.summary(images[0], budget=LookupBudget(0))  # joins the same scan
    assert again is not None and not again.scanned
    source.summary(images[1], budget=LookupBudget(0))  # waits in the queue of one
    assert source.saturation() is not None
    started = time.monotonic()
    with pytest.raises(LookupUnavailable, match="queue is full"):
        source.summary(images[2], budget=LookupBudget(5))
    assert time.monotonic() - started < 2.5  # at once: well inside the 5 s budget it could wait
    silent.close()


def test_a_review_starts_at_most_its_cap_of_scans(tmp_path: Path, silent: Silent) -> None:
    store = open_store(make_db(tmp_path / "db.sqlite"))
    source = StoreVulnSource(store, workers=1, queue=50, max_scans_per_review=2)
    policy = parse_policy(
        "spec:\n  mode: protect\n  failurePolicy: ignore\n  scanBudgetSeconds: 0.5\n  rules:\n"
        "    - {name: crit, criteria: {vulnerabilities: {severity: critical}}}\n",
        name="p",
    )
    images = [f"127.0.0.1:{silent.port}/cap/i{n}:1" for n in range(10)]
    started = time.monotonic()
    d = decide(workload_of(pod("many", images)), policy, source)
    assert time.monotonic() - started < 0.5 + 1.5  # one deadline for all ten, not ten (5 s)
    assert d.allowed and d.error and "cap per review" in d.error
    assert len(source.scans._futures) == 2


# -- item 8 and Low: HTTP limits, TLS suites, nested JSON -----------------------------------------


@pytest.fixture(scope="module", params=["httptools", "h11"])
def limited(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Webhook]:
    """One webhook process within small limits, with each HTTP parser (issue 19: httptools is
    the default, h11 the pure-Python reference; the limits hold on both). One process serves all
    the tests of a parser, in order: each test's connections end before the next (the server
    closes them, or the client does), and a process a test broke fails the tests after it."""
    hook = start_webhook(
        tmp_path_factory.mktemp("limited"),
        "--http-parser",
        request.param,
        "--policy",
        str(EXAMPLES / "policy.yaml"),
        "--vulns",
        str(EXAMPLES / "vulns.yaml"),
        "--header-timeout",
        "2",
        "--body-timeout",
        "2",
        "--max-header-bytes",
        "8192",
        "--max-connections",
        "4",
        "--workers",  # the limits are per webhook process (docs/admission.md): one process here
        "1",
    )
    try:
        yield hook
    finally:
        stop_webhook(hook)


def tls(hook: Webhook, *, tls12_ciphers: str | None = None) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(hook.ca))
    if tls12_ciphers is not None:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(tls12_ciphers)
    port = int(hook.url.rsplit(":", 1)[1])
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def read_all(s: ssl.SSLSocket) -> bytes:
    """Everything until the server closes (or 10 s pass)."""
    data = b""
    s.settimeout(10)
    try:
        while chunk := s.recv(65536):
            data += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass
    return data


def test_oversized_header_is_refused(limited: Webhook) -> None:
    with tls(limited) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n")
        answer = read_all(s)
    assert not answer.startswith(b"HTTP/1.1 200"), answer[:100]


def test_oversized_header_in_pieces_is_refused_before_it_ends(limited: Webhook) -> None:
    """Headers past --max-header-bytes (8 KiB here) that arrive a piece at a time and never end:
    refused with an answer as soon as they pass the limit (not left to the header timeout)."""
    with tls(limited) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        started = time.monotonic()
        with contextlib.suppress(OSError, ssl.SSLError):
            for _ in range(64):
                s.sendall(b"a" * 1024)
        answer = read_all(s)
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431")), answer[:100]
    assert time.monotonic() - started < 2  # before the 2 s header timeout


def test_pipelined_requests_and_a_large_body_are_not_taken_for_headers(limited: Webhook) -> None:
    """A body far larger than --max-header-bytes, sent with its headers in one write, and a
    second request in the same write: both answered."""
    obj = manifests()["Deployment/prod/pay"]
    big = {**obj, "metadata": {**obj["metadata"], "annotations": {"note": "x" * 200_000}}}
    body = json.dumps(review_for(big)).encode()
    head = b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    one = head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    last = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with tls(limited) as s:
        s.sendall(one + last)
        answer = read_all(s)
    assert answer.count(b"HTTP/1.1 200") == 2, answer[:300]
    assert b'"allowed"' in answer and b'"status":"ok"' in answer


def test_slowloris_connection_is_closed_within_the_header_timeout(limited: Webhook) -> None:
    with tls(limited) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 8:
            try:
                s.sendall(b"X")  # one byte of a header now and then
                s.settimeout(0.3)
                if s.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except (OSError, ssl.SSLError):
                closed = True
                break
        took = time.monotonic() - started
    assert closed and took < 2 + 1.5, took


def test_body_that_never_arrives_gets_408(limited: Webhook) -> None:
    with tls(limited) as s:
        s.sendall(b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        started = time.monotonic()
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert time.monotonic() - started < 2 + 1.5


def test_connection_cap_holds(limited: Webhook) -> None:
    held = [tls(limited) for _ in range(4)]
    try:
        with tls(limited) as extra:  # the fifth: closed at once, whatever it sends
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_all(extra) == b""
    finally:
        for s in held:
            s.close()
    time.sleep(0.3)
    with limited.client() as c:  # slots come back when the held connections go
        assert c.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "ciphers",
    [
        "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256:"
        "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES128-SHA256"
    ],
)
def test_tls12_cbc_suites_are_refused(limited: Webhook, ciphers: str) -> None:
    with pytest.raises(ssl.SSLError):
        tls(limited, tls12_ciphers=ciphers).close()


@pytest.mark.parametrize(
    "cipher", ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"]
)
def test_tls12_aead_suites_are_accepted(limited: Webhook, cipher: str) -> None:
    with tls(limited, tls12_ciphers=cipher) as s:
        assert s.version() == "TLSv1.2" and s.cipher()[0] == cipher


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}",
    ],
    ids=["arrays", "objects", "in-request"],
)
def test_deeply_nested_json_gets_400_one_line(limited: Webhook, body: bytes) -> None:
    with limited.client() as c:
        r = c.post("/validate", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text[:200]
        error = r.json()["error"]
        assert "\n" not in error and "nested too deeply" in error
        assert c.get("/healthz").status_code == 200


def test_manifest_failure_policy_follows_the_policy(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(STARVE_POLICY)
    out = run(
        "admission", "manifest", "--cert-dir", str(tmp_path / "certs"), "--policy", str(policy)
    )
    assert out.returncode == 0, out.stderr
    assert "failurePolicy: Fail" in out.stdout
    ignore = tmp_path / "i.yaml"
    ignore.write_text(STARVE_POLICY.replace("failurePolicy: fail", "failurePolicy: ignore"))
    out = run(
        "admission", "manifest", "--cert-dir", str(tmp_path / "certs"), "--policy", str(ignore)
    )
    assert "failurePolicy: Ignore" in out.stdout


# -- no silent answers: the denying rule is always named -------------------------------------------


def test_denial_names_the_rule_even_when_another_lookup_failed(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    source = StoreVulnSource(store, max_scans_per_review=0)  # every unknown image: undecided
    policy = parse_policy(
        "spec:\n  mode: protect\n  failurePolicy: ignore\n  rules:\n"
        "    - {name: no-privileged, criteria: {privileged: true}}\n"
        "    - {name: crit, criteria: {vulnerabilities: {severity: critical}}}\n",
        name="p",
    )
    d = decide(workload_of(pod("p", ["registry.example/a:1"], privileged=True)), policy, source)
    assert not d.allowed
    assert "rule 'no-privileged'" in d.message
    assert "failurePolicy is fail" not in d.message
    assert "could not decide" in d.message  # the failed lookup is still said
    fail = parse_policy(
        "spec:\n  mode: protect\n  failurePolicy: fail\n  rules:\n"
        "    - {name: crit, criteria: {vulnerabilities: {severity: critical}}}\n",
        name="p",
    )
    d = decide(workload_of(pod("p", ["registry.example/a:1"])), fail, source)
    assert not d.allowed and d.message.endswith("failurePolicy is fail")
    assert json.dumps(d.message).count("\\n") == 0
