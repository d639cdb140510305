"""OS catalogers (os-release, dpkg, apk, rpm) on real package data."""

from __future__ import annotations

import contextlib
import gzip
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.scanning.catalogers import default_catalogers, finalize
from stockade.scanning.catalogers.apk import ApkCataloger
from stockade.scanning.catalogers.dpkg import DpkgCataloger, copyright_licenses
from stockade.scanning.catalogers.elf import parse as elf_parse
from stockade.scanning.catalogers.elf_notes import ElfPackageNoteCataloger, package_notes
from stockade.scanning.catalogers.os_release import OsReleaseCataloger, detect_distro
from stockade.scanning.catalogers.owned import OWNED_TYPE
from stockade.scanning.catalogers.rpm import RpmCataloger, read_ndb_rpmdb
from stockade.scanning.catalogers.rpm_bdb import read_values
from stockade.scanning.catalogers.rpm_header import HeaderError, parse_header
from stockade.scanning.interface import FileEntry, Inventory
from tests.conftest import require
from tests.scanning.catalogers.catalog_inputs import (
    catalog_tree,
    deb_control,
    deb_source_version,
    debs,
    rpmdb,
    rpmdb_bdb,
    syft_json,
)
from tests.scanning.catalogers.distro_inputs import DATA as DISTROS
from tests.scanning.catalogers.distro_inputs import rpm_qa as distro_rpm_qa


def entry(path: str, data: bytes, layer: str | None = None) -> FileEntry:
    return FileEntry(path=path, mode=0o100644, size=len(data), data=data, layer=layer)


def control(deb: Path, field: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True, check=True
    ).stdout.strip()


# --- os-release ---------------------------------------------------------------------------


def test_os_release_of_this_debian_host() -> None:
    data = Path("/etc/os-release").read_bytes()
    distro = detect_distro([entry("/etc/os-release", data)])
    assert distro is not None and distro.id == "debian" and distro.version_id == "12"
    assert distro.version_codename == "bookworm"


def test_etc_os_release_wins_and_finalize_sets_the_distro() -> None:
    cat = OsReleaseCataloger()
    assert cat.wants("/etc/os-release", 0o100644, 300) and cat.wants(
        "/usr/lib/os-release", 0o100644, 1
    )
    assert not cat.wants("/opt/etc/os-release", 0o100644, 300)
    pkgs = cat.catalog(
        [
            entry("/usr/lib/os-release", b"ID=alpine\nVERSION_ID=3.19.1\n"),
            entry(
                "/etc/os-release", b'ID="rhel"\nVERSION_ID="9.3"\nID_LIKE="fedora"\n# c\nbad line\n'
            ),
        ]
    )
    inv = finalize(Inventory(source="t", packages=tuple(pkgs)))
    assert inv.distro is not None and (inv.distro.id, inv.distro.version_id) == ("rhel", "9.3")
    assert inv.distro.id_like == ("fedora",) and inv.packages == ()


def test_os_release_garbage_gives_no_distro() -> None:
    assert (
        OsReleaseCataloger().catalog([entry("/etc/os-release", b"\xff\xfe'unterminated\n")]) == []
    )


# --- dpkg ---------------------------------------------------------------------------------


def test_dpkg_packages_source_and_licenses(sample_root: Path) -> None:
    inv = catalog_tree(sample_root)
    debs_by_name = {p.name: p for p in inv.packages if p.type == "deb"}
    assert "libxxhash0" not in debs_by_name  # removed, only config files left
    for deb in sorted(debs().glob("*.deb")):
        name = control(deb, "Package")
        if name == "libxxhash0":
            continue
        pkg = debs_by_name[name]
        assert pkg.version == control(deb, "Version")
        assert pkg.arch == control(deb, "Architecture")
        source = control(deb, "Source") or name
        assert pkg.source_name == source.split()[0]
        expected_src_version = source.split("(")[1].rstrip(")") if "(" in source else pkg.version
        assert pkg.source_version == expected_src_version
    # "Source: bzip2 (1.0.8-5)": a source version of its own
    assert "(" in deb_control("libbz2-1.0", "Source")
    assert debs_by_name["libbz2-1.0"].source_version == deb_source_version("libbz2-1.0")
    zlib = debs_by_name["zlib1g"]
    assert "Zlib" in zlib.licenses
    # what apt-get download brought (not a constant), "+" percent-encoded as the purl spec asks
    version = deb_control("zlib1g", "Version").replace("+", "%2B")
    assert zlib.purl == f"pkg:deb/debian/zlib1g@{version}?arch=amd64&distro=debian-12&upstream=zlib"


