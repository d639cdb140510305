"""Go modules from the build information the Go linker embeds in binaries (Go 1.13+).

The ``.go.buildinfo`` blob starts with the 14-byte magic ``\\xff Go buildinf:``, a pointer-size
byte and a flags byte. Go 1.18+ (flag bit 2) stores the toolchain version and the module info
inline after the 32-byte header as uvarint-prefixed strings; older binaries store two pointers to
Go string headers (data pointer, length) that are resolved through the ELF segments. The module
info is text: ``path``, ``mod``, ``dep``, ``=>`` (replaces the line before) and ``build`` lines.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from stockade.scanning.catalogers import elf, purl
from stockade.scanning.interface import FileEntry, Package

_ByteOrder = Literal["little", "big"]

MAGIC = b"\xff Go buildinf:"
_MAX_BINARY = 512 * 1024 * 1024
_MAX_STRING = 4 * 1024 * 1024
_MIN_BINARY = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class Module:
    path: str
    version: str
    sum: str = ""
    replaced_by: tuple[str, str] | None = None  # (path, version) of a replacement


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildInfo:
    go_version: str  # "go1.21.5"
    path: str = ""
    main: Module | None = None
    deps: tuple[Module, ...] = ()
    settings: tuple[tuple[str, str], ...] = ()


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
    raise ValueError("bad uvarint")


def _find_header(data: bytes, binary: elf.Elf) -> int | None:
    section = binary.sections.get(".go.buildinfo")
    if section is not None and data[section.offset : section.offset + 14] == MAGIC:
        return section.offset
    # stripped section table: the header is 16-byte aligned in a data segment
    pos = data.find(MAGIC)
    while pos >= 0:
        if pos % 16 == 0:
            return pos
        pos = data.find(MAGIC, pos + 1)
    return None


def _read_pointer_string(
    data: bytes, binary: elf.Elf, addr: int, ptr: int, order: _ByteOrder
) -> str:
    head = binary.offset_of(addr, 2 * ptr)
    if head is None:
        return ""
    raw = data[head : head + 2 * ptr]
    data_ptr = int.from_bytes(raw[:ptr], order)
    length = int.from_bytes(raw[ptr:], order)
    if length <= 0 or length > _MAX_STRING:
        return ""
    off = binary.offset_of(data_ptr, length)
    if off is None:
        return ""
    return data[off : off + length].decode("utf-8", errors="replace")


def read_build_info(data: bytes) -> BuildInfo | None:
    """The build info of a Go ELF binary, or None when the file is not one."""
    binary = elf.parse(data)
    if binary is None:
        return None
    start = _find_header(data, binary)
    if start is None or start + 32 > len(data):
        return None
    ptr, flags = data[start + 14], data[start + 15]
    try:
        if flags & 2:
            n, pos = _uvarint(data, start + 32)
            version = data[pos : pos + n].decode("utf-8", errors="replace")
            n2, pos2 = _uvarint(data, pos + n)
            if n > _MAX_STRING or n2 > _MAX_STRING or pos2 + n2 > len(data):
                return None
            modinfo = data[pos2 : pos2 + n2].decode("utf-8", errors="replace")
        else:
            if ptr not in (4, 8):
                return None
            order: _ByteOrder = "big" if flags & 1 else "little"
            p1 = int.from_bytes(data[start + 16 : start + 16 + ptr], order)
            p2 = int.from_bytes(data[start + 16 + ptr : start + 16 + 2 * ptr], order)
            version = _read_pointer_string(data, binary, p1, ptr, order)
            modinfo = _read_pointer_string(data, binary, p2, ptr, order)
    except ValueError:
        return None
    if not version.startswith("go"):
        return None
    return _parse_modinfo(version, _strip_sentinels(modinfo))


def _strip_sentinels(modinfo: str) -> str:
    # 16 bytes of framing on each side of the module text (the runtime finds it by them)
    if len(modinfo) >= 33 and modinfo[-17] == "\n":
        return modinfo[16:-16]
    return modinfo


def _parse_modinfo(version: str, text: str) -> BuildInfo:
    path = ""
    main: Module | None = None
    deps: list[Module] = []
    settings: list[tuple[str, str]] = []
    last: str | None = None  # "main" or "dep": which module a "=>" line replaces
    for line in text.splitlines():
        parts = line.split("\t")
        kind = parts[0]
        if kind == "path" and len(parts) >= 2:
            path = parts[1]
        elif kind in ("mod", "dep") and len(parts) >= 3:
            mod = Module(path=parts[1], version=parts[2], sum=parts[3] if len(parts) > 3 else "")
            if kind == "mod":
                main, last = mod, "main"
            else:
                deps.append(mod)
                last = "dep"
        elif kind == "=>" and len(parts) >= 3:
            repl = (parts[1], parts[2])
            if last == "dep" and deps:
                d = deps[-1]
                deps[-1] = Module(
                    path=d.path,
                    version=d.version,
                    sum=parts[3] if len(parts) > 3 else d.sum,
                    replaced_by=repl,
                )
            elif last == "main" and main is not None:
                main = Module(path=main.path, version=main.version, sum=main.sum, replaced_by=repl)
        elif kind == "build" and len(parts) >= 2:
            key, _, value = "\t".join(parts[1:]).partition("=")
            settings.append((key, value.strip('"')))
    return BuildInfo(
        go_version=version, path=path, main=main, deps=tuple(deps), settings=tuple(settings)
    )


# "-X <pkg>.version=1.2.3", ".Version", ".gitVersion", ".buildVer", ... then ".tag=" / ".Tag=";
# the value may be prefixed by path segments ("=refs/tags/v1.2.3")
_LDFLAG_VERSIONS = (
    re.compile(r"\.(?:[gG]it)?(?:[bB]uild)?[vV]er(?:sion)?=(?:\S+/)*(v?\d+\.\d+\.\d+[-\w.+]*)"),
    re.compile(r"\.[tT]ag=(?:\S+/)*(v?\d+\.\d+\.\d+[-\w.+]*)"),
)
# a NUL-delimited version string somewhere in the binary (a guess syft makes too)
_CONTENT_VERSION = re.compile(rb"\x00(?:.L)?(v?\d+\.\d+\.\d+[-\w]*[+\w]*)\x00", re.S)


# Each byte of a binary mapped to its shape: a digit to "0", a dot to ".", anything else to "x".
_SHAPE = bytes(48 if 48 <= i <= 57 else 46 if i == 46 else 120 for i in range(256))


def content_version(data: bytes) -> re.Match[bytes] | None:
    """``_CONTENT_VERSION.search(data)``, found by trying the pattern only where it can start.

    Every match holds a digit, a dot and a digit (the end of its version's first number), found
    with ``bytes.find`` in the binary's shape; the match starts 1 to 4 bytes (NUL, optional ``.L``,
    optional ``v``) before that number's first digit. Those numbers' starts grow by 2 or more from
    one find to the next, so the windows are tried in order (an overlap only repeats a start that
    failed) and the first match is the leftmost, as ``search`` gives it.
    """
    shape = data.translate(_SHAPE)
    pos = shape.find(b"0.0")
    last = -1
    while pos != -1:
        run = pos
        while run > 0 and shape[run - 1] == 48:  # back to the first digit of the number
            run -= 1
        if run != last:
            last = run
            for start in range(max(0, run - 4), run):
                if data[start] == 0:
                    found = _CONTENT_VERSION.match(data, start)
                    if found:
                        return found
        pos = shape.find(b"0.0", pos + 1)
    return None


def _v(version: str) -> str:
    version = version.rstrip(".")
    return version if version.startswith("v") else "v" + version


def main_version(info: BuildInfo, data: bytes = b"") -> tuple[str, str]:
    """The main module's version and where it came from. For ``(devel)`` builds, in syft's
    order: a linker flag (``-X ...version=1.2.3``), a version string in the binary (a guess),
    a pseudo-version from the VCS stamp; else ``(devel)``."""
    version = info.main.version if info.main else "(devel)"
    if version and version != "(devel)":
        return version, "buildinfo"
    settings = dict(info.settings)
    ldflags = settings.get("-ldflags", "")
    for pattern in _LDFLAG_VERSIONS:
        m = pattern.search(ldflags)
        if m:
            return _v(m.group(1)), "ldflags"
    if data:
        found = content_version(data)
        if found:
            return _v(found.group(1).decode("ascii")), "contents"
    revision, stamp = settings.get("vcs.revision", ""), settings.get("vcs.time", "")
    if len(revision) >= 12 and len(stamp) >= 19:
        digits = "".join(ch for ch in stamp[:19] if ch.isdigit())
        if len(digits) == 14:
            return f"v0.0.0-{digits}-{revision[:12]}", "vcs"
    return "(devel)", "none"


# Import-path prefixes whose repository root (and so module path) is a fixed number of path
# segments, as cmd/go's table of known code hosts (vcs.go) resolves them
_HOST_SEGMENTS = {
    "github.com": 3,
    "gitlab.com": 3,
    "bitbucket.org": 3,
    "codeberg.org": 3,
    "gitea.com": 3,
    "golang.org": 3,  # golang.org/x/NAME
    "k8s.io": 2,
    "sigs.k8s.io": 2,
    "google.golang.org": 2,
    "go.uber.org": 2,
    "go.etcd.io": 2,
    "cloud.google.com": 3,  # cloud.google.com/go/NAME
}
_MAJOR = re.compile(r"^v([2-9]|[1-9]\d+)$")


def module_root(package_path: str) -> str:
    """The module path holding the package ``package_path`` where the code host fixes it
    (``github.com/o/r/cmd/x`` -> ``github.com/o/r``, ``.../v2/cmd/x`` -> ``.../v2``), else
    ``package_path`` itself: a module on an unknown host may sit at any depth."""
    segs = package_path.split("/")
    host = segs[0]
    n = _HOST_SEGMENTS.get(host)
    if host == "gopkg.in" and len(segs) >= 2:
        n = 2 if ".v" in segs[1] else 3  # gopkg.in/yaml.v3, gopkg.in/user/pkg.v1
    if n is None or len(segs) < n:
        return package_path
    if len(segs) > n and _MAJOR.match(segs[n]):
        n += 1
    return "/".join(segs[:n])


def go_purl(path: str, version: str) -> str:
    namespace, _, name = path.rpartition("/")
    return purl.build("golang", name, version if version != "(devel)" else "", namespace=namespace)


def packages_from(info: BuildInfo, entry: FileEntry) -> list[Package]:
    """syft's shape: the main module, each dependency (a replacement's path and version win), and
    the toolchain as ``stdlib`` with version ``goX.Y.Z``."""
    toolchain = info.go_version.split()[0]
    arch = dict(info.settings).get("GOARCH")
    locations = (entry.path,)
    meta: tuple[tuple[str, str], ...] = (("go-toolchain", toolchain),)
    out: list[Package] = []
    # a GOPATH build has no "mod" line: the command's package path stands in for the main module;
    # "go build file.go" (path command-line-arguments) lists the module holding the files as a
    # "(devel)" dependency: that one is the main module
    deps = info.deps
    main = info.main
    if main is None and info.path == "command-line-arguments":
        local = [d for d in deps if d.version == "(devel)"]
        if len(local) == 1:
            main = local[0]
            deps = tuple(d for d in deps if d is not local[0])
    module_source = "buildinfo"
    if main is None and info.path:
        # no "mod" line (a GOPATH build): the path line names the main *package*; advisories are
        # keyed by module, so report the module root where the code host fixes it
        root = module_root(info.path)
        module_source = "package-path" if root == info.path else "code-host-root"
        main = Module(path=root, version="(devel)")
    if main is not None:
        meta = (*meta, ("main-module", main.path))
    mods: list[Module] = []
    main_meta = meta
    if main is not None:
        version, source = main_version(info, entry.data)
        main_meta = (
            *meta,
            ("main-version-source", source),
            ("main-module-source", module_source),
            *((("main-package", info.path),) if info.path else ()),
        )
        mods.append(
            Module(path=main.path, version=version, sum=main.sum, replaced_by=main.replaced_by)
        )
    for mod in (*mods, *deps):
        path, version = (
            mod.replaced_by if mod.replaced_by and mod.replaced_by[1] else (mod.path, mod.version)
        )
        if mod.replaced_by and not mod.replaced_by[1]:
            path = mod.path  # a local-directory replacement keeps the original module identity
        if not path or not version:
            continue
        out.append(
            Package(
                type="go-module",
                name=path,
                version=version,
                purl=go_purl(path, version),
                metadata=(
                    (*(main_meta if mod in mods else meta), ("h1-digest", mod.sum))
                    if mod.sum
                    else (main_meta if mod in mods else meta)
                ),
                locations=locations,
                layer=entry.layer,
                arch=arch,
            )
        )
    if toolchain.startswith("go"):
        out.append(
            Package(
                type="go-module",
                name="stdlib",
                version=toolchain,
                purl=purl.build("golang", "stdlib", toolchain[2:]),
                licenses=("BSD-3-Clause",),
                metadata=meta,
                locations=locations,
                layer=entry.layer,
                arch=arch,
            )
        )
    return out


class GoBinaryCataloger:
    name = "golang"
    version = 3

    def wants(self, path: str, mode: int, size: int) -> bool:
        return stat.S_ISREG(mode) and bool(mode & 0o111) and _MIN_BINARY <= size <= _MAX_BINARY

    def catalog(self, files: Sequence[FileEntry]) -> list[Package]:
        out: list[Package] = []
        for entry in files:
            if entry.data[:4] != b"\x7fELF" or MAGIC not in entry.data:
                continue
            info = read_build_info(entry.data)
            if info is not None:
                out.extend(packages_from(info, entry))
        return out
