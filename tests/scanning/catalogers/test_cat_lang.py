"""Language catalogers (python, npm, go, java) on real packages, and hostile inputs."""

from __future__ import annotations

import email.parser
import io
import json
import os
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.scanning.catalogers import finalize
from stockade.scanning.catalogers.golang import MAGIC, GoBinaryCataloger, read_build_info
from stockade.scanning.catalogers.java import MAX_NESTED, JavaArchiveCataloger
from stockade.scanning.catalogers.java_identity import split_filename
from stockade.scanning.catalogers.npm import NpmCataloger
from stockade.scanning.catalogers.python import PythonCataloger, normalize_name
from stockade.scanning.interface import FileEntry, Inventory, Package
from tests.scanning.catalogers.catalog_inputs import (
    JARS,
    catalog_tree,
    go_binary,
    make_war,
    syft_binary,
    wheels,
)
from tests.support import require


def entry(path: str, data: bytes, mode: int = 0o100644) -> FileEntry:
    return FileEntry(path=path, mode=mode, size=len(data), data=data)


# --- python -------------------------------------------------------------------------------


def test_python_wheels_against_their_own_metadata(sample_root: Path) -> None:
    pkgs = {p.name: p for p in catalog_tree(sample_root).packages if p.type == "python"}
    for whl in sorted(wheels().glob("*.whl")):
        with zipfile.ZipFile(whl) as z:
            meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            msg = email.parser.BytesHeaderParser().parsebytes(z.read(meta_name))
        pkg = pkgs[normalize_name(msg["Name"])]
        assert pkg.version == msg["Version"]
        assert pkg.purl == f"pkg:pypi/{normalize_name(msg['Name'])}@{msg['Version']}"
        assert pkg.licenses, f"{msg['Name']} has license metadata"
    assert pkgs["typing-extensions"].purl == "pkg:pypi/typing-extensions@4.12.2"
    # the host's Debian-built egg-info directories (and files, where this host has any) are found
    from tests.scanning.catalogers.catalog_inputs import HOST_EGGS

    hosted = [
        p.locations[0] for p in pkgs.values() if "/opt/hostpy/dist-packages/" in p.locations[0]
    ]
    assert any(loc.endswith(".egg-info/PKG-INFO") for loc in hosted)
    if any(f.is_file() for d in HOST_EGGS for f in Path(d).glob("*.egg-info")):
        assert any(loc.endswith(".egg-info") for loc in hosted)


def test_python_egg_info_as_a_single_file() -> None:
    """Debian ships some egg-info as one file (PKG-INFO's content under the .egg-info name)."""
    meta = b"Metadata-Version: 1.1\nName: crcmod\nVersion: 1.7\nLicense: MIT\n"
    [p] = PythonCataloger().catalog(
        [entry("/usr/lib/python3/dist-packages/crcmod-1.7.egg-info", meta)]
    )
    assert (p.name, p.version, p.purl) == ("crcmod", "1.7", "pkg:pypi/crcmod@1.7")


def test_python_license_sources() -> None:
    cat = PythonCataloger()
    meta = b"Metadata-Version: 2.4\nName: Foo_Bar\nVersion: 1.0\nLicense-Expression: MIT OR Apache-2.0\nLicense: ignored\n\nbody"
    [p] = cat.catalog([entry("/x/Foo_Bar-1.0.dist-info/METADATA", meta)])
    assert (p.name, p.licenses, p.purl) == (
        "foo-bar",
        ("MIT OR Apache-2.0",),
        "pkg:pypi/foo-bar@1.0",
    )
    meta = b"Name: a\nVersion: 2\nLicense: UNKNOWN\nClassifier: License :: OSI Approved :: BSD License\n"
    [p] = cat.catalog([entry("/x/a.egg-info/PKG-INFO", meta)])
    assert p.licenses == ("BSD License",)
    assert cat.catalog([entry("/x/b.egg-info", b"\xff\xfe garbage")]) == []


# --- npm ----------------------------------------------------------------------------------


def test_npm_real_tarballs(sample_root: Path) -> None:
    pkgs = {p.name: p for p in catalog_tree(sample_root).packages if p.type == "npm"}
    for pj in (sample_root / "app/node_modules").rglob("package.json"):
        doc = json.loads(pj.read_text())
        if "name" in doc and "version" in doc:
            assert pkgs[doc["name"]].version == doc["version"]
    assert pkgs["@sindresorhus/is"].purl == "pkg:npm/%40sindresorhus/is@4.6.0"
    assert pkgs["left-pad"].licenses == ("WTFPL",)
    assert pkgs["shop-frontend"].version == "0.9.0"  # an app's own package.json, as syft reports


