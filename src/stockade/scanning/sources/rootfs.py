"""``dir:PATH`` and ``pid:PID``: catalog a live root filesystem (no layers, no cache).

The tree is walked without following symlinks; ``/proc``, ``/sys`` and ``/dev`` under the root
are skipped (they are not files a package manager installed). A wanted path that is a symlink is
resolved inside the root, one component at a time; a link that climbs out of it is skipped and
reported, never followed.

The root is opened once and every path below it is opened from that descriptor one component at a
time with ``O_NOFOLLOW`` (:class:`_Root`): the kernel never follows a symlink for us, so a tree that
changes while it is read (a running container swapping ``/var/lib/dpkg`` for a link to ``/etc`` or
``../../..``) cannot make the scan read a file outside the root. ``/proc/PID/root`` is the one link
followed, when the root is opened.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial

from stockade.model.errors import ImageError, UsageError
from stockade.model.progress import Observer
from stockade.scanning.distro import OS_RELEASE_PATHS, parse_os_release
from stockade.scanning.interface import Cataloger, Distro, FileEntry, Inventory
from stockade.scanning.layers import Limits
from stockade.scanning.sources.interface import Reference

SKIP_TOP = ("/proc", "/sys", "/dev")
_MAX_HOPS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_STEP_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class _Escape(Exception):
    pass


class _Root:
    """An open root directory; paths below it are opened one component at a time, no link followed."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.fd)

    @contextmanager
    def directory(self, path: str, *, listing: bool = False) -> Iterator[int]:
        """A descriptor of the directory ``path`` (absolute, normalized); OSError if not one."""
        fd = os.dup(self.fd)
        try:
            parts = [p for p in path.split("/") if p]
            for i, part in enumerate(parts):
                flags = _DIR_FLAGS if listing and i == len(parts) - 1 else _STEP_FLAGS
                nxt = os.open(part, flags, dir_fd=fd)
                os.close(fd)
                fd = nxt
            yield fd
        finally:
            os.close(fd)

    def lstat(self, path: str) -> os.stat_result:
        parent, _, name = path.rpartition("/")
        with self.directory(parent) as fd:
            return os.stat(name, dir_fd=fd, follow_symlinks=False)

    def readlink(self, path: str) -> str:
        parent, _, name = path.rpartition("/")
        with self.directory(parent) as fd:
            return os.readlink(name, dir_fd=fd)

    def read(self, path: str, limit: int) -> bytes:
        """Up to ``limit + 1`` bytes of the regular file ``path``; OSError for anything else."""
        parent, _, name = path.rpartition("/")
        with self.directory(parent) as fd:
            return read_regular(fd, name, limit)


def read_regular(dir_fd: int, name: str, limit: int) -> bytes:
    fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped for a FIFO or device since listed
            raise OSError(0, "no longer a regular file")
        return fh.read(limit + 1)


def inventory_rootfs(
    ref: Reference, *, catalogers: Sequence[Cataloger], observer: Observer, limits: Limits
) -> Inventory:
    """Run the catalogers over the wanted files of a live root filesystem."""
    from stockade.scanning.inventory import run_catalogers

    if ref.kind == "pid":
        root = ref.path  # /proc/PID/root is a magic link: use it as the prefix, not its target
        try:
            os.scandir(root).close()
        except OSError as exc:
            raise ImageError(
                f"cannot read the process root: {exc.strerror}", subject=ref.text
            ) from exc
    else:
        root = os.path.realpath(ref.path)
        if not os.path.isdir(root):
            raise UsageError(f"not a directory: {ref.path}", subject=ref.text)
    try:
        opened = _Root(root)
    except OSError as exc:
        raise ImageError(f"cannot open the root: {exc.strerror}", subject=ref.text) from exc
    try:
        handle = observer.task(f"reading {ref.text}")
        files, skipped = walk(opened, catalogers, limits, observer, handle)
        observer.finish(handle)
        distro = _distro(opened)
    finally:
        opened.close()
    return Inventory(
        source=ref.text,
        distro=distro,
        packages=tuple(run_catalogers(catalogers, files)),
        skipped=tuple(skipped),
    )


