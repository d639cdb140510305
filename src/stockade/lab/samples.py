"""The sample image: a multi-layer image built from real packages (Debian apt, PyPI, npm).

Layers:
  1. a small Debian 12 root filesystem: ``apt-get download`` + ``dpkg-deb -x`` of a fixed package
     set, with a dpkg status database built from their control data (plus info/*.list, *.md5sums);
  2. Python packages: wheels from ``pip download`` unpacked into site-packages, and ``six`` as an
     ``.egg-info`` taken from its sdist;
  3. npm packages from ``npm pack`` under /app/node_modules, one nested (debug -> ms);
  4. a Go binary built from a vendored golang.org/x/text (from Debian's golang-golang-x-text-dev)
     and Java: commons-lang3 from Debian's libcommons-lang3-java, plus a fat jar nesting it;
  5. a whiteout deleting ``attrs`` and an opaque directory replacing debug's nested node_modules.

Written as docker-archive (legacy and OCI-style), OCI layout directory and tar; optionally pushed to
a registry with skopeo. Everything lands under
``~/.cache/stockade/samples/<RECIPE_VERSION>/`` and is built once.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stockade.model.errors import StockadeError
from stockade.scanning.imagewrite import (
    Layer,
    image_config,
    tar_from_dir,
    tar_from_entries,
    write_docker_archive,
    write_oci_layout,
)
from stockade.scanning.targuard import open_checked

RECIPE_VERSION = "2"  # bump whenever the recipe changes what it builds
REPO_TAG = "stockade/sample:1"
DEBIAN_PACKAGES = (
    "base-files",
    "bash",
    "coreutils",
    "debianutils",
    "dpkg",
    "gcc-12-base",
    "libacl1",
    "libattr1",
    "libbz2-1.0",
    "libc6",
    "libgcc-s1",
    "libgmp10",
    "liblzma5",
    "libmd0",
    "libpcre2-8-0",
    "libselinux1",
    "libssl3",
    "libtinfo6",
    "libzstd1",
    "openssl",
    "tar",
    "tzdata",
    "zlib1g",
)
PYPI_WHEELS = (
    "requests==2.31.0",
    "urllib3==2.0.7",
    "idna==3.6",
    "certifi==2023.11.17",
    "charset-normalizer==3.3.2",
    "attrs==23.1.0",
)
PYPI_EGG_SDIST = "six==1.16.0"
NPM_TOP = ("lodash@4.17.21", "ms@2.1.3", "debug@2.6.9", "@sindresorhus/is@4.6.0")
NPM_NESTED = "ms@2.0.0"  # /app/node_modules/debug/node_modules/ms, hidden by layer 5
NPM_OPAQUE = "ms@2.1.2"  # what layer 5 puts in the opaque directory instead
GO_DEB = "golang-golang-x-text-dev"
JAVA_DEB = "libcommons-lang3-java"
SITE = "usr/local/lib/python3.11/site-packages"

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class SampleImage:
    root: Path
    docker_archive: Path  # legacy docker save
    docker_archive_oci: Path  # Docker 25+ OCI-style docker save
    oci_dir: Path
    oci_tar: Path
    tag: str = "1"

    def deb_version(self, package: str) -> str:
        """The version of a Debian package in layer 1, read from the downloaded ``.deb`` (the
        archive publishes updates, so nothing should expect the version of the day it was written)."""
        debs = self.root / "downloads" / "deb"
        found = [d for d in debs.glob("*.deb") if d.name.split("_")[0] == package]
        if len(found) != 1:
            raise StockadeError(f"sample: no single downloaded package {package} in {debs}")
        return _run(["dpkg-deb", "-f", str(found[0]), "Version"]).strip()

    def refs(self) -> list[str]:
        return [
            f"docker-archive:{self.docker_archive}",
            f"docker-archive:{self.docker_archive_oci}",
            f"oci:{self.oci_dir}:{self.tag}",
            f"oci:{self.oci_tar}:{self.tag}",
        ]


def default_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "stockade" / "samples" / RECIPE_VERSION


def _run(args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise StockadeError(f"the sample recipe needs {args[0]!r} (not installed)") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        raise StockadeError(f"sample recipe: {' '.join(args[:3])} failed: {tail[0]}")
    return proc.stdout


def build_sample(cache_dir: Path | None = None, *, log: Log | None = None) -> SampleImage:
    """Build the sample image (once; later calls return the cached files)."""
    root = cache_dir or default_cache_dir()
    sample = SampleImage(
        root=root,
        docker_archive=root / "sample-docker.tar",
        docker_archive_oci=root / "sample-docker-oci.tar",
        oci_dir=root / "sample-oci",
        oci_tar=root / "sample-oci.tar",
    )
    done = root / "done.json"
    if done.exists():
        return sample
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second builder waits, then finds the work done
        if not done.exists():
            _build_into(sample, log or (lambda _msg: None))
    return sample


def _build_into(sample: SampleImage, say: Log) -> None:
    root = sample.root
    with tempfile.TemporaryDirectory(prefix="stockade-sample-") as tmp_name:
        tmp = Path(tmp_name)
        layers = build_layers(tmp, root / "downloads", say)
    say("writing docker-archive and OCI layouts")
    write_docker_archive(sample.docker_archive, layers, repo_tag=REPO_TAG)
    write_docker_archive(sample.docker_archive_oci, layers, repo_tag=REPO_TAG, oci_style=True)
    if sample.oci_dir.exists():
        shutil.rmtree(sample.oci_dir)
    write_oci_layout(sample.oci_dir, [(sample.tag, layers, None)])
    write_oci_layout(sample.oci_tar, [(sample.tag, layers, None)], as_tar=True)
    arm = image_config(layers, arch="arm64")
    multi = root / "sample-multiarch-oci"
    if multi.exists():
        shutil.rmtree(multi)
    write_oci_layout(multi, [("amd64", layers, None), ("arm64", layers, arm)], index_tag=sample.tag)
    (root / "done.json").write_text(
        json.dumps({"recipe": RECIPE_VERSION, "diff_ids": [la.diff_id for la in layers]})
    )


def sample_layers(cache_dir: Path | None = None) -> list[Layer]:
    """The layers of the built sample (reads the legacy docker archive)."""
    sample = build_sample(cache_dir)
    with open_checked(sample.docker_archive, "sample image") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
        config = json.load(tar.extractfile(manifest["Config"]))  # type: ignore[arg-type]
        history = [h.get("created_by", "") for h in config.get("history", [])]
        out = []
        for i, name in enumerate(manifest["Layers"]):
            data = tar.extractfile(name).read()  # type: ignore[union-attr]
            out.append(
                Layer(tar=data, created_by=history[i], compression="zstd" if i == 2 else "gzip")
            )
    return out


def build_layers(tmp: Path, downloads: Path, say: Log) -> list[Layer]:
    downloads.mkdir(parents=True, exist_ok=True)
    say("layer 1: Debian packages (apt-get download)")
    l1 = _debian_layer(tmp / "l1", downloads / "deb")
    say("layer 2: PyPI packages (pip download)")
    l2 = _python_layer(tmp / "l2", downloads / "pypi")
    say("layer 3: npm packages (npm pack)")
    l3 = _npm_layer(tmp / "l3", downloads / "npm")
    say("layer 4: Go binary and Java jars")
    l4 = _go_java_layer(tmp / "l4", downloads / "deb", downloads / "gocache")
    say("layer 5: whiteout and opaque directory")
    l5 = _whiteout_layer(downloads / "npm")
    return [
        Layer(tar=l1, created_by="debian: apt-get download + dpkg-deb -x", compression="gzip"),
        Layer(tar=l2, created_by="pip: wheels and an egg-info", compression="gzip"),
        Layer(tar=l3, created_by="npm pack into /app/node_modules", compression="zstd"),
        Layer(tar=l4, created_by="go build + jars", compression="gzip"),
        Layer(tar=l5, created_by="whiteout attrs, opaque debug/node_modules", compression="gzip"),
    ]


def _apt_download(names: tuple[str, ...], dest: Path) -> dict[str, Path]:
    dest.mkdir(parents=True, exist_ok=True)
    have = {p.name.split("_")[0]: p for p in dest.glob("*.deb")}
    missing = [n for n in names if n not in have]
    if missing:
        _run(["apt-get", "download", *missing], cwd=dest)
        have = {p.name.split("_")[0]: p for p in dest.glob("*.deb")}
    return {n: have[n] for n in names}


def _debian_layer(root: Path, debs: Path) -> bytes:
    files = _apt_download(DEBIAN_PACKAGES, debs)
    info = root / "var/lib/dpkg/info"
    info.mkdir(parents=True)
    stanzas = []
    for name in DEBIAN_PACKAGES:
        deb = files[name]
        _run(["dpkg-deb", "-x", str(deb), str(root)])
        control = _run(["dpkg-deb", "-f", str(deb)]).rstrip("\n")
        lines = control.splitlines()
        stanzas.append("\n".join([lines[0], "Status: install ok installed", *lines[1:]]))
        fields = dict(
            line.split(": ", 1) for line in lines if ": " in line and not line.startswith(" ")
        )
        key = f"{name}:{fields['Architecture']}" if fields.get("Multi-Arch") == "same" else name
        with tempfile.TemporaryDirectory() as ctl:
            _run(["dpkg-deb", "-e", str(deb), ctl])
            md5 = Path(ctl) / "md5sums"
            if md5.exists():
                shutil.copyfile(md5, info / f"{key}.md5sums")
        paths = _run(["dpkg-deb", "-c", str(deb)])
        names = []
        for line in paths.splitlines():
            path = line.split(None, 5)[-1].split(" -> ")[0].removeprefix(".")
            names.append(path.rstrip("/") or "/.")
        (info / f"{key}.list").write_text("\n".join(names) + "\n")
    (root / "var/lib/dpkg/status").write_text("\n\n".join(stanzas) + "\n")
    return tar_from_dir(root)


def _pip(args: list[str]) -> None:
    env = dict(os.environ, PIP_CONSTRAINT="", PIP_DISABLE_PIP_VERSION_CHECK="1")
    _run(["python3", "-m", "pip", *args], env=env)


def _python_layer(root: Path, dl: Path) -> bytes:
    wheels, sdists = dl / "wheels", dl / "sdist"
    if not any(wheels.glob("*.whl")) or len(list(wheels.glob("*.whl"))) < len(PYPI_WHEELS):
        _pip(
            [
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "--platform",
                "manylinux2014_x86_64",
                "-d",
                str(wheels),
                *PYPI_WHEELS,
            ]
        )
    if not any(sdists.glob("*.tar.gz")):
        _pip(["download", "--no-deps", "--no-binary=:all:", "-d", str(sdists), PYPI_EGG_SDIST])
    site = root / SITE
    site.mkdir(parents=True)
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(site)  # wheels from PyPI just downloaded: names are checked by zipfile
    sdist = next(sdists.glob("*.tar.gz"))
    with open_checked(sdist, sdist.name) as tar:
        top = tar.getmembers()[0].name.split("/")[0]
        for member in tar.getmembers():
            rel = member.name.removeprefix(top + "/")
            if member.isfile() and (rel.startswith("six.egg-info/") or rel == "six.py"):
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                target = site / rel.replace("six.egg-info", "six-1.16.0-py3.11.egg-info")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
    return tar_from_dir(root)


def _npm_pack(specs: tuple[str, ...], dest: Path) -> dict[str, Path]:
    dest.mkdir(parents=True, exist_ok=True)
    index = dest / "packed.json"
    known = json.loads(index.read_text()) if index.exists() else {}
    missing = [s for s in specs if s not in known]
    if missing:
        out = json.loads(
            _run(["npm", "pack", "--json", "--pack-destination", str(dest), *missing], cwd=dest)
        )
        for spec, item in zip(missing, out, strict=True):
            known[spec] = item["filename"]
        index.write_text(json.dumps(known))
    return {s: dest / known[s] for s in specs}


def _unpack_npm(tgz: Path, target: Path) -> None:
    with open_checked(tgz, tgz.name) as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            rel = member.name.split("/", 1)[1] if "/" in member.name else member.name
            if rel.startswith("/") or ".." in rel.split("/"):
                raise StockadeError(f"unexpected path in {tgz.name}: {member.name}")
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]


def _npm_layer(root: Path, dl: Path) -> bytes:
    packed = _npm_pack((*NPM_TOP, NPM_NESTED, NPM_OPAQUE), dl)
    modules = root / "app/node_modules"
    for spec in NPM_TOP:
        name = spec.rsplit("@", 1)[0]
        _unpack_npm(packed[spec], modules / name)
    _unpack_npm(packed[NPM_NESTED], modules / "debug/node_modules/ms")
    (root / "app/package.json").write_text(
        json.dumps(
            {
                "name": "sample-app",
                "version": "1.0.0",
                "private": True,
                "dependencies": {s.rsplit("@", 1)[0]: s.rsplit("@", 1)[1] for s in NPM_TOP},
            },
            indent=2,
        )
    )
    return tar_from_dir(root)


GO_MAIN = """package main

