"""What an image holds, as zero-drift needs it: every executable regular file of its root
filesystem by path (as seen inside the container) with its sha256. Computed once per unpacked
root and kept beside it (``<root>.files.json``)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from stockade.model.atomicfile import write_atomically
from stockade.model.errors import ConfigError

_CHUNK = 1 << 20


def sha256_of(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class ImageFiles:
    """Executables of an image: ``/usr/bin/bash`` -> sha256."""

    executables: dict[str, str]

    def holds(self, path: str, sha256: str) -> bool:
        return self.executables.get(path) == sha256


def index_root(root: Path) -> ImageFiles:
    """Hash every regular file with an execute bit (and every shared library: the loader maps
    them, and an interpreter may be one)."""
    found: dict[str, str] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if not stat.S_ISREG(st.st_mode):
                continue
            if st.st_mode & 0o111 or ".so" in name:
                found["/" + os.path.relpath(full, root)] = sha256_of(full)
    return ImageFiles(found)


def load_or_index(root: Path) -> ImageFiles:
    sidecar = root.with_name(root.name + ".files.json")
    if sidecar.exists():
        try:
            data = json.loads(sidecar.read_text(encoding="utf-8"))
            return ImageFiles({str(k): str(v) for k, v in data["executables"].items()})
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            raise ConfigError(f"image file list {sidecar} is unreadable: {exc}") from None
    files = index_root(root)
    write_atomically(
        sidecar, json.dumps({"executables": files.executables}, sort_keys=True).encode()
    )
    return files