def walk(
    root: _Root, catalogers: Sequence[Cataloger], limits: Limits, observer: Observer, handle: object
) -> tuple[list[FileEntry], list[str]]:
    files: list[FileEntry] = []
    skipped: list[str] = []
    stack = ["/"]
    while stack:
        rel_dir = stack.pop()
        read_before = len(files)
        try:
            with root.directory(rel_dir, listing=True) as dir_fd:
                _walk_dir(root, dir_fd, rel_dir, catalogers, limits, files, skipped, stack)
        except OSError as exc:
            skipped.append(f"{rel_dir}: {exc.strerror}")
            continue
        observer.advance(handle, len(files) - read_before)
    return files, skipped


def _walk_dir(
    root: _Root,
    dir_fd: int,
    rel_dir: str,
    catalogers: Sequence[Cataloger],
    limits: Limits,
    files: list[FileEntry],
    skipped: list[str],
    stack: list[str],
) -> None:
    with os.scandir(dir_fd) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        path = (rel_dir.rstrip("/") + "/" + entry.name) if rel_dir != "/" else "/" + entry.name
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            skipped.append(f"{path}: {exc.strerror}")
            continue
        if stat.S_ISDIR(st.st_mode):
            if path not in SKIP_TOP:
                stack.append(path)
            continue
        if stat.S_ISREG(st.st_mode):
            if any(c.wants(path, st.st_mode, st.st_size) for c in catalogers):
                _read(partial(read_regular, dir_fd, entry.name), path, st, limits, files, skipped)
        elif stat.S_ISLNK(st.st_mode) and any(c.wants(path, st.st_mode, 0) for c in catalogers):
            _read_link(root, path, catalogers, limits, files, skipped)


def _read_link(
    root: _Root,
    path: str,
    catalogers: Sequence[Cataloger],
    limits: Limits,
    files: list[FileEntry],
    skipped: list[str],
) -> None:
    try:
        real = resolve(root, path)
    except _Escape:
        skipped.append(f"{path}: symlink leads outside the root, not followed")
        return
    if real is None:
        return
    try:
        st = root.lstat(real)
    except OSError:
        return
    if not stat.S_ISREG(st.st_mode):
        return
    if any(c.wants(real, st.st_mode, st.st_size) for c in catalogers):
        return  # the target is read under its own name
    _read(lambda n: root.read(real, n), path, st, limits, files, skipped)


def _read(
    read: Callable[[int], bytes],
    path: str,
    st: os.stat_result,
    limits: Limits,
    files: list[FileEntry],
    skipped: list[str],
) -> None:
    if st.st_size > limits.max_file_bytes:
        skipped.append(f"{path}: {st.st_size} bytes is over the per-file limit")
        return
    try:
        data = read(limits.max_file_bytes)
    except OSError as exc:
        skipped.append(f"{path}: {exc.strerror or 'cannot be read'}")
        return
    files.append(FileEntry(path=path, mode=st.st_mode, size=len(data), data=data, layer=None))


def resolve(root: _Root, path: str) -> str | None:
    """The real path of ``path`` inside ``root`` with every symlink followed inside it.

    Returns None when something on the way does not exist; raises _Escape for links out of the root.
    """
    pending = [p for p in path.split("/") if p]
    done: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            if not done:
                raise _Escape(path)
            done.pop()
            continue
        current = "/" + "/".join([*done, part])
        try:
            st = root.lstat(current)
            target = root.readlink(current) if stat.S_ISLNK(st.st_mode) else None
        except OSError:
            return None
        if target is not None:
            hops += 1
            if hops > _MAX_HOPS:
                return None
            if target.startswith("/"):
                done = []
            pending = [p for p in target.split("/") if p] + pending
            continue
        done.append(part)
    return "/" + "/".join(done)


def _distro(root: _Root) -> Distro | None:
    for path in OS_RELEASE_PATHS:
        try:
            real = resolve(root, path)
        except _Escape:
            continue
        if real is None:
            continue
        try:
            distro = parse_os_release(root.read(real, 1024 * 1024))
        except OSError:
            continue
        if distro is not None:
            return distro
    return None
