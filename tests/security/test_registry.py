"""Registry credentials the way registries issue them (issue 18), against a real docker-registry
configured with token auth (JWTs from a test token server it verifies) and one with basic auth:
docker credential helpers (``credHelpers``, ``credsStore``) as programs on PATH, identity tokens,
AWS ECR authorization tokens, Azure ACR's AAD exchange, Docker Hub's namespace listing.

Hostile cases: helpers that hang, flood, print garbage, fail or are missing; token servers that
answer 401, garbage or a redirect; realms where credentials must not go. Each answer is one line
(``stockade: error: ...``, exit 3, or 2 for a bad option) and no secret reaches any output.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stockade.lab.samples import SampleImage, push_sample
from stockade.model.errors import ConfigError, RegistryError
from stockade.scanning.inventory import build_inventory
from stockade.scanning.pipeline import ImageOptions
from stockade.scanning.sources.registry_auth import AuthOptions, Credential
from stockade.scanning.sources.registry_tokens import credentials_may_go_to
from tests.conftest import require
from tests.scanning.registry_servers import TokenIssuer, docker_registry, token_auth_yaml
from tests.scanning.scan_cli_support import make_db
from tests.security.registry_auth_servers import AuthServer

pytestmark = pytest.mark.registry

SRC = str(Path(__file__).resolve().parents[2] / "src")
ALICE_PW = "wonderland-s3cret-pw"
IDENTITY = "identity-token-9f8e7d6c"
AAD = "aad-access-token-5c4b3a29"
ECR_PW = "ecr-password-1a2b3c4d"
HUB_PAT = "dckr_pat_hub-secret-77aa"
SECRETS = (ALICE_PW, IDENTITY, AAD, ECR_PW, HUB_PAT)


@dataclass
class TokenRegistry:
    host: str
    server: AuthServer


@pytest.fixture(scope="module")
def sample() -> SampleImage:
    from stockade.lab.samples import build_sample

    require(shutil.which("skopeo") is not None, "skopeo is not installed")
    return build_sample()


@pytest.fixture(scope="module")
def token_registry(sample: SampleImage, tmp_path_factory) -> Iterator[TokenRegistry]:
    require(shutil.which("docker-registry") is not None, "docker-registry is not installed")
    work = tmp_path_factory.mktemp("token-auth-registry")
    issuer = TokenIssuer()
    (work / "bundle.pem").write_bytes(issuer.cert_pem)
    server = AuthServer(
        issuer,
        users={"alice": ALICE_PW, "hubuser": HUB_PAT},
        refresh_tokens={IDENTITY},
        aad_tokens={AAD},
        hub={"stockade": ["sample", "sample-multiarch"]},
        hub_private={"stockade"},
    )
    with server, docker_registry(work, token_auth_yaml(server.realm, work / "bundle.pem")) as host:
        push_sample(sample, host, creds=f"alice:{ALICE_PW}")
        yield TokenRegistry(host, server)


@pytest.fixture(scope="module")
def ecr_registry(sample: SampleImage, tmp_path_factory) -> Iterator[str]:
    """A registry answering ``Basic`` challenges, as AWS ECR does, for the user ``AWS``."""
    require(shutil.which("docker-registry") is not None, "docker-registry is not installed")
    require(shutil.which("htpasswd") is not None, "htpasswd (apache2-utils) is not installed")
    work = tmp_path_factory.mktemp("ecr-like-registry")
    htpasswd = subprocess.run(
        ["htpasswd", "-iBn", "AWS"], input=ECR_PW, capture_output=True, text=True, check=True
    ).stdout
    (work / "htpasswd").write_text(htpasswd)
    auth = f"auth:\n  htpasswd:\n    realm: ecr-test\n    path: {work / 'htpasswd'}\n"
    with docker_registry(work, auth) as host:
        push_sample(sample, host, creds=f"AWS:{ECR_PW}")
        yield host


@pytest.fixture
def reset(token_registry: TokenRegistry) -> Iterator[AuthServer]:
    server = token_registry.server
    server.mode, server.hub_next = "ok", None
    server.seen.clear()
    yield server
    server.mode, server.hub_next = "ok", None


# -- helpers -----------------------------------------------------------------------------------
def helper(bin_dir: Path, name: str, body: str) -> Path:
    """An executable ``docker-credential-NAME`` written for the test."""
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / f"docker-credential-{name}"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def answering(bin_dir: Path, name: str, user: str, secret: str) -> Path:
    """A helper answering the protocol's JSON and recording its argv and stdin."""
    answer = json.dumps({"ServerURL": "x", "Username": user, "Secret": secret})
    return helper(
        bin_dir,
        name,
        f"echo \"$@\" > '{bin_dir}/{name}.argv'\ncat > '{bin_dir}/{name}.stdin'\n"
        f"printf '%s' '{answer}'",
    )


