"""Fixtures shared by the scanning tests.

Advisory store and matcher: the real samples in shared/data/advisories and the real Go vulndb
records shipped by Debian's golang-golang-x-vuln-dev package. Image reader: the sample image (built
once from real packages), crafted images, and the loopback registries started by
.ci/setup.d/20-registry.sh."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from stockade.lab.samples import SampleImage, build_sample
from stockade.scanning.imagewrite import Layer, image_config, sha, tar_from_entries
from tests.conftest import SHARED, require
from tests.scanning.simple_catalogers import all_catalogers

OPEN_REGISTRY = "127.0.0.1:5000"
AUTH_REGISTRY = "127.0.0.1:5001"
AUTH_USER, AUTH_PASSWORD = "stockade", "stockade-test"  # test-only, from 20-registry.sh


def _advisory_data() -> Path:
    for base in (SHARED, Path("/work/shared")):
        if (base / "data" / "advisories").is_dir():
            return base / "data" / "advisories"
    return SHARED / "data" / "advisories"


ADVISORIES = _advisory_data()


@pytest.fixture(scope="session")
def advisories_dir() -> Path:
    require(ADVISORIES.is_dir(), f"real advisory samples missing at {ADVISORIES}")
    return ADVISORIES


@pytest.fixture(scope="session")
def go_vulndb(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The Go vulndb test records from the real Debian package (downloaded with apt-get)."""
    require(shutil.which("apt-get") is not None and shutil.which("dpkg-deb") is not None, "apt-get")
    work = tmp_path_factory.mktemp("govuln")
    res = subprocess.run(
        ["apt-get", "download", "golang-golang-x-vuln-dev"],
        cwd=work,
        capture_output=True,
        timeout=120,
    )
    debs = list(work.glob("golang-golang-x-vuln-dev_*.deb"))
    require(res.returncode == 0 and bool(debs), "apt-get download golang-golang-x-vuln-dev failed")
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(work / "x")], check=True, timeout=60)
    root = work / "x/usr/share/gocode/src/golang.org/x/vuln"
    dirs = [root / "client/testdata/vulndb", root / "cmd/govulncheck/testdata/vulndb"]
    require(
        all(d.is_dir() for d in dirs), "the package no longer ships its testdata/vulndb folders"
    )
    return dirs


@pytest.fixture(scope="session")
def sample() -> SampleImage:
    return build_sample()


@pytest.fixture
def catalogers() -> list:
    return all_catalogers()


def listening(hostport: str) -> bool:
    host, port = hostport.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pushed(sample: SampleImage) -> dict[str, str]:
    """The sample pushed to both loopback registries (skopeo copy is idempotent)."""
    from stockade.lab.samples import push_sample

    require(
        listening(OPEN_REGISTRY), f"no registry on {OPEN_REGISTRY} (.ci/setup.d/20-registry.sh)"
    )
    require(
        listening(AUTH_REGISTRY), f"no registry on {AUTH_REGISTRY} (.ci/setup.d/20-registry.sh)"
    )
    push_sample(sample, OPEN_REGISTRY)
    push_sample(sample, AUTH_REGISTRY, creds=f"{AUTH_USER}:{AUTH_PASSWORD}")
    return {
        "open": f"{OPEN_REGISTRY}/stockade/sample:1",
        "auth": f"{AUTH_REGISTRY}/stockade/sample:1",
    }


def write_raw_oci(
    path: Path,
    blobs: list[tuple[bytes, str]],
    *,
    diff_ids: list[str],
    tag: str = "t",
    skip_blobs: tuple[int, ...] = (),
) -> str:
    """An OCI layout from exact layer blobs and media types (for hostile and broken images)."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha(config),
                "size": len(config),
            },
            "layers": [{"mediaType": mt, "digest": sha(b), "size": len(b)} for b, mt in blobs],
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (path / "blobs/sha256").mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (path / "index.json").write_text(json.dumps(index))
    for i, (blob, _) in enumerate(blobs):
        if i not in skip_blobs:
            (path / "blobs" / sha(blob).replace(":", "/")).write_bytes(blob)
    for blob in (config, manifest):
        (path / "blobs" / sha(blob).replace(":", "/")).write_bytes(blob)
    return f"oci:{path}:{tag}"


def layer_of(*entries: tuple[str, str, bytes | str], compression: str = "gzip") -> Layer:
    return Layer(tar=tar_from_entries(list(entries)), compression=compression)


__all__ = ["Layer", "image_config", "layer_of", "write_raw_oci"]
