"""Real AdmissionReview JSON over real HTTPS, the server certificate verified against the CA."""

from __future__ import annotations

import json
import socket
import ssl
import time

import httpx
import pytest
from cryptography import x509

from stockade.store import open_store
from stockade.store.records import list_events
from tests.admission.webhook import manifests, review_for, start_webhook, stop_webhook

OBJECTS = manifests()


def post(client: httpx.Client, review: dict) -> dict:
    r = client.post("/validate", json=review)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["apiVersion"] == review["apiVersion"] and body["kind"] == "AdmissionReview"
    assert body["response"]["uid"] == review["request"]["uid"]
    return body["response"]


@pytest.mark.parametrize(
    ("key", "allowed", "rules"),
    [
        ("Deployment/prod/pay", True, []),
        ("Deployment/shop/legacy", False, ["no-critical-vulnerabilities", "no-log4shell"]),
        ("Pod/shop/debug", False, ["no-privileged", "no-host-namespaces"]),
        ("CronJob/shop/report", False, ["no-secrets-in-env"]),
        ("Pod/shop/from-hub", False, ["approved-registries"]),
        ("DaemonSet/platform/node-agent", True, []),
    ],
)
def test_decisions_over_https(webhook, key: str, allowed: bool, rules: list[str]) -> None:
    with webhook.client() as c:
        resp = post(c, review_for(OBJECTS[key]))
    assert resp["allowed"] is allowed
    if not allowed:
        assert resp["status"]["code"] == 403
        for rule in rules:
            assert f"rule '{rule}'" in resp["status"]["message"]


def test_monitor_rule_allows_with_a_warning(webhook) -> None:
    with webhook.client() as c:
        resp = post(c, review_for(OBJECTS["Deployment/shop/api"]))
    assert resp["allowed"] is True
    assert any("no-fixable-high" in w for w in resp["warnings"])
    assert all(len(w) <= 256 for w in resp["warnings"])


def test_v1beta1_is_answered_in_kind(webhook) -> None:
    with webhook.client() as c:
        resp = post(
            c, review_for(OBJECTS["Pod/shop/debug"], api_version="admission.k8s.io/v1beta1")
        )
    assert resp["allowed"] is False


def test_delete_and_unknown_kinds_are_allowed(webhook) -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "shop"},
        "data": {},
    }
    with webhook.client() as c:
        assert post(c, review_for(cm))["allowed"] is True
        assert post(c, review_for(OBJECTS["Pod/shop/debug"], operation="DELETE"))["allowed"] is True


def test_update_of_a_controller_is_judged_like_create(webhook) -> None:
    with webhook.client() as c:
        assert (
            post(c, review_for(OBJECTS["Deployment/shop/legacy"], operation="UPDATE"))["allowed"]
            is False
        )


def test_ephemeral_container_is_seen(webhook) -> None:
    pod = json.loads(json.dumps(OBJECTS["Deployment/prod/pay"]["spec"]["template"]))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pay-1", "namespace": "prod", **pod["metadata"]},
        "spec": pod["spec"],
    }
    pod["spec"]["ephemeralContainers"] = [
        {
            "name": "dbg",
            "image": "docker.io/library/busybox:1.36",
            "securityContext": {"privileged": True},
        }
    ]
    review = review_for(pod, operation="UPDATE")
    review["request"]["subResource"] = "ephemeralcontainers"
    with webhook.client() as c:
        resp = post(c, review)
    assert (
        resp["allowed"] is False
        and "ephemeralContainer 'dbg' is privileged" in resp["status"]["message"]
    )


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}',
        b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v9", "request": {"uid": "x"}}',
        b'{"kind": "Pod", "apiVersion": "v1"}',
        b"\xff\xfe",
    ],
)
def test_malformed_reviews_get_400(webhook, body: bytes) -> None:
    with webhook.client() as c:
        r = c.post("/validate", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "error" in r.json()


def test_oversized_body_is_refused_without_reading_it(webhook) -> None:
    big = review_for(OBJECTS["Pod/shop/debug"])
    big["request"]["object"]["metadata"]["annotations"] = {"x": "a" * (4 * 1024 * 1024)}
    with webhook.client() as c:
        r = c.post("/validate", json=big)
        assert r.status_code == 413
        assert c.get("/healthz").status_code == 200  # still serving


def test_odd_objects_do_not_crash(webhook) -> None:
    odd = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "x"},
            "spec": {"containers": "nope"},
        },
        {"apiVersion": "v1", "kind": "Pod", "metadata": "nope", "spec": None},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {"template": 5},
        },
    ]
    with webhook.client() as c:
        for obj in odd:
            review = review_for(
                {**obj, "metadata": {"name": "x"}}
                if not isinstance(obj.get("metadata"), dict)
                else obj
            )
            review["request"]["object"] = obj
            assert post(c, review)["allowed"] in (True, False)