def test_npm_license_forms_and_junk() -> None:
    cat = NpmCataloger()
    docs = [
        {"name": "a", "version": "1", "license": {"type": "ISC", "url": "x"}},
        {"name": "b", "version": "1", "licenses": [{"type": "MIT"}, "Apache-2.0"]},
        {"name": "c", "version": "1", "license": "(MIT OR GPL-3.0)"},
    ]
    files = [
        entry(f"/n/node_modules/{d['name']}/package.json", json.dumps(d).encode()) for d in docs
    ]
    files += [
        entry("/n/node_modules/x/package.json", b"{not json"),
        entry("/n/package.json", b"[1,2]"),
    ]
    got = {p.name: p.licenses for p in cat.catalog(files)}
    assert got == {"a": ("ISC",), "b": ("MIT", "Apache-2.0"), "c": ("(MIT OR GPL-3.0)",)}


# --- go -----------------------------------------------------------------------------------


def go_version() -> str:
    return subprocess.run(
        ["go", "env", "GOVERSION"], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_go_vendored_binary() -> None:
    data = go_binary().read_bytes()
    pkgs = GoBinaryCataloger().catalog([entry("/usr/local/bin/sample-app", data, 0o100755)])
    got = {p.name: p.version for p in pkgs}
    assert got["example.com/greet"] == "v1.4.2"
    assert got["example.com/new"] == "v1.0.1"  # replaced: the replacement is what was built in
    assert "example.com/old" not in got
    assert got["stdlib"] == go_version()
    assert "example.com/stockade-sample" in got
    stdlib = next(p for p in pkgs if p.name == "stdlib")
    assert stdlib.purl == f"pkg:golang/stdlib@{go_version()[2:]}"
    greet = next(p for p in pkgs if p.name == "example.com/greet")
    assert greet.purl == "pkg:golang/example.com/greet@v1.4.2"


def go_version_m(binary: Path) -> tuple[str, set[tuple[str, str]]]:
    """The real Go tool's reading of a binary's build info: toolchain and (module, version),
    a replacement's path and version standing in for the module it replaces."""
    out = subprocess.run(
        ["go", "version", "-m", str(binary)], capture_output=True, text=True, check=True
    ).stdout
    lines = out.splitlines()
    toolchain = lines[0].split(": ", 1)[1].strip()
    mods: list[tuple[str, str]] = []
    for line in lines[1:]:
        parts = line.strip().split("\t")
        if parts[0] == "dep":
            mods.append((parts[1], parts[2]))
        elif parts[0] == "=>" and mods:
            mods[-1] = (parts[1], parts[2])
    return toolchain, set(mods)


@pytest.mark.parametrize("which", ["sample-app", "syft", "docker-registry"])
def test_go_build_info_matches_go_version_m(which: str) -> None:
    binary = {
        "sample-app": go_binary(),
        "syft": syft_binary(),
        "docker-registry": Path("/usr/bin/docker-registry"),
    }[which]
    if binary is None or not binary.exists():
        require(False, f"{which} binary not available")
    toolchain, deps = go_version_m(binary)
    info = read_build_info(binary.read_bytes())
    assert info is not None and info.go_version == toolchain
    got = {(d.replaced_by or (d.path, d.version))[0:2] for d in info.deps}
    assert got == deps
    pkgs = GoBinaryCataloger().catalog([entry("/bin/x", binary.read_bytes(), 0o100755)])
    assert {(p.name, p.version) for p in pkgs} >= deps | {("stdlib", toolchain)}
    if which == "syft":
        assert len(deps) > 100
        main = next(p for p in pkgs if p.name == "github.com/anchore/syft")
        env = dict(os.environ, SYFT_CHECK_FOR_APP_UPDATE="false")
        out = subprocess.run(
            [str(binary), "version"], capture_output=True, text=True, env=env
        ).stdout
        version = next(ln.split()[-1] for ln in out.splitlines() if ln.startswith("Version:"))
        assert main.version == "v" + version  # from "-X main.version=...", as syft names itself


def test_go_wants_only_executables() -> None:
    cat = GoBinaryCataloger()
    assert cat.wants("/bin/x", 0o100755, 10_000)
    assert not cat.wants("/bin/x", 0o100644, 10_000)
    assert not cat.wants("/bin/x", 0o100755, 10)


def _synthetic_pre118_elf(version: bytes, modinfo: bytes) -> bytes:
    """A minimal 64-bit little-endian ELF in the pre-Go-1.18 layout: the buildinfo header holds
    two pointers to Go string headers. No Go < 1.18 toolchain is installable here, so the layout
    is built from the format description (cmd/go's debug/buildinfo) rather than by a compiler."""
    base = 0x400000
    body = bytearray(0x1000)
    hdr = 0x200
    vstr, mstr = 0x300, 0x400
    vdata, mdata = 0x500, 0x600
    body[hdr : hdr + 16] = MAGIC + bytes([8, 0])
    body[hdr + 16 : hdr + 32] = struct.pack("<QQ", base + vstr, base + mstr)
    body[vstr : vstr + 16] = struct.pack("<QQ", base + vdata, len(version))
    body[mstr : mstr + 16] = struct.pack("<QQ", base + mdata, len(modinfo))
    body[vdata : vdata + len(version)] = version
    body[mdata : mdata + len(modinfo)] = modinfo
    ehdr = bytearray(64)
    ehdr[:16] = b"\x7fELF\x02\x01\x01" + bytes(9)
    struct.pack_into("<HHIQQQIHHHHHH", ehdr, 16, 2, 62, 1, base, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, 0x1000, 0x1000, 0x1000)
    out = bytearray(ehdr + phdr)
    out += bytes(0x1000 - len(out))
    out[hdr:] = body[hdr:]
    return bytes(out)


def test_go_pre_118_pointer_format() -> None:
    sentinel_a, sentinel_b = (
        b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6",
        b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2",
    )
    mod = b"path\tgithub.com/acme/tool\nmod\tgithub.com/acme/tool\tv1.2.0\th1:x=\ndep\tgolang.org/x/text\tv0.3.7\th1:y=\n"
    data = _synthetic_pre118_elf(b"go1.16.15", sentinel_a + mod + sentinel_b)
    info = read_build_info(data)
    assert info is not None and info.go_version == "go1.16.15"
    assert info.main is not None and info.main.version == "v1.2.0"
    assert [d.path for d in info.deps] == ["golang.org/x/text"]


_SENTINELS = (
    b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6",
    b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2",
)


def _go_packages(modinfo: bytes) -> dict[str, Package]:
    data = _synthetic_pre118_elf(b"go1.16.15", _SENTINELS[0] + modinfo + _SENTINELS[1])
    pkgs = GoBinaryCataloger().catalog([entry("/usr/local/bin/tool", data, 0o100755)])
    return {p.name: p for p in pkgs}


def test_go_main_module_not_main_package() -> None:
    """A command in a subdirectory of its module is reported under the module path (what Go
    advisories are keyed by); the package path is kept as metadata."""
    got = _go_packages(
        b"path\tgithub.com/acme/tool/cmd/tool\nmod\tgithub.com/acme/tool\tv1.2.0\th1:x=\n"
    )
    main = got["github.com/acme/tool"]
    assert "github.com/acme/tool/cmd/tool" not in got
    assert main.purl == "pkg:golang/github.com/acme/tool@v1.2.0"
    assert main.meta("main-package") == "github.com/acme/tool/cmd/tool"
    assert main.meta("main-module-source") == "buildinfo"
    assert got["stdlib"].meta("main-package") is None


@pytest.mark.parametrize(
    ("package_path", "module"),
    [
        ("github.com/acme/tool/cmd/tool", "github.com/acme/tool"),
        ("github.com/acme/tool/v2/cmd/tool", "github.com/acme/tool/v2"),
        ("golang.org/x/tools/cmd/stringer", "golang.org/x/tools"),
        ("k8s.io/kubernetes/cmd/kubelet", "k8s.io/kubernetes"),
        ("gopkg.in/yaml.v3/cmd/x", "gopkg.in/yaml.v3"),
        ("example.com/a/b/cmd/x", "example.com/a/b/cmd/x"),  # unknown host: depth unknown
    ],
)
def test_go_gopath_build_reports_the_module_root(package_path: str, module: str) -> None:
    """Without a ``mod`` line (GOPATH builds) the path line names a package; the module root is
    derived only where the code host fixes its depth."""
    got = _go_packages(f"path\t{package_path}\n".encode())
    main = got[module]
    assert main.meta("main-package") == package_path
    expected = "package-path" if module == package_path else "code-host-root"
    assert main.meta("main-module-source") == expected


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4096), st.integers(min_value=0, max_value=4000))
def test_go_reader_survives_garbage(noise: bytes, where: int) -> None:
    data = bytearray(_synthetic_pre118_elf(b"go1.16", b"path\tx\n"))
    data[where : where + len(noise)] = noise
    info = read_build_info(bytes(data))  # must not raise, whatever the bytes say
    assert info is None or info.go_version.startswith("go")


