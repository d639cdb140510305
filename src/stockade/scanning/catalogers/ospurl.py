"""Package URLs for OS packages. The namespace and ``distro`` qualifier need the Distro, which is
known only after the layer merge, so catalogers build a provisional purl and ``finalize`` rebuilds
it with the same function once the Distro is known."""

from __future__ import annotations

from stockade.scanning.catalogers import purl
from stockade.scanning.interface import Distro, Package

_DEFAULT_NAMESPACE = {"deb": "debian", "apk": "alpine", "rpm": ""}
# The namespace is the vendor. It is the os-release ID, except where the vendor's own purls say
# otherwise: Red Hat's SBOMs and CSAF VEX documents write ``pkg:rpm/redhat/...`` for RHEL
# (ID=rhel), as syft and grype do. The ``distro`` qualifier keeps the ID (``distro=rhel-9.3``).
_VENDOR_NAMESPACE = {"rhel": "redhat"}


def os_purl(pkg: Package, distro: Distro | None) -> str:
    """``pkg:deb/debian/NAME@VER?arch=..&distro=debian-12`` and the apk and rpm analogues."""
    if distro is not None:
        namespace = _VENDOR_NAMESPACE.get(distro.id, distro.id)
    else:
        namespace = _DEFAULT_NAMESPACE.get(pkg.type, "")
    upstream = None
    if pkg.type == "rpm":
        upstream = pkg.meta("sourcerpm")
    elif pkg.source_name:
        # the source package, with its version when it differs (binNMUs: bash 5.2.15-2+b13
        # is built from bash 5.2.15-2), as syft writes it
        other_version = pkg.source_version and pkg.source_version != pkg.version
        if pkg.source_name != pkg.name or other_version:
            upstream = pkg.source_name + (f"@{pkg.source_version}" if other_version else "")
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
