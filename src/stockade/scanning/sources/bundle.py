"""Read-only access to the files of an image bundle: a directory or an uncompressed tar.

Docker archives and OCI layouts are both a handful of named files (``index.json``,
``manifest.json``, ``blobs/sha256/...``); this hides whether they sit in a folder or a tar. Names
are looked up, never extracted, so hostile names in the outer tar cannot write anywhere.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO, cast

from stockade.model.errors import ImageError
from stockade.scanning.targuard import check_tar_file

_MAX_METADATA = 16 * 1024 * 1024  # manifests and configs are small; refuse giant ones


class Bundle:
    """A directory or tar holding an image's files."""

    def __init__(self, path: str, what: str) -> None:
        self.what = what
        self.root = Path(path)
        self._tar: tarfile.TarFile | None = None
        self._file: BinaryIO | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if self.root.is_dir():
            return
        if not self.root.exists():
            raise ImageError("no such file or directory", subject=what)
        try:
            self._file = open(self.root, "rb")  # noqa: SIM115 - closed by close()
            magic = self._file.read(4)
            self._file.seek(0)
        except OSError as exc:
            self.close()
            raise ImageError(f"cannot read: {exc.strerror}", subject=what) from exc
        if magic[:2] == b"\x1f\x8b" or magic == b"\x28\xb5\x2f\xfd":
            self.close()
            raise ImageError(
                "the archive is compressed; decompress it first (gunzip/unzstd)", subject=what
            )
        try:
            check_tar_file(self._file, what)  # before tarfile parses a header (CVE-2024-6232)
            self._tar = tarfile.open(fileobj=self._file, mode="r:")  # noqa: SIM115 - kept open
            for member in self._tar.getmembers():
                self._members[_norm(member.name)] = member
        except (tarfile.TarError, OSError, EOFError) as exc:
            self.close()
            raise ImageError(f"not a readable tar archive: {exc}", subject=what) from exc
        except ImageError:
            self.close()
            raise

    @property
    def is_tar(self) -> bool:
        return self._tar is not None

    def exists(self, name: str) -> bool:
        if self._tar is not None:
            return _norm(name) in self._members
        return self._dir_path(name).is_file()

    def size(self, name: str) -> int:
        if self._tar is not None:
            return self._member(name).size
        return self._dir_path(name).stat().st_size

    def read(self, name: str, limit: int = _MAX_METADATA) -> bytes:
        """The whole content of a small file (manifests, configs)."""
        with self.open(name) as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise ImageError(f"{name} is larger than {limit} bytes", subject=self.what)
        return data

    def open(self, name: str) -> AbstractContextManager[BinaryIO]:
        return self._open(name)

    @contextmanager
    def _open(self, name: str) -> Iterator[BinaryIO]:
        if self._tar is not None:
            member = self._member(name)
            try:
                fh = self._tar.extractfile(member)
            except (tarfile.TarError, KeyError) as exc:
                raise ImageError(
                    f"cannot read {name} in the archive: {exc}", subject=self.what
                ) from exc
            if fh is None:
                raise ImageError(f"{name} in the archive is not a regular file", subject=self.what)
            with fh:
                yield cast(BinaryIO, fh)
            return
        path = self._dir_path(name)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError as exc:
            raise ImageError(f"missing file {name}", subject=self.what) from exc
        except OSError as exc:
            raise ImageError(f"cannot read {name}: {exc.strerror}", subject=self.what) from exc
        with fh:
            yield fh

    def _member(self, name: str) -> tarfile.TarInfo:
        member = self._members.get(_norm(name))
        if member is None:
            raise ImageError(f"missing file {name} in the archive", subject=self.what)
        return member

    def _dir_path(self, name: str) -> Path:
        norm = _norm(name)
        if norm.startswith("../") or norm == ".." or norm.startswith("/"):
            raise ImageError(f"file name escapes the bundle: {name!r}", subject=self.what)
        return self.root / norm

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None
        if self._file is not None:
            self._file.close()
            self._file = None


def _norm(name: str) -> str:
    return os.path.normpath(name.lstrip("/")).removeprefix("./") if name else name


def blob_name(digest: str) -> str:
    """``blobs/sha256/<hex>`` for a checked digest."""
    algo, _, hexdigest = digest.partition(":")
    return f"blobs/{algo}/{hexdigest}"
