"""Package URLs for OS packages. The namespace and ``distro`` qualifier need the Distro, which is
known only after the layer merge, so catalogers build a provisional purl and ``finalize`` rebuilds
it with the same function once the Distro is known."""

from __future__ import annotations

from stockade.scanning.catalogers import purl
from stockade.scanning.interface import Distro, Package

_DEFAULT_NAMESPACE = {"deb": "debian", "apk": "alpine", "rpm": ""}


def os_purl(pkg: Package, distro: Distro | None) -> str:
    """``pkg:deb/debian/NAME@VER?arch=..&distro=debian-12`` and the apk and rpm analogues."""
    namespace = distro.id if distro else _DEFAULT_NAMESPACE.get(pkg.type, "")
    upstream = None
    if pkg.type == "rpm":
        upstream = pkg.meta("sourcerpm")
    elif pkg.source_name and pkg.source_name != pkg.name:
        upstream = pkg.source_name
        if pkg.source_version and pkg.source_version != pkg.version:
            upstream = f"{upstream}@{pkg.source_version}"
    version = pkg.version
    qualifiers: list[tuple[str, str | None]] = [("arch", pkg.arch), ("upstream", upstream)]
    if pkg.type == "rpm":
        epoch = pkg.meta("epoch")
        qualifiers.append(("epoch", epoch))
        if epoch and version.startswith(epoch + ":"):
            version = version[len(epoch) + 1 :]
    if distro is not None:
        qualifiers.append(
            ("distro", f"{distro.id}-{distro.version_id}" if distro.version_id else distro.id)
        )
    return purl.build(pkg.type, pkg.name, version, namespace=namespace, qualifiers=qualifiers)
