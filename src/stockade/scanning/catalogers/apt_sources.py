"""Which Ubuntu FIPS stream an image follows, from its apt sources.

Canonical publishes three FIPS archives, one per stream: the certified builds
(``https://esm.ubuntu.com/fips/ubuntu``, suite ``focal``), their security updates
(``…/fips-updates/ubuntu``, ``focal-updates``) and builds under certification
(``…/fips-preview/ubuntu``). ``pro enable fips-updates`` writes the source: one-line format
(``/etc/apt/sources.list.d/ubuntu-fips-updates.list``: ``deb https://esm.ubuntu.com/fips-updates/
ubuntu focal-updates main``, a ``# deb-src`` line after it, the ``deb`` line itself commented out
when the release's -updates pocket is off) on older releases, deb822
(``ubuntu-fips-updates.sources``: ``Types``, ``URIs``, ``Suites``, ``Components``, ``Signed-By``)
on newer ones. A mirror keeps the archive's path (``http://mirror/esm.ubuntu.com/fips/ubuntu``).

Read as apt reads them: ``/etc/apt/sources.list`` and the ``.list`` and ``.sources`` files of
``/etc/apt/sources.list.d`` (apt ignores other names there); ``deb`` entries only (``deb-src``
installs nothing), commented-out lines and deb822 stanzas with ``Enabled: no`` left out. Each file
becomes one pseudo-package of type :data:`APT_SOURCES_TYPE` carrying the streams it enables, so
that a later layer's removal or replacement of the file counts (``pro detach`` removes it);
:func:`stockade.scanning.catalogers.finalize` puts them in ``Distro.fips_streams``.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable, Sequence

from stockade.scanning.catalogers._text import decode, stanzas
from stockade.scanning.interface import FileEntry, Package

APT_SOURCES_TYPE = "apt-sources"
LIST = "/etc/apt/sources.list"
PARTS = "/etc/apt/sources.list.d/"
_MAX = 1024 * 1024
# The archive's path in a source URI: esm.ubuntu.com/fips-updates/ubuntu, or a mirror of it.
_FIPS_URI = re.compile(r"/(fips|fips-updates|fips-preview)/ubuntu/*$", re.IGNORECASE)
_OPTIONS = re.compile(r"\[[^\]]*\]")


def is_sources_file(path: str) -> bool:
    """The files apt reads its sources from."""
    if path == LIST:
        return True
    if not path.startswith(PARTS):
        return False
    name = path[len(PARTS) :]
    return "/" not in name and name.endswith((".list", ".sources"))


def fips_stream_of(uri: str) -> str | None:
    """``https://esm.ubuntu.com/fips-updates/ubuntu`` -> ``fips-updates``; None for another
    archive."""
    m = _FIPS_URI.search(uri.split("?", 1)[0])
    return m.group(1).lower() if m else None


def one_line_uris(text: str) -> list[str]:
    """The URIs of the ``deb`` lines of a one-line-style file (``deb [options] uri suite
    [component...]``)."""
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kind, *rest = line.split(None, 1)
        if kind != "deb" or not rest:
            continue
        words = _OPTIONS.sub(" ", rest[0], count=1).split()
        if words:
            out.append(words[0])
    return out


def deb822_uris(text: str) -> list[str]:
    """The URIs of the enabled ``deb`` stanzas of a deb822-style ``.sources`` file."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    out = []
    for fields in stanzas("\n".join(lines)):
        low = {k.strip().lower(): v for k, v in fields.items()}
        if "deb" not in low.get("types", "").split():
            continue
        if low.get("enabled", "yes").strip().lower() in ("no", "false", "0"):
            continue
        out += low.get("uris", "").split()
    return out


def streams_of(path: str, data: bytes) -> tuple[str, ...]:
    """The FIPS streams one sources file enables, in stream order."""
    text = decode(data[:_MAX])
    uris = deb822_uris(text) if path.endswith(".sources") else one_line_uris(text)
    return _ordered(fips_stream_of(u) for u in uris)


def _ordered(streams: Iterable[str | None]) -> tuple[str, ...]:
    found = {s for s in streams if s}
    return tuple(s for s in ("fips", "fips-updates", "fips-preview") if s in found)


def merged_streams(pseudo: Sequence[Package]) -> tuple[str, ...]:
    """The streams every surviving sources file enables."""
    return _ordered(v for p in pseudo for k, v in p.metadata if k == "fips-stream")


class AptSourcesCataloger:
    name = "apt-sources"
    version = 1

    def wants(self, path: str, mode: int, size: int) -> bool:
        return is_sources_file(path) and size <= _MAX and not stat.S_ISDIR(mode)

    def catalog(self, files: Sequence[FileEntry]) -> list[Package]:
        out: list[Package] = []
        for entry in files:
            if not is_sources_file(entry.path):
                continue
            out.append(
                Package(
                    type=APT_SOURCES_TYPE,
                    name=entry.path,
                    version="",
                    locations=(entry.path,),
                    layer=entry.layer,
                    metadata=tuple(("fips-stream", s) for s in streams_of(entry.path, entry.data)),
                )
            )
        return out
