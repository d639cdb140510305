"""Catalogers turn files into packages; :func:`finalize` turns the merged per-layer results into
the final :class:`~stockade.scanning.interface.Inventory`.

Contract with the layer reader (``stockade.scanning.inventory.build_inventory``):

1. ``default_catalogers()`` is the explicit list; each cataloger is pure (``wants`` then
   ``catalog``) and its ``name``/``version`` go into the layer-cache key.
2. Some results are *pseudo-packages* that carry facts through the per-layer cache: type
   ``os-release`` (the distro), ``apt-sources`` (the Ubuntu FIPS streams an image follows),
   ``deb-copyright`` (licenses of a Debian package whose copyright
   file may live in another layer than its status entry) and ``skipped`` (something that could
   not be read, with the reason as the name). They obey the same whiteout/override rules as
   packages, by location.
3. After the layer merge, call :func:`finalize` exactly on the merged inventory: it sets
   ``Inventory.distro``, attaches deb licenses, adds the ``distro`` qualifier to OS purls, moves
   skipped results to ``Inventory.skipped`` and drops every pseudo-package. It is idempotent.
4. One package per piece of software: a package whose evidence is a file an OS package installed
   (type ``os-owned-files``: dpkg/apk/rpm file lists) and that was read from the binary itself
   (an ELF package note, a Go binary's main module) is dropped; the OS package stands for it.
"""

from __future__ import annotations

from dataclasses import replace

from stockade.scanning.catalogers.apk import ApkCataloger
from stockade.scanning.catalogers.apt_sources import (
    APT_SOURCES_TYPE,
    AptSourcesCataloger,
    merged_streams,
)
from stockade.scanning.catalogers.composer import ComposerCataloger
from stockade.scanning.catalogers.dotnet import DotnetDepsCataloger
from stockade.scanning.catalogers.dpkg import COPYRIGHT_TYPE, DpkgCataloger
from stockade.scanning.catalogers.elf_notes import EVIDENCE as ELF_NOTE
from stockade.scanning.catalogers.elf_notes import ElfPackageNoteCataloger
from stockade.scanning.catalogers.golang import GoBinaryCataloger
from stockade.scanning.catalogers.java import JavaArchiveCataloger
from stockade.scanning.catalogers.npm import NpmCataloger
from stockade.scanning.catalogers.os_release import (
    OS_RELEASE_TYPE,
    OsReleaseCataloger,
    detect_distro,
    distro_from_package,
)
from stockade.scanning.catalogers.ospurl import os_purl
from stockade.scanning.catalogers.owned import OWNED_TYPE, owned_paths
from stockade.scanning.catalogers.python import PythonCataloger
from stockade.scanning.catalogers.rpm import RpmCataloger
from stockade.scanning.catalogers.ruby import RubyGemsCataloger
from stockade.scanning.catalogers.rust import RustCataloger
from stockade.scanning.catalogers.skipped import SKIPPED_TYPE
from stockade.scanning.interface import Cataloger, Distro, Inventory, Package

PSEUDO_TYPES = frozenset(
    {OS_RELEASE_TYPE, COPYRIGHT_TYPE, SKIPPED_TYPE, OWNED_TYPE, APT_SOURCES_TYPE}
)
OS_TYPES = frozenset({"deb", "apk", "rpm"})

__all__ = [
    "OS_TYPES",
    "PSEUDO_TYPES",
    "default_catalogers",
    "detect_distro",
    "finalize",
]


def default_catalogers() -> list[Cataloger]:
    """Every cataloger Stockade runs on an image, in a fixed order."""
    return [
        OsReleaseCataloger(),
        AptSourcesCataloger(),
        DpkgCataloger(),
        ApkCataloger(),
        RpmCataloger(),
        PythonCataloger(),
        NpmCataloger(),
        GoBinaryCataloger(),
        JavaArchiveCataloger(),
        RubyGemsCataloger(),
        ComposerCataloger(),
        RustCataloger(),
        DotnetDepsCataloger(),
        ElfPackageNoteCataloger(),
    ]


def _distro(pseudo: list[Package]) -> Distro | None:
    # /etc/os-release wins over /usr/lib/os-release (systemd's rule)
    ranked = sorted(pseudo, key=lambda p: 0 if "/etc/os-release" in p.locations else 1)
    for pkg in ranked:
        distro = distro_from_package(pkg)
        if distro is not None:
            return distro
    return None


def _licenses_by_source(
    packages: tuple[Package, ...], copyrights: dict[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    """Licenses per Debian source package. Debian policy (12.5) lets a binary package's
    /usr/share/doc/<pkg> be a symlink to the doc directory of a package built from the same
    source (libgcc-s1 -> gcc-12-base): its copyright file is that package's."""
    out: dict[str, tuple[str, ...]] = {}
    for pkg in sorted(packages, key=lambda p: p.name):
        if pkg.type == "deb" and pkg.source_name and copyrights.get(pkg.name):
            out.setdefault(pkg.source_name, copyrights[pkg.name])
    return out


def _read_from_binary(pkg: Package) -> bool:
    """Evidence that names the binary file itself, not something linked or bundled into it: an
    ELF package note, or a Go binary's main module (its dependencies and toolchain are other
    software and stay)."""
    if pkg.meta("evidence") == ELF_NOTE:
        return True
    return pkg.type == "go-module" and pkg.meta("main-version-source") is not None


def finalize(inventory: Inventory) -> Inventory:
    """Resolve pseudo-packages into the inventory (see the module docstring). Idempotent."""
    releases = [p for p in inventory.packages if p.type == OS_RELEASE_TYPE]
    copyrights = {p.name: p.licenses for p in inventory.packages if p.type == COPYRIGHT_TYPE}
    by_source = _licenses_by_source(inventory.packages, copyrights)
    skipped = [
        f"{p.locations[0] if p.locations else '?'}: {p.name}"
        for p in inventory.packages
        if p.type == SKIPPED_TYPE
    ]
    distro = inventory.distro or _distro(releases)
    apt_sources = [p for p in inventory.packages if p.type == APT_SOURCES_TYPE]
    if distro is not None and apt_sources:
        distro = replace(distro, fips_streams=merged_streams(apt_sources))
    # a binary's own package note is redundant where the package database lists the package
    in_database = {
        (p.type, p.name, p.version) for p in inventory.packages if p.meta("evidence") != ELF_NOTE
    }
    owned = owned_paths(inventory.packages)
    packages: list[Package] = []
    for pkg in inventory.packages:
        if pkg.type in PSEUDO_TYPES:
            continue
        if pkg.meta("evidence") == ELF_NOTE and (pkg.type, pkg.name, pkg.version) in in_database:
            continue
        if _read_from_binary(pkg) and pkg.locations and pkg.locations[0] in owned:
            continue
        if pkg.type == "deb" and not pkg.licenses:
            licenses = copyrights.get(pkg.name) or by_source.get(pkg.source_name or "", ())
            if licenses:
                pkg = replace(pkg, licenses=licenses)
        if pkg.type in OS_TYPES:
            pkg = replace(pkg, purl=os_purl(pkg, distro))
        packages.append(pkg)
    packages.sort(key=lambda p: (p.type, p.name, p.version, p.locations))
    reasons = tuple(dict.fromkeys((*inventory.skipped, *skipped)))
    return replace(inventory, distro=distro, packages=tuple(packages), skipped=reasons)