def docker_config(folder: Path, doc: dict) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(doc))
    return folder


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    full = dict(os.environ)
    for key in list(full):
        if key.startswith(("STOCKADE_REGISTRY", "STOCKADE_ACR", "STOCKADE_DOCKER_HUB")):
            del full[key]
    full.pop("STOCKADE_DB", None)
    full["PYTHONPATH"] = SRC + os.pathsep + full.get("PYTHONPATH", "")
    full["PATH"] = f"{tmp_path / 'bin'}{os.pathsep}{full['PATH']}"
    full["DOCKER_CONFIG"] = str(tmp_path / "no-docker-config")
    full.update(env or {})
    out = subprocess.run(
        [sys.executable, "-m", "stockade", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env=full,
    )
    for secret in SECRETS:
        assert secret not in out.stdout and secret not in out.stderr, secret
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    return out


def database(path: Path) -> str:
    return f"sqlite:///{path}" if path.exists() else make_db(path)


def scan_image(tmp_path: Path, ref: str, *extra: str, env: dict[str, str] | None = None):
    return cli(
        tmp_path, "scan", "image", ref, "--insecure", "--allow-stale-db", "--no-store",
        "--db", database(tmp_path / "img.db"), "--format", "json", *extra, env=env,
    )  # fmt: skip


def scan_registry(tmp_path: Path, host: str, *extra: str, env: dict[str, str] | None = None):
    return cli(
        tmp_path, "scan", "registry", host, "--insecure", "--allow-stale-db",
        "--db", database(tmp_path / "reg.db"), "--format", "json", *extra, env=env,
    )  # fmt: skip


def one_line_error(out, code: int, text: str) -> str:
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == code, out.stderr[-2000:]
    errors = [line for line in lines if line.startswith("stockade: error:")]
    assert len(errors) == 1 and text in errors[0], out.stderr[-2000:]
    return errors[0]


def scanned(out, ref: str) -> dict:
    assert out.returncode in (0, 1), out.stderr[-2000:]
    [walk] = json.loads(out.stdout)
    [item] = [i for i in walk["images"] if i["reference"] == ref]
    assert item["action"] == "scanned" and item["error"] is None, item
    return item


def inventory(ref: str, cfg: Path | None = None, **auth: str):
    from tests.scanning.simple_catalogers import all_catalogers

    return build_inventory(
        ref,
        catalogers=all_catalogers(),
        insecure=True,
        auth=AuthOptions(config=str(cfg) if cfg else None, **auth),
    )


# -- docker credential helpers -----------------------------------------------------------------
def test_cred_helper_scans_an_image_and_walks_the_registry(token_registry, reset, tmp_path):
    host = token_registry.host
    answering(tmp_path / "bin", "stktest", "alice", ALICE_PW)
    cfg = docker_config(tmp_path / "docker", {"credHelpers": {host: "stktest"}})
    out = scan_image(tmp_path, f"{host}/stockade/sample:1", "--registry-config", str(cfg))
    assert out.returncode in (0, 1), out.stderr[-2000:]
    assert json.loads(out.stdout)["summary"]["packages"] > 0
    # the protocol: `get` as the only argument, the server URL alone on stdin
    assert (tmp_path / "bin/stktest.argv").read_text() == "get\n"
    assert (tmp_path / "bin/stktest.stdin").read_text() == host
    out = scan_registry(
        tmp_path, host, "--repo", "stockade/sample", "--registry-config", str(cfg / "config.json")
    )
    scanned(out, f"{host}/stockade/sample:1")
    assert any("registry%3Acatalog%3A%2A" in s.path for s in reset.seen)  # catalog scope asked
    assert all(IDENTITY not in s.body for s in reset.seen)


def test_creds_store_identity_token_uses_the_refresh_token_grant(token_registry, reset, tmp_path):
    host = token_registry.host
    answering(tmp_path / "bin", "stkstore", "<token>", IDENTITY)
    cfg = docker_config(tmp_path / "docker", {"credsStore": "stkstore", "auths": {host: {}}})
    out = scan_image(tmp_path, f"{host}/stockade/sample:1", env={"DOCKER_CONFIG": str(cfg)})
    assert out.returncode in (0, 1), out.stderr[-2000:]
    posts = [s for s in reset.seen if s.method == "POST" and s.path == "/oauth2/token"]
    assert posts and all("grant_type=refresh_token" in s.body for s in posts)
    assert all(f"refresh_token={IDENTITY}" in s.body for s in posts)
    assert not any(s.authorization for s in reset.seen)  # the token went in the form only


def test_auths_identitytoken_and_basic_entries(token_registry, reset, tmp_path):
    host = token_registry.host
    ref = f"{host}/stockade/sample:1"
    cfg = docker_config(tmp_path / "a", {"auths": {host: {"identitytoken": IDENTITY}}})
    assert inventory(ref, cfg).packages
    assert any(s.method == "POST" and IDENTITY in s.body for s in reset.seen)
    cfg = docker_config(tmp_path / "b", {"auths": {f"https://{host}/v2/": {"auth": b64(f"alice:{ALICE_PW}")}}})  # fmt: skip
    assert inventory(ref, cfg).packages


# -- AWS ECR -----------------------------------------------------------------------------------
def test_ecr_token_from_the_ecr_login_helper_and_from_the_environment(ecr_registry, tmp_path):
    ref = f"{ecr_registry}/stockade/sample:1"
    answering(tmp_path / "bin", "ecr-login", "AWS", ECR_PW)
    cfg = docker_config(tmp_path / "docker", {"credHelpers": {ecr_registry: "ecr-login"}})
    out = scan_image(tmp_path, ref, "--registry-config", str(cfg))
    assert out.returncode in (0, 1), out.stderr[-2000:]
    # `aws ecr get-authorization-token` gives base64("AWS:<password>"): basic auth, from the env
    env = {"STOCKADE_REGISTRY_AUTH_TOKEN": b64(f"AWS:{ECR_PW}")}
    out = scan_registry(tmp_path, ecr_registry, "--repo", "stockade/sample", env=env)
    scanned(out, ref)
    out = scan_image(tmp_path, ref, env={"STOCKADE_REGISTRY_AUTH_TOKEN": "not-base64!"})
    one_line_error(out, 2, "--auth-token is not a base64 USER:PASSWORD authorization token")
    with pytest.raises(RegistryError, match="401 unauthorized for manifest"):
        inventory(ref, auth_token=b64("AWS:wrong"))
    assert inventory(ref, auth_token=b64(f"AWS:{ECR_PW}")).packages


# -- Azure ACR ---------------------------------------------------------------------------------
def test_acr_exchanges_the_aad_token_for_a_refresh_token(token_registry, reset, tmp_path):
    host = token_registry.host
    env = {"STOCKADE_ACR_AAD_TOKEN": AAD}
    out = scan_registry(tmp_path, host, "--repo", "stockade/sample", env=env)
    scanned(out, f"{host}/stockade/sample:1")
    exchanges = [s for s in reset.seen if s.path == "/oauth2/exchange"]
    # once per client (the walk's lister, the image reader), then its refresh token is reused
    assert 1 <= len(exchanges) <= 2
    assert (
        "grant_type=access_token" in exchanges[0].body
        and "service=stockade-test" in exchanges[0].body
    )
    refresh = [s for s in reset.seen if s.path == "/oauth2/token"]
    assert len(refresh) > len(exchanges)
    assert refresh and all(
        "grant_type=refresh_token" in s.body and AAD not in s.body for s in refresh
    )
    assert reset.seen.index(exchanges[0]) < reset.seen.index(refresh[0])
    out = scan_image(tmp_path, f"{host}/stockade/sample:1", env={"STOCKADE_ACR_AAD_TOKEN": "wrong"})
    one_line_error(out, 3, "401 from the token exchange: credentials rejected")


# -- Docker Hub --------------------------------------------------------------------------------
def test_docker_hub_namespace_listing_and_pulls(token_registry, reset, tmp_path):
    host, server = token_registry.host, token_registry.server
    cfg = docker_config(
        tmp_path / "docker", {"auths": {"https://index.docker.io/v1/": {"auth": b64(f"hubuser:{HUB_PAT}")}}}
    )  # fmt: skip
    env = {
        "STOCKADE_DOCKER_HUB_API": server.origin,
        "STOCKADE_DOCKER_HUB_REGISTRY": host,
        "DOCKER_CONFIG": str(cfg),
    }
    out = scan_registry(tmp_path, "docker.io", "--namespace", "stockade", "--repo", "stockade/sample", env=env)  # fmt: skip
    scanned(out, "docker.io/stockade/sample:1")
    paths = [s.path for s in reset.seen]
    assert "/v2/auth/token" in paths  # the Hub login, for the private namespace
    assert "/v2/repositories/stockade/?page_size=100" in paths
    assert any(p.endswith("page=2") for p in paths)  # `next` followed
    out = scan_registry(tmp_path, "docker.io", env=env)
    one_line_error(out, 2, "Docker Hub has no catalog")
    server.hub_next = "http://127.0.0.2:9/v2/repositories/stockade/?page=2"
    out = scan_registry(tmp_path, "docker.io", "--namespace", "stockade", env=env)
    one_line_error(out, 3, "refusing a next page on another origin")


# -- hostile helpers ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("sleep 30", "did not answer within 1s"),
        ("sleep 30 & wait", "did not answer within 1s"),  # a child holding stdout dies too
        ("printf 'garbage\\000{'", "answered something other than the protocol's JSON"),
        ("yes", "answered more than 65536 bytes"),
        ("echo 'keychain locked'; exit 3", "failed (exit 3): keychain locked"),
        ('printf \'{"Username": "alice", "Secret": ""}\'', "an empty or non-text secret"),
    ],
)
def test_hostile_helpers_fail_in_bounded_time(token_registry, tmp_path, monkeypatch, body, message):
    host = token_registry.host
    helper(tmp_path / "bin", "hostile", body)
    cfg = docker_config(tmp_path / "docker", {"credHelpers": {host: "hostile"}})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STOCKADE_CREDENTIAL_HELPER_TIMEOUT", "1")
    started = time.monotonic()
    with pytest.raises(RegistryError, match=re.escape(message)):
        inventory(f"{host}/stockade/sample:1", cfg)
    assert time.monotonic() - started < 10


