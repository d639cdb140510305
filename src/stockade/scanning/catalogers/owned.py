"""Files an OS package installed, from the package manager's own file lists: dpkg's
``/var/lib/dpkg/info/<pkg>.list`` (distroless: ``status.d/<pkg>.md5sums``), apk's ``F:``/``R:``
lines and rpm's ``BASENAMES``/``DIRNAMES``/``DIRINDEXES`` header arrays.

They travel as pseudo-packages of type :data:`OWNED_TYPE` (the owner's name as ``name``, the
paths in the ``files`` metadata entry) so they obey the per-layer cache and whiteouts like the
evidence file they came from. ``finalize`` uses them for one rule: a file the OS package manager
installed is that OS package; other evidence read from the same file (an ELF package note, a Go
binary's main module) is not reported as a second package.
"""

from __future__ import annotations

from collections.abc import Iterable

from stockade.scanning.interface import FileEntry, Package

OWNED_TYPE = "os-owned-files"
_FILES = "files"


def owned(entry: FileEntry, owner: str, paths: Iterable[str]) -> Package | None:
    """A pseudo-package recording that ``owner`` installed ``paths`` (None when there are none)."""
    clean = sorted({p for p in paths if p.startswith("/") and "\n" not in p and p != "/."})
    if not clean:
        return None
    return Package(
        type=OWNED_TYPE,
        name=owner,
        version="",
        locations=(entry.path,),
        layer=entry.layer,
        metadata=((_FILES, "\n".join(clean)),),
    )


def owned_paths(packages: Iterable[Package]) -> set[str]:
    """Every path some OS package's file list names."""
    out: set[str] = set()
    for pkg in packages:
        if pkg.type == OWNED_TYPE:
            out.update((pkg.meta(_FILES) or "").split("\n"))
    out.discard("")
    return out
