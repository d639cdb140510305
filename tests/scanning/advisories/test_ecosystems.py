"""Ecosystem and package-name normalization shared by importers and the matcher."""

from __future__ import annotations

import pytest

from stockade.scanning.advisories import ecosystems as eco


@pytest.mark.parametrize(
    ("osv", "normalized"),
    [
        ("Debian:12", "debian:12"),
        ("Debian:11", "debian:11"),
        ("Alpine:v3.19", "alpine:3.19"),
        ("Alpine:v3.2", "alpine:3.2"),
        ("Ubuntu:22.04:LTS", "ubuntu:22.04"),
        ("Ubuntu:Pro:18.04:LTS", "ubuntu:18.04"),
        ("Ubuntu:23.10", "ubuntu:23.10"),
        ("Ubuntu:Pro:16.04:LTS", "ubuntu:16.04"),
        ("Ubuntu:14.04:LTS", "ubuntu:14.04"),
        ("PyPI", "pypi"),
        ("npm", "npm"),
        ("Maven", "maven"),
        ("Go", "go"),
        ("crates.io", "crates.io"),
        ("Rocky Linux:9", "rocky:9"),
        ("Red Hat:enterprise_linux:9::appstream", "redhat:9"),
    ],
)
def test_from_osv(osv: str, normalized: str) -> None:
    assert eco.from_osv(osv) == normalized


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "Nope",
        "Debian",
        "Alpine",
        "Ubuntu:Pro",
        "Android",
        # A separate build of a release not read here
        "Ubuntu:Pro:Nope:22.04:LTS",
    ],
)
def test_unknown_ecosystems(bad: str) -> None:
    with pytest.raises(eco.UnknownEcosystem):
        eco.from_osv(bad)


def test_from_distro() -> None:
    assert eco.from_distro("debian", "12") == "debian:12"
    assert eco.from_distro("debian", "", "trixie") == "debian:13"
    assert eco.from_distro("alpine", "3.19.1") == "alpine:3.19"
    assert eco.from_distro("alpine", "3.20_alpha20240329") == "alpine:3.20"
    assert eco.from_distro("ubuntu", "22.04") == "ubuntu:22.04"
    assert eco.from_distro("rhel", "9.3") == "redhat:9"
    assert eco.from_distro("gentoo", "2.14") is None


def test_package_names() -> None:
    assert (
        eco.package_name("pypi", "Products.PluggableAuthService") == "products-pluggableauthservice"
    )
    assert eco.package_name("pypi", "zope_interface") == "zope-interface"
    assert (
        eco.package_name("maven", "org.Apache.logging.log4j:log4j-core")
        == "org.apache.logging.log4j:log4j-core"
    )
    assert eco.package_name("go", "github.com/BurntSushi/toml") == "github.com/BurntSushi/toml"
    assert eco.package_name("debian:12", "openssl") == "openssl"


@pytest.mark.parametrize(
    ("text", "want", "frozen"),
    [
        ("Ubuntu:Pro:FIPS:20.04:LTS", "ubuntu-fips:20.04", True),
        ("Ubuntu:Pro:FIPS-updates:22.04:LTS", "ubuntu-fips:22.04", False),
        ("Ubuntu:Pro:FIPS-preview:22.04:LTS", "ubuntu-fips:22.04", True),
        ("Ubuntu:Pro:22.04:LTS", "ubuntu:22.04", False),
        # Kernels built apart (Canonical's OSV documentation's list, and the feed's spellings)
        ("Ubuntu:Pro:22.04:LTS:Realtime:Kernel", "ubuntu-realtime:22.04", False),
        ("Ubuntu:Pro:24.04:LTS:Realtime:Kernel", "ubuntu-realtime:24.04", False),
        ("Ubuntu:Nvidia-BlueField:22.04:LTS", "ubuntu-bluefield:22.04", False),
        ("Ubuntu:22.04:LTS:for:NVIDIA:BlueField", "ubuntu-bluefield:22.04", False),
    ],
)
def test_ubuntu_fips_streams(text: str, want: str, frozen: bool) -> None:
    assert eco.from_osv(text) == want
    assert eco.frozen_fips_stream(text) is frozen


@pytest.mark.parametrize(
    ("version", "want"),
    [
        # Real builds: Canonical's OSV records, FIPS module certificates, dpkg -l of FIPS hosts.
        ("1.1.1f-1ubuntu2.fips.7.1", "ubuntu-fips:20.04"),
        ("1.1.1-1ubuntu2.fips.2.1~18.04.6.2", "ubuntu-fips:20.04"),
        ("3.0.5-0ubuntu0.1+Fips2.1", "ubuntu-fips:20.04"),
        ("1:7.9p1-10~ubuntu18.04.fips.0.2", "ubuntu-fips:20.04"),
        ("1.0.3-2fips3", "ubuntu-fips:20.04"),
        ("1.1.1f-1ubuntu2.17", None),
        ("3.0.2-0ubuntu1.10", None),
        ("1.0", None),
    ],
)
def test_fips_builds_are_told_by_their_revision(version: str, want: str | None) -> None:
    assert eco.separate_build("ubuntu:20.04", "openssl", version) == want
    assert eco.separate_build("debian:12", "openssl", version) is None


@pytest.mark.parametrize(
    ("source", "want"),
    [
        # The FIPS kernels' sources (USN-7428-2: linux-fips, linux-aws-fips, linux-azure-fips,
        # linux-gcp-fips), tracked in the FIPS streams; their versions carry no "fips".
        ("linux-fips", "ubuntu-fips:20.04"),
        ("linux-aws-fips", "ubuntu-fips:20.04"),
        ("linux-gcp-fips", "ubuntu-fips:20.04"),
        ("linux-realtime", "ubuntu-realtime:20.04"),
        ("linux-intel-iot-realtime", "ubuntu-realtime:20.04"),
        ("linux-realtime-6.8", "ubuntu-realtime:20.04"),
        ("linux-bluefield", "ubuntu-bluefield:20.04"),
        ("linux", None),
        ("linux-aws", None),
        ("fipscheck", None),
    ],
)
def test_separate_kernels_are_told_by_their_source(source: str, want: str | None) -> None:
    assert eco.separate_build("ubuntu:20.04", source, "5.4.0-1021.21") == want
