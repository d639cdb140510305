"""What ``/proc`` tells about a process: its cgroup v2 path, executable (as a host path and a
sha256, cached by inode), parent and command line. Every reader returns None when the process has
already gone (short-lived processes often have)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from stockade.runtime.image import sha256_of


def cgroup_of(pid: int) -> str | None:
    """The cgroup v2 path (``0::/stockade.slice/sk-orders``) of ``pid``."""
    try:
        with open(f"/proc/{pid}/cgroup", "rb") as f:
            text = f.read()
    except OSError:
        return None
    at = text.find(b"0::")
    if at < 0:
        return None
    end = text.find(b"\n", at)
    return text[at + 3 : end if end >= 0 else None].decode(errors="replace")


def exe_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def cmdline_of(pid: int, limit: int = 4096) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read(limit)
    except OSError:
        return None
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rfind(b")") + 2 :].split()[1])


class Hashes:
    """sha256 of running executables, read through ``/proc/PID/exe`` (the file the process runs,
    even if replaced since) and cached by (device, inode, size, mtime)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._cache: dict[tuple[int, int, int, int], str] = {}
        self._limit = limit

    def of(self, pid: int) -> str | None:
        path = f"/proc/{pid}/exe"
        try:
            st = os.stat(path)
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            hit = self._cache.get(key)
            if hit is None:
                hit = sha256_of(path)
                if len(self._cache) >= self._limit:
                    self._cache.clear()
                self._cache[key] = hit
            return hit
        except OSError:
            return None


@dataclass(frozen=True, slots=True)
class Listening:
    """Whether a process holds a listening TCP socket (a network service)."""

    @staticmethod
    def check(pid: int) -> bool:
        inodes = set()
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            return False
        if not inodes:
            return False
        for table in ("tcp", "tcp6"):
            try:
                with open(f"/proc/{pid}/net/{table}") as f:
                    next(f, None)
                    for line in f:
                        cols = line.split()
                        if len(cols) > 9 and cols[3] == "0A" and cols[9] in inodes:
                            return True
            except OSError:
                continue
        return False