def test_helper_missing_not_found_and_bad_names(token_registry, tmp_path, monkeypatch):
    host = token_registry.host
    ref = f"{host}/stockade/sample:1"
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    cfg = docker_config(tmp_path / "a", {"credHelpers": {host: "absent-helper"}})
    with pytest.raises(RegistryError, match=r"docker-credential-absent-helper .* is not on PATH"):
        inventory(ref, cfg)
    cfg = docker_config(tmp_path / "b", {"credHelpers": {host: "../../bin/sh"}})
    with pytest.raises(RegistryError, match="invalid credential helper name"):
        inventory(ref, cfg)
    # "not found" is the protocol's "no entry": the store falls back to auths
    helper(tmp_path / "bin", "empty", "echo 'credentials not found in native keychain'; exit 1")
    cfg = docker_config(
        tmp_path / "c",
        {"credsStore": "empty", "auths": {host: {"auth": b64(f"alice:{ALICE_PW}")}}},
    )
    assert inventory(ref, cfg).packages
    cfg = docker_config(tmp_path / "d", {"credsStore": "empty"})
    with pytest.raises(RegistryError, match="401 unauthorized for manifest"):
        inventory(ref, cfg)  # anonymous token: no access


def test_a_hanging_helper_is_one_line_exit_3_through_the_cli(token_registry, tmp_path):
    host = token_registry.host
    helper(tmp_path / "bin", "hang", "sleep 60")
    cfg = docker_config(tmp_path / "docker", {"credHelpers": {host: "hang"}})
    started = time.monotonic()
    out = scan_image(
        tmp_path, f"{host}/stockade/sample:1", "--registry-config", str(cfg),
        env={"STOCKADE_CREDENTIAL_HELPER_TIMEOUT": "1"},
    )  # fmt: skip
    one_line_error(out, 3, "credential helper docker-credential-hang did not answer within 1s")
    assert time.monotonic() - started < 45
    out = scan_image(
        tmp_path, f"{host}/stockade/sample:1", "--registry-config", str(cfg),
        env={"STOCKADE_CREDENTIAL_HELPER_TIMEOUT": "soon"},
    )  # fmt: skip
    one_line_error(out, 2, "STOCKADE_CREDENTIAL_HELPER_TIMEOUT must be a number of seconds")


