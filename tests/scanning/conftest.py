"""Fixtures for the advisory store and matcher tests: the real samples in shared/data/advisories
and the real Go vulndb records shipped by Debian's golang-golang-x-vuln-dev package."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from tests.conftest import SHARED, require


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