def test_dpkg_distroless_status_d(tmp_path: Path) -> None:
    require(shutil.which("dpkg-deb") is not None, "dpkg-deb missing")
    files = []
    for deb in sorted(debs().glob("*.deb"))[:3]:
        ctl = subprocess.run(
            ["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True
        )
        name = control(deb, "Package")
        # distroless writes one control stanza per file, without a Status field
        files.append(entry(f"/var/lib/dpkg/status.d/{name}", ctl.stdout.encode()))
        files.append(entry(f"/var/lib/dpkg/status.d/{name}.md5sums", b"0" * 32 + b"  usr/lib/x\n"))
    cat = DpkgCataloger()
    wanted = [f for f in files if cat.wants(f.path, f.mode, f.size)]
    assert len(wanted) == 6  # the md5sums files are the packages' file lists
    found = cat.catalog(wanted)
    names = sorted(control(d, "Package") for d in sorted(debs().glob("*.deb"))[:3])
    assert sorted(p.name for p in found if p.type == "deb") == names
    assert {p.meta("files") for p in found if p.type == OWNED_TYPE} == {"/usr/lib/x"}


def test_deb_licenses_join_across_layers() -> None:
    status = b"Package: zlib1g\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n"
    copyright_text = b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: Zlib\n"
    cat = DpkgCataloger()
    layer1 = cat.catalog([entry("/usr/share/doc/zlib1g/copyright", copyright_text, "sha256:a")])
    layer2 = cat.catalog([entry("/var/lib/dpkg/status", status, "sha256:b")])
    inv = finalize(Inventory(source="t", packages=(*layer1, *layer2)))
    assert [(p.name, p.licenses, p.layer) for p in inv.packages] == [
        ("zlib1g", ("Zlib",), "sha256:b")
    ]


def test_copyright_licenses_forms() -> None:
    text = "License: GPL-2+\n text\nLicense: BSD-3-clause,\nsee /usr/share/common-licenses/GPL-2.\n"
    assert copyright_licenses(text) == ("BSD-3-clause", "GPL-2", "GPL-2+")


def test_dpkg_hostile_status() -> None:
    junk = (
        b"\x00\xff" * 1000
        + b"\nPackage:\nVersion: 1\n\n: x\n  cont\nPackage: ok\nVersion: 2\nStatus: install ok installed\n"
    )
    pkgs = DpkgCataloger().catalog([entry("/var/lib/dpkg/status", junk)])
    assert [(p.name, p.version) for p in pkgs] == [("ok", "2")]


# --- apk ----------------------------------------------------------------------------------

# The apk installed database format (apk-tools' "installed" file): no Alpine mirror is reachable
# from here, so this sample is written to the format and checked against syft below.
APK_DB = b"""C:Q1abc=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:407278
I:663552
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Natanael Copa <ncopa@alpinelinux.org>
t:1700000000
F:lib
R:ld-musl-x86_64.so.1

C:Q1def=
P:busybox-binsh
V:1.36.1-r15
A:x86_64
L:GPL-2.0-only
o:busybox
F:bin
R:sh

P:ssl_client
V:1.36.1-r15
A:x86_64
L:GPL-2.0-only AND MIT
o:busybox
"""


def test_apk_database() -> None:
    pkgs = [
        p
        for p in ApkCataloger().catalog([entry("/lib/apk/db/installed", APK_DB)])
        if p.type == "apk"
    ]
    got = {(p.name, p.version, p.source_name, p.licenses) for p in pkgs}
    assert got == {
        ("musl", "1.2.4_git20230717-r4", "musl", ("MIT",)),
        ("busybox-binsh", "1.36.1-r15", "busybox", ("GPL-2.0-only",)),
        ("ssl_client", "1.36.1-r15", "busybox", ("GPL-2.0-only AND MIT",)),
    }
    os_rel = entry("/etc/os-release", b"ID=alpine\nVERSION_ID=3.19.1\n")
    inv = finalize(Inventory(source="t", packages=(*pkgs, *OsReleaseCataloger().catalog([os_rel]))))
    busy = next(p for p in inv.packages if p.name == "busybox-binsh")
    assert (
        busy.purl
        == "pkg:apk/alpine/busybox-binsh@1.36.1-r15?arch=x86_64&distro=alpine-3.19.1&upstream=busybox"
    )


def test_apk_matches_syft(tmp_path: Path) -> None:
    require(shutil.which("syft") is not None, "syft is not installed")
    (tmp_path / "lib/apk/db").mkdir(parents=True)
    (tmp_path / "lib/apk/db/installed").write_bytes(APK_DB)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_bytes(b"ID=alpine\nVERSION_ID=3.19.1\n")
    ours = {(p.type, p.name, p.version, p.purl) for p in catalog_tree(tmp_path).packages}
    theirs = {
        (a["type"], a["name"], a["version"], a["purl"])
        for a in syft_json(f"dir:{tmp_path}")["artifacts"]
    }
    assert {x[:3] for x in ours} == {x[:3] for x in theirs}

    # purls agree too, up to qualifier order (we sort qualifiers as the purl spec asks)
    def norm(p: str) -> tuple[str, frozenset[str]]:
        base, _, q = p.partition("?")
        return base, frozenset(q.split("&"))

    assert {norm(x[3]) for x in ours} == {norm(x[3]) for x in theirs}


# --- rpm ----------------------------------------------------------------------------------


def rpm_qa(dbpath: Path, backend: str) -> set[tuple[str, str, str, str]]:
    """What the real rpm says is in a database (name, [epoch:]version-release, arch, license)."""
    fmt = "%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{ARCH}\\t%{LICENSE}\\n"
    out = subprocess.run(
        ["rpm", "--dbpath", str(dbpath), "--define", f"_db_backend {backend}", "-qa", "--qf", fmt],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {tuple(line.split("\t")) for line in out.splitlines() if line}  # type: ignore[misc]


def _ours(pkgs: list) -> set[tuple[str, str, str, str]]:
    return {
        (p.name, p.version, p.arch or "", p.licenses[0] if p.licenses else "")
        for p in pkgs
        if p.type == "rpm"
    }


def test_rpm_sqlite_from_the_real_rpm() -> None:
    require(shutil.which("rpm") is not None, "rpm is not installed")
    path = rpmdb()
    found = RpmCataloger().catalog([entry("/var/lib/rpm/rpmdb.sqlite", path.read_bytes())])
    pkgs = [p for p in found if p.type == "rpm"]
    assert _ours(pkgs) == rpm_qa(path.parent, "sqlite")
    assert len(pkgs) == 3
    # the file lists come along: what 'rpm -ql' says each package installed
    files = {p.name: p.meta("files") for p in found if p.type == OWNED_TYPE}
    for name in files:
        listed = subprocess.run(
            ["rpm", "--dbpath", str(path.parent), "-ql", name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert sorted(listed) == (files[name] or "").split("\n")
    assert set(files) == {p.name for p in pkgs}
    p = next(p for p in pkgs if p.name == "stockade-tiny")
    assert (p.name, p.version, p.arch) == ("stockade-tiny", "2:1.2.3-4.el9", "noarch")
    assert p.licenses == ("MIT AND (Apache-2.0 OR BSD-3-Clause)",)
    assert (p.source_name, p.source_version) == ("stockade-tiny", "1.2.3-4.el9")
    assert p.meta("vendor") == "Stockade Tests"
    rel = OsReleaseCataloger().catalog([entry("/etc/os-release", b'ID="rhel"\nVERSION_ID="9.3"\n')])
    inv = finalize(Inventory(source="t", packages=(p, *rel)))
    assert inv.packages[0].purl == (
        "pkg:rpm/redhat/stockade-tiny@1.2.3-4.el9?arch=noarch&distro=rhel-9.3&epoch=2"
        "&upstream=stockade-tiny-1.2.3-4.el9.src.rpm"
    )


@pytest.mark.parametrize("page_size", [512, 4096])
def test_rpm_berkeleydb_written_by_the_real_library(page_size: int, tmp_path: Path) -> None:
    for tool in ("rpm", "db5.3_load"):
        require(shutil.which(tool) is not None, f"{tool} is not installed")
    path = rpmdb_bdb(page_size)
    found = RpmCataloger().catalog([entry("/var/lib/rpm/Packages", path.read_bytes())])
    pkgs = [p for p in found if p.type == "rpm"]
    # the real rpm (read-only BerkeleyDB backend) reads the same file and agrees
    db = tmp_path / "db"
    db.mkdir()
    shutil.copy(path, db / "Packages")
    assert _ours(pkgs) == rpm_qa(db, "bdb_ro")
    assert len(pkgs) == 3
    # and so does syft
    require(shutil.which("syft") is not None, "syft is not installed")
    root = tmp_path / "root"
    (root / "var/lib/rpm").mkdir(parents=True)
    shutil.copy(path, root / "var/lib/rpm/Packages")
    theirs = {(a["name"], a["version"]) for a in syft_json(f"dir:{root}")["artifacts"]}
    assert {(p.name, p.version) for p in pkgs} == theirs


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.integers(min_value=0, max_value=3583))
def test_rpm_berkeleydb_garbage_never_crashes(noise: bytes, where: int) -> None:
    require(shutil.which("db5.3_load") is not None, "db5.3_load is not installed")
    data = bytearray(rpmdb_bdb(512).read_bytes())
    data[where : where + len(noise)] = noise
    # BdbError is a ValueError: the cataloger turns it into a skipped result, never a crash
    with contextlib.suppress(ValueError):
        read_values(bytes(data))


@pytest.mark.parametrize("cut", [0, 100, 4096, 50_000])
def test_rpm_truncated_database_is_a_skipped_result(cut: int) -> None:
    require(shutil.which("rpm") is not None, "rpm is not installed")
    data = rpmdb().read_bytes()[:cut]
    pkgs = RpmCataloger().catalog([entry("/var/lib/rpm/rpmdb.sqlite", data)])
    inv = finalize(Inventory(source="t", packages=tuple(pkgs)))
    assert inv.packages == () and len(inv.skipped) == 1
    assert "/var/lib/rpm/rpmdb.sqlite" in inv.skipped[0]


def _sles_ndb() -> bytes:
    """The real NDB ``Packages.db`` of a SLE 15 SP3 BCI image (tests/scanning/data/distros)."""
    return gzip.decompress((DISTROS / "sles15.3/Packages.db.gz").read_bytes())


def test_rpm_ndb_of_a_real_sles_image() -> None:
    cat = RpmCataloger()
    assert cat.wants("/usr/lib/sysimage/rpm/Packages.db", 0o100644, 10)
    found = cat.catalog([entry("/usr/lib/sysimage/rpm/Packages.db", _sles_ndb())])
    pkgs = {p.name: p for p in found if p.type == "rpm"}
    # every package of the image's own `rpm -qa` listing, with its version
    assert {(p.name, p.version) for p in pkgs.values()} == distro_rpm_qa("sles15.3")
    bash = pkgs["bash"]
    assert (bash.version, bash.arch, bash.licenses) == (
        "4.4-19.6.1",
        "x86_64",
        ("GPL-3.0-or-later",),
    )
    assert (bash.source_name, bash.source_version) == ("bash", "4.4-19.6.1")
    assert bash.meta("vendor") == "SUSE LLC <https://www.suse.com/>"
    owned = {p.name: p.meta("files") for p in found if p.type == OWNED_TYPE}
    assert "/bin/bash" in (owned["bash"] or "").split("\n")


def test_rpm_ndb_garbage_is_a_skipped_result() -> None:
    cat = RpmCataloger()
    real = _sles_ndb()
    broken = {
        "x": "bad magic",
        real[:4096]: "outside the file",  # the slot table alone: every blob is missing
        real[:4] + b"\x07" + real[5:]: "format version 7",
        real[:12] + b"\xff\xff\x00\x00" + real[16:]: "implausible slot table",
    }
    for data, reason in broken.items():
        files = [entry("/usr/lib/sysimage/rpm/Packages.db", data)]
        inv = finalize(Inventory(source="t", packages=tuple(cat.catalog(files))))
        assert inv.packages == () and len(inv.skipped) == 1, reason
        assert inv.skipped[0].startswith("/usr/lib/sysimage/rpm/Packages.db: ")
        assert reason in inv.skipped[0]


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.integers(min_value=0, max_value=20_000))
def test_rpm_ndb_garbage_never_crashes(noise: bytes, where: int) -> None:
    data = bytearray(_sles_ndb())
    data[where : where + len(noise)] = noise
    # NdbError and HeaderError are ValueErrors: a skipped result, never a crash
    with contextlib.suppress(ValueError):
        read_ndb_rpmdb(bytes(data))


def test_rpm_header_rejects_lies() -> None:
    import struct

    with pytest.raises(HeaderError):
        parse_header(b"\x00\x00")
    with pytest.raises(HeaderError):
        parse_header(struct.pack(">ii", 1_000_000, 10))
    # an index entry pointing past the data store
    blob = struct.pack(">ii", 1, 4) + struct.pack(">iiii", 1000, 6, 100, 1) + b"abc\0"
    with pytest.raises(HeaderError):
        parse_header(blob)
    ok = struct.pack(">ii", 1, 4) + struct.pack(">iiii", 1000, 6, 0, 1) + b"abc\0"
    assert parse_header(ok) == {1000: "abc"}


def test_finalize_is_idempotent(sample_root: Path) -> None:
    inv = catalog_tree(sample_root)
    assert finalize(inv) == inv
    assert finalize(replace(inv, packages=tuple(reversed(inv.packages)))) == inv


def test_default_catalogers_have_unique_names() -> None:
    cats = default_catalogers()
    assert len({c.name for c in cats}) == len(cats) == 14
    assert all(isinstance(c.version, int) for c in cats)


# --- ELF package notes --------------------------------------------------------------------


LIBSYSTEMD = Path("/usr/lib/x86_64-linux-gnu/libsystemd.so.0")


def test_file_owned_by_an_os_package_is_not_a_second_package() -> None:
    """Debian's libsystemd0 installs libsystemd.so.0.*, whose ELF package note names the
    *source* package ``systemd``. With the real dpkg file list of libsystemd0, the library is
    libsystemd0 only: no ``systemd`` package the image does not have."""
    lib = LIBSYSTEMD.resolve()
    listing = Path("/var/lib/dpkg/info/libsystemd0:amd64.list")
    require(lib.exists() and listing.exists(), "Debian's libsystemd0 is not installed here")
    version = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "libsystemd0"], capture_output=True, text=True
    ).stdout
    data = lib.read_bytes()
    [note] = ElfPackageNoteCataloger().catalog([entry(str(lib), data)])
    assert note.name == "systemd"  # what the binary says of itself
    status = (
        f"Package: libsystemd0\nStatus: install ok installed\nVersion: {version}\n"
        "Source: systemd\nArchitecture: amd64\n"
    ).encode()
    db = DpkgCataloger().catalog(
        [
            entry("/var/lib/dpkg/status", status),
            entry(str(listing), listing.read_bytes()),
        ]
    )
    inv = finalize(Inventory(source="t", packages=(note, *db)))
    assert [(p.type, p.name) for p in inv.packages] == [("deb", "libsystemd0")]
    # without the file list nothing says who owns the library: the note stays
    alone = finalize(Inventory(source="t", packages=(note, *db[:1])))
    assert {p.name for p in alone.packages} == {"libsystemd0", "systemd"}


