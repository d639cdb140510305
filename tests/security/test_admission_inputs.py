"""Security regressions: what a pod spec, a registry or a VEX document can make the scanner do.

A pod's ``image:`` is someone else's text: admission looks up registry references only (never a
local path: ``dir:/``, ``docker-archive:`` on a FIFO), within an allow-list of registries, with the
same registry settings as ``scan image``. Registry and advisory downloads never follow a redirect
from HTTPS to plain HTTP.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import select
import socket
import threading
import time
from pathlib import Path

import pytest

from stockade.admission.engine import Decision, decide
from stockade.admission.interface import LookupBudget
from stockade.admission.policy import parse_policy
from stockade.admission.review import answer, parse
from stockade.admission.testing import TEST_FILE, run_tests
from stockade.admission.workload import workload_of
from stockade.scanning.admission_source import StoreVulnSource
from stockade.store import open_store
from tests.admission.webhook import review_for
from tests.support import LoopbackServer


def pod(*images: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "shop"},
        "spec": {"containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)]},
    }


def vuln_policy(failure_policy: str) -> object:
    return parse_policy(
        f"spec:\n  mode: protect\n  failurePolicy: {failure_policy}\n  scanBudgetSeconds: 2\n"
        "  rules:\n    - {name: no-critical, criteria: {vulnerabilities: {severity: critical}}}\n",
        name="policy",
    )


def decide_within(seconds: float, obj: dict, policy, source) -> Decision:
    """Decide in a thread so that a hang fails the test instead of freezing it."""
    out: list[Decision] = []
    worker = threading.Thread(
        target=lambda: out.append(decide(workload_of(obj), policy, source)), daemon=True
    )
    worker.start()
    worker.join(seconds)
    assert out, f"no decision within {seconds} s"
    return out[0]


def has_reader(fifo: Path) -> bool:
    """Whether anyone opened the FIFO for reading (a writer's non-blocking open tells)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        assert exc.errno == errno.ENXIO
        return False
    os.close(fd)  # the reader (a stuck scan) now sees EOF and ends
    return True


@pytest.fixture(scope="module")
def advisory_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Real advisory data, so that a scan that was let through would really start."""
    from tests.scanning.scan_cli_support import make_db

    return make_db(tmp_path_factory.mktemp("adm") / "db.sqlite")


@pytest.fixture
def store(advisory_db: str):
    s = open_store(advisory_db)
    yield s
    s.close()


@pytest.mark.parametrize("failure_policy", ["fail", "ignore"])
@pytest.mark.parametrize("form", ["dir:/", "docker-archive:{fifo}", "oci:{fifo}", "pid:1"])
def test_local_sources_in_a_pod_never_open_a_path(
    tmp_path: Path, store, form: str, failure_policy: str
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    image = form.format(fifo=fifo)
    started = time.monotonic()
    d = decide_within(10, pod(image), vuln_policy(failure_policy), StoreVulnSource(store))
    assert time.monotonic() - started < 2
    assert not has_reader(fifo)
    assert d.error is not None and "not a registry image" in d.error and image in d.error
    if failure_policy == "fail":
        assert not d.allowed and "not a registry image" in d.message
    else:
        assert d.allowed and any("not a registry image" in w for w in d.warnings)


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


def test_docker_hub_familiar_names_are_docker_io_references(store) -> None:
    """nginx:1.27 is what the kubelet pulls from docker.io, not an unreadable reference: never
    scanned, it has no result; and docker.io is held to the --scan-registry list like any host."""
    source = StoreVulnSource(store, scan_on_demand=False)
    for image in ("nginx:1.27", "bitnami/redis:7.2", "nginx"):
        assert source.summary(image, budget=LookupBudget(0)) is None, image
    d = decide_within(10, pod("nginx:1.27"), vuln_policy("fail"), StoreVulnSource(store, registries=["registry.internal.example"]))  # fmt: skip
    assert not d.allowed and "registry docker.io is not one admission may scan" in d.message


def test_registry_outside_the_allow_list_is_never_contacted(store) -> None:
    with _listener() as sock:
        port = sock.getsockname()[1]
        image = f"127.0.0.1:{port}/shop/app:1"
        source = StoreVulnSource(store, registries=["registry.internal.example", "*.corp.example"])
        d = decide_within(10, pod(image), vuln_policy("fail"), source)
        assert not d.allowed
        assert f"registry 127.0.0.1:{port} is not one admission may scan" in d.message
        time.sleep(0.2)
        readable, _, _ = select.select([sock], [], [], 0)
        assert not readable, "admission connected to a registry outside its allow-list"


def test_credentials_need_an_allow_list(store) -> None:
    from stockade.model.errors import UsageError
    from stockade.scanning.pipeline import ImageOptions

    with pytest.raises(UsageError, match="--username needs --scan-registry"):
        StoreVulnSource(store, image_options=ImageOptions(username="u", password="p"))


# -- the on-demand scan uses the registry settings of `scan image` -----------------------------------


@pytest.fixture(scope="module")
def pushed_auth() -> str:
    """The sample in the loopback registry that needs credentials (.ci/setup.d/20-registry.sh)."""
    from stockade.lab.samples import build_sample, push_sample
    from tests.scanning.conftest import AUTH_PASSWORD, AUTH_REGISTRY, AUTH_USER, listening
    from tests.support import require

    require(listening(AUTH_REGISTRY), f"no registry on {AUTH_REGISTRY}")
    sample = build_sample()
    push_sample(sample, AUTH_REGISTRY, creds=f"{AUTH_USER}:{AUTH_PASSWORD}")
    return f"{AUTH_REGISTRY}/stockade/sample:{sample.tag}"


CVE_POLICY = (
    "apiVersion: stockade.dev/v1\nkind: AdmissionPolicy\nspec:\n  mode: protect\n"
    "  failurePolicy: ignore\n  scanBudgetSeconds: 25\n"
    "  rules:\n    - {name: no-requests-cve, criteria: {cves: [CVE-2024-35195]}}\n"
)


def _review_through_webhook(tmp_path: Path, image: str, *serve_args: str) -> dict:
    import httpx

    from tests.admission.webhook import review_for, start_webhook, stop_webhook
    from tests.scanning.scan_cli_support import make_db

    make_db(tmp_path / "stockade.db")  # start_webhook serves this database
    (tmp_path / "p.yaml").write_text(CVE_POLICY)
    hook = start_webhook(tmp_path, "--policy", str(tmp_path / "p.yaml"), *serve_args)
    try:
        with hook.client() as c:
            c.timeout = httpx.Timeout(60)
            resp = c.post("/validate", json=review_for(pod(image)))
        assert resp.status_code == 200, resp.text
        return dict(resp.json()["response"])
    finally:
        stop_webhook(hook)


@pytest.mark.slow
@pytest.mark.registry
def test_on_demand_scan_with_insecure_and_credentials(tmp_path: Path, pushed_auth: str) -> None:
    from tests.scanning.conftest import AUTH_PASSWORD, AUTH_REGISTRY, AUTH_USER

    answer = _review_through_webhook(
        tmp_path, pushed_auth,
        "--insecure", "--scan-registry", AUTH_REGISTRY,
        "--username", AUTH_USER, "--password", AUTH_PASSWORD,
    )  # fmt: skip
    assert answer["allowed"] is False, answer
    assert "rule 'no-requests-cve'" in answer["status"]["message"]
    assert "CVE-2024-35195" in answer["status"]["message"]


@pytest.mark.slow
@pytest.mark.registry
def test_on_demand_scan_with_docker_config_credentials(
    tmp_path: Path, pushed_auth: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64
    import json

    from tests.scanning.conftest import AUTH_PASSWORD, AUTH_REGISTRY, AUTH_USER

    auth = base64.b64encode(f"{AUTH_USER}:{AUTH_PASSWORD}".encode()).decode()
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(
        json.dumps({"auths": {AUTH_REGISTRY: {"auth": auth}}})
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    answer = _review_through_webhook(tmp_path, pushed_auth, "--insecure")
    assert answer["allowed"] is False, answer
    assert "CVE-2024-35195" in answer["status"]["message"]


# -- envSecrets: literal values only, *KEY* names -----------------------------------------------------


def _env_pod(*env: dict, env_from: list | None = None) -> dict:
    obj = pod("registry.internal.example/shop/app:1")
    obj["spec"]["containers"][0]["env"] = list(env)
    if env_from is not None:
        obj["spec"]["containers"][0]["envFrom"] = env_from
    return obj


def _env_policy(params: str):
    return parse_policy(
        f"spec:\n  mode: protect\n  rules:\n    - {{name: env, criteria: {{envSecrets: {params}}}}}\n",
        name="policy",
    )


@pytest.mark.parametrize(
    "name", ["API_KEY", "SECRET_KEY", "STRIPE_SECRET_KEY", "apiKey", "AWS_ACCESS_KEY_ID", "APIKEY"]
)
def test_key_names_with_literal_values_are_flagged(name: str) -> None:
    d = decide(
        workload_of(_env_pod({"name": name, "value": "sk_live_51Hx"})), _env_policy("true"), None
    )
    assert not d.allowed and f"secret-looking env {name} in clear" in d.message


@pytest.mark.parametrize("name", ["PUBLIC_KEY", "KEYCLOAK_URL", "HOCKEY_TEAM", "LOG_LEVEL"])
def test_names_that_only_contain_key_letters_pass(name: str) -> None:
    d = decide(workload_of(_env_pod({"name": name, "value": "x"})), _env_policy("true"), None)
    assert d.allowed, d.message


def test_literal_only_allows_secret_references() -> None:
    by_ref = _env_pod(
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}},
        {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "api", "key": "k"}}},
        {"name": "TOKEN_COPY", "value": "$(API_KEY)"},
        env_from=[{"secretRef": {"name": "more"}}],
    )
    literal_only = _env_policy("{literalOnly: true}")
    assert decide(workload_of(by_ref), literal_only, None).allowed
    everything = decide(workload_of(by_ref), _env_policy("true"), None)
    assert not everything.allowed and "from secret 'db'" in everything.message
    literal = _env_pod({"name": "API_KEY", "value": "sk_live_51Hx"})
    d = decide(workload_of(literal), literal_only, None)
    assert not d.allowed and "API_KEY in clear" in d.message


def test_built_in_policy_allows_secret_references() -> None:
    from stockade.admission.policy import DEFAULT_POLICY_YAML

    policy = parse_policy(DEFAULT_POLICY_YAML, name="built-in")
    by_ref = _env_pod(
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}
    )
    assert not decide(workload_of(by_ref), policy, None).warnings


# -- what the runtime would run, not what the text looks like ------------------------------------------


def _policy(criteria: str):
    return parse_policy(
        f"spec:\n  mode: protect\n  rules:\n    - {{name: r, criteria: {criteria}}}\n",
        name="policy",
    )


@pytest.mark.parametrize(
    "image",
    [
        "nginx:1.27",
        "docker.io/library/nginx:1.27",
        # Docker's reference library maps its registry's old name to docker.io
        "index.docker.io/library/nginx:1.27",
        "index.docker.io/nginx@sha256:" + "a" * 64,
    ],
)
def test_registry_deny_list_sees_docker_hub_under_its_old_name(image: str) -> None:
    d = decide(workload_of(pod(image)), _policy("{registries: {deny: [docker.io]}}"), None)
    assert not d.allowed and "denied registry (docker.io)" in d.message, d.message


@pytest.mark.parametrize("image", ["EVIL.example/app:1", "Evil.Example:5000/app:1"])
def test_registry_lists_ignore_the_case_of_host_names(image: str) -> None:
    d = decide(workload_of(pod(image)), _policy("{registries: {deny: ['evil.example*']}}"), None)
    assert not d.allowed and "denied registry (evil.example" in d.message, d.message


def test_an_upper_case_first_part_is_a_registry_host() -> None:
    # distribution/reference: a lower-case word before the first "/" is a Docker Hub namespace,
    # anything else (a dot, a port, localhost, upper case) is the registry to pull from
    d = decide(workload_of(pod("Evil/app:1")), _policy("{registries: {allow: [docker.io]}}"), None)
    assert not d.allowed and "from registry evil" in d.message, d.message


@pytest.mark.parametrize("add", [["ALL"], ["all"], ["CAP_SYS_ADMIN"], ["sys_admin"]])
def test_adding_all_capabilities_adds_the_named_one(add: list[str]) -> None:
    obj = pod("registry.internal.example/shop/app:1")
    obj["spec"]["containers"][0]["securityContext"] = {"capabilities": {"add": add}}
    d = decide(workload_of(obj), _policy("{capabilities: {add: [SYS_ADMIN]}}"), None)
    assert not d.allowed and f"adds capabilities {add[0]}" in d.message, d.message


def test_net_bind_service_in_any_case_is_never_reported() -> None:
    obj = pod("registry.internal.example/shop/app:1")
    obj["spec"]["containers"][0]["securityContext"] = {
        "capabilities": {"add": ["net_bind_service"]}
    }
    assert decide(workload_of(obj), _policy("{capabilities: {add: any}}"), None).allowed


def _host_path_pod(path: str) -> dict:
    obj = pod("registry.internal.example/shop/app:1")
    obj["spec"]["volumes"] = [{"name": "logs", "hostPath": {"path": path}}]
    return obj


@pytest.mark.parametrize(
    ("allowed", "path", "admitted"),
    [
        ("/var/log/", "/var/log", True),  # a trailing slash names the same directory
        ("/var/log", "/var/log/", True),
        ("/var/log", "//var//log/pods", True),
        ("/var/log/", "/var/logs", False),
        ("/var/log", "/var/log/../../etc", False),  # what the node would mount is /etc
        ("/var/log", "/var/log/./../lib/kubelet", False),
    ],
)
def test_host_path_prefixes_compare_resolved_paths(allowed: str, path: str, admitted: bool) -> None:
    d = decide(
        workload_of(_host_path_pod(path)),
        _policy(f"{{hostPath: {{allowed: ['{allowed}']}}}}"),
        None,
    )
    assert d.allowed is admitted, d.message


# -- shapes the API server would refuse, sent to the webhook or kept in an `admission test` suite --------


@pytest.mark.parametrize(("field", "value"), [("env", 1), ("envFrom", True), ("env", 1.5)])
def test_a_scalar_where_a_list_belongs_is_nothing_not_a_crash(field: str, value: object) -> None:
    obj = pod("registry.internal.example/shop/app:1")
    obj["spec"]["containers"][0][field] = value
    d = decide(workload_of(obj), _env_policy("true"), None)
    assert d.allowed and d.error is None, d


def test_admission_test_reads_a_suite_with_odd_metadata(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(
        "spec:\n  mode: protect\n  rules:\n    - {name: env, criteria: {envSecrets: true}}\n"
    )
    (tmp_path / "m.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\n"
        "spec: {containers: [{name: c, image: 'nginx:1', env: 1}]}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: just-a-string\n"
        "spec: {containers: [{name: c, image: 'nginx:1'}]}\n"
    )
    (tmp_path / TEST_FILE).write_text(
        "policy: policy.yaml\nresources: [m.yaml]\nresults:\n"
        "  - {resource: Pod/shop/p, result: allow}\n  - {resource: Pod/None, result: allow}\n"
    )
    results = run_tests(tmp_path)
    assert [(r.resource, r.actual) for r in results] == [
        ("Pod/shop/p", "allow"),
        ("Pod/None", "allow"),
    ]


# -- objects being deleted ------------------------------------------------------------------------------


def _finalizer_removal(*, old_deleting: bool, new_deleting: bool) -> dict:
    """The garbage collector's UPDATE at the end of ``kubectl delete --cascade=foreground`` of a
    privileged DaemonSet admitted before a protect rule existed: it drops ``foregroundDeletion``."""
    ds = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": "node-agent",
            "namespace": "shop",
            "finalizers": ["foregroundDeletion"],
        },
        "spec": {
            "selector": {"matchLabels": {"app": "node-agent"}},
            "template": {
                "metadata": {"labels": {"app": "node-agent"}},
                "spec": {
                    "containers": [
                        {
                            "name": "agent",
                            "image": "registry.internal.example/agent:1",
                            "securityContext": {"privileged": True},
                        }
                    ]
                },
            },
        },
    }
    review = review_for(ds, operation="UPDATE")
    req = review["request"]
    stamp = "2026-12-06T07:00:00Z"
    if old_deleting:
        req["oldObject"]["metadata"]["deletionTimestamp"] = stamp
    if new_deleting:
        req["object"]["metadata"]["deletionTimestamp"] = stamp
    req["object"]["metadata"]["finalizers"] = []
    return review


def test_an_object_without_kind_is_judged_by_the_kind_the_request_names() -> None:
    """A review whose object lacks ``kind`` (sent by a client other than the API server) is not
    waved through as a kind that templates no pods."""
    obj = pod("registry.internal.example/shop/app:1")
    obj["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    review = review_for(obj)
    del review["request"]["object"]["kind"]
    out = answer(parse(json.dumps(review).encode()), _policy("{privileged: true}"), None)
    assert out.response["response"]["allowed"] is False, out.response


@pytest.mark.parametrize("kind", [["Pod"], {"kind": "Pod"}, 7, None])
def test_an_object_kind_that_is_no_string_is_answered_not_a_crash(kind: object) -> None:
    review = review_for(pod("registry.internal.example/shop/app:1"))
    review["request"]["object"]["kind"] = kind
    review["request"]["kind"] = {"group": "", "version": "v1", "kind": kind}
    out = answer(parse(json.dumps(review).encode()), _policy("{privileged: true}"), None)
    assert out.response["response"]["allowed"] is True and out.event is None


def test_an_object_being_deleted_can_lose_its_finalizers() -> None:
    policy = _policy("{privileged: true}")
    review = _finalizer_removal(old_deleting=True, new_deleting=True)
    out = answer(parse(json.dumps(review).encode()), policy, None)
    assert out.response["response"]["allowed"] is True, out.response
    # the stored object decides, not what the request claims
    review = _finalizer_removal(old_deleting=False, new_deleting=True)
    out = answer(parse(json.dumps(review).encode()), policy, None)
    assert out.response["response"]["allowed"] is False
    assert "container 'agent' is privileged" in out.response["response"]["status"]["message"]
    # adding an ephemeral container to a terminating pod is still judged
    pod = copy.deepcopy(review["request"]["object"]["spec"]["template"])
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop",
           "deletionTimestamp": "2026-12-06T07:00:00Z"}, "spec": pod["spec"]}  # fmt: skip
    review = review_for(pod, operation="UPDATE")
    review["request"]["subResource"] = "ephemeralcontainers"
    out = answer(parse(json.dumps(review).encode()), policy, None)
    assert out.response["response"]["allowed"] is False


# -- no redirect from HTTPS to plain HTTP --------------------------------------------------------------


class _Server(LoopbackServer):
    """A real loopback HTTP(S) server: ``routes`` maps a path to (status, headers, body)."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        from http.server import BaseHTTPRequestHandler

        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.seen: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                owner.seen.append(self.path)
                status, headers, body = owner.routes.get(
                    self.path.split("?", 1)[0], owner.routes.get("*", (404, {}, b""))
                )
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler, tls)


