"""RubyGems: ``Gemfile.lock`` (Bundler's lock file) and installed gem specifications
(``.../specifications/NAME-VERSION[-PLATFORM].gemspec``, what ``gem install`` and Bundler write).

In a lock file the ``GEM`` section lists gems from a gem server and ``GIT`` those built from a
repository, each under ``specs:`` as ``name (version[-platform])`` indented four spaces (their
own dependencies are indented six). ``PATH`` gems are the application's own source and are not
reported: nothing identifies them on rubygems.org.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Sequence

from stockade.scanning.catalogers import purl
from stockade.scanning.catalogers._text import decode
from stockade.scanning.interface import FileEntry, Package

_MAX = 8 * 1024 * 1024
_SPEC_LINE = re.compile(r"^    (?P<name>[^\s(]+) \((?P<version>[^)\s]+)\)\s*$")
_SPEC_FILE = re.compile(r"/specifications/[^/]+\.gemspec$")
_STUB = re.compile(r"^# stub: (?P<name>\S+) (?P<version>\S+) (?P<platform>\S+)", re.M)
_ASSIGN = r"^\s*\w+\.{field}\s*=\s*[\"'](?P<value>[^\"']+)[\"']"
_LICENSES = re.compile(r"^\s*\w+\.licenses?\s*=\s*\[?(?P<value>[^\n\]]*)", re.M)
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']")
# platform suffixes Bundler writes after the version ("1.13.10-x86_64-linux", "-java")
_PLATFORM = re.compile(r"^(?P<version>[0-9][0-9A-Za-z.]*)-(?P<platform>[A-Za-z_][\w.-]*)$")


def gem_purl(name: str, version: str, platform: str = "") -> str:
    return purl.build(
        "gem", name, version, qualifiers=(("platform", platform if platform != "ruby" else ""),)
    )


def _gem(
    name: str,
    version: str,
    entry: FileEntry,
    source: str,
    platform: str = "",
    licenses: tuple[str, ...] = (),
) -> Package:
    meta = (("gem-source", source), ("platform", platform))
    return Package(
        type="gem",
        name=name,
        version=version,
        purl=gem_purl(name, version, platform),
        licenses=licenses,
        locations=(entry.path,),
        layer=entry.layer,
        metadata=tuple((k, v) for k, v in meta if v),
    )


def lockfile_gems(entry: FileEntry) -> list[Package]:
    """Gems of the ``GEM`` and ``GIT`` sections of a Gemfile.lock."""
    out: list[Package] = []
    section = ""
    for line in decode(entry.data).splitlines():
        if line and not line[0].isspace():
            section = line.strip()
            continue
        if section not in ("GEM", "GIT"):
            continue
        m = _SPEC_LINE.match(line)
        if not m:
            continue
        version, platform = m["version"], ""
        pm = _PLATFORM.match(version)
        if pm:
            version, platform = pm["version"], pm["platform"]
        out.append(_gem(m["name"], version, entry, section.lower(), platform))
    return out


def _field(text: str, name: str) -> str:
    m = re.search(_ASSIGN.format(field=name), text, re.M)
    return m["value"] if m else ""


def gemspec_gem(entry: FileEntry) -> Package | None:
    """The gem an installed ``.gemspec`` describes (RubyGems writes it as Ruby source with
    literal values: ``s.name = "rack".freeze``)."""
    text = decode(entry.data)
    name, version = _field(text, "name"), _field(text, "version")
    stub = _STUB.search(text)
    platform = stub["platform"] if stub else ""
    if stub and not (name and version):
        name, version = stub["name"], stub["version"]
    if not name or not version:
        return None
    licenses: list[str] = []
    for m in _LICENSES.finditer(text):
        licenses.extend(_QUOTED.findall(m["value"]))
    return _gem(name, version, entry, "installed", platform, tuple(dict.fromkeys(licenses)))


class RubyGemsCataloger:
    name = "ruby"
    version = 1

    def wants(self, path: str, mode: int, size: int) -> bool:
        if not stat.S_ISREG(mode) or size > _MAX:
            return False
        return path.endswith("/Gemfile.lock") or _SPEC_FILE.search(path) is not None

    def catalog(self, files: Sequence[FileEntry]) -> list[Package]:
        out: list[Package] = []
        for entry in files:
            if entry.path.endswith("/Gemfile.lock"):
                out.extend(lockfile_gems(entry))
            else:
                gem = gemspec_gem(entry)
                if gem is not None:
                    out.append(gem)
        return out
