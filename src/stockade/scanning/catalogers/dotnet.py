""".NET packages from ``*.deps.json``, the dependency manifest the .NET SDK writes next to an
application: the ``libraries`` of ``type`` ``package`` (NuGet packages; ``project`` and
``reference`` entries are the application's own code) that the runtime target lists.

The runtime target is the ``targets`` entry named by ``runtimeTarget.name``; when no target has
that name (the file is inconsistent), every target's entries count. purls are
``pkg:nuget/Name@version``.
"""

from __future__ import annotations

import stat
from collections.abc import Sequence
from typing import Any

from stockade.scanning.catalogers import purl
from stockade.scanning.catalogers._text import json_document
from stockade.scanning.catalogers.skipped import skipped
from stockade.scanning.interface import FileEntry, Package

_MAX = 32 * 1024 * 1024


def _runtime_keys(doc: dict[str, Any]) -> set[str] | None:
    targets = doc.get("targets")
    if not isinstance(targets, dict):
        return None
    runtime = doc.get("runtimeTarget")
    name = runtime.get("name") if isinstance(runtime, dict) else None
    chosen = (
        [targets[name]] if isinstance(name, str) and name in targets else list(targets.values())
    )
    keys: set[str] = set()
    for target in chosen:
        if isinstance(target, dict):
            keys.update(k for k in target if isinstance(k, str))
    return keys


def deps_packages(doc: Any, entry: FileEntry) -> list[Package]:
    """The NuGet packages a parsed deps.json says the application runs with."""
    if not isinstance(doc, dict) or not isinstance(doc.get("libraries"), dict):
        return []
    in_runtime = _runtime_keys(doc)
    out: list[Package] = []
    for key, lib in doc["libraries"].items():
        if not isinstance(lib, dict) or lib.get("type") != "package":
            continue
        if in_runtime is not None and key not in in_runtime:
            continue
        name, sep, version = key.rpartition("/")
        if not sep or not name or not version:
            continue
        meta = [(k, lib[k]) for k in ("sha512", "path") if isinstance(lib.get(k), str) and lib[k]]
        out.append(
            Package(
                type="dotnet",
                name=name,
                version=version,
                purl=purl.build("nuget", name, version),
                locations=(entry.path,),
                layer=entry.layer,
                metadata=tuple(meta),
            )
        )
    return out


class DotnetDepsCataloger:
    name = "dotnet-deps"
    version = 1

    def wants(self, path: str, mode: int, size: int) -> bool:
        return stat.S_ISREG(mode) and size <= _MAX and path.endswith(".deps.json")

    def catalog(self, files: Sequence[FileEntry]) -> list[Package]:
        out: list[Package] = []
        for entry in files:
            try:
                doc = json_document(entry.data)
            except ValueError:
                out.append(skipped(entry, f"{entry.path}: not valid JSON"))
                continue
            out.extend(deps_packages(doc, entry))
        return out
