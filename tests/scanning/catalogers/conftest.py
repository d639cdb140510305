"""Fixtures: real inputs assembled into root filesystems (see catalog_inputs)."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from catalog_inputs import (
    HOST_EGGS,
    JARS,
    debs,
    go_binary,
    make_war,
    npm_tarballs,
    rpmdb,
    run,
    wheels,
)
from tests.conftest import require

JAVA_DIR = Path("/usr/share/java")


def _tool(name: str) -> None:
    require(shutil.which(name) is not None, f"{name} is not installed")


def _control(deb: Path) -> str:
    return run(["dpkg-deb", "-f", str(deb)]).strip()


def _install_debs(root: Path, removed: str | None) -> list[str]:
    """Unpack the downloaded debs into root and write a dpkg status file for them; the package
    named ``removed`` is recorded as removed with only its config files left (no files)."""
    stanzas = []
    for deb in sorted(debs().glob("*.deb")):
        control = _control(deb)
        name = control.split("\n", 1)[0].split(":", 1)[1].strip()
        if name == removed:
            status = "Status: deinstall ok config-files"
        else:
            status = "Status: install ok installed"
            run(["dpkg-deb", "-x", str(deb), str(root)])
        head, _, tail = control.partition("\n")
        stanzas.append(f"{head}\n{status}\n{tail}")
    status_dir = root / "var/lib/dpkg"
    status_dir.mkdir(parents=True, exist_ok=True)
    (status_dir / "status").write_text("\n\n".join(stanzas) + "\n")
    return stanzas


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One root filesystem with every package kind, built from real packages."""
    for tool in ("apt-get", "dpkg-deb", "npm", "go", "rpmbuild", "rpm"):
        _tool(tool)
    root = tmp_path_factory.mktemp("rootfs")
    (root / "etc").mkdir()
    shutil.copy("/etc/os-release", root / "etc/os-release")
    _install_debs(root, removed="libxxhash0")
    site = root / "usr/local/lib/python3.11/site-packages"
    run(
        [
            "python",
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--no-compile",
            "--target",
            str(site),
            *map(str, sorted(wheels().glob("*.whl"))),
        ]
    )
    dist = root / "opt/hostpy/dist-packages"
    dist.mkdir(parents=True, exist_ok=True)
    for src in HOST_EGGS:
        for meta in sorted(Path(src).glob("*.egg-info")) + sorted(Path(src).glob("*.dist-info")):
            if meta.is_dir():
                shutil.copytree(meta, dist / meta.name, symlinks=True)
            else:
                shutil.copy(meta, dist / meta.name)
    modules = root / "app/node_modules"
    for tgz in sorted(npm_tarballs().glob("*.tgz")):
        with tarfile.open(tgz) as tar:
            tmp = root / "npm-tmp"
            tar.extractall(tmp, filter="data")
            doc = (tmp / "package/package.json").read_text()
            import json

            name = json.loads(doc)["name"]
            target = modules / name
            target.parent.mkdir(parents=True, exist_ok=True)
            (tmp / "package").rename(target)
            shutil.rmtree(tmp)
    (root / "app/package.json").write_text('{"name": "shop-frontend", "version": "0.9.0"}\n')
    bindir = root / "usr/local/bin"
    bindir.mkdir(parents=True)
    shutil.copy(go_binary(), bindir / "sample-app")
    if Path("/usr/bin/docker-registry").exists():
        shutil.copy("/usr/bin/docker-registry", bindir / "docker-registry")
    lib = root / "opt/java/lib"
    lib.mkdir(parents=True)
    jars = [JAVA_DIR / j for j in JARS if (JAVA_DIR / j).exists()]
    require(len(jars) == len(JARS), "Debian Java jars missing (default-jdk-headless, maven deps)")
    for jar in jars:
        shutil.copy(jar, lib / jar.name)
    make_war(jars[:2], root / "opt/java/shop.war")
    rpmdir = root / "var/lib/rpm"
    rpmdir.mkdir(parents=True)
    shutil.copy(rpmdb(), rpmdir / "rpmdb.sqlite")
    subprocess.run(["chmod", "-R", "u+rwX", str(root)], check=True)
    return root
