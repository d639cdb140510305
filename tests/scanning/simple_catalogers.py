"""Small catalogers for the image-reader tests: just enough to see which files the reader hands
over and how the merge treats them (the real catalogers live in stockade.scanning.catalogers)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from stockade.scanning.interface import FileEntry, Package


class DpkgStatus:
    name = "test-dpkg"
    version = 1

    def wants(self, path: str, mode: int, size: int) -> bool:
        return path == "/var/lib/dpkg/status"

    def catalog(self, files: Sequence[FileEntry]) -> list[Package]:
        out = []
        for f in files:
            for stanza in f.data.decode().split("\n\n"):
                fields = dict(re.findall(r"^(Package|Version|Status): (.*)$", stanza, re.M))
                if fields.get("Package") and "installed" in fields.get("Status", ""):
                    out.append(
                        Package(
                            type="deb",
                            name=fields["Package"],
                            version=fields["Version"],
                            locations=(f.path,),
                        )
                    )
        return out


class PythonMetadata:
    name = "test-python"
    version = 1

    def wants(self, path: str, mode: int, size: int) -> bool:
        return path.endswith((".dist-info/METADATA", ".egg-info/PKG-INFO"))

    def catalog(self, files: Sequence[FileEntry]) -> list[Package]:
        out = []
        for f in files:
            head = f.data.decode("utf-8", "replace").split("\n\n", 1)[0]
            fields = dict(re.findall(r"^(Name|Version): (.*)$", head, re.M))
            out.append(
                Package(
                    type="python",
                    name=fields["Name"],
                    version=fields["Version"],
                    locations=(f.path,),
                )
            )
        return out


class NpmPackageJson:
    name = "test-npm"
    version = 1

    def wants(self, path: str, mode: int, size: int) -> bool:
        return "/node_modules/" in path and path.endswith("/package.json")

    def catalog(self, files: Sequence[FileEntry]) -> list[Package]:
        out = []
        for f in files:
            rest = f.path.rsplit("/node_modules/", 1)[1]
            if rest.count("/") != (2 if rest.startswith("@") else 1):
                continue  # a package.json deeper inside a package
            doc = json.loads(f.data)
            out.append(
                Package(type="npm", name=doc["name"], version=doc["version"], locations=(f.path,))
            )
        return out


class OsRelease:
    """Wants only /etc/os-release, to exercise symlink resolution."""

    name = "test-os"
    version = 1

    def wants(self, path: str, mode: int, size: int) -> bool:
        return path == "/etc/os-release"

    def catalog(self, files: Sequence[FileEntry]) -> list[Package]:
        out = []
        for f in files:
            fields = dict(re.findall(r'^(ID|VERSION_ID)="?([^"\n]*)"?$', f.data.decode(), re.M))
            out.append(
                Package(
                    type="os",
                    name=fields["ID"],
                    version=fields.get("VERSION_ID", ""),
                    locations=(f.path,),
                )
            )
        return out


def all_catalogers() -> list:
    return [DpkgStatus(), PythonMetadata(), NpmPackageJson(), OsRelease()]