def test_apk_and_distroless_file_lists_own_files() -> None:
    apk = ApkCataloger().catalog([entry("/lib/apk/db/installed", APK_DB)])
    owners = {p.name: p.meta("files") for p in apk if p.type == OWNED_TYPE}
    assert owners == {"musl": "/lib/ld-musl-x86_64.so.1", "busybox-binsh": "/bin/sh"}
    md5 = b"0123456789abcdef0123456789abcdef  usr/bin/tool\n"
    [rec] = DpkgCataloger().catalog([entry("/var/lib/dpkg/status.d/tool.md5sums", md5)])
    assert (rec.type, rec.name, rec.meta("files")) == (OWNED_TYPE, "tool", "/usr/bin/tool")


BUSCTL = Path("/usr/bin/busctl")


def test_elf_package_note_of_real_systemd_binary() -> None:
    require(BUSCTL.exists(), "systemd's busctl is not installed")
    version = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "systemd"], capture_output=True, text=True
    ).stdout
    require(bool(version), "systemd is not a dpkg package here")
    cat = ElfPackageNoteCataloger()
    data = BUSCTL.read_bytes()
    assert cat.wants("/usr/bin/busctl", 0o100755, len(data))
    [pkg] = cat.catalog([entry("/usr/bin/busctl", data)])
    assert (pkg.type, pkg.name, pkg.version, pkg.arch) == ("deb", "systemd", version, "amd64")
    # with the dpkg database listing the same package, the database's entry is the one kept
    status = f"Package: systemd\nStatus: install ok installed\nVersion: {version}\n".encode()
    db = DpkgCataloger().catalog([entry("/var/lib/dpkg/status", status)])
    inv = finalize(Inventory(source="t", packages=(pkg, *db)))
    assert [p.locations for p in inv.packages] == [("/var/lib/dpkg/status",)]
    alone = finalize(Inventory(source="t", packages=(pkg,)))
    assert [p.locations for p in alone.packages] == [("/usr/bin/busctl",)]


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=32), st.integers(min_value=0, max_value=200))
def test_elf_package_note_garbage_never_crashes(noise: bytes, where: int) -> None:
    require(BUSCTL.exists(), "systemd's busctl is not installed")
    data = bytearray(BUSCTL.read_bytes())
    binary = elf_parse(bytes(data))
    assert binary is not None
    note = binary.sections[".note.package"]
    start = note.offset + min(where, note.size - 1)
    data[start : start + len(noise)] = noise
    package_notes(bytes(data))  # whatever the note says, no exception


