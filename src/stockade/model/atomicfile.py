"""Writing a file whole: a reader sees the old file or the whole new one, never a part.

The new content goes to a temporary file beside the target (``.tmp-<name>.<pid>.<random>``, so
it is on the same file system and hidden from listings that skip dot files), is optionally synced,
and is renamed over the target. A failure on the way removes the temporary file and leaves the
target as it was. ``mode`` is the new file's exact permission bits, whatever the umask; without
it the file gets ``0o666`` less the umask, as ``open()`` would.

:func:`write_atomically` writes bytes held in memory; :class:`AtomicFile` is the same for a
writer that streams (the pcap writer) or fills the file by name (SQLite's backup, into
:attr:`AtomicFile.temp`).
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class AtomicFile:
    """``with AtomicFile(path, mode=0o600) as f: f.file.write(...)``: committed (renamed over
    ``path``) when the block ends normally, removed when it raises. Outside a ``with`` block,
    call :meth:`commit` or :meth:`abort`.

    ``fsync`` syncs the content before the rename (the file survives a crash whole);
    ``fsync_dir`` also syncs the folder after it (the rename itself survives)."""

    def __init__(
        self,
        path: Path | str,
        *,
        mode: int | None = None,
        fsync: bool = False,
        fsync_dir: bool = False,
    ) -> None:
        self.path = Path(path)
        self.temp = self.path.with_name(
            f".tmp-{self.path.name}.{os.getpid()}.{os.urandom(4).hex()}"
        )
        self._fsync = fsync
        self._fsync_dir = fsync_dir
        fd = os.open(self.temp, _FLAGS, 0o666 if mode is None else mode)
        try:
            if mode is not None:
                os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
            self.file: BinaryIO = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            self.temp.unlink(missing_ok=True)
            raise

    def commit(self) -> None:
        """Flush (and sync), then rename over the target; on any failure the temporary file is
        removed and the error raised."""
        try:
            self.file.flush()
            if self._fsync:
                os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.temp, self.path)
        except BaseException:
            self.abort()
            raise
        if self._fsync_dir:
            fsync_dir(self.path.parent)

    def abort(self) -> None:
        """Drop the new content: the target stays as it was."""
        with suppress(OSError):  # a failed flush of content that is being thrown away
            self.file.close()
        with suppress(OSError):
            self.temp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


def write_atomically(
    path: Path | str,
    data: bytes,
    *,
    mode: int | None = None,
    fsync: bool = False,
    fsync_dir: bool = False,
) -> None:
    """Replace ``path`` with ``data`` whole (see :class:`AtomicFile` for the options)."""
    with AtomicFile(path, mode=mode, fsync=fsync, fsync_dir=fsync_dir) as out:
        out.file.write(data)


def fsync_dir(path: Path) -> None:
    """Sync a folder, so a rename or a new entry in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