@pytest.fixture
def redirecting(tmp_path: Path):
    """(https server with a test CA, plain-http server, ca.pem); https answers 302 to http."""
    from tests.scanning.registry_servers import make_tls_files

    ca, cert, key = make_tls_files(tmp_path)
    plain, secure = _Server(), _Server(tls=(cert, key))
    try:
        yield secure, plain, ca
    finally:
        secure.close()
        plain.close()


def _cli(*args: str, ca: Path) -> tuple[int, str, str]:
    import subprocess
    import sys

    env = dict(os.environ, SSL_CERT_FILE=str(ca), DOCKER_CONFIG="/nonexistent")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src")
    env.pop("STOCKADE_DB", None)
    proc = subprocess.run(
        [sys.executable, "-m", "stockade", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def test_registry_client_refuses_a_redirect_from_https_to_http(redirecting, tmp_path) -> None:
    secure, plain, ca = redirecting
    secure.routes["*"] = (302, {"Location": f"http://{plain.host}/v2/a/b/manifests/1"}, b"")
    code, out, err = _cli("sbom", f"{secure.host}/a/b:1", "--no-cache", "--format", "json", ca=ca)
    assert code == 3, (out, err)
    assert err.count("\n") == 1 and err.startswith("stockade: error: "), err
    assert "refusing a redirect from HTTPS to http://" in err and "Traceback" not in err
    assert plain.seen == [] and secure.seen


def test_advisory_download_refuses_a_redirect_from_https_to_http(redirecting, tmp_path) -> None:
    secure, plain, ca = redirecting
    osv = Path(__file__).resolve().parents[2] / "examples/advisories/GHSA-248v-346w-9cwc.json"
    plain.routes["/osv.json"] = (200, {"Content-Type": "application/json"}, osv.read_bytes())
    secure.routes["/osv.json"] = (302, {"Location": f"http://{plain.host}/osv.json"}, b"")
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    code, out, err = _cli("db", "import", f"https://{secure.host}/osv.json", "--db", db, ca=ca)
    assert code == 3, (out, err)
    assert err.count("\n") == 1 and "refusing a redirect from HTTPS to http://" in err, err
    assert plain.seen == []
    # A redirect that stays on HTTPS is still followed.
    secure.routes["/moved.json"] = (301, {"Location": "/real.json"}, b"")
    secure.routes["/real.json"] = (200, {"Content-Type": "application/json"}, osv.read_bytes())
    code, out, err = _cli("db", "import", f"https://{secure.host}/moved.json", "--db", db, ca=ca)
    assert code == 0, (out, err)


# -- sample build --push: no password on a command line, TLS checks off only for loopback ------------


def test_push_commands_carry_no_password_and_verify_tls_off_loopback(tmp_path: Path) -> None:
    from stockade.lab.samples import SampleImage, push_commands, write_auth_file

    sample = SampleImage(
        root=tmp_path,
        docker_archive=tmp_path / "a.tar",
        docker_archive_oci=tmp_path / "b.tar",
        oci_dir=tmp_path / "oci",
        oci_tar=tmp_path / "oci.tar",
    )
    authfile = write_auth_file(tmp_path, "registry.example.com", "alice:s3cret-pw")
    assert authfile.stat().st_mode & 0o777 == 0o600
    assert "s3cret-pw" not in authfile.read_text()  # base64, as containers-auth.json has it
    remote = push_commands(sample, "registry.example.com", authfile=authfile)
    local = push_commands(sample, "127.0.0.1:5001", authfile=authfile)
    for args, _dest in remote + local:
        line = " ".join(args)
        assert "s3cret-pw" not in line and "alice" not in line and "--dest-creds" not in line
        assert f"--dest-authfile={authfile}" in args
    assert all("--dest-tls-verify=true" in args for args, _ in remote)
    assert all("--dest-tls-verify=false" in args for args, _ in local)


@pytest.mark.registry
def test_push_with_an_auth_file_reaches_the_auth_registry(tmp_path: Path, pushed_auth) -> None:
    """pushed_auth pushed through push_sample: the auth file works; a wrong password fails."""
    from stockade.lab.samples import build_sample, push_sample
    from stockade.model.errors import StockadeError
    from tests.scanning.conftest import AUTH_REGISTRY, AUTH_USER

    with pytest.raises(StockadeError, match="skopeo copy --quiet failed"):
        push_sample(build_sample(), AUTH_REGISTRY, creds=f"{AUTH_USER}:wrong")


# -- VEX: pkg:oci repository_url, and no identity from an archive's own RepoTags -----------------------


def _vex_file(tmp_path: Path, product: str) -> Path:
    import json

    path = tmp_path / "v.vex.json"
    path.write_text(
        json.dumps(
            {
                "@context": "https://openvex.dev/ns/v0.2.0",
                "@id": "https://example.com/vex/1",
                "author": "tests",
                "timestamp": "2026-11-01T00:00:00Z",
                "version": 1,
                "statements": [
                    {
                        "vulnerability": {"name": "CVE-2024-0001"},
                        "products": [{"@id": product}],
                        "status": "not_affected",
                        "justification": "component_not_present",
                    }
                ],
            }
        )
    )
    return path


def _suppressed(tmp_path: Path, product: str, target) -> bool:
    from stockade.scanning.gate import Policy, apply_policy
    from stockade.scanning.policy_files import load_vex
    from tests.scanning.scan_support import sample_findings

    res = apply_policy(
        sample_findings(), Policy(vex=load_vex(_vex_file(tmp_path, product))), target
    )
    (g,) = [g for g in res.findings if g.finding.id == "CVE-2024-0001"]
    return not g.active


def test_oci_purl_with_repository_url_matches_only_that_repository(tmp_path: Path) -> None:
    from stockade.scanning.gate import Target
    from tests.scanning.scan_support import DIGEST

    ours = Target(
        reference="r.example/team/app:1", name="r.example/team/app", tag="1", digest=DIGEST
    )
    other = Target(reference="evil.example/app:1", name="evil.example/app", tag="1", digest=DIGEST)
    enc = DIGEST.replace(":", "%3A")
    pinned = f"pkg:oci/app@{enc}?repository_url=r.example/team/app&tag=1"
    assert _suppressed(tmp_path, pinned, ours)
    assert not _suppressed(tmp_path, pinned, other)
    by_name = "pkg:oci/app?repository_url=https%3A%2F%2Fr.example%2Fteam%2Fapp%2F"
    assert _suppressed(tmp_path, by_name, ours)
    assert not _suppressed(tmp_path, by_name, other)
    assert not _suppressed(tmp_path, "pkg:oci/app?tag=2", ours)
    assert _suppressed(tmp_path, f"pkg:oci/app@{enc}", other)  # no repository_url: the digest


@pytest.mark.slow
def test_an_archive_cannot_name_itself_into_a_vex_statement(tmp_path: Path) -> None:
    """The sample's docker save says RepoTags [stockade/sample:1]; a VEX statement about
    stockade/sample:1 is not about this tar (it says so itself, but anyone can write that)."""
    import json

    from stockade.lab.samples import REPO_TAG, build_sample
    from tests.scanning.scan_cli_support import make_db, run

    sample = build_sample()
    db = make_db(tmp_path / "db.sqlite")
    vex = _vex_file(tmp_path, REPO_TAG)
    vex.write_text(vex.read_text().replace("CVE-2024-0001", "CVE-2024-35195"))
    ref = f"docker-archive:{sample.docker_archive}"
    out = run("scan", "image", ref, "--db", db, "--format", "json", "--vex", str(vex))
    assert out.returncode in (0, 1), out.stderr
    (requests,) = [f for f in json.loads(out.stdout)["findings"] if f["package"] == "requests"]
    assert requests["suppressed"] is None, requests["suppressed"]
    # A statement about the reference the user scanned is about this tar.
    vex.write_text(vex.read_text().replace(f'"{REPO_TAG}"', json.dumps(ref)))
    out = run("scan", "image", ref, "--db", db, "--format", "json", "--vex", str(vex))
    (requests,) = [f for f in json.loads(out.stdout)["findings"] if f["package"] == "requests"]
    assert requests["suppressed"]["vex_status"] == "not_affected"