import (
\t"fmt"

\t"golang.org/x/text/cases"
\t"golang.org/x/text/language"
)

func main() {
\tfmt.Println(cases.Title(language.English).String("hello from the stockade sample"))
}
"""


def _go_binary(debs: Path, gocache: Path, work: Path) -> Path:
    deb = _apt_download((GO_DEB,), debs)[GO_DEB]
    src = work / "gosrc"
    _run(["dpkg-deb", "-x", str(deb), str(src)])
    control = _run(["dpkg-deb", "-f", str(deb), "Version"]).strip()
    version = "v" + control.split("-")[0].split(":")[-1]
    mod = work / "hello"
    vendor = mod / "vendor/golang.org/x/text"
    shutil.copytree(src / "usr/share/gocode/src/golang.org/x/text", vendor, symlinks=True)
    packages = sorted(
        "golang.org/x/text" + ("/" + str(p.relative_to(vendor)) if p != vendor else "")
        for p in [vendor, *vendor.rglob("*")]
        if p.is_dir()
        and any(f.suffix == ".go" and not f.name.endswith("_test.go") for f in p.glob("*.go"))
        and "testdata" not in p.parts
        and "cmd" not in p.relative_to(vendor).parts[:1]
    )
    (mod / "vendor/modules.txt").write_text(
        f"# golang.org/x/text {version}\n## explicit; go 1.17\n" + "\n".join(packages) + "\n"
    )
    (mod / "go.mod").write_text(
        f"module example.com/stockade/hello\n\ngo 1.19\n\nrequire golang.org/x/text {version}\n"
    )
    (mod / "main.go").write_text(GO_MAIN)
    gocache.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        GOFLAGS="-mod=vendor",
        GOPROXY="off",
        GOCACHE=str(gocache),
        GOPATH=str(work / "gopath"),
        CGO_ENABLED="0",
        GO111MODULE="on",
        GOTOOLCHAIN="local",
    )
    out = work / "hello-text"
    _run(["go", "build", "-trimpath", "-buildvcs=false", "-o", str(out), "."], cwd=mod, env=env)
    return out


def _go_java_layer(root: Path, debs: Path, gocache: Path) -> bytes:
    work = root.parent / "l4work"
    work.mkdir()
    binary = _go_binary(debs, gocache, work)
    (root / "usr/local/bin").mkdir(parents=True)
    shutil.copy2(binary, root / "usr/local/bin/hello-text")
    deb = _apt_download((JAVA_DEB,), debs)[JAVA_DEB]
    jsrc = work / "java"
    _run(["dpkg-deb", "-x", str(deb), str(jsrc)])
    # Debian ships the real file as commons-lang3.jar and the versioned name as a symlink to it.
    jar = jsrc / "usr/share/java/commons-lang3.jar"
    versioned = next(p.name for p in (jsrc / "usr/share/java").glob("commons-lang3-*.jar"))
    java_dir = root / "usr/share/java"
    java_dir.mkdir(parents=True)
    shutil.copy2(jar, java_dir / jar.name)
    (java_dir / versioned).symlink_to(jar.name)
    app = root / "opt/app"
    app.mkdir(parents=True)
    manifest = (
        "Manifest-Version: 1.0\r\nMain-Class: com.example.App\r\n"
        "Implementation-Title: sample-app\r\nImplementation-Version: 1.0.0\r\n\r\n"
    )
    pom = "groupId=com.example\nartifactId=sample-app\nversion=1.0.0\n"
    entries = [
        ("META-INF/MANIFEST.MF", manifest.encode(), zipfile.ZIP_DEFLATED),
        (
            "META-INF/maven/com.example/sample-app/pom.properties",
            pom.encode(),
            zipfile.ZIP_DEFLATED,
        ),
        (f"BOOT-INF/lib/{versioned}", jar.read_bytes(), zipfile.ZIP_STORED),
    ]
    with zipfile.ZipFile(app / "app.jar", "w") as fat:
        for name, data, method in entries:
            info = zipfile.ZipInfo(name, date_time=(2023, 11, 14, 22, 13, 20))  # reproducible
            info.compress_type = method
            fat.writestr(info, data)
    return tar_from_dir(root)


def _whiteout_layer(npm_dl: Path) -> bytes:
    opaque_src = _npm_pack((NPM_OPAQUE,), npm_dl)[NPM_OPAQUE]
    entries: list[tuple[str, str, bytes | str]] = [
        ("d", SITE, b""),
        ("f", f"{SITE}/.wh.attrs-23.1.0.dist-info", b""),
        ("f", f"{SITE}/.wh.attrs", b""),
        ("f", f"{SITE}/.wh.attr", b""),
        ("d", "app/node_modules/debug/node_modules", b""),
        ("f", "app/node_modules/debug/node_modules/.wh..wh..opq", b""),
        ("d", "app/node_modules/debug/node_modules/ms", b""),
    ]
    with open_checked(opaque_src, opaque_src.name) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if member.isfile():
                rel = member.name.split("/", 1)[1]
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                entries.append(("f", f"app/node_modules/debug/node_modules/ms/{rel}", data))
    return tar_from_entries(entries)


def push_sample(
    sample: SampleImage,
    registry: str,
    *,
    repository: str = "stockade/sample",
    creds: str | None = None,
) -> list[str]:
    """Copy the sample and its multi-arch variant to ``registry`` with skopeo; returns refs.

    Credentials go to skopeo in an auth file readable by this user only (``--authfile``), never on
    its command line (``/proc/PID/cmdline`` is world-readable). TLS verification is off only for a
    loopback registry (labs, CI); any other registry is verified."""
    with tempfile.TemporaryDirectory(prefix="stockade-push-") as tmp:
        authfile = write_auth_file(Path(tmp), registry, creds) if creds else None
        commands = push_commands(sample, registry, repository=repository, authfile=authfile)
        for args, _dest in commands:
            _run(args)
    return [dest for _args, dest in commands]


def write_auth_file(folder: Path, registry: str, creds: str) -> Path:
    """A containers-auth.json for ``registry`` with ``USER:PASSWORD``, mode 0600."""
    import base64

    user, sep, _ = creds.partition(":")
    if not sep or not user:
        raise StockadeError("--creds is USER:PASSWORD")
    doc = {"auths": {registry: {"auth": base64.b64encode(creds.encode()).decode()}}}
    path = folder / "auth.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)
    return path


def push_commands(
    sample: SampleImage,
    registry: str,
    *,
    repository: str = "stockade/sample",
    authfile: Path | None = None,
) -> list[tuple[list[str], str]]:
    """The skopeo command lines of :func:`push_sample` and the reference each one writes."""
    from stockade.scanning.sources.registry import is_loopback

    pairs = [
        (f"oci:{sample.oci_dir}:{sample.tag}", f"{registry}/{repository}:{sample.tag}", []),
        (
            f"oci:{sample.root / 'sample-multiarch-oci'}:{sample.tag}",
            f"{registry}/{repository}-multiarch:{sample.tag}",
            ["--all"],
        ),
    ]
    tls_verify = "false" if is_loopback(registry) else "true"
    commands = []
    for src, dest, extra in pairs:
        args = ["skopeo", "copy", "--quiet", *extra, f"--dest-tls-verify={tls_verify}"]
        if authfile is not None:
            args.append(f"--dest-authfile={authfile}")
        commands.append(([*args, src, f"docker://{dest}"], dest))
    return commands


def sample_rootfs(cache_dir: Path | None = None) -> Path:
    """The sample image unpacked into a root filesystem (once), whiteouts and opaque directories
    applied layer by layer, with the device nodes a container needs."""
    sample = build_sample(cache_dir)
    target = sample.root / "rootfs"
    done = sample.root / "rootfs.done"
    if done.exists() and done.read_text() == ROOTFS_VERSION:
        return target
    with open(sample.root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists() or done.read_text() != ROOTFS_VERSION:
            if target.exists():
                shutil.rmtree(target)
            target.with_name(target.name + ".files.json").unlink(missing_ok=True)
            target.mkdir()
            for layer in sample_layers(cache_dir):
                _apply_layer(target, layer.tar)
            _device_nodes(target)
            _accounts(target)
            done.write_text(ROOTFS_VERSION)
    return target


ROOTFS_VERSION = "2"  # bump whenever sample_rootfs changes what it writes


def _accounts(target: Path) -> None:
    """The account files every base image has (Debian writes them from base-passwd's maintainer
    scripts, which unpacking alone does not run)."""
    etc = target / "etc"
    files = {
        "passwd": "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:"
        "/usr/sbin/nologin\n",
        "group": "root:x:0:\nnogroup:x:65534:\n",
        "shadow": "root:*:19700:0:99999:7:::\nnobody:*:19700:0:99999:7:::\n",
    }
    for name, text in files.items():
        if not (etc / name).exists():
            (etc / name).write_text(text)
            (etc / name).chmod(0o640 if name == "shadow" else 0o644)


def _apply_layer(target: Path, data: bytes) -> None:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        keep = []
        for m in members:
            parent, _, base = m.name.rstrip("/").rpartition("/")
            if base == ".wh..wh..opq":
                folder = target / parent
                for child in folder.iterdir() if folder.is_dir() else ():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
            elif base.startswith(".wh."):
                gone = target / parent / base.removeprefix(".wh.")
                if gone.is_dir() and not gone.is_symlink():
                    shutil.rmtree(gone)
                elif gone.exists() or gone.is_symlink():
                    gone.unlink()
            else:
                keep.append(m)
        tar.extractall(target, members=keep, filter="tar")


def _device_nodes(target: Path) -> None:
    import stat as st

    dev = target / "dev"
    dev.mkdir(exist_ok=True)
    for name, minor in (("null", 3), ("zero", 5), ("urandom", 9)):
        node = dev / name
        if not node.exists():
            os.mknod(node, st.S_IFCHR | 0o666, os.makedev(1, minor))
            os.chmod(node, 0o666)