def test_server_certificate_names_the_service(webhook) -> None:
    cert = x509.load_pem_x509_certificate((webhook.ca.parent / "tls.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DNSName)
    assert "stockade-admission.stockade.svc" in names
    wrong = ssl.create_default_context()  # system roots: must not trust our private CA
    with pytest.raises(httpx.ConnectError), httpx.Client(verify=wrong) as c:
        c.get(webhook.url + "/healthz")


def test_every_decision_is_an_event(webhook) -> None:
    with webhook.client() as c:
        denied = review_for(OBJECTS["Pod/shop/debug"], user="mallory@example.com")
        post(c, denied)
    store = open_store(webhook.db)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = [
            e
            for e in list_events(store, kind="admission.*")
            if e.data.get("uid") == denied["request"]["uid"]
        ]
        if events:
            break
        time.sleep(0.1)
    assert len(events) == 1
    e = events[0]
    assert e.kind == "admission.denied" and e.data["user"] == "mallory@example.com"
    assert e.resource is not None and e.resource.name == "debug" and e.resource.namespace == "shop"
    assert {r["rule"] for r in e.data["rules"]} == {"no-privileged", "no-host-namespaces"}


@pytest.mark.parametrize(("failure", "allowed"), [("fail", False), ("ignore", True)])
def test_failure_policy_when_the_scan_store_has_no_advisory_data(
    tmp_path, failure: str, allowed: bool
) -> None:
    """The store source scans the never-seen image on demand; with no advisory database that scan
    fails, and the failure policy decides: fail denies, ignore allows with a warning."""
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "apiVersion: stockade.dev/v1\nkind: AdmissionPolicy\nspec:\n  mode: protect\n"
        f"  failurePolicy: {failure}\n"
        "  rules:\n    - name: no-critical\n      criteria: {vulnerabilities: {severity: critical}}\n"
    )
    hook = start_webhook(tmp_path, "--policy", str(policy))
    try:
        with hook.client() as c:
            resp = post(c, review_for(OBJECTS["Deployment/shop/api"]))
        assert resp["allowed"] is allowed
        text = resp["status"]["message"] if not allowed else " ".join(resp["warnings"])
        assert "could not decide" in text or "failed" in text
        assert "no advisory data" in text or "advisory" in text
    finally:
        stop_webhook(hook)


def test_start_up_heap_is_frozen_out_of_full_collections() -> None:
    """Issue 19: the first full collection came 0.5-0.9 s into serving and took 60 ms of CPU in
    each worker (every request waiting behind it). ``serve`` has the app collect and freeze the
    start-up heap when uvicorn starts it (lifespan), so no full pass walks it again."""
    import asyncio
    import gc

    from stockade.admission.policy import DEFAULT_POLICY_YAML, parse_policy
    from stockade.admission.server import AdmissionApp
    from stockade.store.writer import EventWriter

    app = AdmissionApp(parse_policy(DEFAULT_POLICY_YAML, name="built-in"), None, EventWriter(None))
    app.settle_heap = True  # what serve() sets
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    frozen: list[int] = []

    async def receive() -> dict:
        return next(messages)

    async def send(message: dict) -> None:
        if message["type"] == "lifespan.startup.complete":
            frozen.append(gc.get_freeze_count())

    gc.unfreeze()
    try:
        asyncio.run(app({"type": "lifespan"}, receive, send))
    finally:
        gc.unfreeze()
    assert frozen and frozen[0] > 10_000  # this test process's modules and objects


def test_an_answer_leaves_in_one_tls_record(webhook) -> None:
    """The response's head and body are written together: one TLS record, one send (a TLS read
    returns one record at most), so the API server wakes once per answer, not twice."""
    review = review_for(OBJECTS["Deployment/prod/pay"])
    body = json.dumps(review).encode()
    host, port = webhook.url.removeprefix("https://").rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(webhook.ca))
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(
            b"POST /validate HTTP/1.1\r\nhost: webhook\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        first = tls.recv(1 << 16)
    head, _, rest = first.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert json.loads(rest)["response"]["uid"] == review["request"]["uid"]


def test_answer_json_for_what_orjson_refuses(webhook) -> None:
    """The answer is written by orjson when it can, by json when orjson refuses (a lone
    surrogate in a hostile uid): either way the uid comes back as sent."""
    review = review_for(OBJECTS["Deployment/prod/pay"])
    for uid in ("plain-ü-uid", "\ud800lone"):
        review["request"]["uid"] = uid
        body = json.dumps(review).encode()  # \\ud800 escaped, as a client may send it
        with webhook.client() as c:
            r = c.post("/validate", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 200
        answer = json.loads(r.content)
        assert answer["response"]["uid"] == uid and answer["response"]["allowed"] is True


def test_head_request_is_answered(webhook) -> None:
    """A HEAD answer has no body to carry its head: the head goes out alone, at once."""
    with webhook.client() as c:
        r = c.head("/healthz")
    assert r.status_code in (200, 404, 405)
