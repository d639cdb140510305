"""``dir:PATH`` and ``pid:PID``: catalog a live root filesystem (no layers, no cache).

The tree is walked without following symlinks; ``/proc``, ``/sys`` and ``/dev`` under the root
are skipped (they are not files a package manager installed). A wanted path that is a symlink is
resolved inside the root, one component at a time; a link that climbs out of it is skipped and
reported, never followed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from stockade.model.errors import ImageError, UsageError
from stockade.model.progress import Observer
from stockade.scanning.distro import OS_RELEASE_PATHS, parse_os_release
from stockade.scanning.interface import Cataloger, Distro, FileEntry, Inventory
from stockade.scanning.layers import Limits
from stockade.scanning.sources.interface import Reference

SKIP_TOP = ("/proc", "/sys", "/dev")
_MAX_HOPS = 40


class _Escape(Exception):
    pass


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
    handle = observer.task(f"reading {ref.text}")
    files, skipped = walk(root, catalogers, limits, observer, handle)
    observer.finish(handle)
    return Inventory(
        source=ref.text,
        distro=_distro(root),
        packages=tuple(run_catalogers(catalogers, files)),
        skipped=tuple(skipped),
    )


def walk(
    root: str, catalogers: Sequence[Cataloger], limits: Limits, observer: Observer, handle: object
) -> tuple[list[FileEntry], list[str]]:
    files: list[FileEntry] = []
    skipped: list[str] = []
    stack = ["/"]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(_join(root, rel_dir)) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            skipped.append(f"{rel_dir}: {exc.strerror}")
            continue
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
                    _read(root, path, path, st.st_mode, st.st_size, limits, files, skipped)
                    observer.advance(handle, 1)
            elif stat.S_ISLNK(st.st_mode) and any(c.wants(path, st.st_mode, 0) for c in catalogers):
                _read_link(root, path, catalogers, limits, files, skipped)
    return files, skipped


def _read_link(
    root: str,
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
        st = os.lstat(_join(root, real))
    except OSError:
        return
    if not stat.S_ISREG(st.st_mode):
        return
    if any(c.wants(real, st.st_mode, st.st_size) for c in catalogers):
        return  # the target is read under its own name
    _read(root, real, path, st.st_mode, st.st_size, limits, files, skipped)


def _read(
    root: str,
    real: str,
    path: str,
    mode: int,
    size: int,
    limits: Limits,
    files: list[FileEntry],
    skipped: list[str],
) -> None:
    if size > limits.max_file_bytes:
        skipped.append(f"{path}: {size} bytes is over the per-file limit")
        return
    try:
        # O_NOFOLLOW: the last component was checked to be a regular file; refuse a swap to a link.
        fd = os.open(_join(root, real), os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(limits.max_file_bytes + 1)
    except OSError as exc:
        skipped.append(f"{path}: {exc.strerror}")
        return
    files.append(FileEntry(path=path, mode=mode, size=len(data), data=data, layer=None))


def _join(root: str, path: str) -> str:
    return root.rstrip("/") + path if path != "/" else root


def resolve(root: str, path: str) -> str | None:
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
            st = os.lstat(_join(root, current))
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > _MAX_HOPS:
                return None
            target = os.readlink(_join(root, current))
            if target.startswith("/"):
                done = []
            pending = [p for p in target.split("/") if p] + pending
            continue
        done.append(part)
    return "/" + "/".join(done)


def _distro(root: str) -> Distro | None:
    for path in OS_RELEASE_PATHS:
        try:
            real = resolve(root, path)
        except _Escape:
            continue
        if real is None:
            continue
        try:
            with open(_join(root, real), "rb") as fh:
                distro = parse_os_release(fh.read(1024 * 1024))
        except OSError:
            continue
        if distro is not None:
            return distro
    return None