# -- hostile token servers and realms ----------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "auth", "message"),
    [
        ("401", {"username": "alice", "password": ALICE_PW}, "401 from the token server"),
        ("garbage", {"username": "alice", "password": ALICE_PW}, "no JSON token"),
        ("401", {"aad_token": AAD}, "401 from the token server: credentials rejected"),
    ],
)
def test_token_server_answers_401_or_garbage(token_registry, reset, mode, auth, message):
    reset.mode = mode
    with pytest.raises(RegistryError, match=re.escape(message)):
        inventory(f"{token_registry.host}/stockade/sample:1", **auth)


def test_a_token_redirect_is_not_followed(token_registry, reset, tmp_path):
    """A 307 from the token server would replay the refresh token (or basic credentials) to
    wherever it points: token requests follow no redirect."""
    with AuthServer(TokenIssuer()) as thief:
        reset.mode = f"redirect:{thief.origin}/steal"
        cfg = docker_config(tmp_path / "docker", {"auths": {token_registry.host: {"identitytoken": IDENTITY}}})  # fmt: skip
        with pytest.raises(RegistryError, match="token server answered HTTP 307"):
            inventory(f"{token_registry.host}/stockade/sample:1", cfg)
        with pytest.raises(RegistryError, match="token server answered HTTP 307"):
            inventory(
                f"{token_registry.host}/stockade/sample:1", username="alice", password=ALICE_PW
            )
        assert thief.seen == []