def test_go_truncated_real_binary() -> None:
    data = go_binary().read_bytes()
    for cut in (64, 4096, len(data) // 2):
        read_build_info(data[:cut])  # no exception


# --- java ---------------------------------------------------------------------------------


def test_java_war_with_nested_jars(sample_root: Path) -> None:
    pkgs = [p for p in catalog_tree(sample_root).packages if p.type == "java-archive"]
    in_war = {(p.name, p.version) for p in pkgs if p.locations == ("/opt/java/shop.war",)}
    assert ("shop", "3.1.4") in in_war
    assert ("commons-io", "2.11.0") in in_war and ("guava", "31.1-jre") in in_war
    guava = next(p for p in pkgs if p.name == "guava")
    assert guava.purl == "pkg:maven/com.google.guava/guava@31.1-jre"
    assert guava.meta("maven-group") == "com.google.guava"
    nested = next(
        p for p in pkgs if p.name == "commons-io" and p.locations == ("/opt/java/shop.war",)
    )
    assert nested.meta("virtual-path") == "/opt/java/shop.war:WEB-INF/lib/commons-io-2.11.0.jar"


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _run_java(data: bytes, path: str = "/app/evil.war") -> Inventory:
    pkgs = JavaArchiveCataloger().catalog([entry(path, data)])
    return finalize(Inventory(source="t", packages=tuple(pkgs)))


def test_java_refuses_traversal_in_nested_names() -> None:
    inner = _zip({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\nImplementation-Version: 1\n"})
    outer = _zip({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n", "../../etc/x-1.0.jar": inner})
    inv = _run_java(outer)
    assert any("path traversal" in s for s in inv.skipped)
    assert {p.name for p in inv.packages} == {"evil"}


def test_java_bomb_is_bounded() -> None:
    # a nested jar that inflates past the nested-archive cap is refused, not read
    big = b"\0" * (MAX_NESTED + 1)
    outer = _zip({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n", "lib/bomb-1.0.jar": big})
    assert len(outer) < 1_000_000  # it really is a bomb: tiny compressed, huge inflated
    inv = _run_java(outer)
    assert any("larger than" in s for s in inv.skipped)


def test_java_depth_is_bounded() -> None:
    data = _zip({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n"})
    for i in range(8):
        data = _zip({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n", f"lib/l{i}-1.0.jar": data})
    inv = _run_java(data)
    assert any("deeper than" in s for s in inv.skipped)


def test_java_corrupt_archive_is_skipped_with_reason() -> None:
    inv = _run_java(b"PK\x03\x04 this is not a zip", "/app/broken-1.0.jar")
    assert inv.packages == () and "not a readable zip" in inv.skipped[0]


def test_java_filename_rule() -> None:
    assert split_filename("guava-31.1-jre") == ("guava", "31.1-jre")
    assert split_filename("maven3-core") == ("maven3-core", "")
    assert split_filename("jsr305-0.1~+svn49") == ("jsr305", "0.1~+svn49")


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        # Debian NAME-API-RELEASE: the release extends the API version
        ("log4j-1.2-1.2.17", ("log4j", "1.2.17")),
        # Debian's Geronimo specs: NAME-API-spec-RELEASE, Maven's NAME_API_spec artifact
        ("geronimo-annotation-1.3-spec-1.3", ("geronimo-annotation_1.3_spec", "1.3")),
        ("geronimo-interceptor-3.0-spec-1.0.1", ("geronimo-interceptor_3.0_spec", "1.0.1")),
        # not API-RELEASE: a release that does not extend the first number stays whole
        ("servlet-api-2.5-6.1.14", ("servlet-api", "2.5-6.1.14")),
        ("commons-io-2.11.0", ("commons-io", "2.11.0")),
        ("maven-artifact-3.x", ("maven-artifact", "3.x")),
    ],
)
def test_java_debian_api_release_file_names(base: str, expected: tuple[str, str]) -> None:
    assert split_filename(base) == expected


def test_java_debian_jars_all_found() -> None:
    files = []
    for name in JARS:
        p = Path("/usr/share/java") / name
        if p.exists():
            files.append(entry(f"/usr/share/java/{name}", p.read_bytes()))
    names = {p.name for p in JavaArchiveCataloger().catalog(files)}
    assert {"commons-io", "guava", "guice", "cglib"} <= names  # cglib is shaded inside guice


@pytest.mark.parametrize("size", [0, 1, 22])
def test_java_tiny_files(size: int) -> None:
    assert _run_java(b"PK" * size).packages == ()


def test_make_war_helper_roundtrip(tmp_path: Path) -> None:
    jar = Path("/usr/share/java") / JARS[0]
    make_war([jar], tmp_path / "a.war")
    assert zipfile.ZipFile(tmp_path / "a.war").namelist()[-1] == f"WEB-INF/lib/{jar.name}"
