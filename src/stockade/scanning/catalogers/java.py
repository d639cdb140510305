"""Java archives (jar, war, ear, par, jpi, hpi): the main package from ``pom.properties`` when
one matches the file name, else from ``META-INF/MANIFEST.MF`` and the file name; one more package
per other ``pom.properties`` (shaded dependencies); nested archives recursively.

Archives are read in memory with bounds: nesting depth, nested archive size, bytes inflated per
top-level archive, entry count. Member names are never used as file system paths; a nested name
with ``..`` or a leading ``/`` is refused (reported as a skipped result) because it is how a
hostile archive would try to fake where a package lives.
"""

from __future__ import annotations

import io
import stat
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field

from stockade.scanning.catalogers import purl
from stockade.scanning.catalogers.java_identity import (
    confirmed_group,
    maven_group,
    split_filename,
)
from stockade.scanning.catalogers.skipped import skipped
from stockade.scanning.interface import FileEntry, Package

EXTENSIONS = (".jar", ".war", ".ear", ".par", ".jpi", ".hpi")
MAX_ARCHIVE = 512 * 1024 * 1024
MAX_NESTED = 128 * 1024 * 1024
MAX_DEPTH = 4
MAX_INFLATED = 1024 * 1024 * 1024
MAX_ENTRIES = 200_000
MAX_METADATA = 1024 * 1024


@dataclass(slots=True)
class _Budget:
    inflated: int = 0
    problems: list[str] = field(default_factory=list)

    def take(self, n: int) -> bool:
        self.inflated += n
        return self.inflated <= MAX_INFLATED


def parse_manifest(text: str) -> dict[str, str]:
    """The main section of a jar manifest (continuation lines start with one space)."""
    # a value is kept as its pieces and joined once: appending to the str held in the dict
    # copied it each time, quadratic in a manifest of a megabyte of continuation lines
    main: dict[str, list[str]] = {}
    pieces: list[str] | None = None
    for line in text.splitlines():
        if not line.strip():
            break  # the main section ends at the first blank line
        if line.startswith(" "):
            if pieces is not None:
                pieces.append(line[1:])
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        pieces = main[key.strip()] = [value.strip()]
    return {key: "".join(value) for key, value in main.items()}


