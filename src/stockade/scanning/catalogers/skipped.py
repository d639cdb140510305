"""Things a cataloger could not read travel as pseudo-packages of type :data:`SKIPPED_TYPE`
(``name`` = the reason) so they survive the per-layer cache; ``finalize`` moves them into
``Inventory.skipped``."""

from __future__ import annotations

from stockade.scanning.interface import FileEntry, Package

SKIPPED_TYPE = "skipped"


def skipped(entry: FileEntry, reason: str) -> Package:
    """A skipped result for ``entry`` with a one-line reason."""
    return Package(
        type=SKIPPED_TYPE,
        name=reason.replace("\n", " ")[:500],
        version="",
        locations=(entry.path,),
        layer=entry.layer,
    )
