"""File monitoring: a fanotify group per workload root marks its filesystem for ``FAN_OPEN_PERM``.
An open of a sensitive path (binaries, libraries, ``/etc/passwd``, ``/etc/shadow``, package
databases, a profile's own ``files``) by one of the workload's processes *for writing* raises
``file.violation``; in Protect it is denied (``file.denied``; the open fails with EPERM before
anything is copied up or written). Reading is not reported.

fanotify does not say how a file is being opened; the opener is blocked inside its ``open``
system call, so ``/proc/PID/syscall`` gives the flags (``open``, ``openat``, ``creat``, and
``openat2`` through its ``open_how`` in ``/proc/PID/mem``). Runs on its own thread: the monitor's
other work opens files on the same filesystems (hashing ``/proc/PID/exe``) and must never wait on
itself; its own opens are always allowed."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import struct
import threading
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from stockade.identity import Workload
from stockade.model.errors import EnforcementError
from stockade.runtime import proc
from stockade.runtime.execgate import (
    AT_FDCWD,
    FAN_ALLOW,
    FAN_CLASS_CONTENT,
    FAN_CLOEXEC,
    FAN_DENY,
    FAN_MARK_ADD,
    FAN_MARK_FILESYSTEM,
    fanotify_libc,
)
from stockade.runtime.monitor import Monitor, Root

FAN_OPEN_PERM = 0x10000
_META = struct.Struct("=IBBHQii")
_RESPONSE = struct.Struct("=iI")
O_ACCMODE, O_CREAT, O_TRUNC = 0o3, 0o100, 0o1000
# syscall number -> (index of the flags argument, or -1 for creat; True when it is openat2)
_OPENS = {
    "x86_64": {2: (1, False), 257: (2, False), 85: (-1, False), 437: (2, True)},
    "aarch64": {56: (2, False), 437: (2, True)},
}
SENSITIVE = (
    "/bin/*", "/sbin/*", "/usr/bin/*", "/usr/sbin/*", "/usr/local/bin/*", "/usr/local/sbin/*",
    "/lib/*", "/lib64/*", "/usr/lib/*", "/usr/lib64/*", "/usr/local/lib/*",
    "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/sudoers", "/etc/sudoers.d/*",
    "/etc/ld.so.preload", "/etc/ld.so.conf", "/etc/ld.so.conf.d/*", "/etc/cron*",
    "/var/lib/dpkg/*", "/var/lib/rpm/*", "/lib/apk/db/*", "/root/.ssh/*",
)  # fmt: skip


def sensitive(path: str, extra: list[str] | tuple[str, ...] = ()) -> bool:
    return any(fnmatchcase(path, g) for g in (*SENSITIVE, *extra))


def open_flags(pid: int) -> int | None:
    """The flags of the open ``pid`` is blocked in, or None when it is not an open we know."""
    try:
        with open(f"/proc/{pid}/syscall", "rb") as f:
            fields = f.read().split()
    except OSError:
        return None
    table = _OPENS.get(platform.machine(), {})
    if not fields or not fields[0].isdigit() or int(fields[0]) not in table:
        return None
    index, is_openat2 = table[int(fields[0])]
    if index < 0:
        return os.O_WRONLY | O_CREAT | O_TRUNC  # creat()
    value = int(fields[1 + index], 16)
    if not is_openat2:
        return value
    try:  # openat2: the flags are the first field of the struct open_how it points at
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
        try:
            return int.from_bytes(os.pread(fd, 8, value), "little")
        finally:
            os.close(fd)
    except (OSError, OverflowError):
        return None


def is_write(flags: int) -> bool:
    return flags & O_ACCMODE in (os.O_WRONLY, os.O_RDWR) or bool(flags & (O_CREAT | O_TRUNC))


@dataclass(slots=True)
class FileGate:
    """Answers open permission events of every workload root on a thread of its own."""

    monitor: Monitor
    groups: dict[int, tuple[Workload, Root]] = field(default_factory=dict)
    denied: int = 0
    reported: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def add(self, workload: Workload, root: Root) -> None:
        libc = fanotify_libc()
        fd = libc.fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, os.O_RDONLY | os.O_LARGEFILE)
        if fd < 0:
            raise EnforcementError(f"fanotify_init: {os.strerror(ctypes.get_errno())}")
        rc = libc.fanotify_mark(
            fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_OPEN_PERM, AT_FDCWD, root.path.encode()
        )
        if rc != 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise EnforcementError(f"fanotify_mark {root.path}: {os.strerror(err)}")
        self.groups[fd] = (workload, root)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="file-gate", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import selectors

        with selectors.DefaultSelector() as sel:
            for fd in self.groups:
                sel.register(fd, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in sel.select(0.2):
                    self._handle(key.fd)

    def _handle(self, fd: int) -> None:
        workload, root = self.groups[fd]
        try:
            data = os.read(fd, 64 * _META.size)
        except OSError:
            return
        off = 0
        while off + _META.size <= len(data):
            length, _v, _r, _m, _mask, efd, pid = _META.unpack_from(data, off)
            off += max(length, _META.size)
            if efd < 0:
                continue
            allow = True
            try:
                allow = self._allow(workload, root, efd, pid)
            finally:
                os.write(fd, _RESPONSE.pack(efd, FAN_ALLOW if allow else FAN_DENY))
                os.close(efd)

    def _allow(self, workload: Workload, root: Root, efd: int, pid: int) -> bool:
        if pid == os.getpid():
            return True
        mon = self.monitor
        if mon.attribute(pid) != workload:
            return True
        try:
            path = root.inside(os.readlink(f"/proc/self/fd/{efd}"))
        except OSError:
            return True
        profile = mon.profile_for(workload)
        if path is None or not sensitive(path, profile.files):
            return True
        flags = open_flags(pid)
        if flags is None or not is_write(flags):
            return True
        exe = proc.exe_of(pid)
        data = {
            "pid": pid,
            "path": path,
            "flags": oct(flags),
            "exe": (root.inside(exe) or exe) if exe else None,
            "cmdline": proc.cmdline_of(pid) or "",
        }
        deny = profile.mode == "protect"
        mon.file_event(workload, profile, data, deny)
        if deny:
            self.denied += 1
        else:
            self.reported += 1
        return not deny

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for fd in self.groups:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.groups.clear()
