"""The registry source against real docker-registry processes: anonymous, basic, bearer tokens."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockade.lab.samples import SampleImage, push_sample
from stockade.model.errors import DigestMismatch, ImageError, RegistryError, UsageError
from stockade.scanning.inventory import build_inventory
from stockade.scanning.sources.registry import RegistryClient
from tests.conftest import require
from tests.scanning.conftest import AUTH_PASSWORD, AUTH_REGISTRY, AUTH_USER, OPEN_REGISTRY
from tests.scanning.registry_servers import (
    TokenIssuer,
    TokenServer,
    docker_registry,
    token_auth_yaml,
)

pytestmark = pytest.mark.registry


def _key(inv) -> set:
    return {(p.type, p.name, p.version, p.locations, p.layer) for p in inv.packages}


@pytest.fixture(scope="module")
def local(sample: SampleImage):
    from tests.scanning.simple_catalogers import all_catalogers

    return build_inventory(sample.refs()[2], catalogers=all_catalogers())


def test_anonymous_pull_matches_the_local_layout(pushed, local, catalogers) -> None:
    inv = build_inventory(pushed["open"], catalogers=catalogers, insecure=True)
    assert _key(inv) == _key(local)
    assert inv.image.name == f"{OPEN_REGISTRY}/stockade/sample" and inv.image.tag == "1"
    by_digest = f"{OPEN_REGISTRY}/stockade/sample@{inv.image.manifest_digest}"
    again = build_inventory(by_digest, catalogers=catalogers, insecure=True)
    assert _key(again) == _key(local)


def test_multi_platform_index(pushed, catalogers) -> None:
    ref = f"{OPEN_REGISTRY}/stockade/sample-multiarch:1"
    amd = build_inventory(ref, catalogers=catalogers, insecure=True, platform="linux/amd64")
    arm = build_inventory(ref, catalogers=catalogers, insecure=True, platform="linux/arm64")
    assert (amd.image.platform, arm.image.platform) == ("linux/amd64", "linux/arm64")
    assert amd.image.manifest_digest != arm.image.manifest_digest
    default = build_inventory(ref, catalogers=catalogers, insecure=True)
    assert default.image.platform == "linux/amd64"  # the host's platform here
    with pytest.raises(ImageError, match="no manifest for platform linux/s390x"):
        build_inventory(ref, catalogers=catalogers, insecure=True, platform="linux/s390x")


def test_errors_404(pushed, catalogers) -> None:
    with pytest.raises(RegistryError, match="404 not found: manifest stockade/nope:1"):
        build_inventory(f"{OPEN_REGISTRY}/stockade/nope:1", catalogers=catalogers, insecure=True)
    with pytest.raises(RegistryError, match="404"):
        build_inventory(
            f"{OPEN_REGISTRY}/stockade/sample:nope", catalogers=catalogers, insecure=True
        )


def test_connection_refused_and_https_only(catalogers) -> None:
    from tests.scanning.registry_servers import free_port

    with pytest.raises(RegistryError, match="cannot reach the registry"):
        build_inventory(f"127.0.0.1:{free_port()}/a/b:1", catalogers=catalogers, insecure=True)
    with pytest.raises(UsageError, match="only for a loopback registry"):
        build_inventory("registry.example.com/a/b:1", catalogers=catalogers, insecure=True)


def test_basic_auth(pushed, local, catalogers, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "none"))
    with pytest.raises(RegistryError, match="401 unauthorized: the registry needs credentials"):
        build_inventory(pushed["auth"], catalogers=catalogers, insecure=True)
    with pytest.raises(RegistryError, match="401 unauthorized for manifest"):
        build_inventory(
            pushed["auth"], catalogers=catalogers, insecure=True, username=AUTH_USER, password="x"
        )
    inv = build_inventory(
        pushed["auth"],
        catalogers=catalogers,
        insecure=True,
        username=AUTH_USER,
        password=AUTH_PASSWORD,
    )
    assert _key(inv) == _key(local)


def test_credentials_from_docker_config(pushed, local, catalogers, tmp_path, monkeypatch) -> None:
    auth = base64.b64encode(f"{AUTH_USER}:{AUTH_PASSWORD}".encode()).decode()
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {f"http://{AUTH_REGISTRY}": {"auth": auth}}})
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    inv = build_inventory(pushed["auth"], catalogers=catalogers, insecure=True)
    assert _key(inv) == _key(local)
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(RegistryError, match="cannot read docker credentials"):
        build_inventory(pushed["auth"], catalogers=catalogers, insecure=True)


def test_catalog_and_tags_with_pagination(pushed) -> None:
    client = RegistryClient(OPEN_REGISTRY, insecure=True)
    try:
        repos = client.list_repositories(page_size=1)  # one per page: follows Link rel=next
        assert {"stockade/sample", "stockade/sample-multiarch"} <= set(repos)
        assert repos == client.list_repositories(page_size=100)
        tags = client.list_tags("stockade/sample", page_size=1)
        assert "1" in tags and tags == client.list_tags("stockade/sample")
        with pytest.raises(RegistryError, match="404"):
            client.list_tags("stockade/none")
    finally:
        client.close()


@pytest.fixture(scope="module")
def token_registry(sample: SampleImage, tmp_path_factory) -> Iterator[tuple[str, TokenServer]]:
    require(shutil.which("docker-registry") is not None, "docker-registry is not installed")
    work = tmp_path_factory.mktemp("token-registry")
    issuer = TokenIssuer()
    (work / "bundle.pem").write_bytes(issuer.cert_pem)
    with (
        TokenServer(issuer, "alice", "wonderland") as tokens,
        docker_registry(work, token_auth_yaml(tokens.realm, work / "bundle.pem")) as host,
    ):
        push_sample(sample, host, creds="alice:wonderland")
        yield host, tokens


def test_bearer_token_flow(token_registry, local, catalogers, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    host, tokens = token_registry
    ref = f"{host}/stockade/sample:1"
    before = len(tokens.requests)
    inv = build_inventory(
        ref, catalogers=catalogers, insecure=True, username="alice", password="wonderland"
    )
    assert _key(inv) == _key(local)
    assert any("scope=repository%3Astockade%2Fsample%3Apull" in r for r in tokens.requests[before:])
    with pytest.raises(RegistryError, match="credentials rejected"):
        build_inventory(
            ref, catalogers=catalogers, insecure=True, username="alice", password="nope"
        )
    with pytest.raises(RegistryError, match="401 unauthorized for manifest"):
        build_inventory(ref, catalogers=catalogers, insecure=True)  # anonymous token has no access


def test_corrupted_blob_in_a_registry(sample: SampleImage, tmp_path: Path, catalogers) -> None:
    require(shutil.which("docker-registry") is not None, "docker-registry is not installed")
    with docker_registry(tmp_path) as host:
        push_sample(sample, host)
        inv = build_inventory(f"{host}/stockade/sample:1", catalogers=catalogers, insecure=True)
        layer = inv.image.layers[1]
        hexd = layer.digest.split(":")[1]
        data = tmp_path / f"storage/docker/registry/v2/blobs/sha256/{hexd[:2]}/{hexd}/data"
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        data.write_bytes(bytes(raw))
        with pytest.raises(ImageError) as info:
            build_inventory(f"{host}/stockade/sample:1", catalogers=catalogers, insecure=True)
        assert "layer 2" in str(info.value)
        assert isinstance(info.value, DigestMismatch) or "corrupt" in str(info.value)


def test_https_registry_with_a_private_ca(
    sample: SampleImage, tmp_path: Path, local, catalogers, monkeypatch
) -> None:
    """HTTPS is the default; a private CA is trusted through SSL_CERT_FILE, never skipped."""
    require(shutil.which("docker-registry") is not None, "docker-registry is not installed")
    from tests.scanning.registry_servers import make_tls_files

    ca, cert, key = make_tls_files(tmp_path)
    with docker_registry(tmp_path / "reg", tls=(cert, key)) as host:
        certs_dir = tmp_path / "skopeo-certs"
        certs_dir.mkdir()
        shutil.copy(ca, certs_dir / "ca.crt")
        subprocess.run(
            ["skopeo", "copy", "--quiet", f"--dest-cert-dir={certs_dir}",
             f"oci:{sample.oci_dir}:1", f"docker://{host}/stockade/sample:1"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        ref = f"{host}/stockade/sample:1"
        with pytest.raises(RegistryError, match="TLS certificate is not trusted"):
            build_inventory(ref, catalogers=catalogers)
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))
        inv = build_inventory(ref, catalogers=catalogers)
        assert _key(inv) == _key(local)


class _HostileRegistry:
    """A real HTTP server answering every /v2/ path with one canned (status, body)."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from threading import Thread

        self.status, self.body, self.headers = 200, b"", {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                self.send_response(owner.status)
                for key, value in owner.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def hostile() -> Iterator[_HostileRegistry]:
    server = _HostileRegistry()
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "message"),
    [
        (200, b"{" + b" " * (5 << 20) + b"}", {}, RegistryError, "larger than 4194304 bytes"),
        (200, b"<html>not json</html>", {}, ImageError, "not valid JSON"),
        (200, b'{"schemaVersion": 1, "fsLayers": []}', {}, ImageError, "schema 1"),
        (
            200,
            b'{"mediaType": "application/x-other"}',
            {},
            ImageError,
            "unknown manifest media type",
        ),
        (403, b"{}", {}, RegistryError, "403 forbidden"),
        (500, b"oops", {}, RegistryError, "HTTP 500"),
        (
            401,
            b"",
            {"WWW-Authenticate": 'Negotiate realm="x"'},
            RegistryError,
            "unsupported challenge",
        ),
        (401, b"", {"WWW-Authenticate": 'Bearer service="x"'}, RegistryError, "usable realm"),
        (
            200,
            b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}',
            {"Docker-Content-Digest": "sha256:" + "0" * 64},
            DigestMismatch,
            "digest mismatch",
        ),
    ],
)
def test_hostile_registry_answers(
    hostile: _HostileRegistry, catalogers, status, body, headers, error, message
) -> None:
    hostile.status, hostile.body, hostile.headers = status, body, headers
    with pytest.raises(error, match=message):
        build_inventory(f"{hostile.host}/a/b:1", catalogers=catalogers, insecure=True)


def test_an_uncached_registry_image_is_resolved_once(sample: SampleImage, tmp_path: Path) -> None:
    """One manifest request per scan: the kept-inventory check and the layer reading share the
    opened image (two requests before)."""
    import re
    import subprocess
    import sys

    require(shutil.which("docker-registry") is not None, "docker-registry is not installed")
    with docker_registry(tmp_path, log_level="info") as host:
        push_sample(sample, host)
        log = tmp_path / "registry.log"
        before = log.read_text(errors="replace")
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "stockade",
                "scan",
                "image",
                f"{host}/stockade/sample:1",
                "--insecure",
                "--allow-stale-db",
                "--no-store",
                "--db",
                str(tmp_path / "s.db"),
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        after = log.read_text(errors="replace")[len(before) :]
    manifest_gets = re.findall(r"GET /v2/stockade/sample/manifests/1", after)
    assert out.returncode in (0, 1, 3), out.stderr
    assert len(manifest_gets) == 1, after[-2000:]