def test_credentials_are_not_sent_to_a_plain_http_realm_elsewhere(tmp_path):
    """A loopback registry whose challenge names a plain-HTTP realm on another host: refused
    before any connection (192.0.2.0/24 is TEST-NET, nothing answers there)."""
    from tests.scanning.test_registry import _HostileRegistry

    registry = _HostileRegistry()
    try:
        registry.status = 401
        registry.headers = {
            "WWW-Authenticate": 'Bearer realm="http://192.0.2.10/token",service="x"'
        }
        started = time.monotonic()
        with pytest.raises(RegistryError, match=re.escape("refusing to send credentials to the token server http://192.0.2.10/token")):  # fmt: skip
            inventory(f"{registry.host}/a/b:1", username="alice", password=ALICE_PW)
        assert time.monotonic() - started < 5
        out = cli(
            tmp_path, "scan", "image", f"{registry.host}/a/b:1", "--insecure", "--no-store",
            "--allow-stale-db", "--db", make_db(tmp_path / "s.db"),
            env={"STOCKADE_REGISTRY_AUTH_TOKEN": b64(f"alice:{ALICE_PW}")},
        )  # fmt: skip
        one_line_error(out, 3, "credentials go only over HTTPS")
    finally:
        registry.close()


@pytest.mark.parametrize(
    ("realm", "registry", "allowed"),
    [
        ("https://auth.docker.io/token", "registry-1.docker.io", True),  # another host, HTTPS
        ("https://127.0.0.1:5001/token", "registry.example.com", True),
        ("http://127.0.0.1:5001/token", "127.0.0.1:5000", True),  # a loopback lab
        ("http://[::1]:5001/token", "localhost:5000", True),
        ("http://127.0.0.1:5001/token", "registry.example.com", False),  # remote sends us home
        ("http://auth.example.com/token", "127.0.0.1:5000", False),
        ("http://auth.example.com/token", "registry.example.com", False),
        ("ftp://auth.example.com/token", "registry.example.com", False),
    ],
)
def test_realm_policy(realm: str, registry: str, allowed: bool) -> None:
    assert credentials_may_go_to(realm, registry) is allowed


def test_secrets_stay_out_of_reprs() -> None:
    cred = Credential("basic", "alice", ALICE_PW, "--username")
    options = ImageOptions(password=ALICE_PW, auth_token=ECR_PW, aad_token=AAD)
    auth = options.registry_auth()
    for text in (repr(cred), repr(options), repr(auth), str(cred)):
        assert not any(secret in text for secret in SECRETS), text


def test_a_bad_auth_token_is_a_config_error() -> None:
    from stockade.scanning.sources.registry_auth import resolve_credential

    for token in ("%%%", b64("no-colon"), b64(":nouser")):
        with pytest.raises(ConfigError, match="not a base64 USER:PASSWORD"):
            resolve_credential("127.0.0.1:1", AuthOptions(auth_token=token))


def test_catalog_paged_by_n_and_last_without_link_headers() -> None:
    from stockade.scanning.sources.registry import RegistryClient
    from tests.security.registry_auth_servers import CatalogServer

    repos = ["team/a", "team/b", "team/c", "team/d", "team/e"]
    with CatalogServer(repos) as server:
        client = RegistryClient(server.host, insecure=True)
        try:
            assert client.list_repositories(page_size=2) == repos
        finally:
            client.close()
        assert "/v2/_catalog?n=2&last=team%2Fd" in server.paths
    with CatalogServer(repos, honour_last=False) as server:
        client = RegistryClient(server.host, insecure=True)
        try:
            with pytest.raises(RegistryError, match="pages in a loop"):
                client.list_repositories(page_size=2)
        finally:
            client.close()