def test_distroless_status_d_matches_syft(tmp_path: Path) -> None:
    require(shutil.which("syft") is not None, "syft is not installed")
    status_d = tmp_path / "var/lib/dpkg/status.d"
    status_d.mkdir(parents=True)
    for deb in sorted(debs().glob("*.deb")):
        ctl = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, check=True).stdout
        name = control(deb, "Package")
        (status_d / name).write_bytes(ctl)  # distroless: one control stanza per file, no Status
        (status_d / f"{name}.md5sums").write_bytes(b"0" * 32 + b"  usr/lib/x\n")
    (tmp_path / "etc").mkdir()
    shutil.copy("/etc/os-release", tmp_path / "etc/os-release")
    ours = {(p.type, p.name, p.version, p.purl) for p in catalog_tree(tmp_path).packages}
    theirs = {
        (a["type"], a["name"], a["version"], a["purl"])
        for a in syft_json(f"dir:{tmp_path}")["artifacts"]
    }
    assert {x[:3] for x in ours} == {x[:3] for x in theirs}
    assert len(ours) == len(list(debs().glob("*.deb")))

    def norm(p: str) -> tuple[str, frozenset[str]]:
        base, _, q = p.partition("?")
        return base, frozenset(q.split("&"))

    assert {norm(x[3]) for x in ours} == {norm(x[3]) for x in theirs}