def parse_properties(text: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props


def _name_from_bundle_plugin(manifest: dict[str, str]) -> str:
    """The Apache Maven Bundle Plugin writes ``groupId.artifactId`` as Bundle-SymbolicName:
    the artifactId is its last dotted field (unless the symbolic name is just the vendor id)."""
    if "Apache Maven Bundle Plugin" not in manifest.get("Created-By", ""):
        return ""
    symbolic = manifest.get("Bundle-SymbolicName", "").split(";")[0].strip()
    if not symbolic or manifest.get("Implementation-Vendor-Id", "") == symbolic:
        return ""
    return symbolic.split(".")[-1]


def _name_from_filename(file_name: str) -> str:
    # "javax.mail.glassfish" is group + artifact by convention (Eclipse's own names excepted)
    if "." in file_name and not file_name.startswith("org.eclipse."):
        return file_name.split(".")[-1]
    return file_name


def _select_name(manifest: dict[str, str], file_name: str) -> str:
    """syft's order: the bundle plugin's symbolic name, the file name, then manifest titles."""
    name = _name_from_bundle_plugin(manifest) or _name_from_filename(file_name)
    if name:
        return name
    for key in ("Name", "Bundle-Name", "Short-Name", "Extension-Name", "Implementation-Title"):
        if manifest.get(key):
            return manifest[key]
    return ""


def _select_version(manifest: dict[str, str], file_version: str) -> str:
    if file_version:
        return file_version
    for key in (
        "Implementation-Version",
        "Specification-Version",
        "Plugin-Version",
        "Bundle-Version",
    ):
        value = manifest.get(key, "").split(" ")[0]
        if value:
            return value
    return ""


def _matches_filename(artifact: str, file_name: str, artifacts: set[str]) -> bool:
    if not artifact or not file_name:
        return False
    if file_name in artifacts:
        return artifact == file_name
    return artifact.startswith(file_name) or file_name.endswith(artifact)


def _maven_package(
    group: str,
    artifact: str,
    version: str,
    licenses: tuple[str, ...],
    path: str,
    layer: str | None,
    virtual: str,
    derived: tuple[tuple[str, str], ...] = (("identity-source", "pom.properties"),),
) -> Package:
    return Package(
        type="java-archive",
        name=artifact,
        version=version,
        purl=purl.build("maven", artifact, version, namespace=group or artifact),
        licenses=licenses,
        locations=(path,),
        layer=layer,
        metadata=tuple(
            (k, v)
            for k, v in (
                ("maven-group", group),
                ("maven-artifact", artifact),
                ("virtual-path", virtual),
                *derived,
            )
            if v
        ),
    )


def _manifest_licenses(manifest: dict[str, str]) -> tuple[str, ...]:
    value = manifest.get("Bundle-License", "") or manifest.get("Implementation-License", "")
    return tuple(x.strip() for x in value.split(",") if x.strip())[:8] if value else ()


def catalog_archive(
    data: bytes, virtual: str, path: str, layer: str | None, depth: int, budget: _Budget
) -> list[Package]:
    """Packages in one archive (and its nested archives) whose bytes are ``data``."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        budget.problems.append(f"{virtual}: not a readable zip archive")
        return []
    if len(infos) > MAX_ENTRIES:
        budget.problems.append(f"{virtual}: more than {MAX_ENTRIES} entries")
        return []

    def read(info: zipfile.ZipInfo, limit: int) -> bytes | None:
        if info.file_size > limit or not budget.take(info.file_size):
            budget.problems.append(
                f"{virtual}:{info.filename}: larger than {limit} bytes or over the inflate budget"
            )
            return None
        try:
            with archive.open(info) as fh:
                return fh.read(limit + 1)[:limit]
        except (
            zipfile.BadZipFile,
            OSError,
            ValueError,
            EOFError,
            NotImplementedError,
            RuntimeError,
        ):
            budget.problems.append(f"{virtual}:{info.filename}: corrupt entry")
            return None

    manifest: dict[str, str] | None = None
    poms: dict[str, dict[str, str]] = {}
    nested: list[zipfile.ZipInfo] = []
    for info in infos:
        name = info.filename
        if name.upper() == "META-INF/MANIFEST.MF":
            raw = read(info, MAX_METADATA)
            if raw is not None:
                manifest = parse_manifest(raw.decode("utf-8", errors="replace"))
        elif name.startswith("META-INF/maven/") and name.endswith("/pom.properties"):
            raw = read(info, MAX_METADATA)
            if raw is not None:
                props = parse_properties(raw.decode("utf-8", errors="replace"))
                if props.get("artifactId") and props.get("version"):
                    poms[name.rsplit("/", 1)[0]] = props
        elif name.lower().endswith(EXTENSIONS) and not info.is_dir():
            nested.append(info)

    out: list[Package] = []
    if manifest is not None:
        base = virtual.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
        base = base.rsplit(".", 1)[0]
        file_name, file_version = split_filename(base)
        artifacts = {p["artifactId"] for p in poms.values()}
        main_pom = next(
            (
                poms[k]
                for k in sorted(poms)
                if _matches_filename(poms[k]["artifactId"], file_name, artifacts)
            ),
            None,
        )
        licenses = _manifest_licenses(manifest)
        if main_pom is not None:
            main = _maven_package(
                main_pom.get("groupId", ""),
                main_pom["artifactId"],
                main_pom["version"],
                licenses,
                path,
                layer,
                virtual,
            )
        else:
            # a known artifact's file name confirmed by its manifest wins over the bundle
            # plugin's symbolic name (commons-io writes org.apache.commons.io: "io" is no name)
            confirmed = confirmed_group(file_name, manifest)
            name = file_name if confirmed else _select_name(manifest, file_name)
            version = _select_version(manifest, file_version)
            group, group_source = confirmed or maven_group(name, manifest)
            from_file = name in (file_name, _name_from_filename(file_name))
            version_source = "file name" if version == file_version else "manifest"
            derived = (
                ("identity-source", "file name" if from_file else "manifest"),
                ("version-source", version_source if version else ""),
                ("group-source", group_source),
            )
            main = _maven_package(group, name, version, licenses, path, layer, virtual, derived)
        if main.name:
            out.append(main)
            main_key = (main.meta("maven-group") or "", main.name, main.version)
            for key in sorted(poms):
                props = poms[key]
                group, artifact, version = (
                    props.get("groupId", ""),
                    props["artifactId"],
                    props["version"],
                )
                if (group, artifact, version) == main_key or artifact == main.name:
                    continue
                out.append(
                    _maven_package(
                        group, artifact, version, (), path, layer, f"{virtual}:{group}:{artifact}"
                    )
                )

    if depth >= MAX_DEPTH:
        if nested:
            budget.problems.append(
                f"{virtual}: nested archives deeper than {MAX_DEPTH} levels not read"
            )
        return out
    for info in nested:
        member = info.filename
        if member.startswith("/") or ".." in member.split("/"):
            budget.problems.append(f"{virtual}:{member}: refused (path traversal in a member name)")
            continue
        raw = read(info, MAX_NESTED)
        if raw is not None:
            out.extend(catalog_archive(raw, f"{virtual}:{member}", path, layer, depth + 1, budget))
    return out


class JavaArchiveCataloger:
    name = "java"
    version = 3

    def wants(self, path: str, mode: int, size: int) -> bool:
        return stat.S_ISREG(mode) and size <= MAX_ARCHIVE and path.lower().endswith(EXTENSIONS)

    def catalog(self, files: Sequence[FileEntry]) -> list[Package]:
        out: list[Package] = []
        for entry in files:
            budget = _Budget()
            out.extend(catalog_archive(entry.data, entry.path, entry.path, entry.layer, 0, budget))
            out.extend(skipped(entry, problem) for problem in budget.problems)
        return out
