"""Refusing an exec before it runs: a fanotify group per workload root marks its filesystem for
``FAN_OPEN_EXEC_PERM`` (root; the kernel holds every ``execve`` of a file there until we answer).
In Protect the exec is denied (``execve`` fails with EPERM, nothing of the file runs) when the
monitor's rules would kill it: zero-drift (path and hash not the image's), a profile without it, or a
suspicious executable (the rules that need no command line: the arguments are not known yet).

Scripts (no ELF header) are allowed here: the interpreter they name is opened for exec too and
judged on its own. The image's dynamic loader (``ld-*.so*``, also opened for exec) is allowed when it
is the image's. Any other mode, and processes not attributed to the workload, are allowed. When the
watch stops its fanotify descriptors close and the kernel lets everything held through."""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
from dataclasses import dataclass, field

from stockade.identity import Workload
from stockade.model.errors import EnforcementError
from stockade.runtime import proc, suspicious
from stockade.runtime.monitor import Monitor, Root

FAN_CLOEXEC = 0x1
FAN_NONBLOCK = 0x2
FAN_CLASS_CONTENT = 0x4
FAN_MARK_ADD = 0x1
FAN_MARK_FILESYSTEM = 0x100
FAN_OPEN_EXEC_PERM = 0x40000
FAN_Q_OVERFLOW = 0x4000
FAN_ALLOW, FAN_DENY = 0x1, 0x2
AT_FDCWD = -100
_META = struct.Struct("=IBBHQii")
_RESPONSE = struct.Struct("=iI")
_CHUNK = 1 << 20


def fanotify_libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
    libc.fanotify_mark.argtypes = [
        ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p,
    ]  # fmt: skip
    return libc


@dataclass(slots=True)
class _Group:
    fd: int
    workload: Workload
    root: Root


@dataclass(slots=True)
class ExecGate:
    """One fanotify group per workload root; :meth:`handle` answers what a group has pending."""

    monitor: Monitor
    groups: dict[int, _Group] = field(default_factory=dict)
    denied: int = 0
    allowed: int = 0
    _hashes: dict[tuple[int, int, int, int], str] = field(default_factory=dict)

    def add(self, workload: Workload, root: Root) -> None:
        libc = fanotify_libc()
        fd = libc.fanotify_init(
            FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK, os.O_RDONLY | os.O_LARGEFILE
        )
        if fd < 0:
            raise EnforcementError(f"fanotify_init: {os.strerror(ctypes.get_errno())}")
        rc = libc.fanotify_mark(
            fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_OPEN_EXEC_PERM, AT_FDCWD,
            root.path.encode(),
        )  # fmt: skip
        if rc != 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise EnforcementError(f"fanotify_mark {root.path}: {os.strerror(err)}")
        self.groups[fd] = _Group(fd, workload, root)

    def fds(self) -> list[int]:
        return list(self.groups)

    def handle(self, fd: int) -> None:
        group = self.groups[fd]
        try:
            data = os.read(fd, 64 * _META.size)
        except BlockingIOError:
            return
        off = 0
        while off + _META.size <= len(data):
            length, _v, _r, _m, mask, efd, pid = _META.unpack_from(data, off)
            off += max(length, _META.size)
            if efd < 0:
                continue  # queue overflow: nothing to answer
            try:
                allow = not (mask & FAN_OPEN_EXEC_PERM) or self._allow(group, efd, pid)
            finally:
                os.write(fd, _RESPONSE.pack(efd, FAN_ALLOW if allow else FAN_DENY))
                os.close(efd)
            if allow:
                self.allowed += 1
            else:
                self.denied += 1

    def _allow(self, group: _Group, efd: int, pid: int) -> bool:
        mon = self.monitor
        w = mon.attribute(pid)
        if w is None or w != group.workload:
            return True
        profile = mon.profile_for(w)
        if profile.mode != "protect":
            return True
        try:
            host_path = os.readlink(f"/proc/self/fd/{efd}")
        except OSError:
            return True
        path = group.root.inside(host_path)
        if path is None:
            return True
        sha = self._sha256(efd)
        elf = os.pread(efd, 4, 0) == b"\x7fELF"
        image = group.root.image
        ppid = proc.parent_of(pid) or 0
        parent = mon.parent_path(ppid, group.root)
        data = {"pid": pid, "ppid": ppid, "exe": path, "sha256": sha, "parent": parent}
        if profile.zero_drift:
            if image is not None and image.holds(path, sha):
                return True
            mon.refuse(w, profile, data, "not in the image", "zero-drift")
            return False
        hit = suspicious.matches(
            suspicious.Exec(
                workload=w, path=path, cmdline="", parent=parent,
                parent_listens=bool(parent) and proc.Listening.check(ppid),
            )
        )  # fmt: skip
        if hit is not None:
            mon.refuse(w, profile, data, hit.reason, hit.id)
            return False
        if not elf:
            return True  # a script: its interpreter is judged when it is opened for exec
        base = path.rsplit("/", 1)[-1]
        if base.startswith("ld-") and ".so" in base:
            return image is None or image.holds(path, sha)
        if mon.allowed_by(profile, path, sha, parent):
            return True
        mon.refuse(w, profile, data, "not in the profile", profile.name)
        return False

    def _sha256(self, efd: int) -> str:
        import hashlib

        st = os.fstat(efd)
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        hit = self._hashes.get(key)
        if hit is None:
            h, offset = hashlib.sha256(), 0
            while chunk := os.pread(efd, _CHUNK, offset):
                h.update(chunk)
                offset += len(chunk)
            hit = self._hashes[key] = h.hexdigest()
            if len(self._hashes) > 10_000:
                self._hashes.clear()
        return hit

    def close(self) -> None:
        for fd in self.groups:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.groups.clear()
