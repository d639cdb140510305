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
        # Canonical's separate builds of a release (its OSV documentation's list): their fixed
        # versions (+Fips, realtime kernels) are not the stock packages'
        "Ubuntu:Pro:FIPS:20.04:LTS",
        "Ubuntu:Pro:FIPS-updates:22.04:LTS",
        "Ubuntu:Pro:FIPS-preview:22.04:LTS",
        "Ubuntu:Pro:22.04:LTS:Realtime:Kernel",
        "Ubuntu:Nvidia-BlueField:22.04:LTS",
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
